"""One client connection: its messages, its runs, and nothing else.

A session owns the runs its client started (a dict keyed by run_id), so a
run's events can only ever reach the connection that asked for it, and when
the connection goes, everything it owned goes with it: its runs are
cancelled and the done-callbacks release their bookkeeping even for a run
cancelled before its task ever started. Protocol 1.1 makes one exception: a
resumable run (:mod:`agent_events.reference_agent.resume`) outlives its
connection for the resume window, and moves to the session that resumes it.

A session needs little of the server that accepted its connection, and says so:
:class:`SessionHost` is that narrow interface (configuration, the resume registry, run ids,
agents and bridges for new runs, the run counters, shutdown and the rate-limited log).
:class:`~agent_events.reference_agent.server.AgentServer` implements it; this module never
imports the server, so the two cannot grow into each other again (and a test host can
stand in for a server).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol, runtime_checkable

from websockets.exceptions import ConnectionClosed

from agent_events.reference_agent.base import BaseAgent, RunRequest
from agent_events.reference_agent.config import ServerConfig
from agent_events.reference_agent.errors import ConnectionGone
from agent_events.reference_agent.protocol import (
    CancelRun, ProtocolError, ResumeRun, StartRun, TimeSync, parse_client_message, time_sync_reply,
)
from agent_events.reference_agent.resume import RecentRuns

logger = logging.getLogger("reference_agent")

#: How long one connection's queued client messages may be handled before it lets others run (s).
TURN_BUDGET_S = 0.002


class RunHandle:
    """A run in flight: its agent, its task, its deadline timer."""

    __slots__ = ("run_id", "agent", "request", "task", "entered", "timer", "session", "resume")

    def __init__(self, run_id: str, agent: BaseAgent, request: RunRequest) -> None:
        #: the session that owns the run now (a resume moves it), and its resume state (1.1)
        self.session: "Session | None" = None
        self.resume = None
        self.run_id = run_id
        self.agent = agent
        self.request = request
        self.task: asyncio.Task | None = None
        self.entered = False
        self.timer: asyncio.TimerHandle | None = None

    def cancel(self, reason: str) -> None:
        """End the run early with a well-formed ``agent_completed`` saying why.

        A task not yet started is left alone: cancelling it would skip the
        agent entirely (no events at all), so the agent sees the reason when
        it starts instead.
        """
        if self.agent is not None and self.agent.request_cancel(reason) and self.entered and self.task is not None:
            self.task.cancel()


@runtime_checkable
class SessionHost(Protocol):
    """What a :class:`Session` needs of the server that accepted its connection (and nothing else)."""

    config: ServerConfig
    #: 1.1: the registry of runs that outlive their connection (``None``: resume off)
    resume: Any
    #: where runs' logs live: in this process, or shared (a resume elsewhere is served from it)
    resume_store: Any
    #: no new runs: the server is draining
    shutting_down: bool
    #: the rate-limited logger (``quiet_log.error(key, message, *args, exc=...)``)
    quiet_log: Any

    def capabilities_frame(self) -> bytes | None:
        """1.1: the connection's first message (``None`` for a 1.0 server)."""

    def new_run_id(self) -> str:
        """A run_id for a start_run that brought none."""

    def make_agent(self) -> BaseAgent:
        """A fresh agent for one run."""

    def make_bridge(self, websocket: Any, session: "Session") -> Any:
        """The bridge that carries one run's events to ``websocket``."""

    def run_started(self) -> None:
        """A run of this host began (the host counts runs in flight)."""

    def run_finished(self) -> None:
        """A run of this host ended."""

    def run_ended_detached(self, handle: "RunHandle") -> None:
        """1.1: a run ended while no connection held it."""


class Session:
    """Serves one WebSocket connection for a :class:`SessionHost` (the reference server).

    ``server`` is that host: only the :class:`SessionHost` members are used here (a test-only
    broken agent may reach further, through ``session.server``, to misbehave on purpose).
    """

    def __init__(self, server: SessionHost, websocket: Any) -> None:
        self.server = server
        self.websocket = websocket
        self.config = server.config
        self.runs: dict[str, RunHandle] = {}
        self._max_size = self.config.max_message_size
        registry = server.resume
        #: finished resumable runs, in case the client's connection dropped as they ended (1.1)
        self.recent = RecentRuns(registry, self.config.max_runs_per_connection) if registry is not None else None
        #: the event loop serving the connection, asked for once (set by :meth:`serve`): CPython
        #: 3.11's get_running_loop() makes a getpid() system call each time (its fork check)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self) -> None:
        try:
            capabilities = self.server.capabilities_frame()
            if capabilities is not None:  # 1.1: the connection's first message, once
                await self.websocket.send(capabilities, text=True)
            self._loop = loop = asyncio.get_running_loop()
            turn_ends = loop.time() + TURN_BUDGET_S
            async for frame in self.websocket:
                try:
                    await self.on_frame(frame)
                except ConnectionClosed:
                    raise
                except Exception as exc:  # noqa: BLE001 - one bad message must not end the connection
                    self.server.quiet_log.error("message", "internal error while handling a client message", exc=exc)
                    await self.send(ProtocolError("internal_error", "the server failed to handle this message").encode())
                # Frames already received are handed over without suspending: a client with many
                # queued messages would hold the event loop for all of them. So past a small time
                # budget it yields (a yield per message would also split every batched write).
                if loop.time() >= turn_ends:
                    await asyncio.sleep(0)
                    turn_ends = loop.time() + TURN_BUDGET_S
        except ConnectionClosed:
            pass
        finally:
            await self.abandon_runs()

    async def on_frame(self, frame: str | bytes) -> None:
        size = len(frame)
        if isinstance(frame, str) and size * 4 > self._max_size:
            size = len(frame.encode())
        if size > self._max_size:
            await self.send(ProtocolError(
                "message_too_big", f"the message has {size} bytes; this server accepts at most {self._max_size}",
                details={"limit": self._max_size, "size": size}).encode())
            return
        message = parse_client_message(frame)
        kind = type(message)
        if kind is StartRun:
            error = self.start_run(message)
            if error is not None:
                await self.send(error.encode())
        elif kind is CancelRun:
            handle = self.runs.get(message.run_id)
            if handle is None:
                await self.send(ProtocolError("unknown_run", f"no run {message.run_id!r} is in flight on this connection",
                                              run_id=message.run_id).encode())
            else:
                handle.cancel("client")
        elif kind is TimeSync:
            await self.send(time_sync_reply(message))
        elif kind is ResumeRun:
            error = await self.resume_run(message)
            if error is not None:
                await self.send(error.encode())
        else:
            await self.send(message.encode())

    def start_run(self, message: StartRun) -> ProtocolError | None:
        if self.server.shutting_down:
            return ProtocolError("shutting_down", "the server is shutting down and starts no new runs",
                                 run_id=message.run_id)
        run_id = message.run_id
        if run_id is None:
            # Unique on the connection, also against ids the client chose (it may guess ours):
            # skipping the ones in flight is at most max_runs_per_connection steps.
            run_id = self.server.new_run_id()
            while run_id in self.runs:
                run_id = self.server.new_run_id()
        if run_id in self.runs:
            return ProtocolError("duplicate_run", f"run {run_id!r} is already in flight on this connection",
                                 run_id=run_id)
        limit = self.config.max_runs_per_connection
        if len(self.runs) >= limit:
            return ProtocolError("too_many_runs", f"{limit} runs are already in flight on this connection",
                                 run_id=run_id, details={"limit": limit})
        try:
            agent = self.server.make_agent()
            agent.set_websocket_bridge(self.server.make_bridge(self.websocket, self), run_id)
        except Exception as exc:  # noqa: BLE001 - a broken factory is reported, not fatal
            self.server.quiet_log.error("agent_factory", "could not create the agent of run %r", run_id[:128], exc=exc)
            return ProtocolError("internal_error", "the server could not create an agent for this run", run_id=run_id)
        handle = RunHandle(run_id, agent, RunRequest(run_id, message.input, message.options))
        handle.session = self
        registry = self.server.resume
        if registry is not None:
            if self.recent is not None:
                self.recent.pop(run_id)  # a new run under a finished one's id: the old one is gone
            handle.resume = agent._bridge.resume = registry.issue(run_id, handle, agent._bridge, self)
        self.runs[run_id] = handle
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        handle.task = task = loop.create_task(self._drive(handle))
        task.add_done_callback(lambda _task: handle.session._run_done(handle) if handle.session is not None
                               else self.server.run_ended_detached(handle))
        if self.config.run_timeout:
            handle.timer = loop.call_later(self.config.run_timeout, handle.cancel, "deadline")
        self.server.run_started()
        return None

    @staticmethod
    async def _drive(handle: RunHandle) -> None:
        handle.entered = True
        try:
            await handle.agent.run(handle.request)
        except (ConnectionGone, asyncio.CancelledError):
            pass  # the client left or the connection is being torn down: nobody to tell

    def _run_done(self, handle: RunHandle) -> None:
        if handle.timer is not None:
            handle.timer.cancel()
            handle.timer = None
        if self.runs.get(handle.run_id) is handle:
            del self.runs[handle.run_id]
        task = handle.task
        if task is not None and not task.cancelled() and task.exception() is not None:
            self.server.quiet_log.error("run", "run %r ended with an internal error", handle.run_id,
                                        exc=task.exception())
        handle.task = None
        state = handle.resume
        if state is not None:
            # kept for a resume (its frames), not its agent, handle or bridge: those are garbage
            # at once, whatever the resume window
            handle.agent = handle.request = None
            state.finish()
            self.recent.add(state)
        self.server.run_finished()

    async def send(self, data: bytes) -> None:
        """Send a non-run message (error, time_sync reply); a closed connection is not an error."""
        try:
            await self.websocket.send(data, text=True)
        except ConnectionClosed:
            pass

    async def resume_run(self, message: ResumeRun) -> ProtocolError | None:
        """1.1: take a run over from a dropped (or another) connection: replay every event after
        ``last_seq`` in order, then attach the run here, with no await in between."""
        registry = self.server.resume
        state = registry.find(message.run_id, message.resume_token) if registry is not None else None
        if state is None:
            if registry is not None and registry.expired(message.run_id, message.resume_token):
                return ProtocolError("resume_expired", f"run {message.run_id!r} was kept {registry.window_s:g} s "
                                     "after its connection dropped, and that window has passed", run_id=message.run_id)
            if registry is not None:  # not this process's run: maybe another's, through a shared store
                elsewhere = await self.server.resume_store.resume_elsewhere(self, message)
                if elsewhere is not False:
                    return elsewhere
            return ProtocolError("resume_denied", f"no resumable run {message.run_id!r} with that resume_token",
                                 run_id=message.run_id)
        run_id = message.run_id
        if run_id in self.runs and self.runs[run_id] is not state.handle:
            return ProtocolError("duplicate_run", f"run {run_id!r} is already in flight on this connection",
                                 run_id=run_id)
        next_seq = state.next_seq
        first = message.last_seq + 1
        if first > next_seq:
            return ProtocolError("invalid_message", f"last_seq {message.last_seq} is past the run's last event "
                                 f"(seq {next_seq - 1})", run_id=run_id, details={"path": "/last_seq"})
        if first < state.oldest_seq(next_seq):
            return ProtocolError("resume_expired", f"the events after seq {message.last_seq} are no longer buffered "
                                 f"(the oldest kept is seq {state.oldest_seq(next_seq)})", run_id=run_id)
        previous = state.session
        if previous is not None and previous is not self:
            previous.release(state)
        registry.attach(state, self)
        handle = state.handle
        if handle is not None:
            handle.session = self  # a run that ends during the replay ends here, not on the old connection
        sent = first
        while True:  # the run may go on emitting (into the buffer) while the replay is written
            pending = state.since(sent)
            if not pending:
                break
            for seq, data in pending:
                await self.send(data)
                sent = seq + 1
        if state.done:  # finished before, or during the replay
            self.recent.add(state)
        else:
            state.bridge.attach(self.websocket, self)
            self.runs[run_id] = handle
        return None

    def release(self, state) -> None:
        """Another connection resumed a run of this one: it is no longer ours."""
        handle = state.handle
        if handle is not None and self.runs.get(state.run_id) is handle:
            del self.runs[state.run_id]
        if self.recent is not None:
            self.recent.pop(state.run_id)

    async def abandon_runs(self) -> None:
        """The connection is gone: stop its runs and wait until they have let go. A resumable run
        (1.1) is detached instead: it goes on, and waits the resume window for its client."""
        registry = self.server.resume
        if registry is not None:
            for handle in [h for h in self.runs.values() if h.resume is not None]:
                del self.runs[handle.run_id]
                handle.session = None
                handle.resume.bridge.detach()
                registry.detach(handle.resume)
            for state in self.recent.release():
                # a finished run kept for its client must not keep the dead connection alive too
                if state.handle is not None:
                    state.handle.session = None
                if state.bridge is not None:
                    state.bridge.detach()
                registry.detach(state)
        tasks = [handle.task for handle in self.runs.values() if handle.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.close_timeout)
