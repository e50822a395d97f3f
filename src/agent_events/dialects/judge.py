"""The paired-family judge: one sans-I/O state machine for every foreign dialect.

It has the checker's surface (:meth:`receive`, :meth:`send`, :meth:`end_connection`,
:meth:`close`, :meth:`outcomes`, the counters a report section reads), so the
reports, the offline validator and the live shells drive it unchanged. What it
judges is the dialect's data (:class:`agent_events.dialects.model.Dialect`):

* a frame decodes in the dialect's framing into events, or is ``frame.json``;
* an event's type is at the type pointer; a type the dialect does not list is its
  ``unknown_type`` rule (never fatal in AG-UI), a known one is validated against the
  dialect's schema when it has one, then the dialect's hooks run (chunk expansion);
* a run is scoped positionally (opens, its events, then it finishes or errors; runs
  follow one another) or keyed by the run id pointer, and each event walks the dialect's
  run-rules table (:func:`agent_events.dialects.lifecycle.build`, a
  :class:`agent_events.run_rules.RunRules` value): ``(state, kind) -> (next state, rule)``,
  the rules being the dialect's ``lifecycle`` roles: ``first`` (an event before any run),
  ``nested`` (an open inside an open run, past the allowed restarts), ``after_end`` (an
  event after the run ended: a new open, or a late error where the dialect allows one,
  excepted), ``ended`` (a run still open when its connection or the stream ends);
* each family of paired events is a :class:`agent_events.run_rules.Family` row of that
  value, judged per run: content or a close with nothing open is its ``breaches.orphan``,
  an open of an open key its ``breaches.duplicate``, an item open when the run finishes
  its ``breaches.unclosed`` (an error ends a run without that judgement: a failed run
  owes nothing); a change of the attribution field is the dialect family's
  ``attribution_rule``;
* ``seq`` (when the dialect has a seq pointer) starts at 0 and rises by one per run;
  latency: first event after the client's start, run deadline, tool span on receive
  times, delivery only with a declared timestamp unit.

A rule is counted as checked each time it could have been broken, so a rule with no
evidence is N/A with the reason, never a pass.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable

from agent_events.conformance.core import profiles as _profiles
from agent_events.conformance.core import rules as _rules
from agent_events.conformance.core.latencies import Latencies
from agent_events.conformance.core.frame_limit import FrameLimit
from agent_events.conformance.core.harness_lag import HeldLatencies, LagRecord
from agent_events.conformance.core.violations import RuleOutcome, Violation, excerpt_line
from agent_events.dialects.framing import FrameProblem, decode
from agent_events.dialects.hooks import HOOKS
from agent_events.dialects.lifecycle import CLOSE, ERRORED, EVENT, FINISHED, IDLE, RUN_ERROR, RUN_FINISH, RUN_OPEN
from agent_events.dialects.lifecycle import build as build_run_rules
from agent_events.dialects import fast_paths
from agent_events.dialects.families import FamilyJudging
from agent_events.dialects.evidence import _row_checks, derived_checks, outcomes, rule_ids
from agent_events.dialects.model import TIMESTAMP_UNITS, Dialect

EXCERPT_LEN = 4
MAX_VIOLATIONS_PER_RULE = 100
#: ended run keys remembered per connection (keyed scope), to recognise an event after the end
ENDED_MEMORY = 4096
_NUMBER = (int, float)


class _Run:
    __slots__ = ("key", "run_id", "start_at", "first_at", "open", "by_name", "seq", "restarts", "events")

    def __init__(self, key: Any, start_at: float | None) -> None:
        self.key = key
        self.run_id = key
        self.start_at = start_at
        self.first_at: float | None = None
        #: family name -> {key: (opened at, attribution, name)}
        self.open: dict[str, dict[Any, tuple]] = {}
        #: family name -> {name: deque of opened-at} (pairing by name, in order)
        self.by_name: dict[str, dict[Any, deque]] = {}
        self.seq = 0
        self.restarts = 0
        self.events = 0

    def origin(self) -> float | None:
        return self.start_at if self.start_at is not None else self.first_at


class _Conn:
    __slots__ = ("name", "received", "recent", "runs", "states", "starts", "hooks")

    def __init__(self, name: str, hooks: list) -> None:
        self.name = name
        self.received = 0
        self.recent: deque = deque(maxlen=EXCERPT_LEN)
        self.runs: dict[Any, _Run] = {}
        #: run key -> its state in the dialect's run-rules table (absent: idle)
        self.states: dict[Any, str] = {}
        #: send times of the client's start messages not yet answered by a run
        self.starts: deque = deque()
        self.hooks = hooks


class DialectChecker(FamilyJudging, FrameLimit):
    """Judges one observed stream (any number of connections) in a foreign dialect."""

    def __init__(self, dialect: Dialect, profile: "_profiles.Profile | str" = _profiles.DEFAULT_PROFILE, *,
                 max_violations_per_rule: int = MAX_VIOLATIONS_PER_RULE, lag: "LagRecord | None" = None) -> None:
        self.dialect = dialect
        self.profile = _profiles.get(profile)
        self._max_kept = max_violations_per_rule
        self._families = dialect.family_of()
        self._runs = dialect.runs
        self._opens = frozenset(dialect.runs.opens)
        self._finishes = frozenset(dialect.runs.finishes)
        self._errors = frozenset(dialect.runs.errors)
        self._known = frozenset(dialect.types)
        self._roles = dict(dialect.lifecycle)
        #: the dialect's run rules: the lifecycle table and the family rows (agent_events.run_rules)
        self.run_rules = build_run_rules(dialect)
        self._table = self.run_rules.transitions
        self._rows = {row.name: row for row in self.run_rules.families}
        #: type -> its kind in the table (absent: EVENT)
        self._kinds = {t: self._kind_of(t) for t in (*dialect.runs.opens, *dialect.runs.finishes,
                                                     *dialect.runs.errors, *self._families)}
        self._running = self.run_rules.attempt_states
        self._role_of = {rule: role for role, rule in self._roles.items()}
        #: rows that break no rule but could have (a run's open could have been a nested one): the rules
        #: they count as checked
        self._row_checks = _row_checks(self.run_rules, self._roles)
        self._judged = frozenset(dialect.rules)
        self._validate = None
        if dialect.schema is not None:
            from agent_events.dialects.schema import validator_for

            self._validate = validator_for(dialect)
        self._unit = TIMESTAMP_UNITS.get(dialect.timestamp_unit) if dialect.timestamp_unit else None
        self._fast_tools = frozenset(self.profile.fast_tools)
        self._conns: dict[str, _Conn] = {}
        self._checked: dict[str, int] = {}
        self._not_applicable: dict[str, str] = {}
        self.latencies = Latencies()
        self.violations: list[Violation] = []
        self.violation_counts: dict[str, int] = {}
        self.timelines: list[dict] = []
        #: run timelines for the HTML report (the report side builds them; none kept for a foreign dialect yet)
        self.timeline_records: list = []
        self.errors_received: dict[str, int] = {}
        self.inconclusive: dict[str, int] = {}
        self.inconclusive_worst: dict[str, dict] = {}
        #: a live check's over-budget latencies on receive times, judged at close net of the
        #: harness's own stalls (``lag``, None offline), as our checker does
        self._held = HeldLatencies(lag, self.inconclusive, self.inconclusive_worst)
        self.closed = False
        self.frames = 0
        self.objects = 0
        self.events = 0
        self.run_events = 0
        self.runs = 0
        self.runs_completed = 0
        self.runs_errored = 0
        self.fallback_attempts = 0
        self.starts_sent = 0
        self.cancels_sent = 0
        self.runs_refused = 0
        self.delivery_checked = 0
        self.frames_unread = 0
        self.text_frames = 0
        self.typed = 0
        #: the type's key when the pointer is one member (the fast path), else None
        self._type_key = dialect.type.tokens[0] if len(dialect.type.tokens) == 1 else None
        #: a decoded value needs no decoding (no envelope to open)
        self._plain = dialect.framing != "envelope"
        self.closings = 0

        def token(pointer):
            return pointer.tokens[0] if pointer is not None and len(pointer.tokens) == 1 else None
        #: family -> the single member names of its key, name and attribution pointers (the fast path)
        self._tokens = {f.name: (token(f.key), token(f.name_pointer), token(f.attribution)) for f in dialect.families}
        self._keyed = dialect.runs.scope == "keyed" and dialect.run_id is not None
        self._seq = dialect.seq
        #: the hot path's shortcuts (see agent_events.dialects.fast_paths)
        self._steady, self._plain_run_event, self._plans = fast_paths.build(self)

    # -- the client's side -----------------------------------------------------------------

    def send(self, message: Any, at: float | None = None, conn: str = "c0") -> list[Violation]:
        """A frame the client sent: a start message (``RunAgentInput``) starts the clock of the next run."""
        c = self._conn(conn)
        self.starts_sent += 1
        c.starts.append(at)
        return []

    # -- the server's side -----------------------------------------------------------------

    def receive(self, frame: Any, at: float | None = None, conn: str = "c0", ref: Any = None) -> list[Violation]:
        c = self._conns.get(conn) or self._conn(conn)
        index = c.received
        c.received = index + 1
        self.frames += 1
        out: list[Violation] = []
        kind = type(frame)
        if kind is dict and self._plain:  # a decoded event (a transcript's msg, an NDJSON line): nothing to decode
            self._value(frame, at, c, index, ref, out)
            return out
        if kind is str:
            self.text_frames += 1
        elif isinstance(frame, (bytes, bytearray, memoryview)):
            self.text_frames += 1
            c.recent.append((index, at, bytes(frame)))
            out.append(self._flag("frame.text", c, None, index, at, ref, "a text frame",
                                  f"a binary frame of {len(frame)} bytes"))
        try:
            values = decode(frame, self.dialect.framing, self.dialect.envelope)
        except FrameProblem as exc:
            c.recent.append((index, at, frame))
            out.append(self._flag("frame.json", c, None, index, at, ref,
                                  f"{self.dialect.label} events in {self.dialect.framing} framing", str(exc)))
            return out
        for value in values:
            self._value(value, at, c, index, ref, out)
        return out

    def _value(self, value: Any, at, c: _Conn, index: int, ref, out: list) -> None:
        """One decoded value: typed, known, schema-valid, expanded by the hooks, then judged.

        The per-event rules (the type, unknown types, the schema's, the hooks') are counted as
        checked by the counters ``objects`` / ``typed`` (see :meth:`_derived_checks`), not one by one."""
        c.recent.append((index, at, value))
        if type(value) is not dict:
            out.append(self._flag("frame.json", c, None, index, at, ref, "a JSON object (an event)",
                                  f"a JSON {type(value).__name__}, not an object"))
            return
        self.objects += 1
        type_key = self._type_key
        type_ = value.get(type_key) if type_key is not None else self.dialect.type.resolve(value, None)
        if type(type_) is not str:
            out.append(self._flag(self._roles["type"], c, None, index, at, ref,
                                  f"an event with a string type at {self.dialect.type.text!r}",
                                  "no type" if type_ is None else f"type {type_!r}"))
            return
        known = self._known
        if known and type_ not in known:
            unknown = self._roles.get("unknown_type")
            if unknown:
                out.append(self._flag(unknown, c, None, index, at, ref, f"one of the {self.dialect.label} event types",
                                      f"type {type_!r} (dropped, as a consumer does)"))
            return
        self.typed += 1
        validate = self._validate
        if validate is not None:
            problems = validate(type_, value)
            if problems:
                for rule_id, expected, observed in problems:
                    out.append(self._flag(rule_id, c, None, index, at, ref, expected, observed))
        hooks = c.hooks
        if not hooks:
            self._event(value, type_, at, c, index, ref, out)
            return
        if len(hooks) == 1 and hooks[0].idle_for(type_):
            self._event(value, type_, at, c, index, ref, out)
            return
        events = [value]
        for hook in hooks:
            expanded = []
            for event in events:
                more, problems = hook.expand(event, event.get("type") if type_key == "type" else self.dialect.type.resolve(event, None))
                if problems:
                    for rule_id, expected, observed in problems:
                        out.append(self._flag(rule_id, c, self._current_id(c), index, at, ref, expected, observed))
                expanded.extend(more)
            events = expanded
        if len(events) == 1 and events[0] is value:
            self._event(value, type_, at, c, index, ref, out)
            return
        for event in events:
            self._event(event, event.get(type_key) if type_key is not None else self.dialect.type.resolve(event, None),
                        at, c, index, ref, out)

    def _derived_checks(self) -> dict[str, int]:
        return derived_checks(self)

    def _current_id(self, c: _Conn):
        return next(iter(c.runs), None)

    def _key(self, event: dict) -> Any:
        if self._keyed:
            value = self.dialect.run_id.resolve(event, None)
            return value if type(value) in (str, int) else None
        return None

    def _event(self, event: dict, type_: str, at, c: _Conn, index: int, ref, out: list) -> None:
        """Walk the dialect's run-rules table (:mod:`agent_events.dialects.lifecycle`) with one event."""
        self.events += 1
        key = self._key(event) if self._keyed else None
        states = c.states
        state = states.get(key, IDLE)
        steady = self._steady.get(state)
        if steady is not None and type_ in steady and (run := c.runs.get(key)) is not None:
            for role_rule in steady[type_]:  # an ordinary event of a running run: no table walk
                self._check(role_rule)
            if not self._plain_run_event:
                self._run_event(run, event, type_, at, c, index, ref, out)
                return
            self.run_events += 1
            run.events += 1
            if at is not None and run.first_at is None:
                run.first_at = at
            family = self._families.get(type_)
            if family is not None:
                self._family_event(family, type_, event, run, at, c, index, ref, out)
            return
        kind = self._kinds.get(type_, EVENT)
        nxt, rule = self._table[state, kind]
        if rule is not None:
            self._check(rule)
            out.append(self._flag(rule, c, self._run_id_of(c, key), index, at, ref,
                                  *self._explain(rule, state, kind, type_)))
        elif kind is not EVENT and kind not in self._families:
            for role_rule in self._row_checks.get((state, kind), ()):
                self._check(role_rule)
        run = c.runs.get(key)
        was_running = state in self._running
        if nxt in self._running:
            if not was_running:
                run = self._start_run(c, key, event, at, out)
            elif kind == RUN_OPEN and rule is None:  # an allowed restart (the seed's fallback attempt)
                self.fallback_attempts += 1
                self._close_families(run, c, index, at, ref, out, "the run restarted")
            elif rule is not None:  # a nested open: reported, the run goes on as it was
                states[key] = nxt
                return
            states[key] = nxt
            self._run_event(run, event, type_, at, c, index, ref, out)
            return
        if was_running:  # the run ends here
            self._run_event(run, event, type_, at, c, index, ref, out)
            if nxt == FINISHED:
                self._close_families(run, c, index, at, ref, out, f"{type_}")
                self.runs_completed += 1
            else:
                self.runs_errored += 1
                self.runs_completed += 1
            self._end_run(run, c, at, index, ref, out)
        elif state == IDLE and nxt != IDLE:  # a run that ended at its first event (RUN_ERROR first)
            self.runs += 1
            if nxt == ERRORED:
                self.runs_errored += 1
        states[key] = nxt
        if len(states) > ENDED_MEMORY:
            for old in states:
                if old not in c.runs:
                    del states[old]
                    break

    def _kind_of(self, type_: str) -> str:
        if type_ in self._opens:
            return RUN_OPEN
        if type_ in self._finishes:
            return RUN_FINISH
        if type_ in self._errors:
            return RUN_ERROR
        return type_ if type_ in self._families else EVENT

    def _run_id_of(self, c: _Conn, key):
        run = c.runs.get(key)
        return run.run_id if run is not None else None

    def _explain(self, rule: str, state: str, kind: str, type_: str) -> tuple[str, str]:
        """Expected / observed of a lifecycle row that breaks ``rule``, by the role it plays."""
        runs = self._runs
        role = self._role_of.get(rule)
        if state in self._running and kind == RUN_OPEN:
            return f"no {type_} while a run is still active", f"{type_} while a run is still active"
        if state == IDLE:
            starts = runs.opens + (runs.errors if runs.errors_first else ())
            return f"a run's first event is {' or '.join(starts)}", f"{type_} before any run started"
        if state in (FINISHED, ERRORED):
            late = " or a late error" if state == FINISHED and runs.late_error else ""
            return (f"after {'the run finished' if state == FINISHED else 'the run failed'}: only a new run{late}",
                    f"{type_}: the run has already ended ({state})")
        return f"no {type_} in state {state} ({role})", f"{type_} in state {state}"

    def _start_run(self, c: _Conn, key: Any, event: dict, at, out: list) -> _Run:
        start_at = c.starts.popleft() if c.starts else None
        run = c.runs[key] = _Run(key, start_at)
        if key is None and self.dialect.run_id is not None:
            value = self.dialect.run_id.resolve(event, None)
            run.run_id = value if type(value) is str else None
        self.runs += 1
        if start_at is not None and at is not None and "latency.first_event" in self._judged:
            self._check("latency.first_event")
            waited = at - start_at
            self.latencies["first_event"].add(waited)
            if waited > self.profile.first_event_ms:
                self._late(out, waited, self.profile.first_event_ms, start_at,
                           "latency.first_event", c, run.run_id, None, at, None,
                           f"the run's first event within {self.profile.first_event_ms:g} ms of the client's start",
                           f"first event {waited:.1f} ms after the start")
        return run

    def _run_event(self, run: _Run, event: dict, type_: str, at, c: _Conn, index: int, ref, out: list) -> None:
        self.run_events += 1
        run.events += 1
        if at is not None and run.first_at is None:
            run.first_at = at
        d = self.dialect
        if self._seq is not None:
            self._check("seq.contiguous")
            seq = d.seq.resolve(event, None)
            if seq != run.seq or type(seq) is not int:
                out.append(self._flag("seq.contiguous", c, run.run_id, index, at, ref, f"seq {run.seq}",
                                      f"seq {seq!r}"))
            if type(seq) is int and seq >= run.seq:
                run.seq = seq + 1
        if at is not None and self._unit is not None:
            ts = d.timestamp.resolve(event, None)
            if type(ts) in _NUMBER:
                self._check("latency.delivery")
                self.delivery_checked += 1
                late = at - ts * self._unit
                self.latencies.delivery.add(late)
                if late > self.profile.delivery_ms:
                    self._late(out, late, self.profile.delivery_ms, at - late,
                               "latency.delivery", c, run.run_id, index, at, ref,
                               f"received within {self.profile.delivery_ms:g} ms of its timestamp",
                               f"received {late:.1f} ms after it")
        family = self._families.get(type_)
        if family is not None:
            self._family_event(family, type_, event, run, at, c, index, ref, out)

    def _end_run(self, run: _Run, c: _Conn, at, index, ref, out: list) -> None:
        del c.runs[run.key]
        self._deadline(run, c, at, index, ref, out)

    def _deadline(self, run: _Run, c: _Conn, at, index, ref, out: list, *, still_open: bool = False) -> None:
        start = run.origin()
        if at is None or start is None or "latency.run_deadline" not in self._judged:
            return
        self._check("latency.run_deadline")
        duration = at - start
        self.latencies.run.add(duration)
        if duration > self.profile.deadline_s * 1000.0:
            out.append(self._flag("latency.run_deadline", c, run.run_id, index, at, ref,
                                  f"the run ends within {self.profile.deadline_s:g} s",
                                  f"{'still running' if still_open else 'ended'} {duration / 1000:.3f} s after its start"))

    # -- ends ----------------------------------------------------------------------------------

    def end_connection(self, conn: str, at: float | None = None) -> list[Violation]:
        """A connection closed: its open chunk streams flush, its open runs did not end."""
        c = self._conns.pop(conn, None)
        out: list[Violation] = []
        if c is not None:
            self._end(c, at, out, "its connection closed")
        return out

    def new_recording(self, at: float | None = None) -> list[Violation]:
        out: list[Violation] = []
        for name in list(self._conns):
            out.extend(self.end_connection(name, at))
        return out

    def _end(self, c: _Conn, at, out: list, why: str) -> None:
        while c.starts:  # a start the endpoint never answered with a run: silence is no run
            sent = c.starts.popleft()
            rule = self._roles["ended"]
            self._check(rule)
            waited = f" {at - sent:.0f} ms" if at is not None and sent is not None else ""
            out.append(self._flag(rule, c, None, None, at, None,
                                  f"a run ({' or '.join(self._runs.opens)} .. {' or '.join(self._runs.finishes + self._runs.errors)}) "
                                  f"answering the client's start",
                                  f"no event{waited} after the client's start, until {why.replace('its ', 'the ')}"))
            if sent is not None and at is not None and "latency.first_event" in self._judged:
                self._check("latency.first_event")
                if at - sent > self.profile.first_event_ms:
                    self._late(out, at - sent, self.profile.first_event_ms, sent,
                               "latency.first_event", c, None, None, at, None,
                               f"the run's first event within {self.profile.first_event_ms:g} ms of the start",
                               f"none after {at - sent:.0f} ms")
        for hook in c.hooks:
            for event in hook.flush():
                self._event(event, self.dialect.type.resolve(event, None), at, c, c.received, None, out)
        for run in list(c.runs.values()):
            state = c.states.get(run.key, IDLE)
            nxt, rule = self._table[state, CLOSE]
            if rule is not None:
                self._check(rule)
                out.append(self._flag(rule, c, run.run_id, None, at, None,
                                      f"the run ends with {' or '.join(self._runs.finishes + self._runs.errors)}",
                                      f"{why} with the run still open"))
            self._deadline(run, c, at, None, None, out, still_open=True)
            del c.runs[run.key]
            c.states[run.key] = nxt

    def reset_latencies(self) -> None:
        """Start every latency series afresh (a load's warm-up is not its measurement)."""
        self.latencies = Latencies()

    def tick(self, at: float) -> list[Violation]:
        return []

    def close(self, at: float | None = None) -> list[Violation]:
        out: list[Violation] = []
        for name in list(self._conns):
            c = self._conns[name]
            self._end(c, at, out, "the stream ended")
        out.extend(self.settle_latencies())
        self.closed = True
        return out

    def settle_latencies(self, until: float | None = None) -> list[Violation]:
        """Judge the held latency samples (read by ``until``, when the lag monitor has ticked since;
        all of them at close): a violation each that the harness's own stall does not explain."""
        return [self._flag(rule_id, c, run_id, index, at, ref, expected, observed + note, recent)
                for rule_id, note, (c, run_id, index, at, ref, expected, observed, recent)
                in self._held.settle(until)] if len(self._held) else []

    def latency_pending_on(self, conn: str) -> bool:
        return self._held.held_on(conn)

    def forget_latencies(self, conn: str) -> None:
        self._held.forget(conn)

    # -- checks made elsewhere (receive_oversize: core.frame_limit, shared with our checker) ----

    def not_applicable(self, rule_id: str, reason: str) -> None:
        _rules.get(rule_id)
        self._not_applicable[rule_id] = reason

    def external(self, rule_id: str, passed: bool, *, expected: str = "", observed: str = "",
                 conn: str = "c0", run_id: str | None = None, at: float | None = None,
                 location: str | None = None, checks: int = 1) -> Violation | None:
        _rules.get(rule_id)
        self._checked[rule_id] = self._checked.get(rule_id, 0) + checks
        if passed:
            return None
        c = self._conns.get(conn) or _Conn(conn, [])
        return self._flag(rule_id, c, run_id, None, at, location, expected, observed)

    # -- results -------------------------------------------------------------------------------

    def protocol_version(self) -> str:
        return self.dialect.version

    @property
    def active_runs(self) -> int:
        return sum(len(c.runs) for c in self._conns.values())

    def rule_ids(self) -> list[str]:
        """The rules this judgement reports: the dialect's, then those it declares N/A, in registry order."""
        return rule_ids(self)

    def outcomes(self) -> dict[str, RuleOutcome]:
        return outcomes(self)

    # -- helpers -------------------------------------------------------------------------------

    def _conn(self, conn: str) -> _Conn:
        c = self._conns.get(conn)
        if c is None:
            c = self._conns[conn] = _Conn(conn, [HOOKS[name]() for name in self.dialect.hooks])
        return c

    def _check(self, rule_id: str) -> None:
        checked = self._checked
        checked[rule_id] = checked.get(rule_id, 0) + 1

    def _late(self, out: list, latency: float, budget: float, since, rule_id: str, c: _Conn, run_id, index, at,
              ref, expected: str, observed: str) -> None:
        """An over-budget latency on the harness's receive times: a violation now (offline), or held
        until close, when the harness's own stalls over ``[since, at]`` are known (a live check)."""
        if not self._held.hold(rule_id, latency, budget, since, at, run_id if type(run_id) is str else None,
                               c.name, (c, run_id, index, at, ref, expected, observed, tuple(c.recent))):
            out.append(self._flag(rule_id, c, run_id, index, at, ref, expected, observed))

    def _flag(self, rule_id: str, c: _Conn, run_id, index, at, ref, expected: str, observed: str,
              recent=None) -> Violation:
        if type(ref) is tuple:
            ref = f"{ref[0]}:{ref[1]}"
        rule = _rules.BY_ID[rule_id]
        excerpt = tuple(excerpt_line(i, t, self._view(m)) for (i, t, m) in (c.recent if recent is None else recent))
        violation = Violation(rule_id, rule.level.value, rule.severity, run_id if type(run_id) is str else None,
                              c.name, index, expected, observed, excerpt, at, ref)
        count = self.violation_counts.get(rule_id, 0) + 1
        self.violation_counts[rule_id] = count
        if count <= self._max_kept:
            self.violations.append(violation)
        return violation


    def _view(self, message: Any) -> Any:
        """An event as an excerpt shows it: its type under ``type`` wherever the dialect keeps it."""
        if type(message) is not dict or self.dialect.type.text == "/type":
            return message
        type_ = self.dialect.type.resolve(message, None)
        return {"type": type_ if type_ is not None else "<no type>", **{k: v for k, v in message.items() if k != "type"}}


def judge_events(dialect: Dialect, events: Iterable[Any], profile: str = _profiles.DEFAULT_PROFILE) -> DialectChecker:
    """Judge decoded events (one connection, no timing) and close: for tests and the Python API."""
    checker = DialectChecker(dialect, profile)
    for event in events:
        checker.receive(event)
    checker.close()
    return checker
