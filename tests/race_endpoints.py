"""Endpoints with a race bug each, written from the public docs (docs/spec.md) alone, the way an
outside team would: a Starlette WebSocket app under uvicorn, whose receive loop does not yield
between two frames of one read (uvicorn queues every frame of a read; ``receive_text`` on a
non-empty queue returns at once). That is what hides each bug from a polite client, which
writes one frame, waits, writes the next: the server's task for a run has always begun by then.

``RaceEndpoint(bug)`` serves one variant on 127.0.0.1, port 0; ``bug`` is one of :data:`BUGS`:

* ``"silent_cancel"``: cancel_run cancels the run's task; a task cancelled before it started
  never runs its ``except CancelledError`` (which sends the cancelled end): the run sends nothing.
* ``"double_completion"``: after agent_completed the run saves its plan (10 ms) before it leaves
  the connection's runs; a cancel_run in that window answers the user at once with a cancelled
  agent_completed of its own: two agent_completed.
* ``"duplicate_both_run"``: a run enters the connection's runs when its task starts, so the
  duplicate check misses a second start_run of the same read: both run under one run_id.
* ``"resume_loses_end"`` (1.1): resume_run snapshots the buffer, checks the token (an await),
  then attaches the run: what the run sent meanwhile is neither replayed nor sent.
* ``"resume_cancel_ignored"`` (1.1): resume_run is handled in a task of its own (a replay may be
  long), so a cancel_run of the same read finds no such run, is answered unknown_run, and the
  resumed run goes on to complete uncancelled.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

BUGS = ("silent_cancel", "double_completion", "duplicate_both_run", "resume_loses_end", "resume_cancel_ignored")
RESUME_BUGS = ("resume_loses_end", "resume_cancel_ignored")
TOOLS = (("prompt_builder", 0.0005), ("llm_processor", 0.03), ("action_plan_processor", 0.0005))


def _now_ms() -> float:
    return time.time() * 1000.0


class Run:
    def __init__(self, run_id: str, conn: "Connection") -> None:
        self.run_id = run_id
        self.conn: Connection | None = conn
        self.seq = 0
        self.events: list[dict] = []
        self.task: asyncio.Task | None = None
        self.open_tool: tuple[str, str] | None = None
        self.token = secrets.token_urlsafe(24)
        self.done = False


class Connection:
    def __init__(self, app: "RaceApp", ws: WebSocket) -> None:
        self.app = app
        self.ws = ws
        self.out: asyncio.Queue = asyncio.Queue()
        self.runs: dict[str, Run] = {}

    def send(self, message: dict) -> None:
        self.out.put_nowait(json.dumps(message))

    async def writer(self) -> None:
        while True:
            text = await self.out.get()
            await self.ws.send_text(text)


class RaceApp:
    """The protocol as docs/spec.md states it, but for the one bug this instance has."""

    def __init__(self, bug: str) -> None:
        assert bug in BUGS, bug
        self.bug = bug
        self.resume = bug in RESUME_BUGS
        #: 1.1: every run by (run_id, resume_token), attached or not: run_ids are per connection
        self.resumable: dict[tuple[str, str], Run] = {}
        self.app = Starlette(routes=[WebSocketRoute("/", self.endpoint)])

    # -- events ------------------------------------------------------------------------
    def emit(self, run: Run, type_: str, payload: dict) -> None:
        event = {"type": type_, "run_id": run.run_id, "seq": run.seq, "emitted_at": _now_ms(),
                 "agent_name": "ActionsAgent", "payload": payload}
        run.seq += 1
        run.events.append(event)
        if run.conn is not None:
            run.conn.send(event)

    def started(self, run: Run) -> None:
        payload = {"message": "Creating action plan", "attempt": "primary"}
        if self.resume:
            payload["resume_token"] = run.token
        self.emit(run, "agent_started", payload)

    def cancelled_end(self, run: Run) -> None:
        if run.open_tool is not None:
            call_id, name = run.open_tool
            run.open_tool = None
            self.emit(run, "tool_completed", {"tool_call_id": call_id, "tool_name": name, "status": "error",
                                              "message": "Cancelled", "duration_ms": 0.1,
                                              "error": {"type": "cancelled", "message": "cancelled by the client"}})
        self.emit(run, "agent_completed", {"message": "Run cancelled", "result": {
            "success": False, "steps_generated": 0, "execution_time_ms": 1, "has_partial_extraction": False,
            "fallback_used": False, "cancelled": True, "error": {"type": "cancelled", "message": "cancelled"}}})
        self.finish(run)

    def finish(self, run: Run) -> None:
        run.done = True
        if run.conn is not None:
            run.conn.runs.pop(run.run_id, None)
        # a finished run stays resumable for its client's last events

    async def agent(self, run: Run) -> None:
        if self.bug == "duplicate_both_run":
            run.conn.runs[run.run_id] = run  # the bug: registered only once the task runs
        try:
            self.started(run)
            for text in ("Starting action plan generation...", "Analyzing optimization data..."):
                await asyncio.sleep(0.001)
                self.emit(run, "agent_thinking", {"message": text})
            for i, (name, seconds) in enumerate(TOOLS, 1):
                call_id = f"{run.run_id}-t{i}"
                run.open_tool = (call_id, name)
                self.emit(run, "tool_executing", {"tool_call_id": call_id, "tool_name": name, "message": name})
                await asyncio.sleep(seconds)
                run.open_tool = None
                self.emit(run, "tool_completed", {"tool_call_id": call_id, "tool_name": name, "status": "success",
                                                  "message": "done", "duration_ms": seconds * 1000})
            self.emit(run, "progress", {"message": "Action plan generation completed", "percent": 100})
            await asyncio.sleep(0.01)  # writing the plan
            self.emit(run, "agent_completed", {"message": "Action plan ready with 5 steps", "result": {
                "success": True, "steps_generated": 5, "execution_time_ms": 45, "has_partial_extraction": False,
                "fallback_used": False}})
            if self.bug == "double_completion":
                await asyncio.sleep(0.05)  # saving the plan: the run is still "in flight" meanwhile
            self.finish(run)
        except asyncio.CancelledError:
            if not run.done:
                self.cancelled_end(run)

    # -- client messages ---------------------------------------------------------------
    def start_run(self, conn: Connection, message: dict) -> None:
        run_id = message.get("run_id") or f"srv-{secrets.token_hex(4)}"
        if run_id in conn.runs:
            conn.send({"type": "error", "code": "duplicate_run", "message": "run in flight", "run_id": run_id})
            return
        run = Run(run_id, conn)
        if self.resume:
            self.resumable[(run_id, run.token)] = run
        if self.bug != "duplicate_both_run":
            conn.runs[run_id] = run
        run.task = asyncio.get_running_loop().create_task(self.agent(run))

    def cancel_run(self, conn: Connection, message: dict) -> None:
        run = conn.runs.get(message.get("run_id"))
        if run is None:
            conn.send({"type": "error", "code": "unknown_run", "message": "no such run",
                       "run_id": message.get("run_id")})
            return
        if self.bug == "double_completion" and run.events and run.events[-1]["type"] == "agent_completed":
            # the bug: the run is still registered while it saves its plan; answered at once
            self.cancelled_end(run)
            run.task.cancel()
            return
        if not run.events and self.bug != "silent_cancel":
            self.started(run)  # cancelled before its task began: it still starts, then ends cancelled
            self.cancelled_end(run)
        run.task.cancel()  # silent_cancel: a task that never started never sends its cancelled end

    async def resume_run(self, conn: Connection, message: dict) -> None:
        run = self.resumable.get((message.get("run_id"), str(message.get("resume_token"))))
        if run is None:
            conn.send({"type": "error", "code": "resume_denied", "message": "cannot resume",
                       "run_id": message.get("run_id")})
            return
        last_seq = message.get("last_seq", -1)
        replay = [e for e in run.events if e["seq"] > last_seq]
        if self.bug == "resume_loses_end":
            await asyncio.sleep(0.03)  # the bug: the token checked against the session store after the snapshot
        if run.conn is not None and run.conn is not conn:
            run.conn.runs.pop(run.run_id, None)  # taken over from a connection not yet known dead
        for event in replay:
            conn.send(event)
        run.conn = conn
        if not run.done:
            conn.runs[run.run_id] = run

    # -- the connection ----------------------------------------------------------------
    async def endpoint(self, ws: WebSocket) -> None:
        await ws.accept(subprotocol="agent-events.v1" if "agent-events.v1" in ws.scope.get("subprotocols", [])
                        else None)
        conn = Connection(self, ws)
        writer = asyncio.get_running_loop().create_task(conn.writer())
        if self.resume:
            conn.send({"type": "capabilities", "protocol_version": "1.1", "emitted_at": _now_ms(), "features": {
                "cancel": True, "time_sync": True, "resume": {"window_s": 30, "buffer_events": 64}}})
        try:
            while True:
                text = await ws.receive_text()
                try:
                    message = json.loads(text)
                except ValueError:
                    conn.send({"type": "error", "code": "invalid_json", "message": "not JSON"})
                    continue
                kind = message.get("type") if isinstance(message, dict) else None
                if kind == "start_run":
                    self.start_run(conn, message)
                elif kind == "cancel_run":
                    self.cancel_run(conn, message)
                elif kind == "resume_run" and self.resume:
                    if self.bug == "resume_cancel_ignored":
                        asyncio.get_running_loop().create_task(self.resume_run(conn, message))  # the bug
                    else:
                        await self.resume_run(conn, message)
                elif kind == "time_sync":
                    conn.send({"type": "time_sync", "client_time_ms": message.get("client_time_ms"),
                               "server_time_ms": _now_ms()})
                else:
                    conn.send({"type": "error", "code": "unknown_type", "message": "unknown type"})
        except WebSocketDisconnect:
            pass
        finally:
            for run in list(conn.runs.values()):
                if self.resume:
                    if run.conn is conn:
                        run.conn = None  # detached: it goes on, for a resume
                elif run.task is not None:
                    run.task.cancel()
            await asyncio.sleep(0.05)  # what is queued still goes, if the socket can take it
            writer.cancel()


class RaceEndpoint:
    """One variant under uvicorn in a thread: ``with RaceEndpoint("silent_cancel") as url: ...``."""

    def __init__(self, bug: str) -> None:
        self.app = RaceApp(bug)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.sock = sock
        self.url = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
        config = uvicorn.Config(self.app.app, log_level="error", lifespan="off", ws_ping_interval=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self.url
            time.sleep(0.01)
        raise RuntimeError("uvicorn did not start within 5 s")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
