"""AgentConnection: the reference server's WebSocket connection, corked and watched.

Two things the server needs of every connection, kept here so the server module is about the
server (routing, limits, auth, shutdown) and this one about one socket:

* Corked event writes (:meth:`AgentConnection.queue_text`): the frames a connection's runs emit
  during one event-loop turn leave in one socket write at the end of the turn instead of one
  syscall each (a syscall per frame was a third of the server's time). Whenever websockets
  writes on its own (a pong, a close frame, an ``error`` sent with ``send``) the corked frames
  are written first: the order on the wire is the order of the calls.
* Flow-control callbacks that arm a timer when the outbound buffer fills: a reader stuck longer
  than ``slow_reader_timeout`` is reported to ``on_stall`` (the server closes it with 1008). No
  per-event cost: the timer exists only while the buffer is full.
"""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

_OPEN = State.OPEN
#: Corked bytes that force a write before the end of the loop turn: an agent
#: emitting in a tight loop must meet back-pressure, not grow a buffer.
CORK_LIMIT = 16 * 1024
#: Headers of unmasked, final text frames (RFC 6455 5.2): payloads under 126 bytes, then 16- and 64-bit lengths.
_SHORT_TEXT_HEADERS = tuple(bytes((0x81, n)) for n in range(126))
_TEXT_16, _TEXT_64 = b"\x81\x7e", b"\x81\x7f"


def _text_header(size: int) -> bytes:
    if size < 126:
        return _SHORT_TEXT_HEADERS[size]
    if size < 65536:
        return _TEXT_16 + size.to_bytes(2, "big")
    return _TEXT_64 + size.to_bytes(8, "big")


class AgentConnection(ServerConnection):
    """A ``websockets`` server connection that notices a stuck reader and corks event writes."""

    def __init__(self, *args: Any, slow_reader_timeout: float | None = None, on_stall=None,
                 on_accept=None, on_lost=None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slow_reader_timeout = slow_reader_timeout
        self.on_stall = on_stall
        #: ``(connection) -> bool``: False closes the TCP connection at once (too many pending handshakes).
        self.on_accept = on_accept
        self.on_lost = on_lost
        self.write_paused = False
        self._stall_timer: asyncio.TimerHandle | None = None
        self._cork: list[bytes] = []
        self._corked = 0
        self._cork_limit = min(CORK_LIMIT, self.write_limit_high)
        self._flush_handle: asyncio.Handle | None = None

    def queue_text(self, data: bytes) -> bool:
        """Queue one UTF-8 text frame for this loop turn's write; ``False`` when it cannot be
        queued (the connection is not open, or a fragmented send is under way): then
        ``send`` must carry it, with its usual errors.

        After ``True`` the caller owes the back-pressure wait when :attr:`paused`
        (see :meth:`wait_writable`), exactly where ``send`` would have waited.
        Framing a server's text frame is two to ten header bytes, so it is done
        here unless an extension (permessage-deflate) or frame logging needs
        websockets' own framing; that was a tenth of the server's time.
        """
        protocol = self.protocol
        if protocol.state is not _OPEN or self.send_in_progress is not None or protocol.expect_continuation_frame:
            return False
        cork = self._cork
        if protocol.extensions or protocol.debug:
            protocol.send_text(data)
            cork.extend(protocol.data_to_send())
        else:
            cork.append(_text_header(len(data)))
            cork.append(data)
        self._corked += len(data)
        if self._corked >= self._cork_limit:
            self.flush_corked()
        elif self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self.flush_corked)
        return True

    def _write_cork(self) -> None:
        """Write every corked frame in one write (websockets' own path writes each frame alone)."""
        handle = self._flush_handle
        if handle is not None:
            handle.cancel()
            self._flush_handle = None
        self._corked = 0
        cork = self._cork
        if cork:
            self._cork = []
            self.transport.write(b"".join(cork))

    def flush_corked(self) -> None:
        """End of the loop turn (or the cork is full): write what the runs emitted."""
        if self.transport.is_closing():
            self._cork = []  # the close frame is out already: nobody may read more
            self._corked = 0
            return
        try:
            self._write_cork()
        except Exception as exc:  # noqa: BLE001 - as websockets' send_context: the connection is dead
            self.set_connection_exc(exc)
            self.transport.abort()

    def send_data(self) -> None:
        # websockets writes on its own (send, pong, close): the frames corked before go first.
        if self._cork or self._flush_handle is not None:
            self._write_cork()
        super().send_data()

    async def wait_writable(self) -> None:
        """The back-pressure wait after :meth:`queue_text`, with ``send``'s error semantics."""
        try:
            await self.drain()
        except Exception as exc:  # noqa: BLE001 - a dead transport: report it as websockets does
            self.set_connection_exc(exc)
            self.transport.abort()
            await asyncio.shield(self.connection_lost_waiter)
            raise self.close_exc from None

    def pause_writing(self) -> None:
        super().pause_writing()
        self.write_paused = True
        if self.slow_reader_timeout and self.on_stall is not None:
            self._stall_timer = self.loop.call_later(self.slow_reader_timeout, self.on_stall, self)

    def resume_writing(self) -> None:
        super().resume_writing()
        self.write_paused = False
        self._disarm()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.on_accept is not None and not self.on_accept(self):
            transport.abort()  # a clean refusal: the handshake task sees the connection lost and ends quietly

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.on_lost is not None:
            self.on_lost(self)
        super().connection_lost(exc)

    def _disarm(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
