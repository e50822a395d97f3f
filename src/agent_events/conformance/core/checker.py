"""The sequence checker: a sans-I/O state machine over one observed stream.

Feed it what a client sent (:meth:`Checker.send`) and what it received
(:meth:`Checker.receive`), one frame at a time, with the client-clock time
of each when known; each call returns the violations that frame reveals.
:meth:`Checker.close` reports what the end of the stream leaves open. No
sockets, clocks or files in here (h11 is the model): the live probe, the
offline validator and the load generator drive the same machine, so a rule
means the same thing everywhere.

The checker is one object in four modules, along its seams: this one judges;
:mod:`~agent_events.conformance.core.run_ownership` decides which connection and run each
frame belongs to; :mod:`~agent_events.conformance.core.latency_judging` holds the time rules;
:mod:`~agent_events.conformance.core.evidence` counts how often each rule could have failed.
The state machine itself (states, kinds, the transition table, the tool-call family)
is :mod:`agent_events.run_rules`, shared with the reference agent's ``BaseAgent``;
the run timelines a report shows are built on the report side
(:mod:`~agent_events.conformance.reporting.timelines`).

The rules of the machine
========================

Frames. Every received frame must be text (``frame.text``; a binary frame is
still decoded and checked, so one wrong opcode is one violation) and one JSON
object (``frame.json``). An object with a known server type is validated
against its schema (``schema.envelope`` / ``schema.payload``), an unknown
type is ``schema.unknown_type`` and goes no further. ``error`` and
``time_sync`` replies belong to no run.

Runs. A run is identified by ``(connection, run_id)``. Once a client frame
has started a run (a valid ``start_run``), the stream has *client evidence*:
from then on a run event is accepted on a connection only for a run that
connection started, by its run_id or, for a ``start_run`` without one, the
oldest unclaimed start of that connection (``isolation.run_scope``; a leaked
event is reported and otherwise ignored, so it does not corrupt the run it
was leaked into). A ``start_run`` that is not valid starts nothing the
server owes, but it names a run of its connection: if a lenient server runs
it anyway, its events are that run's, judged like any other (whatever the
order of the start_runs). Without client evidence a run begins at its first
event and isolation is not applicable. :meth:`Checker.end_connection` ends a
closed connection's runs and releases its state; past ``CONN_MEMORY``
connections with nothing open, the least recently active is forgotten.

Each run event is then checked for ``seq`` (0, then +1 each: a gap, a repeat
or a step back is ``seq.contiguous``; the expectation never moves backwards,
so a reorder of two events is reported at both) and for delivery latency,
and moves the run through the TRANSITIONS table (:mod:`agent_events.run_rules`), keyed by
``(state, kind)`` where kind is the event type, with ``agent_started`` split
by attempt. A transition that names a rule reports it. Leaving an attempt
state ends the attempt: every tool still open is ``pair.tool_matched`` (and,
when the fallback attempt starts, also ``fallback.continuity``), and an
attempt without agent_thinking is ``order.thinking`` unless the run was
cancelled. Completing the run checks ``fallback.flag`` (fallback_used equals
"the fallback attempt ran"), the deadline, and, for a run that completed its
primary attempt without fallback or cancellation, the profile's rules. Then
the run's state is dropped (memory stays flat on endless streams); its key is
remembered for a while so that a late event is ``order.completed_last``.

Tools are paired by ``tool_call_id`` within the run (the tool-call family's key,
``run_rules.TOOL_CALL``, which also names the rule each breach reports): a completion must match
an open call of the same id and name (``pair.no_orphan``), an id is used once
(``pair.unique_id``), and no tool event belongs in the fallback attempt
(``fallback.continuity``).

Cancellation. A run is cancelled when the client sent ``cancel_run`` for it
or its result says ``cancelled: true``; the profile's rules and
``order.thinking`` do not apply to it.

Latency (client clock, milliseconds; absent times make the rule N/A):
``latency.first_event`` from the start_run send time to agent_started;
``latency.delivery`` from emitted_at, corrected by the connection's clock
offset, to receipt; ``latency.tool_gap`` between the ``emitted_at`` stamps
(the server's clock) of a fast tool's executing and completed;
``latency.run_deadline`` from the start_run
send time (or the first event's receipt) to agent_completed, or to
:meth:`Checker.tick` / :meth:`Checker.close` for a run still open.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from agent_events import schemas
from agent_events.conformance.core import json_text
from agent_events.conformance.core import profiles as _profiles
from agent_events.conformance.core import rules as _rules
from agent_events.conformance.core import schema_validation as _sv
from agent_events.conformance.reporting import timelines as _timelines
from agent_events.conformance.core.evidence import EvidenceCounting
from agent_events.conformance.core.harness_lag import HeldLatencies
from agent_events.conformance.core.latencies import Latencies
from agent_events.conformance.core.latency_judging import MAX_PENDING_LATENCY, LatencyJudging  # noqa: F401
# re-exported: names of the checker module before run ownership moved out
from agent_events.conformance.core.run_ownership import (  # noqa: F401
    ANONYMOUS_REFUSALS, COMPLETED_MEMORY, CONN_MEMORY, EXCERPT_LEN, TENTATIVE_MEMORY, Conn as _Conn, Run as _Run,
    RunOwnership, refused_run_id,
)
from agent_events.conformance.reporting.timelines import TIMELINE_EVENTS, TIMELINE_RUNS  # noqa: F401

from agent_events.conformance.core import frame_limit as _frame_limit

if TYPE_CHECKING:
    from agent_events.conformance.core.harness_lag import LagRecord
from agent_events.conformance.core.violations import RuleOutcome, Violation, clip, excerpt_line  # noqa: F401
# re-exported: the checker's public names since 1.0; the table itself is agent_events.run_rules'
from agent_events.run_rules import (  # noqa: F401
    ATTEMPT_STATES, AWAITING_START, CLOSE, COMPLETED, COMPLETED_EVENT, FALLBACK, HEADLESS, IN_ATTEMPT_KINDS,
    KINDS, PRIMARY, STARTED, STARTED_FALLBACK, STARTED_PRIMARY, STATES, THINKING, TOOL_COMPLETED,
    TOOL_EXECUTING, TOOL_KINDS, TRANSITIONS, V1,
)
from agent_events import run_rules as _run_rules

assert all(rule is None or rule in _rules.BY_ID for _, rule in TRANSITIONS.values())
assert V1.rule_ids <= set(_rules.BY_ID), sorted(V1.rule_ids - set(_rules.BY_ID))
#: The tool-call family: how the checker pairs tool events (key, name, uniqueness, breaches).
TOOL_CALL = V1.family("tool_call")


def state_diagram() -> str:
    """The transition table as mermaid ``stateDiagram-v2`` text (for the docs)."""
    return V1.state_diagram()


#: Violations kept per rule; the rest are only counted.
MAX_VIOLATIONS_PER_RULE = 100

_loads = json_text.loads
_JSONDecodeError = json_text.JSONDecodeError
_SERVER_IS_VALID = _sv.SERVER_IS_VALID
_RUN_EVENT_TYPES = _sv.RUN_EVENT_TYPES
_kind_of = _run_rules.kind_of
_ATTEMPT_END = _run_rules.ATTEMPT_END
_NUMBER = (int, float)
_explain = V1.explain


class Checker(RunOwnership, LatencyJudging, EvidenceCounting):
    """Checks one observed stream (any number of connections and runs).

    The judging is here (the time rules in :class:`~agent_events.conformance.core.latency_judging.LatencyJudging`);
    which run a frame belongs to is :class:`~agent_events.conformance.core.run_ownership.RunOwnership`'s, and
    how often each rule could have failed :class:`~agent_events.conformance.core.evidence.EvidenceCounting`'s.
    """

    def __init__(self, profile: "_profiles.Profile | str" = _profiles.DEFAULT_PROFILE, *,
                 max_violations_per_rule: int = MAX_VIOLATIONS_PER_RULE,
                 timeline_runs: int = TIMELINE_RUNS, lag: "LagRecord | None" = None) -> None:
        self.profile = _profiles.get(profile)
        #: the harness's own stalls (a live check's): an over-budget latency is judged at close,
        #: net of them (see :mod:`agent_events.conformance.core.harness_lag`); ``None`` offline
        self.lag = lag
        self._init_ownership(timeline_runs, COMPLETED_MEMORY, CONN_MEMORY)
        self._init_evidence()
        #: 1.1: the protocol versions the stream's capabilities messages declared (a 1.0 server
        #: declares none): what the report may claim for an offline recording
        self.declared_versions: set[str] = set()
        #: over-budget latency samples that the harness's own lag explains: rule id -> count
        self.inconclusive: dict[str, int] = {}
        #: per rule, the figures of the worst such sample (for every report format)
        self.inconclusive_worst: dict[str, dict] = {}
        self._held = HeldLatencies(lag, self.inconclusive, self.inconclusive_worst)
        self._first_budget = self.profile.first_event_ms
        self._delivery_budget = self.profile.delivery_ms
        self._gap_budget = self.profile.tool_gap_ms
        self._deadline_ms = self.profile.deadline_s * 1000.0
        self._fast_tools = frozenset(self.profile.fast_tools)
        self._max_kept = max_violations_per_rule
        self.reset_latencies()
        #: every violation kept (per rule, up to the cap), in order of discovery
        self.violations: list[Violation] = []
        self.violation_counts: dict[str, int] = {}
        #: ``error`` messages received, by code
        self.errors_received: dict[str, int] = {}
        self.closed = False
        #: kind -> what it does to its family's open members (v1: the tool call's two kinds)
        self._effects = {}
        for kind in TOOL_CALL.opens:
            self._effects[kind] = self._on_member_open
        for kind in TOOL_CALL.closes:
            self._effects[kind] = self._on_member_close

    @property
    def timelines(self) -> list[dict]:
        """The kept runs' timelines, as the report shows them (built on demand, report side)."""
        return [_timelines.build(rec) for rec in self.timeline_records]

    def reset_latencies(self) -> None:
        """Start every latency series afresh (a load's warm-up is not its measurement)."""
        self.latencies = Latencies()
        self._delivery = self.latencies.delivery  # the series every run event adds to

    def receive(self, frame: Any, at: float | None = None, conn: str = "c0", ref: Any = None) -> list[Violation]:
        """Check one received frame: ``str`` a text frame, ``bytes`` a binary frame,
        anything else an already-decoded JSON value. ``at`` is the receive time
        (client clock, epoch ms); ``ref`` an opaque location such as ``file:line`` (or a
        ``(source, line)`` pair, formatted so only when a violation names it)."""
        c = self._conns.get(conn)
        if c is None:
            c = self._conn(conn)
        index = c.received
        c.received = index + 1
        self.frames += 1
        kind = type(frame)
        if kind is dict:  # the client cores hand over decoded objects
            self.parsed += 1
            return self._message(frame, at, c, index, ref, [])
        if kind is str:
            self.parsed += 1
            try:
                message = _loads(frame)
            except _JSONDecodeError as exc:
                return self._not_json(c, index, at, ref, frame, f"not JSON ({exc})")
        elif isinstance(frame, (bytes, bytearray, memoryview)):
            return self._binary(c, index, at, ref, bytes(frame))  # (counted parsed once decoded)
        else:
            self.parsed += 1
            message = frame
        return self._message(message, at, c, index, ref, [])

    def receive_oversize(self, size: int, limit: int, at: float | None = None, conn: str = "c0",
                         ref: Any = None) -> Violation | None:
        """A frame of ``size`` bytes over the frame ``limit``, not read (:func:`~agent_events.conformance.core.frame_limit.receive_oversize`)."""
        return _frame_limit.receive_oversize(self, size, limit, at, conn, ref)

    def _binary(self, c: _Conn, index: int, at, ref, raw: bytes) -> list[Violation]:
        c.recent.append((index, at, raw))
        out = [self._flag("frame.text", c.name, None, index, at, ref, "a text frame",
                          f"a binary frame of {len(raw)} bytes", c.recent)]
        self.parsed += 1
        try:
            message = _loads(raw)
        except _JSONDecodeError as exc:
            out.append(self._flag("frame.json", c.name, None, index, at, ref, "one UTF-8 JSON object",
                                  f"binary content that is not UTF-8 JSON ({exc})", c.recent))
            return out
        c.recent.pop()
        return self._message(message, at, c, index, ref, out)

    def _not_json(self, c: _Conn, index: int, at, ref, raw: Any, observed: str) -> list[Violation]:
        c.recent.append((index, at, raw))
        return [self._flag("frame.json", c.name, None, index, at, ref, "one UTF-8 JSON object", observed, c.recent)]

    def _message(self, message: Any, at, c: _Conn, index: int, ref, out: list[Violation]) -> list[Violation]:
        if type(message) is not dict:
            if isinstance(message, Mapping):
                message = dict(message)
            else:
                out.extend(self._not_json(c, index, at, ref, message, f"a JSON {_json_type(message)}, not an object"))
                return out
        self.objects += 1
        entry = (index, at, message)
        c.recent.append(entry)
        type_ = message.get("type")
        if type(type_) is not str:
            out.append(self._flag("schema.envelope", c.name, _run_id_of(message), index, at, ref,
                                  "a string type naming a protocol v1 message",
                                  "no type" if type_ is None else f"type {_short(type_)}", c.recent))
            return out
        is_valid = _SERVER_IS_VALID.get(type_)
        if is_valid is None:
            out.append(self._flag("schema.unknown_type", c.name, _run_id_of(message), index, at, ref,
                                  f"one of the protocol v1 types: {', '.join(schemas.SERVER_TYPES)}",
                                  f"type {type_!r}", c.recent))
            return out
        self.typed += 1
        try:
            valid = is_valid(message)
        except Exception:  # noqa: BLE001 - a value the fast engine cannot take: the reference decides
            valid = False
        if not valid:
            for rule_id, expected, observed in _sv.problems(type_, message):
                out.append(self._flag(rule_id, c.name, _run_id_of(message), index, at, ref, expected, observed, c.recent))
        if type_ in _RUN_EVENT_TYPES:
            self._event(type_, message, entry, at, c, index, ref, out)
        elif type_ == "error":
            self._on_error(message, c)
        elif type_ == "capabilities":
            self._on_capabilities(message, at, c, index, ref, out)
        return out

    def _on_capabilities(self, message: dict, at, c: _Conn, index: int, ref, out: list) -> None:
        """1.1: the declaration comes first and once per connection (``capabilities.first``); a
        connection that ends takes its declaration with it (a new one of the same name declares anew)."""
        self.capabilities_checked += 1
        if c.declared or index != 0:
            observed = ("a second capabilities message on the connection" if c.declared
                        else f"capabilities as server message #{index}, after {index} other(s)")
            out.append(self._flag("capabilities.first", c.name, None, index, at, ref,
                                  "one capabilities message, the connection's first server message", observed,
                                  c.recent))
        c.declared = True
        version = message.get("protocol_version")
        if type(version) is str and len(self.declared_versions) < 16:  # a handful at most; never a leak
            self.declared_versions.add(version)

    def protocol_version(self) -> str:
        """The protocol version the stream showed: the one its capabilities declared, ``"1.0"`` when it
        declared none (a 1.0 server sends no capabilities); of several, the lowest (claim no more)."""
        return schemas.lowest_version(self.declared_versions)

    def _event(self, type_: str, message: dict, entry, at, c: _Conn, index: int, ref, out: list) -> None:
        run_id = message.get("run_id")
        if type(run_id) is not str:
            return  # unroutable; the schema violation says why
        key = (c.name, run_id)
        run = self._runs.get(key)
        if run is None:
            run = self._attach(key, type_, message, entry, at, c, index, ref, out)
            if run is None:
                return
        recent = run.recent
        if not recent:  # the run's first event
            run.first_at = at
            self.runs_with_events += 1
        recent.append(entry)
        timeline = run.timeline
        if timeline is not None and len(timeline) < TIMELINE_EVENTS:
            timeline.append(entry)
        self.run_events += 1
        if self._client_evidence:
            self.isolation_checked += 1

        seq = message.get("seq")
        if type(seq) is float and seq.is_integer():  # 2.0, or 2**64 read as a double: an integer to the schema
            seq = int(seq)
        if type(seq) is int:
            expected = run.next_seq
            if seq == expected and not run.resumed:  # the common case, in one test
                run.next_seq = seq + 1
            else:
                if run.resumed:
                    self.resumed_events += 1
                if seq != expected:
                    what = (f"seq {seq}: {seq - expected} event(s) missing" if seq > expected
                            else f"seq {seq} again or out of order (a step back)")
                    if run.resumed:  # 1.1: across the two connections, the replay's own rule
                        what += " after resume_run"
                    out.append(self._flag("resume.replay" if run.resumed else "seq.contiguous", c.name, run_id, index,
                                          at, ref, f"seq {expected}", what, recent, run))
                if seq >= expected:
                    run.next_seq = seq + 1

        emitted = message.get("emitted_at")
        if type(emitted) is not float and type(emitted) is not int:
            emitted = None
        elif at is not None and not (run.resumed and run.resumed_at is not None and emitted - c.offset <= run.resumed_at):
            # (a replayed event, emitted before the resume_run was sent, waited for the client by design)
            latency = at - emitted + c.offset
            self.delivery_checked += 1
            self._delivery.add(latency)
            if latency > self._delivery_budget:
                self._late(out, latency, self._delivery_budget, at - latency,
                           "latency.delivery", c.name, run_id, index, at, ref,
                           f"received within {self._delivery_budget:g} ms of emitted_at",
                           f"received {latency:.1f} ms after emitted_at (clock offset {c.offset:g} ms)",
                           recent, run, c.uncertainty)

        payload = message.get("payload")
        if type(payload) is not dict:
            payload = None
        kind = type_
        if type_ == STARTED:
            kind = _kind_of(type_, payload)
            token = payload.get("resume_token") if payload is not None else None
            if type(token) is str and run.token is None:
                run.token = token
        elif type_ == COMPLETED_EVENT and payload is not None:
            result = payload.get("result")
            if type(result) is dict and result.get("cancelled") is True:
                run.cancelled = True  # known before the attempt's end is judged
        prev = run.state
        nxt, rule_id = TRANSITIONS[prev, kind]
        if rule_id is not None:
            out.append(self._flag(rule_id, c.name, run_id, index, at, ref, *_explain(rule_id, prev, kind),
                                  recent, run))
        if nxt is not prev:
            run.state = nxt
            if prev in ATTEMPT_STATES and (nxt is FALLBACK or nxt is COMPLETED):
                self._end_attempt(run, nxt, index, at, ref, out)
        if kind is type_:
            run.emitted = emitted
            if kind == THINKING:  # the most frequent event: its one effect, inline
                run.thinking += 1
                return
            effect = self._effects.get(kind)
            if effect is not None:
                effect(run, message, payload, at, index, ref, out)
            elif kind == COMPLETED_EVENT:
                if prev is AWAITING_START:
                    self._end_attempt(run, nxt, index, at, ref, out)
                self._on_completed(run, payload, at, index, ref, out)
        else:
            self.started_events += 1
            if prev is AWAITING_START or prev is HEADLESS:
                self._first_event(run, at, index, ref, out)
            elif nxt is FALLBACK and prev is PRIMARY:
                run.attempt = 1
                run.fallback_ran = True
                self.fallback_attempts += 1

    def _on_member_open(self, run: _Run, message, payload, at, index, ref, out, family=TOOL_CALL) -> None:
        """A member of ``family`` opens (v1: tool_executing): its key is used once (``unique``), and
        it stays open, with its name and the server's stamp, until a close matches it."""
        self.tool_calls += 1
        if payload is None:
            return
        name = family.name_of(message)
        if run.attempt == 0:
            run.primary_tools.append(name)
        call_id = family.key_of(message)
        if type(call_id) is not str:
            return
        if call_id in run.tool_ids:
            if family.unique:
                out.append(self._flag(family.breaches.duplicate, run.conn, run.run_id, index, at, ref,
                                      f"a {family.key[-1]} not used before in run {run.run_id!r}",
                                      f"{family.key[-1]} {call_id!r} again (tool {_short(name)})", run.recent, run))
        else:
            run.tool_ids.add(call_id)
        # The server's stamp, not the receive time: a tool's duration is the server's to show, and the
        # network (or the harness's own lag) must not make a fast tool look slow, or hide a slow one.
        run.open_tools[call_id] = (name, run.emitted)

    def _on_member_close(self, run: _Run, message, payload, at, index, ref, out, family=TOOL_CALL) -> None:
        """A member of ``family`` closes (v1: tool_completed): it must match an open member of the same
        key and name (``breaches.orphan``); a fast tool's gap is its latency."""
        self.tool_completions += 1
        if payload is None:
            return
        call_id = family.key_of(message)
        if type(call_id) is not str:
            return
        name = family.name_of(message)
        opened = run.open_tools.get(call_id)
        if opened is None or opened[0] != name:
            close, open_ = family.closes[0], family.opens[0]
            observed = (f"{close} {call_id!r} ({_short(name)}) with no open {open_} of that id"
                        if opened is None else
                        f"{close} {call_id!r} names {_short(name)}, its {open_} named {_short(opened[0])}")
            out.append(self._flag(family.breaches.orphan, run.conn, run.run_id, index, at, ref,
                                  f"a {close} matching an open {open_} (same id and name)",
                                  observed, run.recent, run))
            return
        del run.open_tools[call_id]
        started = opened[1]
        ended = run.emitted
        if started is not None and ended is not None and name in self._fast_tools:
            gap = ended - started
            self.gaps_checked += 1
            self.latencies.tool_gap.add(gap)
            if gap > self._gap_budget:
                duration = payload.get("duration_ms")
                said = (f"; its duration_ms says {duration:g} ms" if type(duration) in _NUMBER and
                        math.isfinite(duration) else "")
                out.append(self._flag("latency.tool_gap", run.conn, run.run_id, index, at, ref,
                                      f"fast tool {name} completed within {self._gap_budget:g} ms",
                                      f"{name}: {gap:.3f} ms from the emitted_at of tool_executing to that of "
                                      f"tool_completed (the server's clock){said}",
                                      run.recent, run))

    def _end_attempt(self, run: _Run, nxt: str, index, at, ref, out: list, *, closing: bool = False) -> None:
        """The current attempt is over: check what must hold at the end of an attempt."""
        if run.attempt == 0:
            run.primary_thinking = run.thinking
        family = TOOL_CALL  # every member closed by the end of its attempt (or of the run: then at completion)
        if run.open_tools and (family.closed_by == _ATTEMPT_END or closing or nxt is COMPLETED):
            where = "the fallback attempt started" if nxt is FALLBACK else (
                "the stream ended" if closing else "the run completed")
            for call_id, (name, _) in run.open_tools.items():
                out.append(self._flag(family.breaches.unclosed, run.conn, run.run_id, index, at, ref,
                                      f"a {family.closes[0]} for {call_id!r} ({_short(name)}) before the attempt ends",
                                      f"{where} with tool {call_id!r} ({_short(name)}) still open", run.recent, run))
                if nxt is FALLBACK and family.breaches.unclosed_into_fallback is not None:
                    out.append(self._flag(family.breaches.unclosed_into_fallback, run.conn, run.run_id, index, at, ref,
                                          "no tool left open from the primary attempt when the fallback starts",
                                          f"tool {call_id!r} ({_short(name)}) still open", run.recent, run))
            run.open_tools.clear()
        if closing or run.cancelled:
            return
        self.attempts_ended += 1
        if run.thinking == 0:
            attempt = "fallback" if run.attempt else "primary"
            out.append(self._flag("order.thinking", run.conn, run.run_id, index, at, ref,
                                  f"at least one agent_thinking in the {attempt} attempt",
                                  f"the {attempt} attempt ended with no agent_thinking", run.recent, run))
        run.thinking = 0

    def _on_completed(self, run: _Run, payload, at, index, ref, out) -> None:
        result = payload.get("result") if payload is not None else None
        if type(result) is not dict:
            result = None
        fallback_used = result.get("fallback_used") if result is not None else None
        if type(fallback_used) is bool:
            self.flags_checked += 1
            if fallback_used is not run.fallback_ran:
                ran = "ran" if run.fallback_ran else "did not run"
                out.append(self._flag("fallback.flag", run.conn, run.run_id, index, at, ref,
                                      f"fallback_used {str(run.fallback_ran).lower()} (the fallback attempt {ran})",
                                      f"fallback_used {str(fallback_used).lower()}", run.recent, run))
        if not run.cancelled and not run.fallback_ran:
            self._check_profile(run, index, at, ref, out)
        self._check_deadline(run, at, index, ref, out)
        self.runs_completed += 1
        self._finish(run)

    def _check_profile(self, run: _Run, index, at, ref, out) -> None:
        profile = self.profile
        if profile.tools_rule is None and profile.thinking_rule is None:
            return
        self.profile_checked += 1
        if profile.tools_rule is not None and profile.expected_tools is not None:
            tools = tuple(run.primary_tools)
            if tools != profile.expected_tools:
                out.append(self._flag(profile.tools_rule, run.conn, run.run_id, index, at, ref,
                                      "tools " + " -> ".join(profile.expected_tools),
                                      "tools " + (" -> ".join(map(_short, tools)) or "(none)"), run.recent, run))
        if profile.thinking_rule is not None and profile.thinking is not None:
            low, high = profile.thinking
            if not low <= run.primary_thinking <= high:
                out.append(self._flag(profile.thinking_rule, run.conn, run.run_id, index, at, ref,
                                      f"{low} to {high} agent_thinking on the primary path",
                                      f"{run.primary_thinking} agent_thinking", run.recent, run))

    def close(self, at: float | None = None) -> list[Violation]:
        """The stream has ended: report every run (and start_run) left open, and judge the
        over-budget latencies held back for the harness's lag."""
        out = self.tick(at) if at is not None else []
        self._end_runs(list(self._runs.values()), at, out)
        detached, self._detached = list(self._detached.values()), {}
        self._end_runs(detached, at, out, "its connection closed and it was never resumed")
        for c in self._conns.values():
            self._end_anonymous(c, at, out)
        self._settle_latency(out)
        self.closed = True
        return out

    def _end_runs(self, runs: list[_Run], at: float | None, out: list[Violation],
                  ended: str = "the stream ended") -> None:
        for run in runs:
            prev = run.state
            nxt, rule_id = TRANSITIONS[prev, CLOSE]
            if prev in ATTEMPT_STATES:
                self._end_attempt(run, nxt, None, at, None, out, closing=True)
            if rule_id is not None:
                observed = (f"{ended} before any event of the run" if prev is AWAITING_START
                            else f"{ended} in state {prev}, without agent_completed")
                out.append(self._flag(rule_id, run.conn, run.run_id, None, at, None,
                                      "exactly one agent_completed, last", observed, run.recent, run))
            run.state = nxt
            self._finish(run)

    def _flag(self, rule_id: str, conn: str, run_id, index, at, ref, expected: str, observed: str,
              recent: Iterable, run: _Run | None = None) -> Violation:
        if type(ref) is tuple:  # (source, line) from a recording: its location, formatted only now
            ref = f"{ref[0]}:{ref[1]}"
        rule = _rules.BY_ID[rule_id]
        start = run.origin() if run is not None else None
        excerpt = tuple(excerpt_line(i, t, m, start) for (i, t, m) in recent)
        violation = Violation(rule_id, rule.level.value, rule.severity, run_id, conn, index,
                              expected, observed, excerpt, at, ref)
        count = self.violation_counts.get(rule_id, 0) + 1
        self.violation_counts[rule_id] = count
        if count <= self._max_kept:
            self.violations.append(violation)
        if run is not None:
            if run.failed is None:
                run.failed = set()
            run.failed.add(rule_id)
        return violation


def _run_id_of(message: dict) -> str | None:
    run_id = message.get("run_id")
    return run_id if type(run_id) is str else None


def _short(value: Any, limit: int = 60) -> str:
    return clip(value if isinstance(value, str) else repr(value), limit)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__
