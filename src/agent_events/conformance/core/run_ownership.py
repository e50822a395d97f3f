"""Run ownership: which connection and which run every frame belongs to.

The checker judges runs; this module decides what a run *is* on the wire. A run is identified by
``(connection, run_id)``. Once a client frame has started a run (a valid ``start_run``), the stream
has *client evidence*: from then on a run event is accepted on a connection only for a run that
connection started, by its run_id or, for a ``start_run`` without one, the oldest unclaimed start
of that connection (``isolation.run_scope``: a leaked event is reported and otherwise ignored). A
``start_run`` that is not valid starts nothing the server owes but names a run of its connection
(*tentative*: a lenient server may run it anyway). A second ``start_run`` of an id in flight is a
*duplicate* (refused with ``duplicate_run``, unless the server read it after the first run
completed: then it is a new run). A 1.1 run with a ``resume_token`` whose connection ends is
*detached*: a ``resume_run`` with its token on another connection takes it over; the ones never
resumed are judged at close. Without client evidence a run begins at its first event.

Memory stays flat: past :data:`CONN_MEMORY` connections with nothing open the least recently
active is forgotten, :data:`TENTATIVE_MEMORY` tentative and duplicate starts are kept per
connection, :data:`COMPLETED_MEMORY` completed runs are remembered (a late event is then
``order.completed_last``).

:class:`RunOwnership` is a mixin of :class:`agent_events.conformance.core.checker.Checker` (one object,
so the hot path pays no extra indirection); it calls back the judging side for what the end of a
run or of a connection reveals (``_end_runs``, ``_tick_run``, ``_flag``). :func:`refused_run_id` is
shared with the client core.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import Any, Mapping

from agent_events import schemas
from agent_events._native import trait
from agent_events.conformance.core.checker_fields import CheckerFields
from agent_events.conformance.core import json_text
from agent_events.conformance.core import schema_validation as _sv
from agent_events.conformance.reporting.timelines import record as _timeline_record
from agent_events.conformance.core.violations import Violation
from agent_events.run_rules import AWAITING_START, STARTED, STARTED_PRIMARY, COMPLETED, TRANSITIONS

#: Messages kept for an excerpt: the offending one and the three before it.
EXCERPT_LEN = 4
#: Completed runs remembered, to recognise an event that arrives after agent_completed.
COMPLETED_MEMORY = 65536
#: Connections with nothing open (no run, no unclaimed start_run) whose state is kept; past this the
#: least recently active is forgotten, so memory stays flat however many connections a transcript
#: holds without close records. A forgotten connection that speaks again starts over (frame index 0).
CONN_MEMORY = 1024
#: start_runs that were not valid but named a run, kept per connection (a lenient server may run them).
TENTATIVE_MEMORY = 256

_loads = json_text.loads
_JSONDecodeError = json_text.JSONDecodeError
_DUPLICATE_RUN = "duplicate_run"
#: error codes that, without a run_id, refuse a valid start_run sent without run_id
ANONYMOUS_REFUSALS = frozenset(("too_many_runs", "shutting_down"))
#: error codes that name a run without refusing its start (see :func:`refused_run_id`)
_NOT_REFUSALS = frozenset((_DUPLICATE_RUN, "unknown_run"))
assert _NOT_REFUSALS <= set(schemas.ERROR_CODES)


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


class Conn:
    __slots__ = ("name", "received", "offset", "uncertainty", "recent", "anonymous", "tentative", "tentative_anonymous",
                 "duplicates", "run_ids", "completed_ids", "declared")

    def __init__(self, name: str) -> None:
        self.name = name
        self.received = 0
        self.offset = 0.0
        #: how far off ``offset`` may be (ms: half the best time_sync round trip); 0 when assumed
        self.uncertainty = 0.0
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


class Run:
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



@trait
class RunOwnership(CheckerFields):
    """Connections, client starts (valid, anonymous, tentative, duplicate), runs in progress,
    completed runs remembered and detached runs awaiting a resume."""

    def _init_ownership(self, timeline_runs: int, completed_memory: int = COMPLETED_MEMORY,
                        conn_memory: int = CONN_MEMORY) -> None:
        #: the bounds above, per checker (the checker passes its module's, which a test may lower)
        self._completed_memory = completed_memory
        self._conn_memory = conn_memory
        #: 1.1: runs with a resume_token whose connection ended, by (run_id, token): run_ids are per
        #: connection, the token is the run's own; a resume_run on another
        #: connection takes them over; the ones never resumed are judged at close
        self._detached: dict[tuple[str, str], Run] = {}
        self._conns = {}
        self._runs = {}
        self._completed: dict[tuple[str, str | None], None] = {}
        self._client_evidence = False
        self._timeline_slots = timeline_runs
        #: the ended runs whose timelines are kept (built by the report: see ``timelines``)
        self.timeline_records: list = []

    # -- client side ---------------------------------------------------------

    def set_clock_offset(self, conn: str, offset_ms: float, uncertainty_ms: float | None = None) -> None:
        """Server clock minus client clock on ``conn`` (ms), for latency.delivery, right to within
        ``uncertainty_ms`` (half the best time_sync round trip: a harness stalled during every
        exchange knows the offset only that well, and a delivery over budget by less is inconclusive)."""
        c = self._conn(conn)
        c.offset = float(offset_ms)
        c.uncertainty = float(uncertainty_ms) if uncertainty_ms is not None and uncertainty_ms > 0.0 else 0.0

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
            while len(self._detached) > self._completed_memory:
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

    def _end_anonymous(self, c: Conn, at: float | None, out: list[Violation]) -> None:
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

    def _on_error(self, message: dict, c: Conn) -> None:
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

    # -- runs --------------------------------------------------------------------

    def _attach(self, key, type_: str, message: dict, entry, at, c: Conn, index: int, ref, out: list) -> Run | None:
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

    def _new_run(self, key, conn: str, run_id: str | None, start_at: float | None) -> Run:
        run = Run(conn, run_id, start_at)
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

    def _finish(self, run: Run) -> None:
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
            if len(completed) > self._completed_memory:
                old = next(iter(completed))
                del completed[old]
                owner = self._conns.get(old[0])
                if owner is not None:
                    owner.completed_ids.discard(old[1])
        if run.timeline is not None:
            self.timeline_records.append(
                _timeline_record(run, self._conns[run.conn].offset if run.conn in self._conns else 0.0))

    @property
    def active_runs(self) -> int:
        return len(self._runs)

    def _conn(self, conn: str) -> Conn:
        c = self._conns.get(conn)
        if c is None:
            conns = self._conns
            if len(conns) >= self._conn_memory:
                self._forget_idle()
            c = conns[conn] = Conn(conn)
        return c

    def _forget_idle(self) -> None:
        """Drop the least recently active connection that has nothing open (its completed runs stay
        remembered, under COMPLETED_MEMORY), so a transcript without close records keeps memory flat."""
        for name, c in list(islice(self._conns.items(), 64)):
            if c.idle():
                del self._conns[name]
                self.connections_forgotten += 1
                return
