"""The harness's WebSocket client over asyncio: the shell of :mod:`~agent_events.conformance.live.wire_core`.

:class:`WireConnection` reads with asyncio streams, hands each read to the core, writes what the core
and the protocol owe, and never waits without a timeout. The live check and ``agent-events load`` use
it; the Locust user has the plain-socket shell (:mod:`agent_events.conformance.live.wire_sync`). The
core's names are importable from here, as they were before it was a module of its own.
"""

from __future__ import annotations

import asyncio
import ssl

from websockets.protocol import State

from agent_events.conformance.live.wire_core import (  # noqa: F401  (re-exported: their home before the split)
    CLIENT_LIMIT_ERRNOS,
    DEFAULT_MAX_SIZE,
    READ_CHUNK,
    _MASK_POOL,
    ClientLimitError,
    Clock,
    CloseInfo,
    ConnectError,
    Endpoint,
    FrameKind,
    OnClose,
    OnMessages,
    WireCore,
    check_url,
    connect_failure,
    describe_handshake_failure,
)


class WireConnection(WireCore):
    """One client connection over asyncio streams: sends frames, reports received messages by callback.

    Use :func:`open_connection`. Callbacks run inside the read loop, so they
    must be quick and must not raise (the loop guards against it anyway).
    """

    def __init__(self, name: str, endpoint: Endpoint, clock: Clock,
                 on_messages: OnMessages, on_close: OnClose) -> None:
        super().__init__(name, endpoint, clock, on_messages, on_close)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self.closed = asyncio.Event()

    # -- opening -----------------------------------------------------------
    async def _open(self, subprotocols: list[str] | None) -> None:
        endpoint = self.endpoint
        context = endpoint.ssl_context()
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self._uri.host, self._uri.port, ssl=context,
                    server_hostname=self._uri.host if context else None,
                    limit=READ_CHUNK,
                ),
                endpoint.open_timeout,
            )
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            raise connect_failure(exc, self._uri.host) from None
        self._request(subprotocols)
        try:
            await asyncio.wait_for(self._handshake(), endpoint.open_timeout)
        except ConnectError:
            self._abort()
            raise
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            self._abort()
            raise ConnectError(f"handshake failed: {describe_handshake_failure(exc)}") from None
        self._task = asyncio.get_running_loop().create_task(self._read_loop(), name=f"agent-events-read-{self.name}")

    async def _handshake(self) -> None:
        await self._flush()
        while True:
            data = await self._reader.read(READ_CHUNK)
            at = self.clock.now()
            if self._handshake_received(data, at):
                await self._flush()
                return

    # -- reading -----------------------------------------------------------
    async def _read_loop(self) -> None:
        protocol = self.protocol
        reader = self._reader
        closing_deadline: float | None = None
        loop = asyncio.get_running_loop()
        now = self.clock.now
        try:
            while protocol.state is not State.CLOSED:
                if protocol.state is State.CLOSING:
                    # The close handshake is under way (or we failed the
                    # connection): the peer gets close_timeout to drop TCP.
                    if closing_deadline is None:
                        closing_deadline = loop.time() + self.endpoint.close_timeout
                    try:
                        data = await asyncio.wait_for(reader.read(READ_CHUNK),
                                                      max(0.0, closing_deadline - loop.time()))
                    except asyncio.TimeoutError:
                        break
                else:
                    data = await reader.read(READ_CHUNK)
                at = now()
                self._received(data, at)
                if self._write_pending():
                    await self._drain()
                if protocol.parser_exc is not None or protocol.close_rcvd is not None:
                    self._finish_from_protocol()
                if protocol.parser_exc is not None or not data:
                    break
        except (OSError, asyncio.IncompleteReadError) as exc:
            self._finish(CloseInfo(None, "", "network", detail=describe_handshake_failure(exc)))
        except asyncio.CancelledError:
            self._finish(CloseInfo(None, "", "client", detail="closed by the harness"))
            raise
        finally:
            self._finish_from_protocol()
            self._abort()

    # -- writing -----------------------------------------------------------
    def _write_pending(self) -> bool:
        """Write what the protocol has to send; whether the transport holds some back (then drain)."""
        writer = self._writer
        if writer is None:
            return False
        pending = self.protocol.data_to_send()
        if not pending:
            return False
        for data in pending:
            if data:
                writer.write(data)
            elif writer.can_write_eof():
                try:
                    writer.write_eof()
                except OSError:
                    pass
        return writer.transport.get_write_buffer_size() > 0 or writer.transport.is_closing()

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(self._writer.drain(), self.endpoint.send_timeout)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            pass  # a dead or stuck peer shows up in the read loop; sending must not hang

    async def _flush(self) -> None:
        if self._write_pending():
            await self._drain()

    async def send(self, kind: FrameKind, data: bytes) -> float | None:
        """Send one message; return the send time, or ``None`` when the connection is closed.

        Callers that must account for a message *before* any answer can be
        read (the checker must know a run was started before its first event
        arrives) check :attr:`is_open`, account, then call this: nothing
        else runs on the loop between the check and the write.
        """
        protocol = self.protocol
        if protocol.state is not State.OPEN:
            return None
        at = self.clock.now()
        writer = self._writer
        frame = self._frame_out(kind, data) if writer is not None else None
        if frame is not None:
            self._write_pending()  # what the protocol owes first (a pong, say), in order
            writer.write(frame)
            return at  # (nothing is pending now: a second look, with a coroutine for it, found nothing)
        self._queue(kind, data)
        await self._flush()
        return at

    def write_now(self, frames: "list[tuple[FrameKind, bytes]]") -> bool:
        """Write several messages in ONE ``transport.write``, at once (no await): a few hundred
        bytes in one write are one TCP segment, so the endpoint reads them together. That is how
        the race probes (:mod:`agent_events.conformance.live.races`) make a server meet
        ``start_run`` and ``cancel_run`` in one read, which a polite client never shows it.
        Synchronous, so that a read-loop callback can answer the frame that opens a race window;
        the read loop drains. False when the connection is not open (nothing written)."""
        writer = self._writer
        if self.protocol.state is not State.OPEN or writer is None:
            return False
        data = self._frames_out(frames)
        if data is None:  # websockets frames them
            for kind, message in frames:
                self._queue(kind, message)
            writer.write(b"".join(self.protocol.data_to_send()))
            return True
        self._write_pending()  # what the protocol owes first (a pong, say), in order
        writer.write(data)
        return True

    async def send_many(self, frames: "list[tuple[FrameKind, bytes]]") -> float | None:
        """Several messages packed in one write (:meth:`write_now`); the send time, or ``None``."""
        at = self.clock.now()
        if not self.write_now(frames):
            return None
        await self._flush()
        return at

    # -- closing -----------------------------------------------------------
    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close politely, then firmly: never waits longer than ``close_timeout``."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            await self._flush()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.endpoint.close_timeout)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - closing must always succeed
                self._task.cancel()
                try:
                    await self._task
                except BaseException:  # noqa: BLE001
                    pass
        self._abort()

    def cut(self) -> None:
        """Drop the connection at once, with no close frame: what a lost mobile link looks like to
        the server (the reconnect probe). The read loop then ends as for any dropped connection."""
        writer = self._writer
        if writer is not None and writer.transport is not None:
            writer.transport.abort()

    def _abort(self) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.close()


async def open_connection(name: str, endpoint: Endpoint, clock: Clock, *,
                          on_messages: OnMessages, on_close: OnClose,
                          subprotocols: list[str] | None) -> WireConnection:
    """Connect and complete the handshake, or raise :class:`ConnectError`."""
    connection = WireConnection(name, endpoint, clock, on_messages, on_close)
    await connection._open(subprotocols)
    return connection
