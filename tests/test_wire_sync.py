"""The wire over a plain socket (``live/wire_sync.py``, the Locust user's) against real servers on 127.0.0.1.

It drives the same I/O-free core as the asyncio wire, so it is held to the same bytes: crafted
frames written in one go arrive as the same messages, in order, around a ping (answered) and a
fragmented message; what it sends arrives intact, however large; each way a connection can end
is told apart. Here it runs in plain threads (no gevent in this process: see test_locust.py),
one reading (``read_loop``), the test's own sending.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import struct
import threading
import time

import pytest
from websockets.frames import Opcode

import misbehaving_servers as m
from agent_events import reference_agent
from agent_events.schemas import SUBPROTOCOL
from agent_events.conformance.live import wire
from agent_events.conformance.live.wire_sync import SocketWire
from test_check_connection import tls_files  # noqa: F401 - a fixture
from test_wire import CRAFTED, EXPECTED


class Collected:
    """What the callbacks saw, and a reader thread for the wire."""

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.closes: list[wire.CloseInfo] = []
        self.thread: threading.Thread | None = None

    def on_messages(self, conn, messages, at) -> None:
        self.batches.append(list(messages))

    def on_close(self, conn, info) -> None:
        self.closes.append(info)

    @property
    def messages(self) -> list:
        return [message for batch in self.batches for message in batch]

    def wait_for(self, condition, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)


def open_wire(url: str, seen: Collected, **endpoint) -> SocketWire:
    conn = SocketWire("c0", wire.Endpoint(url, **endpoint), wire.Clock(), seen.on_messages, seen.on_close)
    conn.open([SUBPROTOCOL])
    seen.thread = threading.Thread(target=conn.read_loop, daemon=True)
    seen.thread.start()
    return conn


class Crafted(m.ScriptedAgent):
    """Answers the first message with CRAFTED, written in one go; records the pongs it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.pongs: list[bytes] = []

    async def handle(self, ws) -> None:
        original = ws.protocol.recv_frame

        def recv_frame(frame):
            if frame.opcode is Opcode.PONG:
                self.pongs.append(bytes(frame.data))
            return original(frame)

        ws.protocol.recv_frame = recv_frame
        await ws.recv()  # after the handshake: the frames meet the wire's own parser
        ws.transport.write(CRAFTED)
        with contextlib.suppress(Exception):
            await ws.wait_closed()


class Echo(m.ScriptedAgent):
    max_size = None

    async def handle(self, ws) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                await ws.send(message)


class ClosesWith1011(m.ScriptedAgent):
    async def handle(self, ws) -> None:
        await ws.recv()
        await ws.close(1011, "crashed on purpose")


class DropsTcp(m.ScriptedAgent):
    async def handle(self, ws) -> None:
        await ws.recv()
        ws.transport.abort()


class AnnouncesHugeFrame(m.ScriptedAgent):
    async def handle(self, ws) -> None:
        await ws.recv()
        ws.transport.write(struct.pack("!BBQ", 0x81, 127, 100 * 2**20) + b"0" * 2**16)
        with contextlib.suppress(Exception):
            await ws.wait_closed()


def test_messages_of_one_write_arrive_whole_and_in_order_and_the_ping_is_answered():
    agent = Crafted()
    seen = Collected()
    with m.running(agent) as url:
        conn = open_wire(url, seen)
        assert conn.send("text", b"go") is not None
        seen.wait_for(lambda: len(seen.messages) >= len(EXPECTED) and agent.pongs)
        pongs = list(agent.pongs)  # answered as it was read, not with the next frame the client sends
        conn.close()
    assert seen.messages == EXPECTED
    assert all(seen.batches) and len(seen.batches) < len(EXPECTED), "plain frames of one read share a batch"
    assert pongs == [b"ping"]
    assert [(c.by, c.code) for c in seen.closes] == [("client", 1000)]
    assert conn.done.is_set()


@pytest.mark.parametrize("size", [0, 125, 126, 65536, 8 * 2**20])
def test_what_the_wire_sends_is_received_intact(size):
    """8 MiB is more than a loopback socket takes at once: the write waits for it to drain."""
    payload = os.urandom(size // 2).hex().encode()[:size] or b""
    seen = Collected()
    with m.running(Echo()) as url:
        conn = open_wire(url, seen)
        conn.send("text", payload)
        conn.send("binary", payload)
        seen.wait_for(lambda: len(seen.messages) >= 2, 30)
        conn.close()
    assert seen.messages == [("text", payload), ("binary", payload)]


@pytest.mark.parametrize("agent, by, code, reason", [
    (ClosesWith1011(), "server", 1011, "crashed on purpose"),
    (DropsTcp(), "network", None, ""),
])
def test_how_the_endpoint_ended_the_connection_is_told_once(agent, by, code, reason):
    seen = Collected()
    with m.running(agent) as url:
        conn = open_wire(url, seen)
        conn.send("text", b"go")
        seen.wait_for(lambda: seen.closes and conn.done.is_set())
        assert conn.send("text", b"more") is None  # not open any more
        conn.close()  # closing what already ended says nothing more
    assert [(c.by, c.code, c.reason) for c in seen.closes] == [(by, code, reason)]


def test_a_frame_over_max_size_closes_with_1009_unread():
    """Repeated: the reader fails the connection (and closes the socket) while the sender may still
    be writing what the protocol owes; a send racing that close once raised EBADF (9 in 300 tries
    under two CPU hogs). It must end the connection quietly, every time."""
    with m.running(AnnouncesHugeFrame()) as url:
        for _ in range(40):
            seen = Collected()
            conn = open_wire(url, seen, max_size=2**20)
            conn.send("text", b"go")
            seen.wait_for(lambda: seen.closes)
            conn.close()
            assert [(c.by, c.code, c.cause) for c in seen.closes] == [("client", 1009, "message_too_big")]
            assert seen.messages == []


def test_handshake_failures_are_connect_errors_that_say_why():
    with m.running(m.Http500()) as url:
        with pytest.raises(wire.ConnectError, match="HTTP 500"):
            SocketWire("c0", wire.Endpoint(url), wire.Clock(), print, print).open(None)
    with pytest.raises(wire.ConnectError, match="cannot connect"):
        SocketWire("c0", wire.Endpoint(f"ws://127.0.0.1:{m.unused_port()}/"), wire.Clock(), print, print).open(None)
    with m.mute_listener() as url:
        with pytest.raises(wire.ConnectError, match="timed out"):
            SocketWire("c0", wire.Endpoint(url, open_timeout=0.3), wire.Clock(), print, print).open(None)


def test_wss_reads_every_record_and_a_private_ca_must_be_given(tls_files):  # noqa: F811
    certfile, keyfile = tls_files
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0,
                                       certfile=certfile, keyfile=keyfile) as server:
        with pytest.raises(wire.ConnectError, match="TLS"):
            SocketWire("c0", wire.Endpoint(server.url), wire.Clock(), print, print).open(None)
        seen = Collected()
        conn = open_wire(server.url, seen, cafile=certfile)
        for n in range(5):
            conn.send("text", b'{"type": "start_run", "run_id": "r%d", "input": "Plan a trip"}' % n)

        def completed() -> set:
            return {e["run_id"] for e in map(json.loads, (d for _, d in seen.messages)) if e["type"] == "agent_completed"}

        seen.wait_for(lambda: len(completed()) == 5)
        conn.close()
    assert completed() == {f"r{n}" for n in range(5)}
    assert [(c.by, c.code) for c in seen.closes] == [("client", 1000)]
    assert isinstance(conn._sock, ssl.SSLSocket)



@contextlib.contextmanager
def answers_with_a_frame(frame: bytes, *, flood: bool = False):
    """A raw endpoint that writes its handshake answer and ``frame`` in one write, then reads
    until the client goes: a message that arrives with the handshake, in the same read.
    ``flood``: then writes ``frame`` again and again, as fast as the socket takes it, until the
    client goes (faster than any client can read)."""
    import base64
    import hashlib

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                           if line.lower().startswith(b"sec-websocket-key:"))
                accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: "
                             + SUBPROTOCOL.encode() + b"\r\n\r\n" + frame)
                with contextlib.suppress(OSError):
                    if flood:
                        many = frame * (2**16 // len(frame))
                        while not stop.is_set():
                            conn.sendall(many)
                    while conn.recv(65536):
                        pass

    threads = [threading.Thread(target=serve, daemon=True) for _ in range(4 if flood else 1)]
    for thread in threads:
        thread.start()
    try:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        listener.close()


def test_a_message_read_with_the_handshake_answer_is_delivered_from_open():
    seen = Collected()
    with answers_with_a_frame(b"\x81\x05hello") as url:
        conn = SocketWire("c0", wire.Endpoint(url), wire.Clock(), seen.on_messages, seen.on_close)
        conn.open([SUBPROTOCOL])
        assert seen.messages == [("text", b"hello")]  # before any reader ran
        conn.cut()


def test_a_connection_that_never_runs_dry_gives_its_reader_back():
    """One reader may serve many connections (the Locust user's): a read of a flood stops after a
    few reads and says there is more, rather than reading it forever."""
    seen = Collected()
    with answers_with_a_frame(b"\x81\x02{}", flood=True) as url:
        conn = SocketWire("c0", wire.Endpoint(url), wire.Clock(), seen.on_messages, seen.on_close)
        conn.open([SUBPROTOCOL])
        conn._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2**22)  # room for more than a few reads
        time.sleep(0.3)  # the socket fills
        result: list = []
        reader = threading.Thread(target=lambda: result.append(conn.readable()), daemon=True)
        reader.start()
        reader.join(20)
        drained = conn.drained
        conn.cut()
    assert result == [True], "readable() did not return: it read the flood forever"
    assert drained is False and seen.messages
