"""One client connection: its messages, its runs, and nothing else.

A session owns the runs its client started (a dict keyed by run_id), so a
run's events can only ever reach the connection that asked for it, and when
the connection goes, everything it owned goes with it: its runs are
cancelled and the done-callbacks release their bookkeeping even for a run
cancelled before its task ever started.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from agent_events.reference_agent.base import BaseAgent, RunRequest
from agent_events.reference_agent.errors import ConnectionGone
from agent_events.reference_agent.protocol import (
    CancelRun, ProtocolError, StartRun, TimeSync, parse_client_message, time_sync_reply,
)

if TYPE_CHECKING:  # pragma: no cover
    from agent_events.reference_agent.server import AgentServer

logger = logging.getLogger("reference_agent")


class RunHandle:
    """A run in flight: its agent, its task, its deadline timer."""

    __slots__ = ("run_id", "agent", "request", "task", "entered", "timer")

    def __init__(self, run_id: str, agent: BaseAgent, request: RunRequest) -> None:
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
        if self.agent.request_cancel(reason) and self.entered and self.task is not None:
            self.task.cancel()


class Session:
    """Serves one WebSocket connection of an :class:`~agent_events.reference_agent.server.AgentServer`."""

    def __init__(self, server: "AgentServer", websocket: Any) -> None:
        self.server = server
        self.websocket = websocket
        self.config = server.config
        self.runs: dict[str, RunHandle] = {}
        self._max_size = self.config.max_message_size

    async def serve(self) -> None:
        try:
            async for frame in self.websocket:
                try:
                    await self.on_frame(frame)
                except ConnectionClosed:
                    raise
                except Exception as exc:  # noqa: BLE001 - one bad message must not end the connection
                    self.server.quiet_log.error("message", "internal error while handling a client message", exc=exc)
                    await self.send(ProtocolError("internal_error", "the server failed to handle this message").encode())
                # Frames already received are handed over without suspending: without this yield
                # a client with many queued messages would hold the event loop for all of them.
                await asyncio.sleep(0)
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
        self.runs[run_id] = handle
        loop = asyncio.get_running_loop()
        handle.task = task = loop.create_task(self._drive(handle))
        task.add_done_callback(lambda _task: self._run_done(handle))
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
        if self.runs.get(handle.run_id) is handle:
            del self.runs[handle.run_id]
        task = handle.task
        if task is not None and not task.cancelled() and task.exception() is not None:
            self.server.quiet_log.error("run", "run %r ended with an internal error", handle.run_id,
                                        exc=task.exception())
        handle.task = None
        self.server.run_finished()

    async def send(self, data: bytes) -> None:
        """Send a non-run message (error, time_sync reply); a closed connection is not an error."""
        try:
            await self.websocket.send(data, text=True)
        except ConnectionClosed:
            pass

    async def abandon_runs(self) -> None:
        """The connection is gone: stop its runs and wait until they have let go."""
        tasks = [handle.task for handle in self.runs.values() if handle.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.close_timeout)
