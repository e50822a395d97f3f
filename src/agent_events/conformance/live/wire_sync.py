"""The harness's WebSocket client over a plain socket, without asyncio: for gevent (the Locust user).

Locust runs its users as gevent greenlets in a process whose ``socket``, ``select`` and ``ssl``
modules gevent has patched, so that a wait for a socket yields to the other users. This shell
reads and writes such a socket and leaves everything else to the I/O-free
:class:`~agent_events.conformance.live.wire.WireCore` that the asyncio shell uses too: the
handshake and every frame the harness must judge go through websockets' sans-I/O
``ClientProtocol``, plain data frames through the wire's own fast path, frames sent are masked
the same way. So a Locust user sees the same messages, batched per read, as ``agent-events
load`` and the live check.

Why not ``websockets.sync.client``: it runs a thread per connection (a greenlet under gevent)
that parses each frame with websockets' generator parser and hands each message to the reader
through a queue and a condition variable: a greenlet and a switch per message, and most of
the Locust user's CPU and memory per connection. Here nothing runs per connection: once open,
the socket is non-blocking, and whoever learns that it is readable calls
:meth:`SocketWire.readable`, which reads what is there without waiting and calls
``on_messages`` once per read. One reader can so serve every connection of a process (the Locust
user's: one greenlet, woken by gevent for each readable socket); :meth:`SocketWire.read_loop`
is the reader of a single connection, in a thread or greenlet of its own.

Writes: :meth:`SocketWire.send` writes at once when the socket takes the frame (the usual case)
and otherwise waits for it to drain, cooperatively under gevent, for at most ``send_timeout``
(a write cut short leaves no frame boundary: the connection is then dropped). Writes the protocol
owes while reading (a pong, a close reply) never wait: what the socket does not take goes out
before the next frame sent. A lock keeps two writers from interleaving frames. Under gevent
nothing yields between a caller's accounting and its :meth:`SocketWire.send` but a full socket,
which is what lets a shell account for a start before its answer can be read.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from typing import Callable

from websockets.protocol import State

from agent_events.conformance.live.wire_core import (
    READ_CHUNK,
    Clock,
    CloseInfo,
    ConnectError,
    Endpoint,
    FrameKind,
    OnClose,
    OnMessages,
    WireCore,
    connect_failure,
    describe_handshake_failure,
)

__all__ = ["SocketWire"]

#: reads one readable() call makes at most: a connection that never runs dry (a flood) leaves
#: its reader to the others, and to the event loop, between calls (see SocketWire.drained)
READS_PER_CALL = 4

#: what a non-blocking socket raises when it cannot read or write now (TLS may want either)
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class SocketWire(WireCore):
    """One client connection over a plain socket (cooperative under gevent).

    :meth:`open` connects and completes the handshake (or raises
    :class:`~agent_events.conformance.live.wire.ConnectError`); from then on, call
    :meth:`readable` whenever the socket may hold data (or run :meth:`read_loop`). ``on_messages``
    is called once per read, ``on_close`` once, when the connection ended however it did; both
    run in the caller of :meth:`readable`, or of the :meth:`send` or :meth:`close` that ended it.
    """

    def __init__(self, name: str, endpoint: Endpoint, clock: Clock,
                 on_messages: OnMessages, on_close: OnClose) -> None:
        super().__init__(name, endpoint, clock, on_messages, on_close)
        self._sock: socket.socket | None = None
        self._tls = False
        self._lock = threading.Lock()
        #: bytes the protocol owed that the socket did not take while reading (sent first next time)
        self._backlog = b""
        self.closed = threading.Event()
        #: set once the connection ended and the socket is closed
        self.done = threading.Event()
        #: called once before the socket is closed: whoever watches it for reads stops here
        self.detach: Callable[[], None] | None = None
        #: whether the last readable() read all there was (``False``: it stopped at
        #: READS_PER_CALL with more to read, which TLS may hold where a poll cannot see it: call again)
        self.drained = True

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    # -- opening -----------------------------------------------------------
    def open(self, subprotocols: list[str] | None) -> None:
        """Connect and complete the handshake within ``open_timeout``, or raise ``ConnectError``."""
        endpoint, uri = self.endpoint, self._uri
        deadline = time.monotonic() + endpoint.open_timeout
        context = endpoint.ssl_context()
        try:
            sock = socket.create_connection((uri.host, uri.port), timeout=endpoint.open_timeout)
        except OSError as exc:  # refused, unresolvable, timed out, out of descriptors
            raise connect_failure(exc, uri.host) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            if context is not None:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                sock = context.wrap_socket(sock, server_hostname=uri.host)
                self._tls = True
        except OSError as exc:  # TLS (ssl.SSLError is an OSError), or a timeout during it
            sock.close()
            raise connect_failure(exc, uri.host) from None
        self._sock = sock
        self._request(subprotocols)
        try:
            sock.sendall(b"".join(self.protocol.data_to_send()))
            while True:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                data = sock.recv(READ_CHUNK)
                if self._handshake_received(data, self.clock.now()):
                    break
            sock.settimeout(0.0)  # non-blocking from now on: see readable() and send()
            self._write_owed()
        except ConnectError:
            self._close_socket()
            raise
        except OSError as exc:
            self._close_socket()
            raise ConnectError(f"handshake failed: {describe_handshake_failure(exc)}") from None

    # -- reading -----------------------------------------------------------
    def readable(self) -> bool:
        """Read what the socket holds, without waiting: each read's messages go to
        ``on_messages`` as one batch. ``False`` once the connection ended (``on_close`` was
        called and the socket closed): stop watching it."""
        if self.done.is_set():
            return False
        protocol = self.protocol
        sock = self._sock
        now = self.clock.now
        received = self._received
        self.drained = False
        try:
            for _ in range(READS_PER_CALL):
                try:
                    data = sock.recv(READ_CHUNK)
                except _WOULD_BLOCK:
                    self.drained = True
                    return True
                received(data, now())
                self._write_owed()
                if protocol.parser_exc is not None or protocol.close_rcvd is not None:
                    self._finish_from_protocol()
                if protocol.parser_exc is not None or not data or protocol.state is State.CLOSED:
                    break
                if len(data) < READ_CHUNK and not (self._tls and sock.pending()):
                    self.drained = True  # (the next read would only say so: saves a system call)
                    return True
            else:
                return True  # more to read: the caller calls again, after the others
        except OSError as exc:  # reset, or closed under us
            if protocol.close_sent is None:
                self._finish(CloseInfo(None, "", "network", detail=describe_handshake_failure(exc)))
        self._end()
        return False

    def read_loop(self, poll_s: float = 0.5) -> None:
        """Read until the connection ends, in this thread or greenlet (a reader of one connection;
        ``poll_s`` bounds each wait, so a connection closed from elsewhere is noticed)."""
        if self.done.is_set():
            return
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        self.detach = lambda: poller.unregister(self._sock.fileno())
        while self.readable():
            if self.drained:
                poller.poll(poll_s * 1000.0)

    # -- writing -----------------------------------------------------------
    def _write_owed(self) -> None:
        """Write what the protocol owes (a pong, a close reply) without waiting: what the socket
        does not take now, or what another writer holding the lock is busy with, goes out first
        with the next frame sent."""
        chunks = self.protocol.data_to_send()
        if not chunks and not self._backlog:
            return
        if not self._lock.acquire(blocking=False):
            self._backlog += b"".join(chunks)
            return
        try:
            data = self._owed(chunks)
            if data:
                try:
                    sent = self._sock.send(data)
                except _WOULD_BLOCK:
                    sent = 0
                except OSError:
                    if self._sock.fileno() != -1:
                        raise  # a reset: the caller ends the connection
                    sent = len(data)  # the reader ended the connection meanwhile: nothing is owed to it
                self._backlog = data[sent:]
        finally:
            self._lock.release()

    def _owed(self, chunks: list[bytes]) -> bytes:
        """The backlog and ``chunks`` (the protocol's), as one write; the end of the stream (an
        empty chunk, when the client fails the connection) is written here, at once."""
        data = self._backlog + b"".join(chunks)
        self._backlog = b""
        if chunks and chunks[-1] == b"":
            with contextlib.suppress(OSError):
                self._send_all(data)
                self._sock.shutdown(socket.SHUT_WR)
            return b""
        return data

    def _send_all(self, data: bytes) -> None:
        """Write all of ``data``, waiting (cooperatively under gevent) while the socket is full,
        for at most ``send_timeout``; raises ``OSError`` (``TimeoutError``) otherwise."""
        sock = self._sock
        view = memoryview(data)
        deadline = None
        poller = None
        while view:
            try:
                view = view[sock.send(view):]
                continue
            except _WOULD_BLOCK:
                pass
            if deadline is None:
                deadline = time.monotonic() + self.endpoint.send_timeout
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLOUT | select.POLLIN)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the endpoint did not read what was sent")
            poller.poll(remaining * 1000.0)

    def send(self, kind: FrameKind, data: bytes) -> float | None:
        """Send one message; the send time, or ``None`` when the connection is not open.

        A write that fails or times out ends the connection (``on_close`` is called from here)."""
        protocol = self.protocol
        if protocol.state is not State.OPEN or self._sock is None:
            return None
        return self._send(self._frame_out(kind, data), ((kind, data),))

    def send_many(self, frames: "list[tuple[FrameKind, bytes]]") -> float | None:
        """Several messages in ONE write (one ``send`` while the socket takes it all), so that the
        endpoint reads them together: what a race probe needs (a ``start_run`` and its
        ``cancel_run`` in one read). The send time, or ``None`` when the connection is not open."""
        if self.protocol.state is not State.OPEN or self._sock is None:
            return None
        return self._send(self._frames_out(frames), frames)

    def _send(self, frame: bytes | None, messages) -> float:
        """Write ``frame`` (the core's bytes for ``messages``; ``None``: the protocol frames them)
        after what the protocol owes, in one write; a failure ends the connection."""
        protocol = self.protocol
        at = self.clock.now()
        with self._lock:
            if frame is None:
                for kind, data in messages:
                    self._queue(kind, data)
            owed = self._owed(protocol.data_to_send())  # what the protocol owes first, in order
            try:
                self._send_all(owed if frame is None else owed + frame if owed else frame)
            except OSError as exc:
                failure: OSError | None = exc
            else:
                failure = None
        if self._backlog and failure is None:  # owed by the reader while this writer held the lock
            try:
                self._write_owed()
            except OSError as exc:
                failure = exc
        if failure is not None:
            self._end(CloseInfo(None, "", "network", detail=f"sending failed: {describe_handshake_failure(failure)}"))
        return at

    # -- closing -----------------------------------------------------------
    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close politely, then firmly: waits at most ``close_timeout`` for the endpoint to answer
        (its reader must be running), then closes the socket."""
        if self.protocol.state is State.OPEN and self._sock is not None:
            self.protocol.send_close(code, reason)
            try:
                with self._lock:
                    self._send_all(self._owed(self.protocol.data_to_send()))
            except OSError:
                pass
            else:
                self.done.wait(self.endpoint.close_timeout)
        self._end()

    def cut(self) -> None:
        """Drop the connection at once, with no close frame."""
        self._end()

    def _end(self, info: CloseInfo | None = None) -> None:
        """The connection is over: say how (once), stop the reader watching it, close the socket."""
        if info is not None:
            self._finish(info)
        self._finish_from_protocol()
        self._close_socket()
        self.done.set()

    def _close_socket(self) -> None:
        detach, self.detach = self.detach, None
        if detach is not None:
            with contextlib.suppress(Exception):
                detach()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
