"""The baseline: a bare ``websockets`` server pushing the reference agent's own messages.

What it measures against: everything the reference agent adds on top of
the library (agents, bookkeeping, limits, back-pressure, the corked writes)
must be paid for by the agent, so the baseline keeps only what any server
must do per event: stamp ``run_id``/``seq``/``emitted_at``, serialise with
orjson, and send. The messages are the reference agent's own, captured
once in-process from a real run, so the bytes on the wire are the same.

Modes: ``--mode idiomatic`` awaits ``send`` per message, as the websockets
docs show (the baseline of the benchmarks); ``--mode batched`` writes a run's
frames in one socket write (an upper bound, and the "fast endpoint" the
harness is measured against). ``--delay-ms`` splits each run around a sleep,
as the agent's model call does, so that slow runs overlap (memory benchmark).

Run: ``python -m benchmarks.bare_server [--mode batched] [--delay-ms MS]``;
prints its URL on the first stdout line, like ``agent-events serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import time

import orjson
from websockets.asyncio.server import serve

from agent_events import schemas

INPUT = "Reduce cloud costs and improve API latency"
_dumps = orjson.dumps
_loads = orjson.loads


async def capture_run(request: str = INPUT) -> list[dict]:
    """The messages one reference-agent run sends, decoded (run_id, seq, emitted_at get restamped)."""
    from agent_events.reference_agent import ActionsAgent, OfflinePlanner, WebSocketBridgeAdapter
    from agent_events.reference_agent.base import RunRequest

    class Capture:
        def __init__(self) -> None:
            self.messages: list[dict] = []

        async def send(self, data: bytes, text: bool = True) -> None:
            self.messages.append(_loads(data))

    sink = Capture()
    agent = ActionsAgent(OfflinePlanner(0))
    agent.set_websocket_bridge(WebSocketBridgeAdapter(sink), "captured")
    await agent.run(RunRequest("captured", request))
    return sink.messages


class BareServer:
    def __init__(self, templates: list[dict], mode: str, delay_ms: float) -> None:
        self.templates = templates
        self.batched = mode == "batched"
        self.delay = delay_ms / 1000.0
        # the agent's model call sits before llm_processor completes: split there
        self.split = next((i for i, m in enumerate(templates) if m["type"] == "tool_completed"
                           and m["payload"].get("tool_name") == "llm_processor"), len(templates) // 2)
        self.numbers = itertools.count(1)
        self.tasks: set[asyncio.Task] = set()

    def frames(self, run_id: str, start: int, stop: int) -> list[bytes]:
        out = []
        for message in self.templates[start:stop]:
            message = dict(message)
            message["run_id"] = run_id
            message["emitted_at"] = time.time() * 1000.0
            out.append(_dumps(message))
        return out

    async def push(self, ws, frames: list[bytes]) -> None:
        if self.batched:
            for frame in frames:
                ws.protocol.send_text(frame)
            ws.transport.write(b"".join(ws.protocol.data_to_send()))
        else:
            for frame in frames:
                await ws.send(frame, text=True)

    async def run(self, ws, run_id: str) -> None:
        try:
            await self.push(ws, self.frames(run_id, 0, self.split))
            await asyncio.sleep(self.delay)
            await self.push(ws, self.frames(run_id, self.split, len(self.templates)))
        except Exception:  # noqa: BLE001 - the client left; a baseline has nobody to tell
            pass

    async def handler(self, ws) -> None:
        async for raw in ws:
            message = _loads(raw)
            type_ = message.get("type")
            if type_ == "start_run":
                run_id = message.get("run_id") or f"bare_{next(self.numbers)}"
                if self.delay:
                    task = asyncio.get_running_loop().create_task(self.run(ws, run_id))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                else:
                    await self.push(ws, self.frames(run_id, 0, len(self.templates)))
            elif type_ == "time_sync":
                await ws.send(_dumps({"type": "time_sync", "client_time_ms": message["client_time_ms"],
                                      "server_time_ms": time.time() * 1000.0}), text=True)


async def main_async(mode: str, delay_ms: float) -> None:
    server = BareServer(await capture_run(), mode, delay_ms)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(server.handler, "127.0.0.1", 0, compression=None, max_size=2**20,
                     subprotocols=[schemas.SUBPROTOCOL], ping_interval=None) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        print(f"ws://127.0.0.1:{port}/", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("idiomatic", "batched"), default="idiomatic")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(main_async(args.mode, args.delay_ms))


if __name__ == "__main__":
    main()
