"""The load generator: many connections, many runs, every frame checked.

Pacing is either closed loop (each connection keeps ``runs_per_connection``
runs in flight and starts the next one as one completes: the endpoint's
own speed sets the rate, which is how throughput is found) or open loop
(runs start on a fixed schedule that aims at ``rate`` events/s whatever the
endpoint does, which is how latency is measured without the generator
slowing down when the server does, i.e. without coordinated omission).

A thin asyncio shell over the client core (:class:`agent_events.conformance.core.client.ClientConnection`,
the same one the live check and the Locust user drive): frames arrive through
the live check's wire (:mod:`agent_events.conformance.live.wire`: timed at the
socket, read synchronously so a fast endpoint is throttled by TCP instead of
filling memory), are parsed once and judged by the checker. The latencies
reported are the checker's own samples (exact while few, 0.5 % log buckets
past that: p99.9 and max over millions of events in constant memory), so a
load and a check never measure the same thing two ways.

Everything is bounded: runs start until the run budget or the duration is
used up (or until no run ends within the run deadline, whatever --rate asks),
then in-flight runs get the profile's run deadline to finish, and what is
still open then is the checker's finding, not a hang.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from agent_events import schemas
from agent_events.conformance.core.checker import Checker
from agent_events.conformance.core.client import ClientConnection, RunRecord
from agent_events.conformance.core.harness_lag import LagMonitor, LagRecord
from agent_events.conformance.core.latencies import Samples
from agent_events.conformance.core.clock_sync import ClockEstimate, estimate
from agent_events.conformance.live.engine import DEFAULT_INPUT, SYNC_SAMPLES
from agent_events.conformance.live.wire import Clock, CloseInfo, ConnectError, Endpoint, WireConnection, open_connection
from agent_events.conformance.core.profiles import Profile

#: When neither a run count nor a duration is given, the load lasts this long (s).
DEFAULT_DURATION = 10.0
#: Seconds granted past the run deadline before in-flight runs are given up on.
DRAIN_GRACE = 1.0
#: How long a time_sync reply is awaited before the clocks are assumed equal (s).
SYNC_REPLY_TIMEOUT = 2.0
PERCENTILES = (50.0, 95.0, 99.0, 99.9)
#: Generator loop lag (ms) above which the report warns that latencies include it.
LAG_NOTE_MS = 10.0

def samples_summary(samples: Samples) -> dict[str, Any]:
    """Count, percentiles (p99.9 included: a load is about the tail), max and mean in ms."""
    count = samples.count
    summary: dict[str, Any] = {"count": count}
    for p in PERCENTILES:
        value = samples.percentile(p)
        summary[f"p{p:g}"] = round(value, 3) if value is not None else None
    summary["max"] = round(samples.max, 3) if count else None
    summary["mean"] = round(samples.total / count, 3) if count else None
    return summary


@dataclass
class LoadOptions:
    """What one load run does; validated here so the CLI and the API agree."""

    endpoint: Endpoint
    profile: Profile
    connections: int = 10
    #: runs in flight per connection (closed loop), or at most in flight (open loop)
    runs_per_connection: int = 1
    #: runs to start after the warm-up; ``None``: until ``duration``
    runs: int | None = None
    #: seconds of starting runs; ``None`` with ``runs`` set: until the runs are done
    duration: float | None = None
    #: open-loop target in events/s; ``None``: closed loop
    rate: float | None = None
    #: closed loop: spread the connections' first starts over this many seconds, so that
    #: thousands of runs do not start in the same instant (a burst the generator would queue)
    ramp_up: float = 0.0
    input: str = DEFAULT_INPUT
    #: one run per connection first, checked but not measured (imports, caches, JIT-less warm paths)
    warmup: bool = True
    sync_samples: int = SYNC_SAMPLES
    #: the server's process, to report its CPU and RSS
    server: Any = None
    progress: Callable[[str], None] | None = field(default=None, repr=False)
    sample_interval: float = 0.1
    #: the wire format driven and judged (:mod:`agent_events.dialects`); ``None`` or ours: protocol v1.
    #: A foreign dialect's runs are driven by :class:`~agent_events.conformance.loadgen.dialect_engine.DialectLoadEngine`
    dialect: Any = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("connections", "runs_per_connection"):
            if getattr(self, name) < 1:
                problems.append(f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.runs is not None and self.runs < 1:
            problems.append(f"runs must be at least 1, not {self.runs}")
        for name in ("duration", "rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                problems.append(f"{name} must be positive, not {value}")
        if self.ramp_up < 0:
            problems.append(f"ramp-up must not be negative, not {self.ramp_up}")
        if problems:
            raise ValueError("; ".join(problems))
        if self.runs is None and self.duration is None:
            self.duration = DEFAULT_DURATION

    def describe(self) -> str:
        pacing = f"open loop at {self.rate:g} events/s" if self.rate else "closed loop"
        bounds = [f"{self.runs} runs" if self.runs else "", f"{self.duration:g} s" if self.duration else ""]
        return (f"{self.connections} connection(s) x {self.runs_per_connection} run(s) in flight, {pacing}, "
                f"up to {' or '.join(b for b in bounds if b)}")


class _Conn:
    """One connection: the client core's state plus its pacing (what the core does not need to know)."""

    __slots__ = ("index", "name", "wire", "core", "slot", "open", "sync_waiter")

    def __init__(self, index: int, checker: Checker) -> None:
        self.index = index
        self.name = f"c{index}"
        self.wire: WireConnection | None = None
        # in-flight runs only (forget_ended): a load keeps millions of runs going
        self.core = ClientConnection(self.name, checker, forget_ended=True, run_prefix=f"load-{index}")
        self.slot = asyncio.Event()
        self.open = False
        self.sync_waiter: asyncio.Future | None = None

    @property
    def runs(self) -> dict[str, RunRecord]:
        return self.core.runs


@dataclass
class LoadResult:
    """What a load run measured; the checker holds what it found."""

    options: LoadOptions
    checker: Checker
    clock: ClockEstimate
    runs_started: int
    runs_completed: int
    runs_refused: int
    runs_unfinished: int
    events: int
    events_completed: int
    elapsed_s: float
    delivery: dict[str, Any]
    first_event: dict[str, Any]
    connections: int
    connections_failed: int
    connections_lost: int
    starts_missed: int
    negative_latencies: int
    #: how late the generator's own loop woke up (its saturation), in ms
    generator_lag: dict[str, Any]
    warmup_runs: int
    server: dict[str, Any] | None
    notes: list[str]

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def runs_per_s(self) -> float:
        return self.runs_completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        o = self.options
        return {
            "url": o.endpoint.url,
            "connections": o.connections,
            "connections_open": self.connections,
            "connections_failed": self.connections_failed,
            "connections_lost": self.connections_lost,
            "runs_per_connection": o.runs_per_connection,
            "pacing": "open" if o.rate else "closed",
            "target_rate": o.rate,
            "runs_budget": o.runs,
            "duration_budget_s": o.duration,
            "warmup_runs": self.warmup_runs,
            "runs_started": self.runs_started,
            "runs_completed": self.runs_completed,
            "runs_refused": self.runs_refused,
            "runs_unfinished": self.runs_unfinished,
            "starts_missed": self.starts_missed,
            "events": self.events,
            "events_completed": self.events_completed,
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(self.events_per_s, 1),
            "runs_per_s": round(self.runs_per_s, 2),
            "latency_ms": {"delivery": self.delivery, "first_event": self.first_event},
            "negative_latencies": self.negative_latencies,
            "generator_lag_ms": self.generator_lag,
            "clock": {"offset_ms": self.clock.offset_ms, "uncertainty_ms": self.clock.uncertainty_ms,
                      "measured": self.clock.measured},
            "violations": dict(self.checker.violation_counts),
            "server": self.server,
        }


class LoadEngine:
    """One load run against one endpoint. Use :func:`run_load`."""

    #: the client estimates the clock offset (time_sync); a dialect without it says so once, itself
    clock_synced = True

    def __init__(self, options: LoadOptions) -> None:
        self.options = options
        self.clock = Clock()
        #: the generator's own stalls: over-budget latencies they explain are inconclusive
        self.lag_record = LagRecord()
        self.checker = Checker(options.profile, lag=self.lag_record)
        #: how late the generator's own loop woke up (its saturation), ms
        self.lag = Samples()
        self.conns: list[_Conn] = []
        self.notes: list[str] = []
        self.in_flight = 0
        self.stopping = False
        self.runs_started = 0
        self.runs_completed = 0
        self.runs_refused = 0
        self.events_completed = 0
        self.warmup_events = 0
        self.warmup_completed = 0
        #: the checker's run-event count when the measured part began (the warm-up's are not counted)
        self._events_before = 0
        self.connections_lost = 0
        self.starts_missed = 0
        self._budget = options.runs
        self._closing = False
        self._idle = asyncio.Event()
        #: set whenever a run ends or a connection closes: what a full open loop waits for
        self._slot_freed = asyncio.Event()
        #: connections that stopped starting because no run of theirs ended within the run deadline
        self.connections_stalled = 0
        self._t0 = 0.0

    # -- frames in (called by the wire's read loop: quick, never raises) ------------
    def _on_messages(self, conn: _Conn, messages: list, at: float) -> None:
        for ended in conn.core.receive_many(messages, at):
            self._run_ended(conn, ended)
            if ended.completed_at is None:  # refused (too_many_runs, shutting_down, ...): no events will come
                if ended.measured:
                    self.runs_refused += 1
            elif ended.measured:
                self.runs_completed += 1
                self.events_completed += ended.events
            else:
                self.warmup_completed += 1
                self.warmup_events += ended.events
        waiter = conn.sync_waiter
        if waiter is not None and conn.core.sync_replies and not waiter.done():
            waiter.set_result(conn.core.sync_replies[-1])

    @property
    def events(self) -> int:
        """Run events received since the measured part began (every one judged by the checker)."""
        return self.checker.run_events - self._events_before

    def _run_ended(self, conn: _Conn, run: RunRecord) -> None:
        self.in_flight -= 1
        conn.slot.set()
        self._slot_freed.set()
        if self.in_flight == 0:
            self._idle.set()

    def _on_close(self, conn: _Conn, info: CloseInfo) -> None:
        conn.open = False
        conn.core.connection_closed(info.by, info.code, info.cause, info.detail, self.clock.now(),
                                    max_size=self.options.endpoint.max_size)
        conn.slot.set()
        self._slot_freed.set()
        if self._closing:
            return
        self.connections_lost += 1
        if self.connections_lost <= 5:
            who = {"server": "the endpoint", "client": "the load generator", "network": "the network"}[info.by]
            detail = f" ({info.detail})" if info.detail else ""
            self.notes.append(f"{conn.name} was closed by {who}, code {info.code}{detail}, "
                              f"with {len(conn.runs)} run(s) in flight")
        self.in_flight -= len(conn.runs)  # the checker reports them as unfinished at the end
        conn.runs.clear()
        if self.in_flight == 0:
            self._idle.set()

    # -- frames out ----------------------------------------------------------------------
    async def _start_run(self, conn: _Conn, measured: bool = True) -> bool:
        wire = conn.wire
        if wire is None or not wire.is_open:
            if not self._closing and not self.stopping:
                conn.core.start_not_sent(self.clock.now(), "the connection was closed")
            return False
        _, data = conn.core.start_run(self.clock.now(), input=self.options.input, measured=measured)
        self.in_flight += 1
        self._idle.clear()
        if measured:
            self.runs_started += 1
        await wire.send("text", data)
        return True

    def _take_budget(self) -> bool:
        if self.stopping:
            return False
        if self._budget is None:
            return True
        if self._budget <= 0:
            return False
        self._budget -= 1
        return True

    def _stop_starting(self) -> None:
        self.stopping = True
        self._slot_freed.set()
        for conn in self.conns:
            conn.slot.set()

    # -- pacing ------------------------------------------------------------------------
    def _open_for(self, end: float | None) -> bool:
        """Whether runs may still start: not stopped, and the loop clock is before ``end``.

        Why the clock and not only the stop timer: the timer is a callback, and a
        loop that never yields would never run it; the clock is read every turn.
        """
        return not self.stopping and (end is None or asyncio.get_running_loop().time() < end)

    async def _wait_for_slot(self, freed: asyncio.Event, end: float | None) -> bool:
        """Wait until ``freed`` is set (a run ended, a connection closed, the load stopped) or ``end``.

        Returns False when no slot freed within the run deadline: every run then
        in flight is past its deadline (the checker reports it unfinished), and
        waiting on would make a load against a silent endpoint last forever.
        """
        patience = self.options.profile.deadline_s + DRAIN_GRACE
        left = end - asyncio.get_running_loop().time() if end is not None else patience
        if left < patience:
            # The load ends before a stall could be told: the stop timer (``_stop_starting``, armed
            # with ``end``) sets every slot then, so it bounds this wait and no timer of our own is
            # needed. A slot frees once per run, and a timer per wait cost 4.5 us of a run's 100
            # (issue 26, measurement 6).
            await freed.wait()
            return True
        # asyncio.timeout, not wait_for: wait_for wraps the wait in a task of its own (7.4 us)
        try:
            async with asyncio.timeout(patience):
                await freed.wait()
        except TimeoutError:
            return False
        return True

    async def _closed_loop(self, conn: _Conn, delay: float, end: float | None) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        cap = self.options.runs_per_connection
        while conn.open and self._open_for(end):
            if len(conn.runs) >= cap:
                conn.slot.clear()
                if not await self._wait_for_slot(conn.slot, end):
                    self.connections_stalled += 1
                    return
                continue
            if not self._take_budget():
                return
            if not await self._start_run(conn):
                return

    async def _open_loop(self, events_per_run: float, end: float | None) -> None:
        """Start runs on a fixed schedule; a start due while every connection is full is missed.

        Start ``k`` is due at ``start + k * interval``, computed from the index rather than
        accumulated, so that an interval below the clock's resolution (``--rate 1e12``)
        still moves the schedule on.
        """
        loop = asyncio.get_running_loop()
        interval = events_per_run / self.options.rate
        cap = self.options.runs_per_connection
        conns = [c for c in self.conns if c.open]
        start = loop.time()
        k = 0  # index of the next start on the schedule
        turn = 0
        while conns and self._open_for(end):
            delay = start + k * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay if end is None else min(delay, end - loop.time()))
                continue
            for _ in range(len(conns)):
                conn = conns[turn % len(conns)]
                turn += 1
                if conn.open and len(conn.runs) < cap:
                    break
            else:  # every connection is full: wait for a slot; every start due meanwhile is missed, none queued
                self._slot_freed.clear()
                if not await self._wait_for_slot(self._slot_freed, end):
                    self.connections_stalled += len(conns)
                    return
                due_by_now = int((loop.time() - start) / interval)
                self.starts_missed += max(k, due_by_now) + 1 - k
                k = max(k, due_by_now) + 1
                conns = [c for c in conns if c.open]
                continue
            k += 1
            if not self._take_budget():
                return
            await self._start_run(conn)

    # -- phases ------------------------------------------------------------------------
    async def _connect(self) -> None:
        options = self.options
        self.conns = [self._new_conn(i) for i in range(options.connections)]

        results = await asyncio.gather(*(self._open_wire(c) for c in self.conns), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
        failures = [r for r in results if isinstance(r, Exception)]
        if len(failures) == len(results):
            first = failures[0]
            raise first if isinstance(first, ConnectError) else ConnectError(f"cannot connect: {first}")
        if failures:
            self.notes.append(f"{len(failures)} of {len(results)} connection(s) failed: {failures[0]}")
        self.conns = [c for c in self.conns if c.open]

    def _new_conn(self, index: int) -> _Conn:
        return _Conn(index, self.checker)

    async def _open_wire(self, conn: _Conn) -> None:
        """Open ``conn``'s WebSocket (its handshake done) and route its frames to this engine."""
        conn.wire = await open_connection(
            conn.name, self.options.endpoint, self.clock,
            on_messages=lambda wire, messages, at: self._on_messages(conn, messages, at),
            on_close=lambda wire, info: self._on_close(conn, info),
            subprotocols=[schemas.SUBPROTOCOL])
        conn.open = True

    async def _synchronise(self) -> ClockEstimate:
        """Estimate the clock offset (time_sync on one connection, echo judged by the core), as the
        live check does."""
        conn = self.conns[0]
        loop = asyncio.get_running_loop()
        samples = []
        for _ in range(self.options.sync_samples):
            if not conn.open:
                break
            conn.sync_waiter = waiter = loop.create_future()
            await conn.wire.send("text", conn.core.time_sync(self.clock.now()))
            try:
                reply = await asyncio.wait_for(waiter, SYNC_REPLY_TIMEOUT)
            except asyncio.TimeoutError:
                self.notes.append(f"no time_sync reply within {SYNC_REPLY_TIMEOUT:g} s")
                break
            if reply.sample is None:
                self.notes.append(f"a time_sync reply did not echo the request ({reply.reply!r:.120}); "
                                  "its clock sample was not used")
                break
            samples.append(reply.sample)
        conn.sync_waiter = None
        clock = estimate(samples)
        for c in self.conns:
            c.core.set_clock_offset(clock.offset_ms, clock.uncertainty_ms)
        return clock

    async def _drain(self) -> None:
        """Let in-flight runs finish, within the run deadline."""
        if self.in_flight <= 0:
            return
        try:
            await asyncio.wait_for(self._idle.wait(), self.options.profile.deadline_s + DRAIN_GRACE)
        except asyncio.TimeoutError:
            self.notes.append(f"{self.in_flight} run(s) still in flight {self.options.profile.deadline_s:g} s "
                              "after the last start were given up on")

    async def _warm_up(self) -> None:
        for conn in self.conns:
            await self._start_run(conn, measured=False)
        await self._drain()

    async def _sample(self) -> None:
        """Sample the server, show progress, and time our own loop: a late wake-up here is the
        generator itself falling behind, which inflates every latency it measures."""
        server = self.options.server
        progress = self.options.progress
        interval = self.options.sample_interval
        every = max(1, round(0.5 / interval))
        loop = asyncio.get_running_loop()
        n = 0
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = loop.time()
            self.lag.add(max(0.0, (now - due) * 1000.0))
            due = now + interval
            if server is not None:
                server.sample(self.in_flight)
            n += 1
            if progress is not None and n % every == 0:
                try:
                    progress(self.progress_text())
                except Exception:  # noqa: BLE001 - a broken progress sink must not break the load
                    progress = None

    def progress_text(self) -> str:
        elapsed = time.perf_counter() - self._t0 if self._t0 else 0.0
        rate = self.events / elapsed if elapsed > 0 else 0.0
        violations = sum(self.checker.violation_counts.values())
        return (f"{elapsed:.1f}s {self.runs_completed}/{self.runs_started} runs, {self.events} events, "
                f"{rate:,.0f} events/s, {self.in_flight} in flight, {violations} violation(s)")

    async def run(self) -> LoadResult:
        """Connect, synchronise clocks, warm up, load, drain, close. Raises ConnectError (exit 3)."""
        options = self.options
        await self._connect()
        sampler = None
        monitor = LagMonitor(self.lag_record, self.clock.now)
        monitor.start()
        try:
            clock = await self._synchronise()
            if not clock.measured and self.clock_synced:
                self.notes.append(clock.describe())
            if options.warmup:
                await self._warm_up()
            # what the warm-up measured is not the load's: start the checker's samples afresh
            self.checker.reset_latencies()
            self._events_before = self.checker.run_events
            events_per_run = self.warmup_events / self.warmup_completed if self.warmup_completed else 12.0
            if options.server is not None:
                options.server.begin()
            self._t0 = time.perf_counter()
            sampler = asyncio.get_running_loop().create_task(self._sample())
            loop = asyncio.get_running_loop()
            stopper = loop.call_later(options.duration, self._stop_starting) if options.duration else None
            end = loop.time() + options.duration if options.duration else None
            if options.rate:
                await self._open_loop(events_per_run, end)
            else:
                ramp, count = options.ramp_up, len(self.conns)
                await asyncio.gather(*(self._closed_loop(c, ramp * i / count, end)
                                       for i, c in enumerate(self.conns)))
            if stopper is not None:
                stopper.cancel()
            self._stop_starting()
            await self._drain()
            elapsed = time.perf_counter() - self._t0
            if options.server is not None:
                options.server.sample(self.in_flight)
        finally:
            await monitor.stop()
            if sampler is not None:
                sampler.cancel()
            self._closing = True
            await asyncio.gather(*(c.wire.close() for c in self.conns if c.wire is not None), return_exceptions=True)
        server = options.server.end() if options.server is not None else None
        unfinished = self.runs_started - self.runs_completed - self.runs_refused
        self.checker.close(self.clock.now())
        if self.starts_missed:
            self.notes.append(f"{self.starts_missed} start(s) due by the target rate found every connection at "
                              f"--runs-per-connection {options.runs_per_connection}: the endpoint fell behind")
        lag = samples_summary(self.lag)
        if lag["max"] is not None and lag["max"] > LAG_NOTE_MS:
            self.notes.append(f"the load generator's own event loop ran up to {lag['max']:g} ms late (p99 {lag['p99']:g} ms): "
                              "latencies include that; use fewer connections, a lower --rate or --ramp-up if it matters")
        if self.connections_stalled:
            self.notes.append(f"{self.connections_stalled} connection(s) stopped starting runs: none of their runs "
                              f"ended within the run deadline ({options.profile.deadline_s:g} s)")
        if self.runs_refused:
            codes = ", ".join(f"{c} x{n}" for c, n in sorted(self.checker.errors_received.items()))
            self.notes.append(f"{self.runs_refused} run(s) refused by the endpoint ({codes})")
        return LoadResult(
            options=options, checker=self.checker, clock=clock, runs_started=self.runs_started,
            runs_completed=self.runs_completed, runs_refused=self.runs_refused, runs_unfinished=unfinished,
            events=self.events, events_completed=self.events_completed, elapsed_s=elapsed,
            delivery=samples_summary(self.checker.latencies.delivery),
            first_event=samples_summary(self.checker.latencies.first_event),
            connections=len(self.conns), connections_failed=options.connections - len(self.conns),
            connections_lost=self.connections_lost, starts_missed=self.starts_missed,
            negative_latencies=self.checker.latencies.delivery.negative, generator_lag=lag, warmup_runs=len(self.conns) if options.warmup else 0,
            server=server, notes=self.notes)


async def run_load(options: LoadOptions) -> LoadResult:
    """Run one load test (see :class:`LoadOptions`); raises ConnectError when nothing can connect."""
    if options.dialect is not None and not options.dialect.is_ours:
        from agent_events.conformance.loadgen.dialect_engine import DialectLoadEngine  # it builds on this module

        return await DialectLoadEngine(options).run()
    return await LoadEngine(options).run()
