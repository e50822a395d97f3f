"""What the checker's parts share: its fields and the three methods one part calls on another, declared once.

:class:`~agent_events.conformance.core.checker.Checker` is one object in four modules (judging,
run ownership, latency judging, evidence counting). Each part reads fields another part owns, and
calls back into another (``_flag``, ``_end_runs``, ``_tick_run``). In Python that needs no
declaration, but mypyc (the compiled core, :mod:`agent_events._native`) compiles the parts as
traits, and a trait may touch only what it or a trait it extends declares. A field declared in two
traits breaks the compiled class, so every shared field is declared here, once. Each part extends
:class:`CheckerFields`, and the checker defines what the stubs below stand for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from agent_events._native import trait

if TYPE_CHECKING:
    from agent_events.conformance.core.harness_lag import HeldLatencies
    from agent_events.conformance.core.latencies import Latencies
    from agent_events.conformance.core.profiles import Profile
    from agent_events.conformance.core.run_ownership import Conn, Run
    from agent_events.conformance.core.violations import Violation


@trait
class CheckerFields:
    # -- the evidence counters (named in evidence.COUNTERS; tests/test_native.py holds the two lists together)
    frames: int
    parsed: int
    objects: int
    typed: int
    run_events: int
    isolation_checked: int
    runs: int
    runs_with_events: int
    runs_ended: int
    runs_completed: int
    attempts_ended: int
    fallback_attempts: int
    started_events: int
    tool_calls: int
    tool_completions: int
    flags_checked: int
    profile_checked: int
    first_event_checked: int
    delivery_checked: int
    gaps_checked: int
    deadlines_checked: int
    starts_sent: int
    cancels_sent: int
    runs_refused: int
    connections_forgotten: int
    frames_unread: int
    capabilities_checked: int
    resumed_events: int

    # -- the checker's own (set in Checker.__init__)
    profile: Profile
    latencies: Latencies
    violation_counts: dict[str, int]
    errors_received: dict[str, int]
    inconclusive: dict[str, int]
    inconclusive_worst: dict[str, dict]
    _held: HeldLatencies
    _first_budget: float
    _deadline_ms: float
    _fast_tools: frozenset

    # -- run ownership's (set in RunOwnership._init_ownership)
    _conns: dict[str, Conn]
    _runs: dict[tuple[str, str | None], Run]

    # -- what one part calls on another
    def _flag(self, rule_id: str | None, conn: str, run_id: Any, index: Any, at: Any, ref: Any, expected: str,
              observed: str, recent: Iterable, run: Run | None = None) -> Violation:
        raise NotImplementedError  # Checker._flag

    def _end_runs(self, runs: list[Run], at: float | None, out: list[Violation],
                  ended: str = "the stream ended") -> None:
        raise NotImplementedError  # Checker._end_runs

    def _tick_run(self, run: Run, at: float, out: list[Violation]) -> None:
        raise NotImplementedError  # LatencyJudging._tick_run
