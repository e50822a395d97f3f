"""WebSocketBridgeAdapter: the one place where a run's events meet the socket.

Agents never build envelopes or touch the connection. The bridge stamps the
envelope (``run_id``, ``seq``, ``emitted_at``, ``agent_name``), serialises it
once with orjson and hands it to the connection. Keeping this in one small
class is what makes every agent's stream well-formed by construction: seq can
only be contiguous, because only this code assigns it.

The per-event path is deliberately bare (no validation, no task, no queue of
our own): on the reference server's connection the frame is queued in the
connection's outbound buffer before anything can yield
(:meth:`~agent_events.reference_agent.connection.AgentConnection.queue_text`, which also
batches a loop turn's frames into one socket write), so events leave in
``seq`` order, and the run only waits when the connection's bounded write
buffer is full. That wait is the back-pressure: a slow reader makes its own
runs wait and nobody else's. Any other websocket goes through its ``send``,
which gives the same guarantees one write at a time.

Test-only broken agents (drop, reorder, leak an event) subclass this and
override :meth:`emit`, :meth:`encode` or :meth:`send_frame`; :attr:`session` leads to the
server (``session.server.sessions``) for leaking into another connection.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from websockets.exceptions import ConnectionClosed

from agent_events.reference_agent.errors import AgentUsageError, BridgeNotSetError, ConnectionGone, PayloadError

_dumps = orjson.dumps
_time = time.time


class WebSocketBridgeAdapter:
    """Sends one run's events over one WebSocket connection, in order.

    ``websocket`` is anything with ``async send(data: bytes, text=True)``
    (a ``websockets`` connection). ``session`` is the server's per-connection
    object, or ``None`` outside the server.
    """

    __slots__ = ("websocket", "session", "run_id", "agent_name", "_seq", "_queue", "resume")

    def __init__(self, websocket: Any, *, session: Any = None) -> None:
        self.websocket = websocket
        self.session = session
        self.run_id: str | None = None
        self.agent_name: str | None = None
        self._seq = 0
        #: the connection's corked write, when it has one (the reference server's connections do)
        self._queue = getattr(websocket, "queue_text", None)
        #: 1.1: the run's :class:`~agent_events.reference_agent.resume.ResumeState` when it is resumable:
        #: every frame is kept in its replay buffer, and the run goes on while detached
        self.resume: Any = None

    def detach(self) -> None:
        """The connection is gone (1.1): the run goes on; its frames only fill the replay buffer."""
        self.websocket = None
        self.session = None
        self._queue = None

    def attach(self, websocket: Any, session: Any) -> None:
        """A resume_run took the run over on ``websocket``: from the next frame on, it goes there."""
        self.websocket = websocket
        self.session = session
        self._queue = getattr(websocket, "queue_text", None)

    def bind(self, run_id: str, agent_name: str) -> None:
        """Attach the bridge to one run; seq is per run, so a bridge serves one."""
        if self.run_id is not None and self.run_id != run_id:
            raise AgentUsageError(f"this bridge already carries run {self.run_id!r}; use a new one for {run_id!r}")
        self.run_id = run_id
        self.agent_name = agent_name

    @property
    def next_seq(self) -> int:
        return self._seq

    def encode(self, type_: str, payload: dict) -> bytes:
        """Stamp and serialise one event, consuming its seq.

        Raises :class:`PayloadError` (and consumes no seq) when the payload
        cannot be serialised, before anything is sent, so that the agent can
        undo its bookkeeping and end the run cleanly.
        """
        if self.run_id is None:
            raise BridgeNotSetError("the bridge is not bound to a run: call agent.set_websocket_bridge(bridge, run_id)")
        seq = self._seq
        resume = self.resume
        if resume is not None and seq == 0 and type_ == "agent_started":
            payload = {**payload, "resume_token": resume.token}  # the secret, to the client that started it
        try:
            data = _dumps({
                "type": type_,
                "run_id": self.run_id,
                "seq": seq,
                "emitted_at": _time() * 1000.0,
                "agent_name": self.agent_name,
                "payload": payload,
            })
        except orjson.JSONEncodeError as exc:
            raise PayloadError(f"{type_} payload is not JSON-serialisable: {exc}") from None
        self._seq = seq + 1
        return data

    async def emit(self, type_: str, payload: dict) -> None:
        """Send one event. The frame is written before the first await, so
        events leave in the order they were emitted."""
        await self.send_frame(self.encode(type_, payload))

    async def send_frame(self, data: bytes) -> None:
        """Send one serialised message as a text frame."""
        resume = self.resume
        if resume is not None:
            # A copy of exactly the frame's size: orjson's output keeps a 4 KiB allocation whatever
            # the frame's size (measured, orjson 3.13: 4.0-7.8 KiB of RSS more per frame kept, for
            # frames of 100 B-70 KB), which a run's buffer would hold for the whole resume window.
            # ``b"%b" % data`` is that copy at a third of memoryview(data).tobytes()'s cost
            # (bytes(data) and data[:] return data itself).
            frame = b"%b" % data
            if resume.inline:  # ResumeState.keep, without a call per event (issue 26)
                resume.buffer.append(frame)
                resume.end_seq = self._seq
            else:
                resume.keep(self._seq - 1, frame)
        websocket = self.websocket
        if websocket is None:
            return  # detached (1.1): buffered for a resume_run, nobody to send it to now
        try:
            queue = self._queue
            if queue is not None and queue(data):
                if websocket.paused:
                    await websocket.wait_writable()
                return
            await websocket.send(data, text=True)
        except ConnectionClosed as exc:
            if resume is not None:
                return  # buffered; the session detaches the run when it sees the close
            raise ConnectionGone(f"the client connection closed ({exc})") from exc
