"""The Locust user's view of its own lag: the gevent shell of :mod:`agent_events.conformance.core.harness_lag`.

Why: a Locust worker that is saturated (its users' greenlets, its reader, Locust's own stats) reads
frames late, and a latency measured then is the worker's wait, not the endpoint's. The live check and
``load`` already judge every over-budget latency net of their own stalls; a Locust process does the
same here, so that a busy worker never names a latency failure that is its own:

* :class:`GeventLagMonitor`: one greenlet per process wakes every :data:`TICK_MS` and records how
  late it woke into a :class:`~agent_events.conformance.core.harness_lag.LagRecord`, which the
  process's checker holds its over-budget samples against. Unlike a check, a Locust test reports as
  it goes: a held sample is judged once the monitor has ticked after its read (``seen``), by that
  tick (``on_tick``, while samples are held), not at close, nor at the next pass of a ticker that
  the same stalls delay.
* :class:`ParkedRuns`: a run whose latency sample waits for that judgement keeps its ``RUN`` entry
  back until then (a few hundred ms at most), so the entry still fails when the sample does.
* :func:`report_inconclusive`: a sample the stall explains is neither a pass nor a failure: an
  ``INCONCLUSIVE`` entry named by the rule id (a success in Locust's terms, counted apart), and one
  log line per rule saying the worker itself was late.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import gevent

from agent_events.conformance.core.harness_lag import TICK_MS, LagRecord

logger = logging.getLogger("agent_events.locust")

#: The Locust request type of a latency sample that the worker's own stall explains.
INCONCLUSIVE = "INCONCLUSIVE"


class GeventLagMonitor:
    """A greenlet that wakes every ``tick_ms`` and records how late it woke (client clock, epoch ms)."""

    def __init__(self, now: Callable[[], float], tick_ms: float = TICK_MS) -> None:
        self.record = LagRecord()
        self._now = now
        self._tick = self.tick_s = tick_ms / 1000.0
        #: the client clock at the latest tick: every stall that delayed a read before it is on record
        self.seen = now()
        self._greenlet = None
        #: ``(pending, settle)``: after a tick, ``settle()`` when ``pending()`` (samples are held)
        self.on_tick: tuple[Callable[[], bool], Callable[[], None]] | None = None

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        tick, mono, add, now = self._tick, time.monotonic, self.record.add, self._now
        due = mono() + tick
        while True:
            gevent.sleep(max(0.0, due - mono()))
            woke = mono()
            at = now()
            add(at, (woke - due) * 1000.0)
            self.seen = at
            if self.on_tick is not None and self.on_tick[0]():
                try:
                    self.on_tick[1]()
                except Exception:  # noqa: BLE001 - the monitor of every user must never die
                    logger.exception("judging held latency samples failed")
            due = woke + tick


class ParkedRuns:
    """Runs that have ended whose ``RUN`` entry waits for a held latency sample's judgement."""

    def __init__(self) -> None:
        self._runs: list[tuple[Any, str, Any, float]] = []

    def park(self, user: Any, conn: str, run: Any, at: float) -> None:
        self._runs.append((user, conn, run, at))

    def release(self, pending: Callable[[str, str], bool]) -> list[tuple[Any, str, Any, float]]:
        """The parked runs none of whose samples is ``pending`` any more (they are taken out)."""
        ready = [item for item in self._runs if not pending(item[1], item[2].run_id)]
        if ready:
            self._runs = [item for item in self._runs if pending(item[1], item[2].run_id)]
        return ready

    def drop(self, conn: str) -> None:
        """``conn``'s runs were cut short by the user's own stop: not judged, not reported."""
        self._runs = [item for item in self._runs if item[1] != conn]


def report_inconclusive(checker: Any, reported: dict[str, int], fire: Callable[..., None]) -> None:
    """An ``INCONCLUSIVE`` entry for each sample found inconclusive since the last call (``reported``:
    rule id -> how many were reported), and one warning per rule the first time."""
    for rule_id, count in checker.inconclusive.items():
        before = reported.get(rule_id, 0)
        if count <= before:
            continue
        reported[rule_id] = count
        worst = checker.inconclusive_worst.get(rule_id) or {}
        for _ in range(count - before):
            fire(INCONCLUSIVE, rule_id, worst.get("latency_ms", 0.0), 0)
        if not before:
            logger.warning("%s: a sample over its budget (%.1f ms against %g) waited %.1f ms for this Locust "
                           "process itself (it is saturated): inconclusive, not a failure of the endpoint",
                           rule_id, worst.get("latency_ms", 0.0), worst.get("budget_ms", 0.0),
                           worst.get("harness_stall_ms", 0.0))
