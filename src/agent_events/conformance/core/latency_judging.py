"""Latency judging: the time rules, net of the harness's own stalls.

``latency.first_event`` from the start_run send time to agent_started (or, for a run still
waiting, to :meth:`LatencyJudging.tick`); ``latency.run_deadline`` from the start_run send time
(or the first event's receipt) to agent_completed, or to ``tick`` / ``close`` for a run still open.
(``latency.delivery`` and ``latency.tool_gap`` are judged inline where their event is handled.)

Offline every over-budget sample is a violation at once. A live check passes the harness's
:class:`~agent_events.conformance.core.harness_lag.LagRecord`: an over-budget sample is then held until
close (:meth:`LatencyJudging._late`), when the harness's own stalls over the sample's window are
known; what remains once they are taken off either still breaks the budget (a violation, with both
figures) or does not (inconclusive: the endpoint may have been in time).

:class:`LatencyJudging` is a mixin of :class:`agent_events.conformance.core.checker.Checker`; it needs
the checker's budgets (``_first_budget``, ``_deadline_ms``, ``profile``), ``latencies``,
``_held`` (a :class:`~agent_events.conformance.core.harness_lag.HeldLatencies`), ``_runs`` and ``_flag``.
"""

from __future__ import annotations

from agent_events._native import trait
from agent_events.conformance.core.checker_fields import CheckerFields
from agent_events.conformance.core.harness_lag import MAX_HELD
from agent_events.conformance.core.run_ownership import Run as _Run
from agent_events.conformance.core.violations import Violation
from agent_events.run_rules import AWAITING_START

#: Over-budget latency samples held for the harness-lag judgement at close (the old name of
#: :data:`~agent_events.conformance.core.harness_lag.MAX_HELD`)
MAX_PENDING_LATENCY = MAX_HELD


@trait
class LatencyJudging(CheckerFields):
    """first_event and run_deadline, and every over-budget sample judged net of the harness's lag."""

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

    def _late(self, out: list, latency: float, budget: float, since: float | None, rule_id: str, conn: str,
              run_id, index, at, ref, expected: str, observed: str, recent, run, slack: float = 0.0) -> None:
        """An over-budget latency sample: a violation now (offline), or held until close, when the
        harness's stalls over the sample's window ``[since, at]`` are known (a live check).
        ``slack``: how much of it the harness's own measurement may be off by besides (the clock
        offset's uncertainty, for latency.delivery)."""
        if not self._held.hold(rule_id, latency, budget, since, at, run_id, conn,
                               (conn, run_id, index, at, ref, expected, observed, tuple(recent), run), slack):
            out.append(self._flag(rule_id, conn, run_id, index, at, ref, expected, observed, recent, run))

    def _settle_latency(self, out: list, until: float | None = None) -> None:
        """Each held sample still over budget net of the harness's own stall is a violation, with
        both figures; the others are inconclusive (:class:`~agent_events.conformance.core.harness_lag.HeldLatencies`)."""
        for rule_id, note, (conn, run_id, index, at, ref, expected, observed, recent, run) in self._held.settle(until):
            out.append(self._flag(rule_id, conn, run_id, index, at, ref, expected, observed + note, recent, run))

    def settle_latencies(self, until: float) -> list[Violation]:
        """For a harness that reports as it goes (the Locust user): judge the held samples read by
        ``until``, a time its lag monitor has ticked at since; the violations (also in
        ``violations``, as always)."""
        out: list[Violation] = []
        if len(self._held):
            self._settle_latency(out, until)
        return out

    def latency_held(self) -> bool:
        """Whether any latency sample waits for the harness-lag judgement."""
        return len(self._held) > 0

    def latency_pending(self, conn: str, run_id) -> bool:
        """Whether a latency sample of that run still waits for the harness-lag judgement."""
        return self._held.held_for(conn, run_id)

    def forget_latencies(self, conn: str) -> None:
        """``conn``'s runs were cut short by the harness: their held samples are dropped, unjudged."""
        self._held.forget(conn)
