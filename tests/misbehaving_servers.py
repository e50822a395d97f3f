"""Small WebSocket endpoints that break the contract on purpose, for the live-check tests.

Each is a real ``websockets`` server on 127.0.0.1, port 0, run in a
background thread so that the synchronous API and the CLI can be pointed at
it. :class:`ScriptedAgent` answers like a well-behaved (if minimal)
actions-agent; every misbehaving endpoint is a subclass that changes one
thing, so a test can expect exactly one rule to fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
import threading
import time
from typing import Iterator

import orjson
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

SUBPROTOCOL = "agent-events.v1"
#: Latency budgets no loaded CI machine can miss: these tests are about behaviour, never timing.
RELAXED = {"first_event_ms": 10_000, "delivery_ms": 10_000, "tool_gap_ms": 10_000}
RELAXED_FLAGS = [f"--{name.replace('_', '-')}={value}" for name, value in RELAXED.items()]
PLUGIN_RELAXED_FLAGS = [flag.replace("--", "--agent-events-", 1) for flag in RELAXED_FLAGS]
TOOLS = ("prompt_builder", "llm_processor", "action_plan_processor")


def now_ms() -> float:
    return time.time() * 1000.0


class ScriptedAgent:
    """A minimal conforming endpoint: canned primary/fallback runs, cancel, time_sync, errors."""

    subprotocols: list[str] | None = [SUBPROTOCOL]
    #: Largest message read (bytes); websockets closes with 1009 past it. ``None``: no bound.
    max_size: int | None = 2**20
    #: Seconds between events, so that a cancel can land mid-run.
    step_delay = 0.0
    agent_name = "ScriptedAgent"

    def __init__(self) -> None:
        self.connections = 0

    # -- the events of one run ------------------------------------------------
    def primary_events(self, options: dict) -> list[tuple[str, dict]]:
        if options.get("simulate_failure") == "primary":
            return [
                ("agent_started", {"message": "starting", "attempt": "primary"}),
                ("agent_thinking", {"message": "thinking"}),
                ("tool_executing", {"tool_call_id": "t1", "tool_name": TOOLS[0], "message": "building"}),
                ("tool_completed", {"tool_call_id": "t1", "tool_name": TOOLS[0], "status": "error",
                                    "message": "failed", "duration_ms": 0.1,
                                    "error": {"message": "simulated", "type": "SimulatedFailure"}}),
                ("agent_started", {"message": "falling back", "attempt": "fallback"}),
                ("agent_thinking", {"message": "fallback plan"}),
                ("agent_completed", {"message": "done", "result": self.result(fallback=True)}),
            ]
        events = [
            ("agent_started", {"message": "starting", "attempt": "primary"}),
            ("agent_thinking", {"message": "one"}),
            ("agent_thinking", {"message": "two"}),
        ]
        for i, tool in enumerate(TOOLS, 1):
            events.append(("tool_executing", {"tool_call_id": f"t{i}", "tool_name": tool, "message": tool}))
            events.append(("tool_completed", {"tool_call_id": f"t{i}", "tool_name": tool, "status": "success",
                                              "message": "ok", "duration_ms": 0.1}))
        events.append(("progress", {"message": "almost", "percent": 100}))
        events.append(("agent_completed", {"message": "done", "result": self.result(fallback=False)}))
        return events

    @staticmethod
    def result(*, fallback: bool, cancelled: bool = False) -> dict:
        result = {"success": not cancelled, "steps_generated": 0 if cancelled else 3, "execution_time_ms": 1.0,
                  "has_partial_extraction": False, "fallback_used": fallback}
        if cancelled:
            result["cancelled"] = True
        return result

    def envelope(self, run_id: str, seq: int, type_: str, payload: dict) -> dict:
        return {"type": type_, "run_id": run_id, "seq": seq, "emitted_at": now_ms(),
                "agent_name": self.agent_name, "payload": payload}

    async def send_event(self, ws, run_id: str, seq: int, type_: str, payload: dict) -> None:
        await ws.send(orjson.dumps(self.envelope(run_id, seq, type_, payload)).decode())

    async def run(self, ws, run_id: str, options: dict, cancelled: asyncio.Event) -> None:
        seq = 0
        open_tool = None
        for type_, payload in self.primary_events(options):
            if cancelled.is_set() and type_ != "agent_started":
                if open_tool is not None:
                    await self.send_event(ws, run_id, seq, "tool_completed", {
                        **open_tool, "status": "error", "message": "cancelled", "duration_ms": 0.0,
                        "error": {"message": "cancelled", "type": "Cancelled"}})
                    seq += 1
                await self.send_event(ws, run_id, seq, "agent_completed",
                                      {"message": "cancelled", "result": self.result(fallback=False, cancelled=True)})
                return
            await self.send_event(ws, run_id, seq, type_, payload)
            seq += 1
            if type_ == "tool_executing":
                open_tool = {"tool_call_id": payload["tool_call_id"], "tool_name": payload["tool_name"]}
            elif type_ == "tool_completed":
                open_tool = None
            if self.step_delay:
                await asyncio.sleep(self.step_delay)

    # -- the connection -----------------------------------------------------
    async def error(self, ws, code: str, message: str, run_id: str | None = None) -> None:
        body = {"type": "error", "code": code, "message": message}
        if run_id:
            body["run_id"] = run_id
        await ws.send(orjson.dumps(body).decode())

    async def handle(self, ws) -> None:
        self.connections += 1
        runs: dict[str, tuple[asyncio.Task, asyncio.Event]] = {}
        counter = itertools.count()
        try:
            async for frame in ws:
                if isinstance(frame, bytes):
                    await self.error(ws, "unsupported_frame", "binary frames are not supported")
                    continue
                try:
                    msg = orjson.loads(frame)
                except orjson.JSONDecodeError:
                    await self.error(ws, "invalid_json", "not JSON")
                    continue
                if not isinstance(msg, dict):
                    await self.error(ws, "invalid_json", "not an object")
                    continue
                kind = msg.get("type")
                if kind is None:
                    await self.error(ws, "invalid_message", "type is required", msg.get("run_id"))
                elif kind == "start_run":
                    if not isinstance(msg.get("input"), str):
                        await self.error(ws, "invalid_message", "input is required")
                        continue
                    run_id = msg.get("run_id") or self.generated_run_id(next(counter))
                    if run_id in runs and not await self.on_duplicate(ws, run_id):
                        continue
                    cancelled = asyncio.Event()
                    task = asyncio.create_task(self.run(ws, run_id, msg.get("options") or {}, cancelled))
                    runs[run_id] = (task, cancelled)
                    task.add_done_callback(lambda _t, r=run_id: runs.pop(r, None))
                elif kind == "cancel_run":
                    entry = runs.get(msg.get("run_id"))
                    if entry is None:
                        await self.error(ws, "unknown_run", "no such run", msg.get("run_id"))
                    else:
                        entry[1].set()
                elif kind == "time_sync":
                    await self.on_time_sync(ws, msg)
                else:
                    await self.error(ws, "unknown_type", f"unknown type {kind!r}")
        except ConnectionClosed:
            pass
        finally:
            for task, _ in list(runs.values()):
                task.cancel()

    async def on_duplicate(self, ws, run_id: str) -> bool:
        """A start_run of a run_id in flight; return whether to start it anyway."""
        await self.error(ws, "duplicate_run", f"run {run_id!r} is in flight", run_id)
        return False

    def generated_run_id(self, n: int) -> str:
        """The run_id of the ``n``-th start_run without one on a connection."""
        return f"srv-{n}"

    async def on_time_sync(self, ws, msg: dict) -> None:
        await ws.send(orjson.dumps({"type": "time_sync", "client_time_ms": msg.get("client_time_ms"),
                                    "server_time_ms": now_ms()}).decode())

    def process_request(self, connection, request):
        return None


# -- misbehaving endpoints ------------------------------------------------------

class Http500(ScriptedAgent):
    def process_request(self, connection, request):
        return Response(500, "Internal Server Error", Headers([("Content-Length", "4")]), b"boom")


class SendsBinary(ScriptedAgent):
    """Sends its events as binary frames (valid JSON inside): only ``frame.text`` breaks."""

    async def send_event(self, ws, run_id, seq, type_, payload):
        await ws.send(orjson.dumps(self.envelope(run_id, seq, type_, payload)))


class SendsInvalidUtf8(ScriptedAgent):
    """Sends one text frame that is not UTF-8 before each run: only ``frame.json`` breaks."""

    async def run(self, ws, run_id, options, cancelled):
        await ws.send(b'{"type": "progress", "note": "\xff\xfe"}', text=True)
        await super().run(ws, run_id, options, cancelled)


class SendsHugeFrame(ScriptedAgent):
    """Announces a 100 MB text frame and streams zeros: a client must refuse it unread."""

    SIZE = 100 * 2**20

    async def run(self, ws, run_id, options, cancelled):
        await self.send_event(ws, run_id, 0, "agent_started", {"message": "starting", "attempt": "primary"})
        transport = ws.transport
        transport.write(struct.pack("!BBQ", 0x81, 127, self.SIZE))  # FIN + text, 64-bit length, unmasked
        chunk = b"0" * 2**16
        sent = 0
        with contextlib.suppress(RuntimeError, OSError):  # the client hangs up long before the end
            while sent < self.SIZE and not transport.is_closing():
                transport.write(chunk)
                sent += len(chunk)
                await asyncio.sleep(0.001 if transport.get_write_buffer_size() > 2**20 else 0)


class WrapsProgressInAString(ScriptedAgent):
    """Sends its progress event as a JSON *string* holding the event's JSON: valid JSON, not an object."""

    async def send_event(self, ws, run_id: str, seq: int, type_: str, payload: dict) -> None:
        if type_ != "progress":
            return await super().send_event(ws, run_id, seq, type_, payload)
        await ws.send(orjson.dumps(orjson.dumps(self.envelope(run_id, seq, type_, payload)).decode()).decode())


class Silent(ScriptedAgent):
    """Accepts the connection, reads everything, never answers."""

    async def handle(self, ws):
        self.connections += 1
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass


class ClosesMidRun(ScriptedAgent):
    """Starts each run, thinks once, then closes the connection."""

    async def run(self, ws, run_id, options, cancelled):
        await self.send_event(ws, run_id, 0, "agent_started", {"message": "starting", "attempt": "primary"})
        await self.send_event(ws, run_id, 1, "agent_thinking", {"message": "hmm"})
        await ws.close(1011, "crashed on purpose")


class Floods(ScriptedAgent):
    """Starts each run and then sends progress events as fast as it can, forever."""

    async def run(self, ws, run_id, options, cancelled):
        await self.send_event(ws, run_id, 0, "agent_started", {"message": "starting", "attempt": "primary"})
        for seq in itertools.count(1):
            await self.send_event(ws, run_id, seq, "progress", {"message": "more"})
            if seq % 64 == 0:
                await asyncio.sleep(0)


class NoSubprotocol(ScriptedAgent):
    """Conforms, but does not select ``agent-events.v1``: only ``transport.subprotocol`` warns."""

    subprotocols = None


class NoTimeSync(ScriptedAgent):
    """Conforms, but ignores time_sync (a SHOULD): the report assumes equal clocks."""

    async def on_time_sync(self, ws, msg):
        return None


class RejectsTimeSync(ScriptedAgent):
    """Answers time_sync with an unknown_type error, as a server that never implemented it would."""

    async def on_time_sync(self, ws, msg):
        await self.error(ws, "unknown_type", "time_sync is not supported")


class NoErrors(ScriptedAgent):
    """Silently ignores malformed input instead of answering ``error``."""

    async def error(self, ws, code, message, run_id=None):
        return None


class IgnoresCancel(ScriptedAgent):
    """Acknowledges nothing on cancel_run: the run completes normally, not cancelled."""

    step_delay = 0.02

    async def run(self, ws, run_id, options, cancelled):
        await super().run(ws, run_id, options, asyncio.Event())


class LimitsConnections(ScriptedAgent):
    """Answers HTTP 503 once two connections are open: the concurrency scenario cannot open ten."""

    LIMIT = 2

    def __init__(self) -> None:
        super().__init__()
        self.open = 0

    async def handle(self, ws):
        try:
            await super().handle(ws)
        finally:
            self.open -= 1

    def process_request(self, connection, request):
        if self.open >= self.LIMIT:
            return Response(503, "Service Unavailable", Headers([("Content-Length", "4")]), b"full")
        self.open += 1  # reserved at the handshake, so that simultaneous handshakes count
        return None


class AcceptsOnlyTheFirst(ScriptedAgent):
    """Answers HTTP 503 to every handshake after the first: the check connects, then no scenario can."""

    def __init__(self) -> None:
        super().__init__()
        self.handshakes = 0

    def process_request(self, connection, request):
        self.handshakes += 1
        if self.handshakes > 1:
            return Response(503, "Service Unavailable", Headers([("Content-Length", "4")]), b"full")
        return None


class FinishesBeforeCancel(ScriptedAgent):
    """Plays the race a cancel can lose: the run completes as the cancel arrives, which gets unknown_run."""

    async def run(self, ws, run_id, options, cancelled):
        events = self.primary_events(options)
        await self.send_event(ws, run_id, 0, *events[0])
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(cancelled.wait(), 5)
        for seq, (type_, payload) in enumerate(events[1:], 1):
            await self.send_event(ws, run_id, seq, type_, payload)
        if cancelled.is_set():
            await self.error(ws, "unknown_run", "the run had already completed", run_id)


class NoFallback(ScriptedAgent):
    """Ignores options.simulate_failure, as an implementation without fallback may."""

    def primary_events(self, options):
        return super().primary_events({})


# -- running them ---------------------------------------------------------------

@contextlib.contextmanager
def running(agent: ScriptedAgent, *, path: str = "/") -> Iterator[str]:
    """Run ``agent`` on 127.0.0.1 in a background thread; yield its ws:// URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Future | None = None
    box: dict = {}

    async def main():
        nonlocal stop
        stop = loop.create_future()
        async with serve(agent.handle, "127.0.0.1", 0, subprotocols=agent.subprotocols,
                         process_request=agent.process_request, max_size=agent.max_size,
                         ping_interval=None, close_timeout=1) as server:
            box["port"] = server.sockets[0].getsockname()[1]
            started.set()
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("test server did not start")
    try:
        yield f"ws://127.0.0.1:{box['port']}{path}"
    finally:
        loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))
        thread.join(10)


@contextlib.contextmanager
def mute_listener() -> Iterator[str]:
    """A TCP port that accepts connections (the kernel does) and never answers the handshake."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}/"


def cli_json(*argv: str, max_open_files: int | None = None) -> tuple[int, dict]:
    """``agent-events ARGV --format json`` (relaxed budgets) in a child process: its exit code and report.

    A child, with a timeout, so that a command that never ends fails its test
    instead of hanging the suite; ``max_open_files`` lowers the child's
    descriptor limit, to play a machine that runs out of sockets.
    """
    import json
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    proc = subprocess.run([sys.executable, "-m", "agent_events.conformance.cli", *argv, "--format", "json", *RELAXED_FLAGS],
                          capture_output=True, text=True, timeout=90,
                          preexec_fn=limit if max_open_files is not None else None)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
