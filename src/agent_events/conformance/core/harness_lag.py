"""The harness's own lateness, as data: when its event loop was not running.

Why: a latency is measured on the harness's clock when it *reads* a frame. If
the harness's process was starved of CPU (a busy CI runner) or its loop was
busy, the frame waited in the socket buffer, and that wait is the harness's,
not the endpoint's. A gate that blames the endpoint for it fails green code
at random, and gets switched off. So a live check samples its own loop's
lateness while it runs (:class:`LagMonitor`, the asyncio shell) into a
:class:`LagRecord` (pure data), and the checker, before it calls an
over-budget latency a violation, subtracts the stall the harness was in when
it read the frame (:meth:`LagRecord.delay_before`). What the harness's stall explains is
*inconclusive*: never a pass, never a fail (see the spec's latency section
for what that means for the gate and the claim).

A stall is an interval ``[woke - late, woke]``: a tick due at ``woke - late``
ran at ``woke``. It covers CPU starvation of the process, a busy loop and GC
pauses alike, which is what matters: the frame could not be read meanwhile.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections import deque
from typing import Callable

#: How often the monitor wakes (ms): a stall shorter than this is invisible, and harmless
#: next to budgets of 100 ms.
TICK_MS = 5.0
#: Stalls below this (ms) are the ordinary jitter of a sleeping loop, not starvation.
NOISE_MS = 1.0
#: Stalls kept: at one a tick (200/s) this is at least 10 minutes of a check's stalls.
MAX_STALLS = 120_000


class LagRecord:
    """Stalls of the harness's loop, in the order they ended (client clock, epoch ms)."""

    __slots__ = ("_ends", "_lengths", "ticks")

    def __init__(self, maxlen: int = MAX_STALLS) -> None:
        self._ends: deque[float] = deque(maxlen=maxlen)
        self._lengths: deque[float] = deque(maxlen=maxlen)
        #: every tick seen, stalled or not
        self.ticks = 0

    def add(self, woke_at: float, late_ms: float) -> None:
        """One tick: it ran at ``woke_at``, ``late_ms`` after it was due."""
        self.ticks += 1
        if not late_ms > NOISE_MS or not math.isfinite(late_ms):
            return
        if self._ends and woke_at < self._ends[-1]:
            woke_at = self._ends[-1]  # a clock step back: keep the order the lookup relies on
        self._ends.append(woke_at)
        self._lengths.append(late_ms)

    def delay_before(self, start: float, at: float) -> float:
        """How much of a frame's wait, read at ``at`` and due since ``start``, the harness's own
        stall could explain (ms): the stall the loop was in when it read the frame, from its
        beginning (less one tick: the tick that measured it was due up to one tick after the stall
        began) to ``at``, within ``[start, at]``; and the stalls back to back before it.

        Only that stall counts, not every stall in the window: between two stalls the loop ran and
        polled the socket, so a frame that had arrived by then would have been read then. Unless
        the tick due right after one stall was late too: then the loop had no on-time turn between
        them (a process starved again while it caught up, as on a busy machine), and the first
        stall's backlog was still unread in the second. Such a chain counts the stalls' own lengths,
        not the span they cover (a loop late at every tick still read something at each).
        """
        if at <= start or not self._ends:
            return 0.0
        ends = self._ends
        lengths = self._lengths
        slack = TICK_MS
        i = bisect.bisect_left(ends, at - slack)  # the measuring tick ran at most one tick before the read
        n = len(ends)
        first = -1
        began = math.inf
        while i < n:
            b = ends[i] - lengths[i] - slack
            if b > at:
                break
            if b < began:
                began, first = b, i
            i += 1
        if first < 0:
            return 0.0
        best = at - max(began, start)
        # back to back: the stall before ended when this one's tick was due (began is that tick's due
        # time less one tick); half a tick of room for the clock's jitter
        j = first - 1
        while j >= 0 and ends[j] > start and ends[j] >= began - slack / 2:
            stalled_from = ends[j] - lengths[j]
            best += ends[j] - max(stalled_from, start)
            began = stalled_from - slack
            j -= 1
        return min(best, at - start)


#: Over-budget latency samples held for the judgement at close; past this many the rest are
#: judged at once (a stream that late is failing anyway).
MAX_HELD = 10_000


class HeldLatencies:
    """Over-budget latency samples of a live check, held until close, when the harness's stalls
    over each sample's window are known; shared by our checker and every dialect's judge, so the
    rule "a verdict never depends on our own lag" is one piece of code.

    :meth:`hold` keeps a sample (False offline, or past :data:`MAX_HELD`: then the caller flags it
    at once). :meth:`settle` returns the samples the harness's own stall does not explain, each
    with a note of both figures for its ``observed``; the others it counts into ``inconclusive``
    (rule id -> count) and ``inconclusive_worst`` (rule id -> figures of the worst), the two
    dicts the report reads."""

    __slots__ = ("lag", "_held", "_per_run", "inconclusive", "inconclusive_worst")

    def __init__(self, lag: "LagRecord | None", inconclusive: dict, inconclusive_worst: dict) -> None:
        self.lag = lag
        self._held: list[tuple] = []
        #: (conn, run_id) -> samples held for it (a reporter waits for them before it calls the run done)
        self._per_run: dict[tuple, int] = {}
        self.inconclusive = inconclusive
        self.inconclusive_worst = inconclusive_worst

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, rule_id: str, latency: float, budget: float, since: float | None, at: float | None,
             run_id, conn: str, context: tuple, slack: float = 0.0) -> bool:
        """Keep a sample; ``slack``: how far off the harness's own measurement of it may be besides its
        stalls (a clock offset known to within that), taken off with the stall."""
        if self.lag is None or at is None or since is None or len(self._held) >= MAX_HELD:
            return False
        self._held.append((rule_id, latency, budget, since, at, run_id, conn, context, slack))
        key = (conn, run_id)
        self._per_run[key] = self._per_run.get(key, 0) + 1
        return True

    def held_for(self, conn: str, run_id) -> bool:
        """Whether a sample of that run still waits for its judgement."""
        return (conn, run_id) in self._per_run

    def held_on(self, conn: str) -> bool:
        """Whether a sample of a run of ``conn`` still waits for its judgement."""
        return any(key[0] == conn for key in self._per_run)

    def forget(self, conn: str) -> None:
        """Drop the samples of ``conn``'s runs unjudged (runs the harness itself cut short)."""
        self._held = [item for item in self._held if item[6] != conn]
        self._per_run = {key: n for key, n in self._per_run.items() if key[0] != conn}

    def settle(self, until: float | None = None) -> list[tuple[str, str, tuple]]:
        """``(rule_id, note, context)`` of each held sample still over budget once the harness's
        stall in its window is taken off; the rest are inconclusive (the endpoint may have been
        in time).

        ``until``: only the samples read by then, when the lag monitor has ticked since (a stall
        ends before the read it delays, and the first tick after it records it), for a harness that
        reports as it goes (the Locust user); the others stay held. ``None``: all, at close."""
        lag = self.lag
        out: list[tuple[str, str, tuple]] = []
        kept = []
        per_run = self._per_run
        for item in self._held:
            rule_id, latency, budget, since, at, run_id, conn, context, slack = item
            if until is not None and at > until:
                kept.append(item)
                continue
            key = (conn, run_id)
            left = per_run.get(key, 1) - 1
            if left:
                per_run[key] = left
            else:
                per_run.pop(key, None)
            stall = lag.delay_before(since, at)
            harness = stall + slack
            if latency - harness > budget:
                note = (f"; {latency - harness:.1f} ms net of the harness's own {stall:.1f} ms stall"
                        + (f" and of its clock offset's {slack:.1f} ms uncertainty" if slack else "")
                        if harness > 0.0 else "")
                out.append((rule_id, note, context))
                continue
            self.inconclusive[rule_id] = self.inconclusive.get(rule_id, 0) + 1
            worst = self.inconclusive_worst.get(rule_id)
            if worst is None or latency > worst["latency_ms"]:
                self.inconclusive_worst[rule_id] = {
                    "latency_ms": round(latency, 3), "budget_ms": budget, "harness_stall_ms": round(harness, 3),
                    "run_id": run_id, "conn": conn, "at": at}
        self._held = kept
        return out


class LagMonitor:
    """The asyncio shell: a task that wakes every :data:`TICK_MS` and records how late it woke."""

    def __init__(self, record: LagRecord, now: Callable[[], float], tick_ms: float = TICK_MS) -> None:
        self.record = record
        self._now = now
        self._tick = tick_ms / 1000.0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="agent-events-lag-monitor")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = self._tick
        add = self.record.add
        now = self._now
        due = loop.time() + tick
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            woke = loop.time()
            add(now(), (woke - due) * 1000.0)
            due = woke + tick

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
