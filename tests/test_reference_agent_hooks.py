"""The hooks the live-check tests use to break one rule on purpose really do break it on the wire.

Each broken variant is a small subclass plugged in with ``agent_factory`` or
``bridge_factory``; the assertions look at raw frames, not at any checker.
"""

from __future__ import annotations

from agent_events.reference_agent import ActionsAgent, OfflinePlanner, WebSocketBridgeAdapter
from test_reference_agent_support import agent, arun, connect, recv, start_run, types


class DroppingBridge(WebSocketBridgeAdapter):
    """Loses the event with seq 3 after numbering it."""

    async def send_frame(self, data: bytes) -> None:
        if self.next_seq - 1 != 3:
            await super().send_frame(data)


class ReorderingBridge(WebSocketBridgeAdapter):
    """Sends seq 2 after seq 3."""

    held: bytes | None = None

    async def send_frame(self, data: bytes) -> None:
        seq = self.next_seq - 1
        if seq == 2:
            self.held = data
            return
        await super().send_frame(data)
        if seq == 3:
            await super().send_frame(self.held)


class LeakingBridge(WebSocketBridgeAdapter):
    """Also sends every event to every other connection of the server."""

    async def send_frame(self, data: bytes) -> None:
        await super().send_frame(data)
        for other in self.session.server.sessions:
            if other is not self.session:
                await other.websocket.send(data, text=True)


class LeavesToolOpen(ActionsAgent):
    """Completes the run while the last tool is still executing."""

    async def emit_tool_completed(self, tool_call_id, message, **kwargs):
        if self._open_tools.get(tool_call_id) == "action_plan_processor":
            return
        await super().emit_tool_completed(tool_call_id, message, **kwargs)

    async def emit_agent_completed(self, message, result=None):
        await self.bridge.emit("agent_completed", {"message": message, "result": {
            "success": True, "steps_generated": 0, "execution_time_ms": 1.0,
            "has_partial_extraction": False, "fallback_used": False}})
        self._completed = True  # tell BaseAgent.run the run has ended, so it adds no terminal sequence


def fast_agent():
    return ActionsAgent(OfflinePlanner(0))


async def events_of(url: str, run_id: str = "r1") -> list[dict]:
    """The run's events up to its agent_completed, checking that nothing of it follows."""
    async with connect(url) as ws:
        await ws.send(start_run(run_id))
        events = [await recv(ws)]
        while events[-1]["type"] != "agent_completed":
            events.append(await recv(ws))
        await ws.send('{"type": "time_sync", "client_time_ms": 1}')
        after = await recv(ws)
        assert after["type"] == "time_sync", f"the run went on after agent_completed: {after}"
        return events


def test_a_dropping_bridge_leaves_a_seq_gap():
    async def body():
        async with agent(agent_factory=fast_agent, bridge_factory=lambda ws, s: DroppingBridge(ws, session=s)) as server:
            return await events_of(server.url)

    seqs = [e["seq"] for e in arun(body())]
    assert 3 not in seqs and seqs[:3] == [0, 1, 2] and seqs[3] == 4


def test_a_reordering_bridge_swaps_two_events():
    async def body():
        async with agent(agent_factory=fast_agent, bridge_factory=lambda ws, s: ReorderingBridge(ws, session=s)) as server:
            return await events_of(server.url)

    assert [e["seq"] for e in arun(body())][:5] == [0, 1, 3, 2, 4]


def test_a_leaking_bridge_reaches_another_connection():
    async def body():
        async with agent(agent_factory=fast_agent, bridge_factory=lambda ws, s: LeakingBridge(ws, session=s)) as server:
            async with connect(server.url) as bystander:
                await bystander.send('{"type": "time_sync", "client_time_ms": 1}')
                await recv(bystander)  # the bystander's session now exists
                await events_of(server.url, "not-yours")
                return await recv(bystander)

    leaked = arun(body())
    assert leaked["run_id"] == "not-yours"


def test_an_agent_can_leave_a_tool_open():
    async def body():
        async with agent(agent_factory=LeavesToolOpen) as server:
            return await events_of(server.url)

    events = arun(body())
    executing = [e["payload"]["tool_name"] for e in events if e["type"] == "tool_executing"]
    completed = [e["payload"]["tool_name"] for e in events if e["type"] == "tool_completed"]
    assert "action_plan_processor" in executing and "action_plan_processor" not in completed
    assert types(events)[-1] == "agent_completed"
