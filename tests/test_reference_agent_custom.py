"""Custom agents on BaseAgent: the example works, and misuse still yields a well-formed stream."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from agent_events.reference_agent import AgentUsageError, BaseAgent, BridgeNotSetError, RunRequest
from test_reference_agent_support import (
    agent, arun, check_well_formed, connect, one_run, recv, recv_until_completed, result, start_run, types,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "custom_agent.py"


def load_example():
    spec = importlib.util.spec_from_file_location("custom_agent_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_custom_agent_gets_a_conforming_stream():
    example = load_example()
    events = arun(example.demo("count these four words"))
    check_well_formed(events)
    assert types(events) == ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
    assert {e["agent_name"] for e in events} == {"WordCountAgent"}
    assert events[3]["payload"]["result"] == {"words": 4} and events[3]["payload"]["status"] == "success"
    res = result(events)
    assert res["words"] == 4 and res["success"] is True and res["fallback_used"] is False
    assert res["execution_time_ms"] >= 0


def test_the_example_script_runs():
    done = subprocess.run([sys.executable, str(EXAMPLE), "one", "two"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "4 agent_completed - Your request has 2 words"


def test_emitting_without_a_bridge_is_a_clear_error():
    class Lonely(BaseAgent):
        pass

    with pytest.raises(BridgeNotSetError, match="set_websocket_bridge"):
        asyncio.run(Lonely().emit_agent_started("hello"))


class ThinksFirst(BaseAgent):
    async def execute(self, request):
        await self.emit_thinking("thinking before starting")


class ToolInFallback(BaseAgent):
    async def execute(self, request):
        await self.emit_agent_started("primary")
        await self.emit_thinking("this will fail")
        await self.emit_agent_started("fallback", attempt="fallback")
        await self.emit_thinking("falling back")
        await self.emit_tool_executing("search", "a tool where none is allowed")


class CompletesWithToolOpen(BaseAgent):
    async def execute(self, request):
        await self.emit_agent_started("start")
        await self.emit_thinking("think")
        await self.emit_tool_executing("search", "searching")
        await self.emit_agent_completed("done too early")


class ForgetsToComplete(BaseAgent):
    async def execute(self, request):
        await self.emit_agent_started("start")
        await self.emit_thinking("think")


class RaisesInTool(BaseAgent):
    async def execute(self, request):
        await self.emit_agent_started("start")
        await self.emit_thinking("think")
        async with self.tool("database", "querying"):
            raise ConnectionError("database unreachable")


class UnserialisableResult(BaseAgent):
    async def execute(self, request):
        await self.emit_agent_started("start")
        await self.emit_thinking("think")
        await self.emit_agent_completed("done", {"success": True, "blob": object()})


MISUSE = [
    (ThinksFirst, "AgentUsageError", "must be agent_started"),
    (ToolInFallback, "AgentUsageError", "fallback attempt uses no tools"),
    (CompletesWithToolOpen, "AgentUsageError", "tools still open"),
    (ForgetsToComplete, "AgentUsageError", "returned without agent_completed"),
    (RaisesInTool, "ConnectionError", "database unreachable"),
    (UnserialisableResult, "PayloadError", "not JSON-serialisable"),
]


@pytest.mark.parametrize("agent_class, error_type, words", MISUSE, ids=[c.__name__ for c, _, _ in MISUSE])
def test_misuse_is_refused_and_the_stream_still_ends_well_formed(agent_class, error_type, words):
    async def body():
        async with agent(agent_factory=agent_class) as server:
            return await one_run(server.url)

    events = arun(body())
    check_well_formed(events)
    res = result(events)
    assert res["success"] is False and res["error"]["type"] == error_type and words in res["error"]["message"]
    if agent_class in (CompletesWithToolOpen, RaisesInTool):
        assert [e["payload"]["status"] for e in events if e["type"] == "tool_completed"] == ["error"]


class EmitsAfterCompleting(BaseAgent):
    async def execute(self, request):
        await self.emit_agent_started("start")
        await self.emit_thinking("think")
        await self.emit_agent_completed("done")
        await self.emit_thinking("one more thing")


def test_nothing_follows_agent_completed():
    async def body():
        async with agent(agent_factory=EmitsAfterCompleting) as server, connect(server.url) as ws:
            await ws.send(start_run("r1"))
            runs, _ = await recv_until_completed(ws, ["r1"])
            await ws.send('{"type": "time_sync", "client_time_ms": 1}')
            return runs["r1"], await recv(ws)

    events, next_message = arun(body())
    check_well_formed(events)
    assert result(events)["success"] is True
    assert next_message["type"] == "time_sync", "an event leaked after agent_completed"


def test_an_agent_name_outside_the_protocol_is_refused_at_start():
    class Spaced(BaseAgent):
        name = "My Agent"

    with pytest.raises(AgentUsageError, match="not a protocol name"):
        Spaced().set_websocket_bridge(object(), "r1")


def test_run_request_exposes_simulate_failure():
    assert RunRequest("r", "x", {"simulate_failure": "primary"}).simulate_failure == "primary"
    assert RunRequest("r", "x", {"simulate_failure": 3}).simulate_failure is None
