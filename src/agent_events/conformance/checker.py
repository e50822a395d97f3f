"""The sequence checker: a sans-I/O state machine over one observed stream.

Feed it what a client sent (:meth:`Checker.send`) and what it received
(:meth:`Checker.receive`), one frame at a time, with the client-clock time
of each when known; each call returns the violations that frame reveals.
:meth:`Checker.close` reports what the end of the stream leaves open. No
sockets, clocks or files in here (h11 is the model): the live probe, the
offline validator and the load generator drive the same machine, so a rule
means the same thing everywhere.

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
and moves the run through the TRANSITIONS table below, keyed by
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

Tools are paired by ``tool_call_id`` within the run: a completion must match
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
from collections import deque
from itertools import islice
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from agent_events import schemas
from agent_events.conformance import json_text
from agent_events.conformance import profiles as _profiles
from agent_events.conformance import rules as _rules
from agent_events.conformance import schema_validation as _sv
from agent_events.conformance.latencies import Latencies

if TYPE_CHECKING:
    from agent_events.conformance.harness_lag import LagRecord
from agent_events.conformance.violations import RuleOutcome, Violation, clip, excerpt_line, summarise
# re-exported: the checker's public names since 1.0; the table itself is agent_events.run_rules'
from agent_events.run_rules import (  # noqa: F401
    ATTEMPT_STATES, AWAITING_START, CLOSE, COMPLETED, COMPLETED_EVENT, FALLBACK, HEADLESS, IN_ATTEMPT_KINDS,
    KINDS, PRIMARY, STARTED, STARTED_FALLBACK, STARTED_PRIMARY, STATES, THINKING, TOOL_COMPLETED,
    TOOL_EXECUTING, TOOL_KINDS, TRANSITIONS, V1,
)
from agent_events import run_rules as _run_rules

# -- states, kinds and the transition table: agent_events.run_rules (shared with BaseAgent) -------

assert all(rule is None or rule in _rules.BY_ID for _, rule in TRANSITIONS.values())
assert V1.rule_ids <= set(_rules.BY_ID), sorted(V1.rule_ids - set(_rules.BY_ID))
#: The tool-call family: how the checker pairs tool events (key, name, uniqueness, breaches).
TOOL_CALL = V1.family("tool_call")


def refused_run_id(error: Mapping) -> str | None:
    """The run an ``error`` message refuses to start, if it names one.

    An error carrying a run_id answers that run's start_run, except
    ``duplicate_run``, which refuses only the *second* start of an id already
    in flight, and ``unknown_run``, which answers a ``cancel_run``: a run that
    was started and gets no event is not refused by an ``unknown_run`` (a
    cancel that arrives before the run's first event still owes the run its
    events). Callers treat the run as refused when it has no events yet; the
    checker and the live probe share this judgement.
    """
    run_id = error.get("run_id")
    code = error.get("code")
    # a code of any JSON type may come (a list is unhashable): only a string can be a known one
    return run_id if type(run_id) is str and not (type(code) is str and code in _NOT_REFUSALS) else None


def state_diagram() -> str:
    """The transition table as mermaid ``stateDiagram-v2`` text (for the docs)."""
    return V1.state_diagram()


# -- limits that keep memory flat ----------------------------------------------

#: Messages kept for an excerpt: the offending one and the three before it.
EXCERPT_LEN = 4
#: Violations kept per rule; the rest are only counted.
MAX_VIOLATIONS_PER_RULE = 100
#: Completed runs remembered, to recognise an event that arrives after agent_completed.
COMPLETED_MEMORY = 65536
#: Connections with nothing open (no run, no unclaimed start_run) whose state is kept; past this the
#: least recently active is forgotten, so memory stays flat however many connections a transcript
#: holds without close records. A forgotten connection that speaks again starts over (frame index 0).
CONN_MEMORY = 1024
#: start_runs that were not valid but named a run, kept per connection (a lenient server may run them).
TENTATIVE_MEMORY = 256
#: Runs whose timeline (every event with its times) is kept for the HTML report.
TIMELINE_RUNS = 20
#: Over-budget latency samples held for the harness-lag judgement at close; past this many the
#: rest are judged at once (a stream that late is failing anyway).
MAX_PENDING_LATENCY = 10_000
TIMELINE_EVENTS = 500

_loads = json_text.loads
_JSONDecodeError = json_text.JSONDecodeError
_SERVER_IS_VALID = _sv.SERVER_IS_VALID
_DUPLICATE_RUN = "duplicate_run"
#: error codes that, without a run_id, refuse a valid start_run sent without run_id
ANONYMOUS_REFUSALS = frozenset(("too_many_runs", "shutting_down"))
#: error codes that name a run without refusing its start (see :func:`refused_run_id`)
_NOT_REFUSALS = frozenset((_DUPLICATE_RUN, "unknown_run"))
assert _NOT_REFUSALS <= set(schemas.ERROR_CODES)
_RUN_EVENT_TYPES = _sv.RUN_EVENT_TYPES
_kind_of = _run_rules.kind_of
_NUMBER = (int, float)


class _Conn:
    __slots__ = ("name", "received", "offset", "recent", "anonymous", "tentative", "tentative_anonymous",
                 "duplicates", "run_ids", "completed_ids", "declared")

    def __init__(self, name: str) -> None:
        self.name = name
        self.received = 0
        self.offset = 0.0
        #: 1.1: a capabilities message came on this connection
        self.declared = False
        self.recent: deque = deque(maxlen=EXCERPT_LEN)
        #: send times of start_runs without run_id, not yet claimed by a run
        self.anonymous: deque = deque()
        #: run_id -> send time of a start_run that was not valid (the server should refuse it, but a
        #: lenient one may run it: its events then belong to this connection, whatever the order)
        self.tentative: dict[str, float | None] = {}
        #: send times of invalid start_runs without run_id, claimed only after the valid ones
        self.tentative_anonymous: deque = deque(maxlen=TENTATIVE_MEMORY)
        #: run_id -> send time of a start_run of a run_id in flight: the server refuses it with
        #: duplicate_run, unless it completed the first run before it read this start (a new run)
        self.duplicates: dict[str, float | None] = {}
        #: run_ids of this connection's runs in progress, and of its completed runs still remembered
        self.run_ids: set = set()
        self.completed_ids: set = set()

    def idle(self) -> bool:
        """Nothing owed: forgetting the connection loses no judgement (an invalid start_run is owed
        nothing; forgetting it only stops a very late run of it from being attributed)."""
        return not (self.run_ids or self.anonymous) and not self.offset


class _Run:
    __slots__ = (
        "conn", "run_id", "state", "next_seq", "attempt", "thinking", "primary_thinking",
        "open_tools", "tool_ids", "primary_tools", "cancelled", "fallback_ran", "start_at",
        "first_at", "recent", "timeline", "failed", "deadline_reported", "first_event_reported", "emitted",
        "token", "resumed", "resumed_at",
    )

    def __init__(self, conn: str, run_id: str | None, start_at: float | None) -> None:
        #: the server's emitted_at of the event being handled (a number, else None)
        self.emitted: float | None = None
        #: 1.1: the resume_token of the run's agent_started, and whether a resume_run took it over
        self.token: str | None = None
        self.resumed = False
        self.resumed_at: float | None = None
        self.conn = conn
        self.run_id = run_id
        self.state = AWAITING_START
        self.next_seq = 0
        self.attempt = 0  # 0 primary, 1 fallback
        self.thinking = 0  # agent_thinking in the current attempt
        self.primary_thinking = 0
        self.open_tools: dict[str, tuple[Any, float | None]] = {}
        self.tool_ids: set[str] = set()
        self.primary_tools: list[Any] = []
        self.cancelled = False
        self.fallback_ran = False
        self.start_at = start_at
        self.first_at: float | None = None
        self.recent: deque = deque(maxlen=EXCERPT_LEN)
        self.timeline: list | None = None
        self.failed: set[str] | None = None
        self.deadline_reported = False
        self.first_event_reported = False

    def origin(self) -> float | None:
        """Where the run's times count from: the start_run send time, else its first event's receipt."""
        return self.start_at if self.start_at is not None else self.first_at


class Checker:
    """Checks one observed stream (any number of connections and runs)."""

    def __init__(self, profile: "_profiles.Profile | str" = _profiles.DEFAULT_PROFILE, *,
                 max_violations_per_rule: int = MAX_VIOLATIONS_PER_RULE,
                 timeline_runs: int = TIMELINE_RUNS, lag: "LagRecord | None" = None) -> None:
        self.profile = _profiles.get(profile)
        #: the harness's own stalls (a live check's): an over-budget latency is judged at close,
        #: net of them (see :mod:`agent_events.conformance.harness_lag`); ``None`` offline
        self.lag = lag
        self._pending_latency: list[tuple] = []
        #: 1.1: runs with a resume_token whose connection ended, by (run_id, token): run_ids are per
        #: connection, the token is the run's own; a resume_run on another
        #: connection takes them over; the ones never resumed are judged at close
        self._detached: dict[tuple[str, str], _Run] = {}
        #: 1.1: the protocol versions the stream's capabilities messages declared (a 1.0 server
        #: declares none): what the report may claim for an offline recording
        self.declared_versions: set[str] = set()
        self.capabilities_checked = 0
        self.resumed_events = 0
        #: over-budget latency samples that the harness's own lag explains: rule id -> count
        self.inconclusive: dict[str, int] = {}
        #: per rule, the figures of the worst such sample (for every report format)
        self.inconclusive_worst: dict[str, dict] = {}
        self._first_budget = self.profile.first_event_ms
        self._delivery_budget = self.profile.delivery_ms
        self._gap_budget = self.profile.tool_gap_ms
        self._deadline_ms = self.profile.deadline_s * 1000.0
        self._fast_tools = frozenset(self.profile.fast_tools)
        self._max_kept = max_violations_per_rule
        self._timeline_slots = timeline_runs
        self._conns: dict[str, _Conn] = {}
        self._runs: dict[tuple[str, str | None], _Run] = {}
        self._completed: dict[tuple[str, str | None], None] = {}
        self._client_evidence = False
        self._not_applicable: dict[str, str] = {}
        self._external_checked: dict[str, int] = {}
        self.reset_latencies()
        #: every violation kept (per rule, up to the cap), in order of discovery
        self.violations: list[Violation] = []
        self.violation_counts: dict[str, int] = {}
        self.timelines: list[dict] = []
        #: ``error`` messages received, by code
        self.errors_received: dict[str, int] = {}
        self.closed = False
        # evidence counters: how many times each rule could have been broken
        self.frames = 0            # frames received
        self.parsed = 0            # frames with content to parse
        self.objects = 0           # JSON objects received
        self.typed = 0             # objects with a known server type
        self.run_events = 0        # events routed to a run
        self.isolation_checked = 0
        self.runs = 0              # runs seen (started by the client or by their first event)
        self.runs_with_events = 0
        self.runs_ended = 0        # completed or closed
        self.runs_completed = 0
        self.attempts_ended = 0
        self.fallback_attempts = 0
        self.started_events = 0
        self.tool_calls = 0
        self.tool_completions = 0
        self.flags_checked = 0
        self.profile_checked = 0
        self.first_event_checked = 0
        self.delivery_checked = 0
        self.gaps_checked = 0
        self.deadlines_checked = 0
        self.starts_sent = 0
        self.cancels_sent = 0
        self.runs_refused = 0
        self.connections_forgotten = 0
        self.frames_unread = 0     # frames over the frame limit, counted but not read
        #: kind -> what it does to its family's open members (v1: the tool call's two kinds)
        self._effects = {}
        for kind in TOOL_CALL.opens:
            self._effects[kind] = self._on_member_open
        for kind in TOOL_CALL.closes:
            self._effects[kind] = self._on_member_close

    def reset_latencies(self) -> None:
        """Start every latency series afresh (a load's warm-up is not its measurement)."""
        self.latencies = Latencies()
        self._delivery = self.latencies.delivery  # the series every run event adds to

    # -- client side ---------------------------------------------------------

    def set_clock_offset(self, conn: str, offset_ms: float) -> None:
        """Server clock minus client clock on ``conn`` (ms), for latency.delivery."""
        self._conn(conn).offset = float(offset_ms)

    def send(self, message: Any, at: float | None = None, conn: str = "c0") -> list[Violation]:
        """Record a client frame: which runs a connection started, when, and cancellations.

        Client frames are evidence, not under test: the result is always empty.
        An invalid client message (a robustness probe) starts nothing.
        """
        if isinstance(message, (str, bytes, bytearray)):
            try:
                message = _loads(message)
            except _JSONDecodeError:
                return []
        if type(message) is not dict:
            if not isinstance(message, Mapping):
                return []
            message = dict(message)
        if not _sv.is_valid_client(message):
            if message.get("type") == "start_run":
                self._tentative_start(message, at, conn)
            return []
        type_ = message["type"]
        if type_ == "start_run":
            self._client_evidence = True
            self.starts_sent += 1
            c = self._conn(conn)
            run_id = message.get("run_id")
            if run_id is None:
                c.anonymous.append(at)
                return []
            key = (conn, run_id)
            if key in self._runs:  # a duplicate start: the server refuses it, the first run goes on
                if len(c.duplicates) >= TENTATIVE_MEMORY:
                    del c.duplicates[next(iter(c.duplicates))]
                c.duplicates[run_id] = at
                return []
            self._completed.pop(key, None)
            self._new_run(key, conn, run_id, at)
        elif type_ == "cancel_run":
            self.cancels_sent += 1
            run = self._runs.get((conn, message["run_id"]))
            if run is not None:
                run.cancelled = True
        elif type_ == "resume_run":
            self._client_evidence = True
            self._resume(message, at, conn)
        return []

    def _resume(self, message: dict, at: float | None, conn: str) -> None:
        """1.1: a resume_run takes a detached run over, when its token is the run's: from here its
        events belong to ``conn`` and continue at ``last_seq + 1``. With a wrong token nothing moves,
        so any event of the run on ``conn`` is another connection's (isolation.run_scope)."""
        run_id = message["run_id"]
        run = self._detached.pop((run_id, message["resume_token"]), None)
        if run is None:
            return
        c = self._conn(conn)
        key = (conn, run_id)
        self._completed.pop(key, None)
        run.conn = conn
        run.resumed = True
        run.resumed_at = at
        run.next_seq = message["last_seq"] + 1
        self._runs[key] = run
        c.run_ids.add(run_id)

    def _tentative_start(self, message: dict, at: float | None, conn: str) -> None:
        """An invalid start_run: the server should refuse it, but if it runs it anyway, the run's
        events belong to this connection (judged like any run), and the client frames are evidence."""
        self._client_evidence = True
        c = self._conn(conn)
        run_id = message.get("run_id")
        if run_id is None:
            c.tentative_anonymous.append(at)
        elif type(run_id) is str and (conn, run_id) not in self._runs:
            if len(c.tentative) >= TENTATIVE_MEMORY:
                del c.tentative[next(iter(c.tentative))]
            c.tentative[run_id] = at

    # -- connections -----------------------------------------------------------

    def end_connection(self, conn: str, at: float | None = None) -> list[Violation]:
        """The connection closed: every run it left open is reported (as :meth:`close` does), and
        its state is released. A later frame of the same name is a new connection."""
        c = self._conns.get(conn)
        if c is None:
            return []
        out: list[Violation] = []
        runs = [run for run in (self._runs.get((conn, rid)) for rid in list(c.run_ids)) if run is not None]
        if at is not None:
            for run in runs:
                self._tick_run(run, at, out)
        resumable = [run for run in runs if run.token is not None and run.run_id is not None]
        for run in resumable:  # 1.1: the run outlives its connection; a resume_run may take it over
            self._runs.pop((conn, run.run_id), None)
            c.run_ids.discard(run.run_id)
            self._detached[(run.run_id, run.token)] = run
            while len(self._detached) > COMPLETED_MEMORY:
                oldest = self._detached.pop(next(iter(self._detached)))
                self._end_runs([oldest], at, out, "its connection closed and it was never resumed")
        runs = [run for run in runs if run.token is None or run.run_id is None]
        self._end_runs(runs, at, out, "the connection closed")
        self._end_anonymous(c, at, out)
        completed = self._completed
        for rid in c.completed_ids:
            completed.pop((conn, rid), None)
        del self._conns[conn]
        return out

    def new_recording(self, at: float | None = None) -> list[Violation]:
        """A new recording starts (a transcript header after frames, as when two transcripts are
        concatenated): every connection of the previous one ends, and its client evidence with it."""
        out: list[Violation] = []
        for name in list(self._conns):
            out.extend(self.end_connection(name, at))
        self._completed.clear()
        self._client_evidence = False
        return out

    # -- server side ---------------------------------------------------------

    def receive(self, frame: Any, at: float | None = None, conn: str = "c0", ref: str | None = None) -> list[Violation]:
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

    def _on_error(self, message: dict, c: _Conn) -> None:
        code = message.get("code")
        code = code if type(code) is str else "?"
        self.errors_received[code] = self.errors_received.get(code, 0) + 1
        run_id = refused_run_id(message)
        if code == _DUPLICATE_RUN and type(message.get("run_id")) is str:
            c.duplicates.pop(message["run_id"], None)  # refused as it should be: the first run goes on
        run = self._runs.get((c.name, run_id)) if run_id is not None else None
        if run_id is not None:
            c.tentative.pop(run_id, None)  # an invalid start_run, refused as it should be
            if run is not None and run.state == AWAITING_START:
                # the server refused to start it: there will be no events, and that is fine
                del self._runs[(c.name, run_id)]
                c.run_ids.discard(run_id)
                self.runs_refused += 1
        if run is None and code in ANONYMOUS_REFUSALS and c.anonymous and type(message.get("run_id")) in (str, type(None)):
            # A start_run without run_id refused: its error names no run of this connection (none, or
            # the id the server would have given it). The latest such start is taken as the refused
            # one (a bound refuses the newest); the client core does the same.
            c.anonymous.pop()
            self.runs_refused += 1

    # -- run events ------------------------------------------------------------

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
                           recent, run)

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

    def _attach(self, key, type_: str, message: dict, entry, at, c: _Conn, index: int, ref, out: list) -> _Run | None:
        """The run a first-seen (connection, run_id) belongs to, or ``None`` when it belongs to none."""
        if type_ == STARTED and key in self._completed and (c.anonymous or key[1] in c.duplicates):
            # A new run of a completed run's id: one started without run_id (the server may use an
            # id again once its run completed), or a start_run sent while the id was in flight that
            # the server read after that run completed. (The client core attributes it alike.)
            del self._completed[key]
            start = c.anonymous.popleft() if c.anonymous else c.duplicates.pop(key[1])
            return self._new_run(key, c.name, key[1], start)
        if key in self._completed:
            self._completed[key] = self._completed.pop(key)  # keep it fresh
            kind = type_ if type_ != STARTED else STARTED_PRIMARY
            rule_id = TRANSITIONS[COMPLETED, kind][1]
            if rule_id is not None:
                recent = deque([entry], maxlen=EXCERPT_LEN)
                out.append(self._flag(rule_id, c.name, key[1], index, at, ref, "nothing of the run after its agent_completed",
                                      f"{type_} after agent_completed", recent))
            return None
        if self._client_evidence:
            self.isolation_checked += 1
            if c.anonymous:
                run = self._new_run(key, c.name, key[1], c.anonymous.popleft())
                return run
            if key[1] in c.tentative:  # an invalid start_run of this run, which the server ran anyway
                return self._new_run(key, c.name, key[1], c.tentative.pop(key[1]))
            if c.tentative_anonymous:
                return self._new_run(key, c.name, key[1], c.tentative_anonymous.popleft())
            owner = next((conn for (conn, rid) in self._runs if rid == key[1] and conn != c.name), None)
            observed = (f"an event of run {key[1]!r}, which connection {owner} started" if owner is not None
                        else f"an event of run {key[1]!r}, which this connection never started")
            out.append(self._flag("isolation.run_scope", c.name, key[1], index, at, ref,
                                  f"only events of runs connection {c.name} started", observed, c.recent))
            return None
        return self._new_run(key, c.name, key[1], None)

    def _new_run(self, key, conn: str, run_id: str | None, start_at: float | None) -> _Run:
        run = _Run(conn, run_id, start_at)
        c = self._conns.get(conn)
        if c is not None:
            c.run_ids.add(run_id)
            c.tentative.pop(run_id, None)
        if self._timeline_slots > 0:
            self._timeline_slots -= 1
            run.timeline = []
        self._runs[key] = run
        self.runs += 1
        return run

    # -- effects of events -----------------------------------------------------------

    def _first_event(self, run: _Run, at, index: int, ref, out: list) -> None:
        if run.start_at is None or at is None or run.first_event_reported:
            return
        latency = at - run.start_at
        self.first_event_checked += 1
        self.latencies.first_event.add(latency)
        if latency > self._first_budget:
            run.first_event_reported = True
            self._late(out, latency, self._first_budget, run.start_at,
                       "latency.first_event", run.conn, run.run_id, index, at, ref,
                       f"agent_started within {self._first_budget:g} ms of start_run",
                       f"agent_started {latency:.1f} ms after start_run", run.recent, run)

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
        if run.open_tools:  # the tool-call family: every member closed by the end of its attempt
            family = TOOL_CALL
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

    def _check_deadline(self, run: _Run, at, index, ref, out, *, still_open: bool = False) -> None:
        start = run.origin()
        if at is None or start is None or run.deadline_reported:
            return
        duration = at - start
        if not still_open:
            self.deadlines_checked += 1
            self.latencies.run.add(duration)
        if duration > self._deadline_ms:
            run.deadline_reported = True
            if still_open:
                self.deadlines_checked += 1
            observed = (f"still running {duration / 1000:.3f} s after its start" if still_open
                        else f"completed {duration / 1000:.3f} s after its start")
            out.append(self._flag("latency.run_deadline", run.conn, run.run_id, index, at, ref,
                                  f"agent_completed within {self.profile.deadline_s:g} s", observed, run.recent, run))

    def _finish(self, run: _Run) -> None:
        key = (run.conn, run.run_id)
        self._runs.pop(key, None)
        self.runs_ended += 1
        c = self._conns.get(run.conn)
        if c is not None:
            c.run_ids.discard(run.run_id)
            if c.idle():  # most recently active last: the connections forgotten first are the oldest
                del self._conns[run.conn]
                self._conns[run.conn] = c
        if run.run_id is not None:
            completed = self._completed
            completed[key] = None
            if c is not None:
                c.completed_ids.add(run.run_id)
            if len(completed) > COMPLETED_MEMORY:
                old = next(iter(completed))
                del completed[old]
                owner = self._conns.get(old[0])
                if owner is not None:
                    owner.completed_ids.discard(old[1])
        if run.timeline is not None:
            self.timelines.append(_timeline(run, self._conns[run.conn].offset if run.conn in self._conns else 0.0))

    # -- the end of the stream ---------------------------------------------------------

    def tick(self, at: float) -> list[Violation]:
        """Report runs that have overrun the deadline (or first-event budget) by ``at``.

        A live probe calls this while it waits, so that a hung run is reported
        when its deadline passes rather than only at the end.
        """
        out: list[Violation] = []
        for run in list(self._runs.values()):
            self._tick_run(run, at, out)
        return out

    def _tick_run(self, run: _Run, at: float, out: list[Violation]) -> None:
        if run.state is AWAITING_START and run.start_at is not None and not run.first_event_reported:
            waited = at - run.start_at
            if waited > self._first_budget:
                run.first_event_reported = True
                self.first_event_checked += 1
                self._late(out, waited, self._first_budget, run.start_at,
                           "latency.first_event", run.conn, run.run_id, None, at, None,
                           f"agent_started within {self._first_budget:g} ms of start_run",
                           f"no agent_started {waited:.1f} ms after start_run", run.recent, run)
        self._check_deadline(run, at, None, None, out, still_open=True)

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

    # -- latency net of the harness's own lag ------------------------------------------------
    def _late(self, out: list, latency: float, budget: float, since: float | None, rule_id: str, conn: str,
              run_id, index, at, ref, expected: str, observed: str, recent, run) -> None:
        """An over-budget latency sample: a violation now (offline), or held until close, when the
        harness's stalls over the sample's window ``[since, at]`` are known (a live check)."""
        if self.lag is None or at is None or since is None or len(self._pending_latency) >= MAX_PENDING_LATENCY:
            out.append(self._flag(rule_id, conn, run_id, index, at, ref, expected, observed, recent, run))
            return
        self._pending_latency.append((rule_id, latency, budget, since, at,
                                      (conn, run_id, index, ref, expected, observed, tuple(recent), run)))

    def _settle_latency(self, out: list) -> None:
        """Each held sample: what remains once the harness's own stall in its window is taken
        off either still breaks the budget (a violation, with both figures), or does not: then
        the endpoint may have been in time, and the sample is inconclusive."""
        lag = self.lag
        for rule_id, latency, budget, since, at, (conn, run_id, index, ref, expected, observed, recent, run) \
                in self._pending_latency:
            harness = lag.delay_before(since, at)
            if latency - harness > budget:
                if harness > 0.0:
                    observed = f"{observed}; {latency - harness:.1f} ms net of the harness's own {harness:.1f} ms stall"
                out.append(self._flag(rule_id, conn, run_id, index, at, ref, expected, observed, recent, run))
                continue
            self.inconclusive[rule_id] = self.inconclusive.get(rule_id, 0) + 1
            worst = self.inconclusive_worst.get(rule_id)
            if worst is None or latency > worst["latency_ms"]:
                self.inconclusive_worst[rule_id] = {
                    "latency_ms": round(latency, 3), "budget_ms": budget, "harness_stall_ms": round(harness, 3),
                    "run_id": run_id, "conn": conn, "at": at}
        self._pending_latency.clear()

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

    def _end_anonymous(self, c: _Conn, at: float | None, out: list[Violation]) -> None:
        c.tentative.clear()  # invalid starts the server rightly ignored: nothing was owed
        c.duplicates.clear()  # duplicate starts: refused, or never run; nothing was owed either
        c.tentative_anonymous.clear()
        while c.anonymous:
            start = c.anonymous.popleft()
            self.runs += 1
            self.runs_ended += 1
            if at is not None and start is not None and at - start > self._first_budget:
                self.first_event_checked += 1
                out.append(self._flag("latency.first_event", c.name, None, None, at, None,
                                      f"agent_started within {self._first_budget:g} ms of start_run",
                                      f"no agent_started {at - start:.1f} ms after a start_run without run_id",
                                      (), None))
            out.append(self._flag("order.completed_last", c.name, None, None, at, None,
                                  "exactly one agent_completed, last",
                                  "a start_run without run_id got no event at all", (), None))

    def receive_oversize(self, size: int, limit: int, at: float | None = None, conn: str = "c0",
                         ref: str | None = None) -> Violation | None:
        """A frame (or a transcript line) of ``size`` bytes, over the frame ``limit``, that was not read:
        it counts as a received frame and fails ``frame.size``."""
        c = self._conn(conn)
        c.received += 1
        self.frames += 1
        self.frames_unread += 1
        return self.external("frame.size", False, conn=conn, at=at, location=ref,
                             expected=f"every message at most {limit} bytes (the frame limit)",
                             observed=f"{size} bytes; not read")

    # -- checks made elsewhere -----------------------------------------------------------

    def not_applicable(self, rule_id: str, reason: str) -> None:
        """Declare a rule not exercised (e.g. the endpoint ignored simulate_failure).

        It is reported N/A with ``reason`` unless it was actually violated.
        """
        _rules.get(rule_id)
        self._not_applicable[rule_id] = reason

    def external(self, rule_id: str, passed: bool, *, expected: str = "", observed: str = "",
                 conn: str = "c0", run_id: str | None = None, at: float | None = None,
                 location: str | None = None, checks: int = 1) -> Violation | None:
        """Record the result of a check made outside the state machine (a live probe's own checks,
        such as the endpoint answering malformed input with an ``error``); ``checks`` passed
        checks can be recorded at once."""
        _rules.get(rule_id)
        self._external_checked[rule_id] = self._external_checked.get(rule_id, 0) + checks
        if passed:
            return None
        c = self._conns.get(conn)
        return self._flag(rule_id, conn, run_id, None, at, location, expected, observed, c.recent if c else (), None)

    # -- results ---------------------------------------------------------------------------

    @property
    def declared_not_applicable(self) -> dict[str, str]:
        """Rules declared N/A with :meth:`not_applicable`, and why."""
        return dict(self._not_applicable)

    @property
    def active_runs(self) -> int:
        return len(self._runs)

    def outcomes(self) -> dict[str, RuleOutcome]:
        """Every registry rule: how often it was checked and violated, or why it was not applicable."""
        result = {}
        table = self._evidence_table()
        for rule in _rules.RULES:
            count = self.violation_counts.get(rule.id, 0)
            checked, reason = self._evidence(rule, table)
            checked += self._external_checked.get(rule.id, 0)
            if rule.id in self._not_applicable and not count:
                checked, reason = 0, self._not_applicable[rule.id]
            elif count or checked:
                reason = None
            inconclusive = self.inconclusive.get(rule.id, 0)
            result[rule.id] = RuleOutcome(rule.id, max(checked, count), count, reason, inconclusive=inconclusive,
                                          inconclusive_worst=self.inconclusive_worst.get(rule.id))
        return result

    def _evidence_table(self) -> dict[str, tuple[int, str]]:
        """Rule id -> (how often the checker could have seen it broken, why it could not)."""
        no_timing = "no receive times in the input (plain messages, or frames without \"t\")"
        no_runs = "no run event was received"
        return {
            "frame.text": (self.frames - self.frames_unread, "no frame was received"),
            "frame.json": (self.parsed, "no frame was received"),
            "schema.envelope": (self.typed, "no message of a known type was received"),
            "schema.payload": (self.typed, "no message of a known type was received"),
            "schema.unknown_type": (self.objects, "no JSON object was received"),
            "seq.contiguous": (self.run_events, no_runs),
            "order.first_started": (self.runs_with_events, no_runs),
            "order.completed_last": (self.runs_ended, "no run was started or seen"),
            "order.thinking": (self.attempts_ended, "no attempt ended (other than by cancellation)"),
            "pair.tool_matched": (self.tool_calls, "no tool call was made"),
            "pair.no_orphan": (self.tool_completions, "no tool_completed was received"),
            "pair.unique_id": (self.tool_calls, "no tool call was made"),
            "fallback.single": (self.started_events, "no agent_started was received"),
            "fallback.flag": (self.flags_checked, "no run completed with a readable result"),
            "fallback.continuity": (self.fallback_attempts, "no fallback attempt ran"),
            "isolation.run_scope": (self.isolation_checked,
                                    "no client frames: which connection started a run is unknown"),
            "latency.first_event": (self.first_event_checked,
                                    no_timing if not self.delivery_checked else "no start_run with a send time was answered"),
            "latency.delivery": (self.delivery_checked, no_timing),
            "latency.tool_gap": (self.gaps_checked,
                                 f"profile {self.profile.name} names no fast tools" if not self._fast_tools
                                 else "no fast tool completed"),
            "latency.run_deadline": (self.deadlines_checked, no_timing),
            "capabilities.first": (self.capabilities_checked,
                                   "no capabilities message was received (a 1.0 server declares none): not claimed"),
            "resume.replay": (self.resumed_events, "no run was resumed (resume_run): not claimed or not exercised"),
        }

    def _evidence(self, rule: "_rules.Rule", table: dict[str, tuple[int, str]]) -> tuple[int, str | None]:
        if rule.profile is not None and rule.id not in self.profile.rule_ids:
            return 0, f"not a rule of profile {self.profile.name}"
        if rule.id == self.profile.tools_rule or rule.id == self.profile.thinking_rule:
            return self.profile_checked, "no run completed its primary attempt without fallback or cancellation"
        if rule.id in table:
            return table[rule.id]
        return 0, "checked only by a live probe" if rule.scope == "live" else "not checked by the sequence checker"

    # -- helpers -----------------------------------------------------------------------------

    def _conn(self, conn: str) -> _Conn:
        c = self._conns.get(conn)
        if c is None:
            conns = self._conns
            if len(conns) >= CONN_MEMORY:
                self._forget_idle()
            c = conns[conn] = _Conn(conn)
        return c

    def _forget_idle(self) -> None:
        """Drop the least recently active connection that has nothing open (its completed runs stay
        remembered, under COMPLETED_MEMORY), so a transcript without close records keeps memory flat."""
        for name, c in list(islice(self._conns.items(), 64)):
            if c.idle():
                del self._conns[name]
                self.connections_forgotten += 1
                return

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


def _timeline(run: _Run, offset: float) -> dict:
    start = run.origin()
    events = []
    for index, at, message in run.timeline or ():
        emitted = message.get("emitted_at")
        delivery = (at - emitted + offset) if at is not None and type(emitted) in _NUMBER else None
        events.append({
            "index": index,
            "seq": message.get("seq") if type(message.get("seq")) is int else None,
            "type": str(message.get("type")),
            "t_ms": round(at - start, 3) if at is not None and start is not None else None,
            "delivery_ms": round(delivery, 3) if delivery is not None else None,
            "label": summarise(message),
            **_timeline_details(message),
        })
    return {
        "run_id": run.run_id,
        "conn": run.conn,
        "start_at": start,
        "state": run.state,
        "fallback": run.fallback_ran,
        "cancelled": run.cancelled,
        "violations": sorted(run.failed or ()),
        "events": events,
        "truncated": len(run.timeline or ()) >= TIMELINE_EVENTS,
    }


#: Payload fields a timeline keeps (when they are strings) so that a reader can draw attempts and tool calls.
_TIMELINE_DETAILS = ("attempt", "tool_call_id", "tool_name", "status")


def _timeline_details(message: dict) -> dict:
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return {}
    return {key: clip(value, 80) for key in _TIMELINE_DETAILS if type(value := payload.get(key)) is str}


_explain = V1.explain


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
