"""``agent-events load --dialect ag-ui``: the load generator driving a foreign dialect's runs.

Not a second load generator: :class:`DialectLoadEngine` is :class:`~agent_events.conformance.loadgen.engine.LoadEngine`
(its pacing, closed or open loop, warm-up, drain, sampling, lag monitor, result and report) with
another client side per connection. Where ours keeps one connection and multiplexes runs on it,
a dialect's client does what the live check does (:mod:`agent_events.dialects.live`): send the
dialect's start message (AG-UI's ``RunAgentInput``) first, read until the run ended, then linger
briefly so that an event after the end is seen. A connection carries one run at a time; the
next run reuses it only when the dialect says runs may follow one another *and* the endpoint
kept it open through the linger, otherwise (AG-UI's cloud runtime closes after one run) it
reconnects. Every frame is judged by the dialect's sans-I/O judge
(:class:`~agent_events.dialects.judge.DialectChecker`), so the report's failures are named by
the dialect's rule ids (``ag-ui.*``), and the connection each run used is its own judged
connection, forgotten when it closes (memory stays flat over a long load).

There is no clock sync in a foreign dialect (AG-UI has no ``time_sync``): delivery latency is
judged only when the dialect declares a timestamp unit; first-event latency and the run
deadline are measured on receive times, as in the live check.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from agent_events.conformance.core.clock_sync import ClockEstimate, estimate
from agent_events.conformance.live.wire import CloseInfo, ConnectError, open_connection
from agent_events.conformance.loadgen.engine import LoadEngine, LoadOptions
from agent_events.dialects import make_checker, start_message
from agent_events.dialects.live import LINGER_S, _run_over

#: Connection failures described in the notes (the rest are counted).
NOTED = 5


class _Run:
    __slots__ = ("measured", "frames", "over", "linger")

    def __init__(self, measured: bool) -> None:
        self.measured = measured
        self.frames = 0
        self.over = False
        self.linger: asyncio.TimerHandle | None = None


class _DialectConn:
    """One connection slot: the wire of its current run (reopened per run unless runs may follow)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.name = f"c{index}"
        self.wire = None
        #: the judge's name of the current wire's connection (``c3.7``: slot 3, its 8th connection)
        self.judged = self.name
        self.opened = 0
        self.run: _Run | None = None
        self.slot = asyncio.Event()
        self.open = False  # the slot is usable (the base's pacing reads it)
        self.sync_waiter = None

    @property
    def runs(self) -> dict:
        """The run occupying the slot (the base's pacing counts it): until its linger is over."""
        return {self.judged: self.run} if self.run is not None else {}


class DialectLoadEngine(LoadEngine):
    """One load run of a foreign dialect's endpoint. Use :func:`~agent_events.conformance.loadgen.engine.run_load`."""

    clock_synced = False

    def __init__(self, options: LoadOptions) -> None:
        super().__init__(options)
        self.dialect = options.dialect
        if self.dialect.start is None:
            raise ValueError(f"dialect {self.dialect.label} names no start message ([start] message = ...): "
                             "it cannot be driven live")
        if options.runs_per_connection != 1:
            raise ValueError(f"runs-per-connection must be 1 with dialect {self.dialect.label}: its runs do not "
                             "interleave on a connection (use more --connections)")
        # its latencies on receive times are judged net of the generator's own stalls, as ours are
        self.checker = make_checker(self.dialect, options.profile, lag=self.lag_record)
        self._closers: set[asyncio.Task] = set()
        self._starters: set[asyncio.Task] = set()
        self.connect_failures = 0

    # -- connections -----------------------------------------------------------------------
    def _new_conn(self, index: int) -> _DialectConn:
        return _DialectConn(index)

    async def _open_wire(self, conn: _DialectConn) -> None:
        name = f"{conn.name}.{conn.opened}"
        conn.opened += 1
        wire = await open_connection(
            name, self.options.endpoint, self.clock,
            on_messages=lambda w, messages, at: self._on_frames(conn, w, name, messages, at),
            on_close=lambda w, info: self._on_wire_closed(conn, w, name, info),
            subprotocols=None)
        conn.wire, conn.judged, conn.open = wire, name, True

    async def _synchronise(self) -> ClockEstimate:
        return estimate([])  # a foreign dialect has no time_sync: receive times only

    # -- runs ------------------------------------------------------------------------------
    async def _start_run(self, conn: _DialectConn, measured: bool = True) -> bool:
        if self._closing or conn.run is not None:
            return False
        conn.run = run = _Run(measured)
        self.in_flight += 1
        self._idle.clear()
        if measured:
            self.runs_started += 1
        task = asyncio.get_running_loop().create_task(self._begin(conn, run))
        self._starters.add(task)
        task.add_done_callback(self._starters.discard)
        return True

    async def _begin(self, conn: _DialectConn, run: _Run) -> None:
        """Connect when the slot has no open wire, then send the start message (the judge starts its clock)."""
        if conn.wire is None or not conn.wire.is_open:
            try:
                await self._open_wire(conn)
            except ConnectError as exc:
                self.connect_failures += 1
                if self.connect_failures <= NOTED:
                    self.notes.append(f"{conn.name}: a run's connection failed: {exc}")
                if run.measured:
                    self.runs_refused += 1
                conn.open = False  # the slot is retired, as a lost connection is in a load of ours
                self._free(conn, run)
                return
        message = start_message(self.dialect, self.options.input)
        at = self.clock.now()
        self.checker.send(message, at, conn.judged)
        await conn.wire.send("text", json.dumps(message).encode())

    def _on_frames(self, conn: _DialectConn, wire, name: str, messages: list, at: float) -> None:
        receive = self.checker.receive
        for kind, data in messages:
            if kind == "text":
                try:
                    frame: Any = data.decode("utf-8")
                except UnicodeDecodeError:
                    frame = bytes(data)
            else:
                frame = bytes(data)
            receive(frame, at, name)
        run = conn.run
        if run is None or name != conn.judged:
            return  # a lingering wire of an earlier run: judged, not paced
        run.frames += len(messages)
        if not run.over and _run_over(self.checker, name):
            run.over = True
            if run.measured:
                self.runs_completed += 1
                self.events_completed += run.frames
            else:
                self.warmup_completed += 1
                self.warmup_events += run.frames
            run.linger = asyncio.get_running_loop().call_later(LINGER_S, self._linger_over, conn, run)

    def _linger_over(self, conn: _DialectConn, run: _Run) -> None:
        """The run ended LINGER_S ago and its wire is still open: keep it for the next run when runs may
        follow, else close it."""
        wire = conn.wire
        if conn.run is not run:
            return
        if wire is not None and wire.is_open and not self.dialect.runs.may_follow:
            self._close_wire(wire)
            conn.wire = None
        self._free(conn, run)

    def _close_wire(self, wire) -> None:
        task = asyncio.get_running_loop().create_task(wire.close())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    def _on_wire_closed(self, conn: _DialectConn, wire, name: str, info: CloseInfo) -> None:
        self.checker.end_connection(name, self.clock.now())  # its open runs did not end: the judge says so
        if conn.wire is wire:
            conn.wire = None
        run = conn.run
        if run is None or name != conn.judged:
            return
        if run.linger is not None:
            run.linger.cancel()
        if not run.over and not self._closing:
            self.connections_lost += 1
            if self.connections_lost <= NOTED:
                who = {"server": "the endpoint", "client": "the load generator", "network": "the network"}[info.by]
                detail = f" ({info.detail})" if info.detail else ""
                self.notes.append(f"{name} was closed by {who}, code {info.code}{detail}, before its run ended")
        self._free(conn, run)

    def _free(self, conn: _DialectConn, run: _Run) -> None:
        if conn.run is not run:
            return
        conn.run = None
        self.in_flight -= 1
        conn.slot.set()
        self._slot_freed.set()
        if self.in_flight == 0:
            self._idle.set()

    async def _drain(self) -> None:
        await super()._drain()
        if self._starters:  # a start still connecting when the load stopped
            await asyncio.gather(*list(self._starters), return_exceptions=True)
        if self._closers:
            await asyncio.wait(list(self._closers), timeout=self.options.endpoint.close_timeout + 1.0)
