"""The harness's WebSocket client (``live/wire.py``) against a real server on 127.0.0.1.

The wire parses plain data frames itself, hands the messages of one read over as one batch,
and masks the frames it sends from pooled randomness; websockets' protocol keeps every other
frame. These tests hold it to the bytes: crafted frames written by the server in one go
arrive as the same messages, in order, whatever sits between them (a ping, a fragmented
message), and what it sends is what websockets would have sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest
from websockets.asyncio.server import serve
from websockets.frames import Frame, Opcode

from agent_events.conformance.live import wire

#: server frames (unmasked), written in one call: text, ping, text, a fragmented text in two
#: frames, binary, text
CRAFTED = (b"\x81\x01a" + b"\x89\x04ping" + b"\x81\x01b" + b"\x01\x02c1" + b"\x80\x02c2"
           + b"\x82\x01d" + b"\x81\x01e")
EXPECTED = [("text", b"a"), ("text", b"b"), ("text", b"c1c2"), ("binary", b"d"), ("text", b"e")]


@contextlib.asynccontextmanager
async def server(handler):
    async with serve(handler, "127.0.0.1", 0, ping_interval=None, max_size=None) as srv:
        port = srv.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


async def connect(url: str, batches: list, closes: list) -> wire.WireConnection:
    return await wire.open_connection(
        "c0", wire.Endpoint(url), wire.Clock(),
        on_messages=lambda conn, messages, at: batches.append(list(messages)),
        on_close=lambda conn, info: closes.append(info), subprotocols=None)


def test_messages_of_one_write_arrive_whole_and_in_order_around_a_ping_and_a_fragment():
    async def main():
        async def handler(ws):
            await ws.recv()  # after the handshake's bytes are read: the frames meet the wire's own parser
            ws.transport.write(CRAFTED)
            with contextlib.suppress(Exception):
                await ws.wait_closed()

        batches: list = []
        closes: list = []
        async with server(handler) as url:
            conn = await connect(url, batches, closes)
            await conn.send("text", b"go")
            for _ in range(200):
                if sum(len(b) for b in batches) >= len(EXPECTED):
                    break
                await asyncio.sleep(0.01)
            await conn.close()
        return batches, closes

    batches, closes = asyncio.run(main())
    assert [m for batch in batches for m in batch] == EXPECTED
    assert all(batches), "no empty batch is delivered"
    assert len(batches) < len(EXPECTED), "plain frames of one read share a batch"
    assert closes and closes[0].by == "client" and closes[0].code == 1000


def test_the_ping_between_data_frames_is_answered_with_its_data():
    async def main():
        got: list[bytes] = []

        async def handler(ws):
            # the pong is websockets' to read: a low-level frame hook on the server side sees it
            original = ws.protocol.recv_frame

            def recv_frame(frame):
                if frame.opcode is Opcode.PONG:
                    got.append(bytes(frame.data))
                return original(frame)

            ws.protocol.recv_frame = recv_frame
            await ws.recv()
            ws.transport.write(CRAFTED)
            with contextlib.suppress(Exception):
                await ws.wait_closed()

        async with server(handler) as url:
            conn = await connect(url, [], [])
            await conn.send("text", b"go")
            for _ in range(200):
                if got:
                    break
                await asyncio.sleep(0.01)
            await conn.close()
        return got

    assert asyncio.run(main()) == [b"ping"]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_what_the_wire_sends_is_received_intact(size):
    payload = os.urandom(size // 2).hex().encode()[:size] or b""

    async def main():
        async def echo(ws):
            async for message in ws:
                await ws.send(message)

        batches: list = []
        async with server(echo) as url:
            conn = await connect(url, batches, [])
            await conn.send("text", payload)
            await conn.send("binary", payload)
            for _ in range(500):
                if sum(len(b) for b in batches) >= 2:
                    break
                await asyncio.sleep(0.01)
            await conn.close()
        return [m for batch in batches for m in batch]

    assert asyncio.run(main()) == [("text", payload), ("binary", payload)]


def test_client_frames_are_websockets_own_bytes_with_a_fresh_mask_each():
    conn = wire.WireConnection("c0", wire.Endpoint("ws://127.0.0.1:1/"), wire.Clock(),
                               lambda *a: None, lambda *a: None)
    masks = []
    for n in range(3 * wire._MASK_POOL // 4):  # past two refills of the pool
        data = bytes([n % 256]) * (n % 300)
        frame = conn._masked_frame(0x1, data)
        head = 2 if len(data) < 126 else 4
        mask = frame[head:head + 4]
        masks.append(mask)
        expected = Frame(Opcode.TEXT, data).serialize(mask=True)
        # same header, and the same payload once unmasked with the frame's own mask
        assert frame[:head] == expected[:head]
        unmasked = bytes(b ^ mask[i % 4] for i, b in enumerate(frame[head + 4:]))
        assert unmasked == data
    assert len(set(masks)) > len(masks) * 0.99  # 32 random bits each: repeats are all but impossible
