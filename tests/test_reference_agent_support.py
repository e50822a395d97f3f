"""Helpers shared by the reference agent's tests (no tests in here).

The tests check the agent's streams with their own small assertions and with
``jsonschema`` directly, never with the conformance checker: the reference
agent and the checker must be able to disagree, or testing one against the
other proves nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
from typing import Any

import orjson
from jsonschema.exceptions import best_match
from websockets.asyncio.client import connect as ws_connect

from agent_events import schemas
from agent_events.reference_agent import serve

SERVER_MESSAGE = schemas.validator(schemas.SERVER_MESSAGE)
SUBPROTOCOLS = [schemas.SUBPROTOCOL]
TWO_GOALS = "Create an action plan to reduce cloud costs by 20% and improve API latency"
ONE_GOAL = "Reduce cloud costs"
FAST = {"llm_delay_ms": 0}


def arun(coro, timeout: float = 20.0):
    """Run one async test body with an overall bound, so nothing can hang."""
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro
    return asyncio.run(bounded())


def agent(**options: Any):
    """A reference agent on a free loopback port (``async with``)."""
    options.setdefault("port", 0)
    options.setdefault("host", "127.0.0.1")
    options.setdefault("shutdown_timeout", 2.0)
    options.setdefault("close_timeout", 2.0)
    return serve(**options)


def connect(url: str, **kwargs: Any):
    kwargs.setdefault("subprotocols", SUBPROTOCOLS)
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("close_timeout", 2)
    return ws_connect(url, **kwargs)


def start_run(run_id: str | None = None, input: str = TWO_GOALS, **options: Any) -> str:
    message: dict[str, Any] = {"type": "start_run", "input": input}
    if run_id is not None:
        message["run_id"] = run_id
    if options:
        message["options"] = options
    return json.dumps(message)


def valid(message: Any) -> Any:
    """Assert ``message`` is a valid server message, naming the schema error if not."""
    error = best_match(SERVER_MESSAGE.iter_errors(message))
    assert error is None, f"invalid server message {message!r}: {error.message} at {list(error.absolute_path)}"
    return message


async def recv(ws, timeout: float = 5.0, *, capabilities: bool = False) -> dict:
    """The next server message, schema-checked. The 1.1 ``capabilities`` message that opens every
    connection is checked and skipped unless ``capabilities`` asks for it (it is tested on its own)."""
    while True:
        frame = await asyncio.wait_for(ws.recv(), timeout)
        assert isinstance(frame, str), f"the server sent a binary frame: {frame!r:.80}"
        message = valid(orjson.loads(frame))
        if capabilities or message.get("type") != "capabilities":
            return message


async def recv_until_completed(ws, run_ids, timeout: float = 10.0) -> tuple[dict[str, list[dict]], list[dict]]:
    """Every run's events until each of ``run_ids`` has completed, plus the other messages."""
    runs: dict[str, list[dict]] = {run_id: [] for run_id in run_ids}
    others: list[dict] = []
    pending = set(run_ids)
    async with asyncio.timeout(timeout):
        while pending:
            message = await recv(ws, timeout)
            if message["type"] in schemas.RUN_EVENT_TYPES:
                assert message["run_id"] in runs, f"event of a run this connection did not start: {message}"
                assert message["run_id"] in pending, f"event after agent_completed: {message}"
                runs[message["run_id"]].append(message)
                if message["type"] == "agent_completed":
                    pending.discard(message["run_id"])
            else:
                others.append(message)
    return runs, others


async def one_run(url: str, run_id: str = "r1", input: str = TWO_GOALS, **options: Any) -> list[dict]:
    async with connect(url) as ws:
        await ws.send(start_run(run_id, input, **options))
        runs, _ = await recv_until_completed(ws, [run_id])
    return runs[run_id]


def types(events: list[dict]) -> list[str]:
    return [event["type"] for event in events]


def tools(events: list[dict]) -> list[tuple[str, str, str]]:
    """``(type, tool_name, status)`` of the tool events, in order."""
    return [(e["type"], e["payload"]["tool_name"], e["payload"].get("status", ""))
            for e in events if e["type"] in ("tool_executing", "tool_completed")]


def result(events: list[dict]) -> dict:
    return events[-1]["payload"]["result"]


def check_well_formed(events: list[dict]) -> None:
    """The protocol's per-run MUST rules, as plain assertions (not the checker)."""
    assert events, "no events"
    run_id = events[0]["run_id"]
    assert all(e["run_id"] == run_id for e in events)
    assert [e["seq"] for e in events] == list(range(len(events))), "seq not contiguous from 0"
    assert events[0]["type"] == "agent_started" and events[0]["payload"]["attempt"] == "primary"
    assert types(events).count("agent_completed") == 1 and events[-1]["type"] == "agent_completed"
    emitted = [e["emitted_at"] for e in events]
    assert emitted == sorted(emitted), "emitted_at goes backwards"
    open_tools: dict[str, str] = {}
    seen_ids: set[str] = set()
    starts = 0
    for event in events:
        payload = event["payload"]
        if event["type"] == "agent_started":
            starts += 1
            assert not open_tools, f"tools open when an attempt starts: {open_tools}"
            if starts == 2:
                assert payload["attempt"] == "fallback"
        elif event["type"] == "tool_executing":
            assert payload["tool_call_id"] not in seen_ids, "tool_call_id reused"
            seen_ids.add(payload["tool_call_id"])
            open_tools[payload["tool_call_id"]] = payload["tool_name"]
        elif event["type"] == "tool_completed":
            assert open_tools.pop(payload["tool_call_id"], None) == payload["tool_name"], "unpaired tool_completed"
        elif event["type"] == "agent_completed":
            assert not open_tools, f"tools open at agent_completed: {open_tools}"
    assert starts <= 2
    assert result(events)["fallback_used"] is (starts == 2)


PRIMARY_TOOLS = [
    ("tool_executing", "prompt_builder", ""), ("tool_completed", "prompt_builder", "success"),
    ("tool_executing", "llm_processor", ""), ("tool_completed", "llm_processor", "success"),
    ("tool_executing", "action_plan_processor", ""), ("tool_completed", "action_plan_processor", "success"),
]


def primary_types(thinking: int) -> list[str]:
    return (["agent_started"] + ["agent_thinking"] * thinking
            + [t for t, _, _ in PRIMARY_TOOLS] + ["progress", "agent_completed"])


async def wait_for(predicate, timeout: float = 5.0, interval: float = 0.01) -> None:
    """Poll ``predicate`` until true; a bounded loop, never a fixed sleep."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(interval)



def read_url(proc: subprocess.Popen, timeout: float = 15.0) -> str:
    """The URL line from ``agent-events serve``, without risking a hang."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert box and box[0].startswith("ws://"), f"no URL line; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
    return box[0].strip()


@contextlib.contextmanager
def served_cli(*flags: str, env: dict[str, str] | None = None):
    """``agent-events serve --port 0 FLAGS`` in a subprocess: yields ``(process, url)``, always reaped."""
    environment = {k: v for k, v in os.environ.items() if k != "AGENT_EVENTS_TOKEN"}
    environment.update(env or {})
    proc = subprocess.Popen([sys.executable, "-m", "agent_events.conformance.cli", "serve", "--port", "0", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        yield proc, read_url(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
