"""A counting-only WebSocket client, cheap enough that the server is the bottleneck.

Why not ``agent-events load``: it checks every frame, which costs more CPU
per event than the server spends producing it, so on a 2-core machine it
would measure itself. Throughput of a *server* needs a client that does
almost nothing per frame: this one parses frame headers by hand (server
frames are unmasked), counts text frames and spots ``agent_completed`` by
its first bytes, and uses websockets' sans-I/O protocol only for the
handshake and for the few frames it sends (start_run, pong, close), which
must be masked. It never judges a frame: correctness under load is the
load command's job, measured separately.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from agent_events import schemas

COMPLETED_PREFIX = b'{"type":"agent_completed"'
OPCODE_TEXT, OPCODE_CLOSE, OPCODE_PING = 0x1, 0x8, 0x9


class _Connection(asyncio.Protocol):
    def __init__(self, driver: "CountingDriver", url: str) -> None:
        self.driver = driver
        self.protocol = ClientProtocol(parse_uri(url), subprotocols=[schemas.SUBPROTOCOL])
        self.transport: asyncio.Transport | None = None
        self.open = asyncio.get_running_loop().create_future()
        self.closed = False
        self.buffer = bytearray()
        self.in_flight = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def _flush(self) -> None:
        data = self.protocol.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(d for d in data if d))

    def start_runs(self, count: int) -> None:
        message = self.driver.start_message
        for _ in range(count):
            self.protocol.send_text(message)
        self.in_flight += count
        self._flush()

    def data_received(self, data: bytes) -> None:
        if not self.open.done():
            self.protocol.receive_data(data)
            events = self.protocol.events_received()
            if events and isinstance(events[0], Response):
                if self.protocol.state is State.OPEN:
                    self.open.set_result(None)
                else:
                    self.open.set_exception(ConnectionError(f"handshake refused: {self.protocol.handshake_exc}"))
            return
        buffer = self.buffer
        buffer += data
        size = len(buffer)
        pos = 0
        driver = self.driver
        counting = driver.counting
        events = 0
        completed = 0
        while size - pos >= 2:
            length = buffer[pos + 1] & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (buffer[pos + 2] << 8) | buffer[pos + 3]
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2:pos + 10], "big")
                header = 10
            end = pos + header + length
            if end > size:
                break
            opcode = buffer[pos] & 0x0F
            if opcode == OPCODE_TEXT:
                events += 1
                if buffer.startswith(COMPLETED_PREFIX, pos + header):
                    completed += 1
            elif opcode == OPCODE_PING:
                self.protocol.send_pong(bytes(buffer[pos + header:end]))
                self._flush()
            elif opcode == OPCODE_CLOSE:
                self.closed = True
            pos = end
        del buffer[:pos]
        if counting:
            driver.events += events
            driver.runs += completed
        if completed:
            self.in_flight -= completed
            if driver.running and not self.closed:
                self.start_runs(completed)
            elif self.in_flight <= 0:
                driver.idle_check()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if not self.open.done():
            self.open.set_exception(ConnectionError(f"connection lost during the handshake: {exc}"))
        self.driver.idle_check()

    def close(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(1000)
            self._flush()
        self.transport.close()


class CountingDriver:
    """Closed loop: ``connections`` x ``in_flight`` runs, each replaced as it completes."""

    def __init__(self, url: str, connections: int, in_flight: int, request: str) -> None:
        self.url = url
        self.connections_wanted = connections
        self.in_flight_per_connection = in_flight
        self.start_message = orjson.dumps({"type": "start_run", "input": request})  # escaped, whatever the request
        self.connections: list[_Connection] = []
        self.running = False
        self.counting = False
        self.events = 0
        self.runs = 0
        self._idle: asyncio.Future | None = None

    def idle_check(self) -> None:
        if self._idle is not None and not self._idle.done() and all(
                c.in_flight <= 0 or c.closed for c in self.connections):
            self._idle.set_result(None)

    async def connect(self) -> None:
        uri = parse_uri(self.url)
        loop = asyncio.get_running_loop()
        for _ in range(self.connections_wanted):
            _, conn = await loop.create_connection(lambda: _Connection(self, self.url), uri.host, uri.port)
            await asyncio.wait_for(conn.open, 10)
            self.connections.append(conn)

    async def measure(self, warmup_s: float, window_s: float, on_window_start=None) -> tuple[int, int, float]:
        """Drive, count for ``window_s`` after ``warmup_s``; return (events, runs, seconds)."""
        self.running = True
        for conn in self.connections:
            conn.start_runs(self.in_flight_per_connection)
        await asyncio.sleep(warmup_s)
        if on_window_start is not None:
            on_window_start()
        self.events = self.runs = 0
        self.counting = True
        t0 = time.perf_counter()
        await asyncio.sleep(window_s)
        self.counting = False
        elapsed = time.perf_counter() - t0
        events, runs = self.events, self.runs
        self.running = False
        self._idle = asyncio.get_running_loop().create_future()
        self.idle_check()
        try:
            await asyncio.wait_for(self._idle, 10)
        except asyncio.TimeoutError:
            pass
        return events, runs, elapsed

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
