"""The I/O-free core of the harness's WebSocket client: frames in, frames out.

Why not ``websockets.asyncio.client``: a conformance harness must judge what
the endpoint *sent*, and survive whatever that is. The high-level client
decodes text frames for us (an invalid UTF-8 frame becomes an exception and
the bytes are gone), merges the text/binary distinction away when asked for
raw bytes, and buffers messages ahead of the reader. So the harness drives
websockets' sans-I/O :class:`~websockets.client.ClientProtocol` itself:

* each message is handed over as ``(kind, raw bytes)`` with the arrival
  time of the read that completed it, so latency is measured at the socket
  (the messages of one read go over in one batch, in order);
* messages are processed synchronously in the read loop, so a flooding
  endpoint is slowed down by TCP back-pressure instead of filling memory;
* ``max_size`` is enforced from the frame header, before the payload is
  read, so a 100 MB frame costs nothing but a close with code 1009;
* every wait has a timeout, so a silent or stuck endpoint cannot hang us.

Once the connection is open, the plain case (a whole, unmasked text or
binary frame within ``max_size``, no fragment in progress) is parsed here
from its header: websockets' generator-based frame parser costs more than the
rest of a check per event, and a harness must not be what a load test
measures. Every other frame (control frames, fragments, anything
malformed) is handed to websockets' protocol whole, so it stays the one
authority on the WebSocket rules, always fed at a frame boundary.

All of that but the socket is :class:`WireCore`: :class:`~agent_events.conformance.live.wire.WireConnection`
is its asyncio shell, :mod:`agent_events.conformance.live.wire_sync` its plain-socket one (the
Locust user's, under gevent). Nothing here knows the protocol: frames in, frames out.
"""

from __future__ import annotations

import errno
import os
import ssl
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

from websockets.client import ClientProtocol
from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from agent_events._native import mypyc_attr
from agent_events.conformance.live.handshake_errors import check_url, describe_handshake_failure  # noqa: F401

try:  # websockets' own C masking, as its Frame.serialize uses; its pure-Python one otherwise
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover - a websockets built without its C extension
    from websockets.utils import apply_mask as _apply_mask

#: Largest message the harness accepts by default. Agent events are small;
#: 16 MiB is far above any legitimate one and far below what hurts a CI runner.
DEFAULT_MAX_SIZE = 16 * 2**20
READ_CHUNK = 2**16
_U16 = struct.Struct(">H").unpack_from
_U64 = struct.Struct(">Q").unpack_from
_HEAD_SMALL = struct.Struct("!BB").pack
_HEAD_MEDIUM = struct.Struct("!BBH").pack
_HEAD_LARGE = struct.Struct("!BBQ").pack
#: bytes of CSPRNG output read at once for client frame masks (64 frames' worth)
_MASK_POOL = 256

FrameKind = Literal["text", "binary"]


class ConnectError(Exception):
    """The endpoint could not be reached, or refused the WebSocket handshake.

    Why an exception and not a violation: with no connection there is no
    stream to judge, so the honest verdict is "could not check" (exit 3).
    """


class ClientLimitError(ConnectError):
    """The harness's own machine refused the connection: no file descriptor, port or buffer left.

    Why a class of its own: the endpoint never saw the attempt, so the failure
    says nothing about it and must not be reported as the endpoint's.
    """


#: errno values meaning the client ran out of a local resource (before anything reached the endpoint).
CLIENT_LIMIT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL})


class Clock:
    """Client epoch milliseconds from a monotonic source.

    Wall-clock steps (NTP adjustments) during a check would corrupt latency
    figures; anchoring a monotonic counter to the wall clock once keeps
    differences exact while staying comparable to the server's epoch times.
    """

    def __init__(self) -> None:
        self._wall0 = time.time() * 1000.0
        self._mono0 = time.perf_counter()

    def now(self) -> float:
        return self._wall0 + (time.perf_counter() - self._mono0) * 1000.0


@dataclass(frozen=True)
class Endpoint:
    """Where to connect and how: everything a connection needs but the clock."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    cafile: str | None = None
    insecure: bool = False
    max_size: int = DEFAULT_MAX_SIZE
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    send_timeout: float = 10.0

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.lower().startswith("wss:"):
            return None
        context = ssl.create_default_context(cafile=self.cafile)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True)
class CloseInfo:
    """How a connection ended, in terms a report can state.

    ``cause`` names what the client itself objected to, when it did:
    ``"message_too_big"`` (over ``max_size``), ``"protocol_error"`` (bad
    framing), or ``None`` when the endpoint or the network closed.
    """

    code: int | None
    reason: str
    by: Literal["server", "client", "network"]
    cause: str | None = None
    detail: str = ""


#: ``(connection, [(kind, data), ...], arrival time)``: the messages of one read, in order
OnMessages = Callable[["WireCore", "list[tuple[FrameKind, bytes]]", float], None]
OnClose = Callable[["WireCore", CloseInfo], None]


def connect_failure(exc: BaseException, host: str | None) -> ConnectError:
    """The error for a connection that could not be opened (refused, unresolvable, timed out,
    TLS): :class:`ClientLimitError` when the client's own machine ran out of something."""
    local = isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) and exc.errno in CLIENT_LIMIT_ERRNOS
    error = ClientLimitError if local else ConnectError
    return error(f"cannot connect: {describe_handshake_failure(exc, host)}")


@mypyc_attr(allow_interpreted_subclasses=True)  # the asyncio and socket shells subclass it
class WireCore:
    """What a client connection does between the socket and its callbacks, with no I/O: websockets'
    sans-I/O protocol for the handshake and every frame it must judge, the fast path for plain
    data frames, and the masking of frames sent.

    Why a class of its own: the same bytes are read by the asyncio shell
    (:class:`WireConnection`, the live check and ``agent-events load``) and by a blocking-socket
    shell (:mod:`agent_events.conformance.live.wire_sync`, the Locust user under gevent). A shell
    reads and writes; it gives the core what it read (:meth:`_handshake_received` until the
    connection is open, then :meth:`_received`), writes ``protocol.data_to_send()`` and the frames
    :meth:`_frame_out` builds, and sets ``closed`` (an event: anything with ``set()``).
    """

    def __init__(self, name: str, endpoint: Endpoint, clock: Clock,
                 on_messages: OnMessages, on_close: OnClose) -> None:
        self.name = name
        self.endpoint = endpoint
        self.clock = clock
        self._on_messages = on_messages
        self._on_close = on_close
        uri = parse_uri(endpoint.url)
        self.protocol = ClientProtocol(uri, subprotocols=None, max_size=endpoint.max_size)
        self._uri = uri
        self._parts: list[bytes] = []
        self._kind: FrameKind | None = None
        #: bytes read but not yet parsed (the fast path's buffer), and whether it may run
        self._buffer = bytearray()
        self._fast = False
        #: pooled randomness for client frame masks (see _masked_frame)
        self._masks = b""
        self._mask_pos = 0
        self.subprotocol: str | None = None
        self.close_info: CloseInfo | None = None
        self.closed: Any = None
        self.callback_errors: list[str] = []

    def _request(self, subprotocols: list[str] | None) -> None:
        """Queue the handshake request (with the endpoint's headers) for the shell to write."""
        self.protocol.available_subprotocols = subprotocols
        request = self.protocol.connect()
        for name, value in self.endpoint.headers:
            request.headers[name] = value
        self.protocol.send_request(request)

    def _handshake_received(self, data: bytes, at: float) -> bool:
        """Feed what was read while the handshake is under way (``b""``: the end of the stream);
        ``True`` once the connection is open. Raises :class:`ConnectError` when it failed."""
        protocol = self.protocol
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        events = protocol.events_received()
        if protocol.handshake_exc is not None:
            raise ConnectError("handshake failed: "
                               + describe_handshake_failure(protocol.handshake_exc, self._uri.host,
                                                            self._uri.resource_name.split("?", 1)[0]))
        if events and isinstance(events[0], Response):
            self.subprotocol = protocol.subprotocol
            self._process(events[1:], at)
            # The fast path may start only at a frame boundary: nothing left in the protocol's
            # reader (an attribute of websockets' sans-I/O reader; without it, no fast path).
            leftover = getattr(getattr(protocol, "reader", None), "buffer", None)
            self._fast = leftover is not None and len(leftover) == 0
            return True
        if not data:
            raise ConnectError("handshake failed: the endpoint closed the connection before answering")
        return False

    # -- reading -----------------------------------------------------------
    def _received(self, data: bytes, at: float) -> None:
        """Feed one read of the open connection (``b""``: the end of the stream)."""
        protocol = self.protocol
        if data and self._fast:
            self._receive_fast(data, at)
        elif data:
            protocol.receive_data(data)
            self._process(protocol.events_received(), at)
        else:
            if self._buffer:  # a frame cut short by EOF: let the protocol say so
                protocol.receive_data(bytes(self._buffer))
                self._buffer.clear()
            protocol.receive_eof()
            self._process(protocol.events_received(), at)

    def _receive_fast(self, data: bytes, at: float) -> None:
        """Parse whole frames from what was read: plain data frames here, every other one through
        the protocol, whole. Anything malformed (a masked or reserved-bit frame, a reserved
        opcode, a length over ``max_size``) goes to the protocol with all that follows, and the
        fast path ends: the protocol fails the connection, as it would have.

        The messages of one read go to the callback as one batch (a read holds dozens of
        frames under load: one call instead of one per frame), always in order: a batch is
        delivered before a frame the protocol must see."""
        buffer = self._buffer
        if buffer:  # a frame cut in two by the previous read: parse from one immutable copy
            buffer += data
            data = bytes(buffer)
            buffer.clear()
        size = len(data)
        pos = 0
        protocol = self.protocol
        if protocol.state is not State.OPEN:  # only control frames and reads change it, below
            self._fast = False
            protocol.receive_data(data)
            self._process(protocol.events_received(), at)
            return
        max_size = self.endpoint.max_size
        batch: list[tuple[FrameKind, bytes]] = []
        append = batch.append
        while size - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = _U16(data, pos + 2)[0]
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = _U64(data, pos + 2)[0]
                header = 10
            opcode = b0 & 0x0F
            if b1 & 0x80 or b0 & 0x70 or (max_size is not None and length > max_size) \
                    or 3 <= opcode <= 7 or opcode >= 0xB:
                if batch:
                    self._deliver(batch, at)
                    batch = []
                self._fast = False
                protocol.receive_data(data[pos:])
                pos = size
                self._process(protocol.events_received(), at)
                break
            end = pos + header + length
            if end > size:
                break
            if b0 & 0x80 and (opcode == 1 or opcode == 2) and self._kind is None:
                append(("text" if opcode == 1 else "binary", data[pos + header:end]))
                pos = end
            else:  # control frame, fragment: the protocol's, whole
                if batch:
                    self._deliver(batch, at)
                    batch = []
                    append = batch.append
                protocol.receive_data(data[pos:end])
                pos = end
                self._process(protocol.events_received(), at)
                if protocol.state is not State.OPEN:  # a close: the protocol takes the rest
                    self._fast = False
                    if pos < size:
                        protocol.receive_data(data[pos:])
                        pos = size
                        self._process(protocol.events_received(), at)
                    break
        if batch:
            self._deliver(batch, at)
        if pos < size:
            buffer += memoryview(data)[pos:]

    def _deliver(self, messages: list, at: float) -> None:
        try:
            self._on_messages(self, messages, at)
        except Exception as exc:  # noqa: BLE001 - a bug in a callback must not kill the read loop
            self.callback_errors.append(f"{type(exc).__name__}: {exc}")

    def _process(self, events, at: float) -> None:
        for event in events:
            if not isinstance(event, Frame):
                continue
            opcode = event.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                self._kind = "text" if opcode is Opcode.TEXT else "binary"
                self._parts = [bytes(event.data)]
            elif opcode is Opcode.CONT:
                self._parts.append(bytes(event.data))
            else:
                continue  # ping/pong are answered by the protocol; close is handled at the end
            if event.fin and self._kind is not None:
                data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
                kind, self._parts, self._kind = self._kind, [], None
                self._deliver([(kind, data)], at)

    def _finish_from_protocol(self) -> None:
        protocol = self.protocol
        exc = protocol.parser_exc
        if isinstance(exc, PayloadTooBig):
            self._finish(CloseInfo(1009, "", "client", "message_too_big", str(exc)))
        elif isinstance(exc, (ProtocolError, UnicodeDecodeError)):
            self._finish(CloseInfo(1002, "", "client", "protocol_error", str(exc)))
        elif protocol.close_rcvd is not None and (protocol.close_sent is None or protocol.close_rcvd_then_sent):
            close = protocol.close_rcvd
            self._finish(CloseInfo(int(close.code), close.reason, "server"))
        elif protocol.close_sent is not None:
            close = protocol.close_sent
            self._finish(CloseInfo(int(close.code), close.reason, "client"))
        else:
            self._finish(CloseInfo(None, "", "network", detail="the connection was dropped without a close frame"))

    def _finish(self, info: CloseInfo) -> None:
        if self.close_info is not None:
            return
        self.close_info = info
        self.closed.set()
        try:
            self._on_close(self, info)
        except Exception as exc:  # noqa: BLE001 - see _process
            self.callback_errors.append(f"{type(exc).__name__}: {exc}")

    # -- writing -----------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.protocol.state is State.OPEN

    def _frame_out(self, kind: FrameKind, data: bytes) -> bytes | None:
        """The bytes of one data message to write after ``protocol.data_to_send()``, or ``None``
        when the protocol must frame it (a fragmented message in progress, an extension): then
        :meth:`_queue` hands it to the protocol."""
        protocol = self.protocol
        if protocol.expect_continuation_frame or protocol.extensions:
            return None
        return self._masked_frame(0x1 if kind == "text" else 0x2, data)

    def _frames_out(self, frames: "list[tuple[FrameKind, bytes]]") -> bytes | None:
        """The bytes of several data messages written together (:meth:`_frame_out` for each, joined),
        or ``None`` when the protocol must frame them: then each goes to :meth:`_queue`, and the
        shell writes ``protocol.data_to_send()`` in one write all the same."""
        protocol = self.protocol
        if protocol.expect_continuation_frame or protocol.extensions:
            return None
        masked = self._masked_frame
        return b"".join(masked(0x1 if kind == "text" else 0x2, data) for kind, data in frames)

    def _queue(self, kind: FrameKind, data: bytes) -> None:
        if kind == "text":
            self.protocol.send_text(data)
        else:
            self.protocol.send_binary(data)

    def _masked_frame(self, opcode: int, data: bytes) -> bytes:
        """One whole client data frame, masked (RFC 6455 5.3) with a mask from a pooled CSPRNG read:
        websockets serialises each frame with its own ``os.urandom(4)`` call, a system call that
        cost more than the rest of a start_run; one read of ``_MASK_POOL`` bytes serves
        ``_MASK_POOL / 4`` frames. The same bytes as websockets' ``Frame.serialize``."""
        pool, pos = self._masks, self._mask_pos
        if pos >= len(pool):
            pool = self._masks = os.urandom(_MASK_POOL)
            pos = 0
        mask = pool[pos:pos + 4]
        self._mask_pos = pos + 4
        length = len(data)
        if length < 126:
            header = _HEAD_SMALL(0x80 | opcode, 0x80 | length)
        elif length < 65536:
            header = _HEAD_MEDIUM(0x80 | opcode, 0x80 | 126, length)
        else:
            header = _HEAD_LARGE(0x80 | opcode, 0x80 | 127, length)
        return header + mask + _apply_mask(data, mask)
