"""The live probe's plumbing: connections wired to a scenario's checker and the transcript.

A thin asyncio shell over the client core (:class:`agent_events.conformance.core.client.ClientConnection`):
the core times nothing and sends nothing, it turns frames into checker input
and run records; this layer owns the socket (:mod:`agent_events.conformance.live.wire`),
the transcript, the waits the scenarios make, and the flood guard that
closes a connection.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from agent_events import schemas
from agent_events.conformance.core import rules as _rules
from agent_events.conformance.core.client import ClientConnection, RunRecord
from agent_events.conformance.live.wire import (
    ClientLimitError, CloseInfo, ConnectError, FrameKind, WireConnection, open_connection,
)

class LiveConnection:
    """One connection of one scenario: send client messages, wait for what comes back."""

    def __init__(self, probe: "ScenarioProbe", name: str) -> None:
        self.probe = probe
        self.name = name
        self.wire: WireConnection | None = None
        # the recorder only when a transcript is written: without one, the core takes its fast path
        recording = probe.engine.options.record is not None
        self.core = ClientConnection(name, probe.checker, recorder=probe.engine.record if recording else None,
                                     run_prefix=f"{probe.name}-{name.rsplit('/', 1)[-1]}")
        self.close_info: CloseInfo | None = None
        #: the scenario's waits: (predicate, future), checked after each read and at the close.
        #: A plain list, not an asyncio.Event: an Event wakes every waiter on every read, to
        #: find its predicate still false (a task step and a new wait_for each time).
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future]] = []
        #: the flood guard's cap, read once (checked on every frame)
        self._max_messages = probe.engine.options.max_messages_per_connection
        self._flood_stopped = False
        self._closing: asyncio.Task | None = None  # referenced, so the loop cannot drop it
        #: ``() -> bool``, checked after each frame: true drops the connection (see :meth:`cut_when`)
        self._cut_when: Callable[[], bool] | None = None
        #: ``(kind, data, at) -> None``, called after each frame once the core has it (the race
        #: probes: they answer a frame from inside the read, see :meth:`watch`)
        self._watch: Callable[[FrameKind, bytes, float], None] | None = None

    # the core's bookkeeping, read by the scenarios
    @property
    def runs(self) -> dict[str, RunRecord]:
        return self.core.runs

    @property
    def errors(self) -> list[tuple[float, dict]]:
        return self.core.errors

    @property
    def error_count(self) -> int:
        return self.core.error_count

    @property
    def too_many_runs(self) -> bool:
        return self.core.too_many_runs

    @property
    def sync_replies(self):
        return self.core.sync_replies

    # -- callbacks from the wire (must be quick, never raise) ----------------------
    def on_messages(self, wire: WireConnection, messages: list[tuple[FrameKind, bytes]], at: float) -> None:
        if self._flood_stopped:
            return  # past the cap: what is still in flight until the close completes is ignored
        core = self.core
        first_bad_utf8 = core.invalid_utf8 is None
        if self._cut_when is None and self._watch is None and core.received + len(messages) < self._max_messages:
            core.receive_many(messages, at)  # the common case: no frame of the batch is special
        else:
            watch = self._watch
            for kind, data in messages:  # frame by frame: a cut, a watch or the cap may land inside the batch
                core.receive(kind, data, at)
                if watch is not None:
                    try:
                        watch(kind, data, at)
                    except Exception as exc:  # noqa: BLE001 - a probe's bug is a note, never a dead read loop
                        self.probe.note_once("watch_error", f"{self.name}: internal error in a race probe: "
                                             f"{type(exc).__name__}: {exc}")
                if self._after_frame(wire):
                    break
        if first_bad_utf8 and core.invalid_utf8 is not None:
            reason, start = core.invalid_utf8
            self.probe.note_once("invalid_utf8", f"{self.name} received a text frame that is not UTF-8 "
                                 f"({reason} at byte {start}); shown with \\x escapes")
        if self._waiters:
            self._notify()

    def _after_frame(self, wire: WireConnection) -> bool:
        """The cut of the reconnect probe and the flood cap, judged after each frame; whether the
        connection stops being read."""
        core = self.core
        cut_when = self._cut_when
        if cut_when is not None and cut_when():
            # the reconnect probe: gone right after this frame, as a dropped link is; the frames
            # already on their way are lost with it (a resume must replay them)
            self._cut_when = None
            self._flood_stopped = True
            core.cut = True
            wire.cut()
            return True
        if core.received >= self._max_messages:
            self._flood_stopped = True
            self.probe.note(f"{self.name} received {core.received} messages; the harness stopped reading it "
                            "(a flood, or --max-messages too low)")
            self._closing = asyncio.get_running_loop().create_task(wire.close(1008, "too many messages"))
            return True
        return False

    def _notify(self) -> None:
        """Wake the waits whose predicate now holds (every one, once the connection is closed)."""
        closed = self.close_info is not None
        for predicate, future in self._waiters:
            if not future.done() and (closed or predicate()):
                future.set_result(None)

    def on_close(self, wire: WireConnection, info: CloseInfo) -> None:
        self.close_info = info
        probe = self.probe
        self.core.connection_closed(info.by, info.code, info.cause, info.detail, probe.engine.clock.now(),
                                    max_size=probe.engine.options.endpoint.max_size)
        if info.cause == "protocol_error":
            probe.note(f"{self.name}: the endpoint broke the WebSocket framing ({info.detail}); "
                       "the client closed the connection with 1002")
        self._notify()

    # -- sending -------------------------------------------------------------------
    def _usable(self) -> WireConnection | None:
        wire = self.wire
        return wire if wire is not None and wire.is_open else None

    async def send(self, message: Any) -> float | None:
        """Send a client message (a dict is serialised; ``str``/``bytes`` go as a raw text/binary frame)."""
        wire = self._usable()
        if wire is None:
            return None
        at = self.probe.engine.clock.now()
        kind, data = self.core.send(message, at)
        await wire.send(kind, data)
        return at

    async def time_sync(self) -> float | None:
        wire = self._usable()
        if wire is None:
            return None
        at = self.probe.engine.clock.now()
        await wire.send("text", self.core.time_sync(at))
        return at

    async def start_run(self, input_text: str | None = None, options: dict | None = None,
                        run_id: str | None = None) -> str:
        """Start a run with a fresh client-chosen run_id (so isolation can be judged) and return it.

        A ``run_id`` of a run in flight sends a duplicate start (the server should refuse it with
        duplicate_run): the run's record stays, with ``duplicate_sent_at`` set."""
        wire = self._usable()
        engine = self.probe.engine
        if wire is None and run_id is not None and run_id in self.core.runs and not self.core.runs[run_id].ended:
            return run_id  # a duplicate start on a closed connection: nothing sent, the run in flight untouched
        if run_id is None and engine.options.first_run_id is not None and not engine.first_run_id_used:
            engine.first_run_id_used = True  # record --run-id: the recording's run carries the user's id
            run_id = engine.options.first_run_id
        at = engine.clock.now()
        run_id, data = self.core.start_run(
            at, input=input_text if input_text is not None else self.probe.engine.options.input,
            run_id=run_id, options=options)
        if wire is None:
            run = self.core.runs[run_id]
            run.started_at = None  # never sent: nothing to wait for
            run.refused = "not sent"
            info = self.close_info
            self.core.start_not_sent(at, f"closed by {info.by}, code {info.code}" if info else "not open")
            return run_id
        await wire.send("text", data)
        return run_id

    async def start_unnamed_run(self, input_text: str | None = None, options: dict | None = None) -> RunRecord | None:
        """Start a run without run_id, so that the server generates one; return its record, whose
        ``run_id`` is filled in when the run's first event arrives (``""`` until then). ``None``:
        the connection is closed, nothing was sent."""
        wire = self._usable()
        if wire is None:
            return None
        at = self.probe.engine.clock.now()
        _, data = self.core.start_run(at, input=input_text if input_text is not None else self.probe.engine.options.input,
                                      options=options, server_run_id=True)
        run = self.core.unnamed[-1]
        await wire.send("text", data)
        return run

    def watch(self, callback: "Callable[[FrameKind, bytes, float], None] | None") -> None:
        """Call ``callback(kind, data, at)`` after each received frame, inside the read, once the
        core and the checker have it: a probe that must answer a frame at once (a cancel_run on
        the run's last tool_completed) sends from there with :meth:`send_now`, before the next
        frame of the same read is even looked at. ``None`` stops watching."""
        self._watch = callback

    async def send_packed(self, build: "Callable[[ClientConnection, float], list[tuple[FrameKind, bytes]]]"
                          ) -> float | None:
        """Send the frames ``build(core, at)`` returns (each built by the core, so accounted for
        the checker first) in ONE write: the endpoint reads them together (see
        :meth:`WireConnection.write_now`). The send time, or ``None`` when the connection is closed
        (then nothing is built)."""
        wire = self._usable()
        if wire is None:
            return None
        at = self.probe.engine.clock.now()
        if await wire.send_many(build(self.core, at)) is None:
            return None
        return at

    def send_now(self, build: "Callable[[ClientConnection, float], list[tuple[FrameKind, bytes]]]") -> float | None:
        """:meth:`send_packed` without waiting: for a :meth:`watch` callback, inside the read loop.
        A few hundred bytes never wait for the transport's buffer; the read loop drains it."""
        wire = self._usable()
        if wire is None:
            return None
        at = self.probe.engine.clock.now()
        return at if wire.write_now(build(self.core, at)) else None

    def cut_when(self, predicate: Callable[[], bool]) -> None:
        """Drop the connection (no close frame) right after the first frame that makes ``predicate()`` true."""
        self._cut_when = predicate

    async def resume_run(self, run_id: str, resume_token: str, last_seq: int) -> float | None:
        """1.1: take ``run_id`` over on this connection; its events after ``last_seq`` come here."""
        wire = self._usable()
        if wire is None:
            return None
        at = self.probe.engine.clock.now()
        await wire.send("text", self.core.resume_run(at, run_id=run_id, resume_token=resume_token,
                                                     last_seq=last_seq))
        return at

    async def cancel_run(self, run_id: str) -> float | None:
        wire = self._usable()
        if wire is None:
            return None
        at = self.probe.engine.clock.now()
        await wire.send("text", self.core.cancel_run(run_id, at))
        return at

    # -- waiting ---------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self.close_info is None and self.wire is not None

    async def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds, the connection closes, or ``timeout`` s pass.

        Returns whether the predicate holds. Every wait of the probe goes
        through here, so none can outlive its timeout.
        """
        if predicate():
            return True
        if self.close_info is not None or timeout <= 0:
            return predicate()
        waiter = (predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter[1], timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._waiters.remove(waiter)
        return predicate()

    def run_deadline(self, run_id: str) -> float:
        """Seconds left before giving up on ``run_id``: its deadline, plus a little grace."""
        engine = self.probe.engine
        run = self.runs[run_id]
        started = run.started_at if run.started_at is not None else engine.clock.now()
        budget_ms = engine.options.profile.deadline_s * 1000.0 + engine.options.grace_ms
        return max(0.0, (started + budget_ms - engine.clock.now()) / 1000.0)

    async def wait_runs(self, run_ids: list[str]) -> bool:
        """Wait for every run to complete or be refused (each bounded by its own deadline);
        return whether every one completed."""
        done = True
        for run_id in run_ids:
            run = self.runs[run_id]
            await self.wait(lambda run=run: run.ended, self.run_deadline(run_id))
            done &= run.completed
        return done

    async def wait_error(self, after: int, timeout: float) -> dict | None:
        """The first ``error`` message after the ``after``-th one, within ``timeout`` s."""
        if await self.wait(lambda: self.error_count > after, timeout) and after < len(self.errors):
            return self.errors[after][1]
        return None

    async def close(self) -> None:
        if self._closing is not None:
            await self._closing
        if self.wire is not None:
            await self.wire.close()


class ScenarioProbe:
    """One scenario's run: its checker, its connections, its notes."""

    def __init__(self, engine, name: str, checker, owners: dict[str, str] | None = None) -> None:
        self.engine = engine
        self.name = name
        self.checker = checker
        #: live rule id -> the scenario that exercises it (given by the engine: this module never
        #: imports the scenarios, which are built on it)
        self.owners = owners or {}
        self.connections: list[LiveConnection] = []
        self.notes: list[str] = []
        self._noted: set[str] = set()
        self._declared_na: set[str] = set()
        #: client epoch ms after which the scenario starts no more runs (set when it begins)
        self.starts_until: float | None = None
        #: connections the harness's own machine could not open (see ClientLimitError)
        self.client_limited = 0
        self.client_limit_error: ClientLimitError | None = None

    def note(self, text: str) -> None:
        if len(self.notes) < 50:
            self.notes.append(text)

    def note_once(self, key: str, text: str) -> None:
        if key not in self._noted:
            self._noted.add(key)
            self.note(text)

    def external(self, rule_id: str, passed: bool, **details) -> None:
        details.setdefault("at", self.engine.clock.now())
        self.checker.external(rule_id, passed, **details)

    def not_applicable(self, rule_id: str, reason: str) -> None:
        self._declared_na.add(rule_id)
        self.checker.not_applicable(rule_id, reason)

    def may_start(self, conn: LiveConnection) -> bool:
        """Whether to start one more run on ``conn``; says once in the notes why not.

        Why a scenario stops early: whatever ``--runs`` asks, a scenario must
        end, and starts the endpoint refuses (too_many_runs) or that could not
        finish before the run deadline measure nothing.
        """
        if not conn.open:
            return False
        if conn.too_many_runs:
            self.note_once("too_many_runs", f"{conn.name}: the endpoint answered a start_run with too_many_runs "
                           f"({len(conn.runs)} started on that connection); no more runs were started on it")
            return False
        if self.starts_until is not None and self.engine.clock.now() >= self.starts_until:
            self.note_once("start_budget", f"stopped starting runs after {self.engine.options.profile.deadline_s:g} s "
                           "(the run deadline), before every run asked for by --runs had started")
            return False
        return True

    async def connect(self) -> LiveConnection | None:
        """Open one more connection; a refusal after the first check-wide connection is a finding.

        The very first connection of a check raises :class:`ConnectError`
        (nothing can be checked: exit 3); any later refusal is reported as
        ``transport.connections`` and the scenario goes on without it, unless
        the harness's own machine refused it (:class:`ClientLimitError`): that
        is a note, and the rule is N/A, since the endpoint never saw the attempt.
        """
        engine = self.engine
        conn = LiveConnection(self, f"{self.name}/c{len(self.connections)}")
        self.connections.append(conn)
        try:
            conn.wire = await open_connection(
                conn.name, engine.options.endpoint, engine.clock,
                on_messages=conn.on_messages, on_close=conn.on_close, subprotocols=[schemas.SUBPROTOCOL])
        except ConnectError as exc:
            if not engine.connected_once:
                raise
            conn.close_info = CloseInfo(None, "", "network", detail=str(exc))
            if isinstance(exc, ClientLimitError):
                self._client_limited(exc)
                return None
            self.external("transport.connections", False, conn=conn.name,
                          expected="the WebSocket handshake succeeds", observed=str(exc))
            return None
        engine.connected_once = True
        self.external("transport.connections", True, conn=conn.name)
        selected = conn.wire.subprotocol
        self.external("transport.subprotocol", selected == schemas.SUBPROTOCOL, conn=conn.name,
                      expected=f"Sec-WebSocket-Protocol: {schemas.SUBPROTOCOL} selected",
                      observed="no subprotocol selected" if selected is None else f"{selected!r} selected")
        self.checker.set_clock_offset(conn.name, engine.clock_estimate.offset_ms, engine.clock_estimate.uncertainty_ms)
        return conn

    def _client_limited(self, exc: ClientLimitError) -> None:
        self.client_limited += 1
        self.client_limit_error = self.client_limit_error or exc
        self.note_once("client_limit", f"the harness could not open a connection: {exc} - a limit of the machine "
                       "running the check, not of the endpoint (raise `ulimit -n`, or lower --concurrency)")
        self.not_applicable("transport.connections", f"{self.client_limited} connection(s) could not be opened "
                            f"because of a limit of the machine running the check ({exc}); the endpoint was not "
                            "tested with every connection asked for")

    async def connect_many(self, count: int) -> list[LiveConnection]:
        """Open ``count`` connections at once (the point of the concurrency scenario).

        Raises :class:`ConnectError` (exit 3) when not one opens: with no
        connection the scenario has nothing to judge, and an empty scenario
        must not read as a pass.
        """
        results = await asyncio.gather(*(self.connect() for _ in range(count)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
        opened = [r for r in results if isinstance(r, LiveConnection)]
        if count and not opened:
            errors = [r for r in results if isinstance(r, Exception)]
            cause = self.client_limit_error or (errors[0] if errors else None)
            if cause is None:  # every failure was recorded on its connection
                cause = next((c.close_info.detail for c in reversed(self.connections) if c.close_info), "")
            kind = ClientLimitError if self.client_limit_error is not None else ConnectError
            hint = (" - a limit of the machine running the check (raise `ulimit -n`, or lower --concurrency)"
                    if kind is ClientLimitError else "")
            raise kind(f"the {self.name} scenario could not open any of its {count} connection(s): {cause}{hint}")
        return opened

    async def finish(self) -> None:
        """Close every connection, then judge what the end of the stream leaves open."""
        await asyncio.gather(*(c.close() for c in self.connections), return_exceptions=True)
        now = self.engine.clock.now()
        for conn in self.connections:
            if conn.wire is not None and not conn.core.closed:  # closed here without a close callback
                conn.core.connection_closed("client", 1000, None, "", now)
            if conn.wire is not None and conn.wire.callback_errors:
                self.note(f"{conn.name}: internal error while handling frames: {conn.wire.callback_errors[0]}")
        self.checker.close(now)
        self._explain_unexercised()

    def _explain_unexercised(self) -> None:
        """Say "not part of this scenario" rather than a generic reason for another scenario's live rules."""

        owners = self.owners
        outcomes = self.checker.outcomes()
        for rule in _rules.RULES:
            if rule.scope == "live" and not outcomes[rule.id].applicable:
                owner = owners.get(rule.id)
                if owner != self.name and rule.id not in self._declared_na:
                    where = f"the {owner} scenario" if owner else "another scenario"
                    self.checker.not_applicable(rule.id, f"not exercised by this scenario (see {where})")

    @property
    def runs_started(self) -> int:
        return sum(len(c.runs) for c in self.connections)

    @property
    def runs_completed(self) -> int:
        return sum(1 for c in self.connections for r in c.runs.values() if r.completed)
