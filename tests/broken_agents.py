"""Test-only variants of the reference agent that each break exactly one rule on the wire.

They plug into the real reference server through its ``bridge_factory`` and
``agent_factory`` hooks, so the live check meets them exactly as it would
meet a team's buggy agent: over a socket, with everything else correct.
"""

from __future__ import annotations

from agent_events.reference_agent import ActionsAgent, OfflinePlanner, WebSocketBridgeAdapter


class DropsProgress(WebSocketBridgeAdapter):
    """Numbers the progress event, then never sends it: a gap in seq."""

    async def emit(self, type_, payload):
        data = self.encode(type_, payload)
        if type_ != "progress":
            await self.send_frame(data)


class SwapsThinking(WebSocketBridgeAdapter):
    """Sends the first agent_thinking after the second: seq steps back."""

    held: bytes | None = None
    thinking = 0

    async def emit(self, type_, payload):
        data = self.encode(type_, payload)
        if type_ == "agent_thinking":
            self.thinking += 1
            if self.thinking == 1:
                self.held = data
                return
        await self.send_frame(data)
        if self.held is not None:
            held, self.held = self.held, None
            await self.send_frame(held)


class LeaksStart(WebSocketBridgeAdapter):
    """Also sends its run's agent_started to one other connection of the server."""

    async def emit(self, type_, payload):
        data = self.encode(type_, payload)
        await self.send_frame(data)
        if type_ == "agent_started":
            for other in list(self.session.server.sessions):
                if other is not self.session:
                    await other.websocket.send(data, text=True)
                    break


class LeavesToolOpen(ActionsAgent):
    """Never completes the llm_processor call (and consumes no seq for it): an unpaired tool."""

    async def emit_tool_completed(self, tool_call_id, message, **kwargs):
        if self._open_tools.get(tool_call_id) == "llm_processor":
            self._open_tools.pop(tool_call_id)
            return
        await super().emit_tool_completed(tool_call_id, message, **kwargs)


def bridge(cls):
    """A ``bridge_factory`` building ``cls``."""
    return lambda websocket, session: cls(websocket, session=session)


def agent(cls, llm_delay_ms: float = 0.0):
    """An ``agent_factory`` building ``cls`` with the offline planner."""
    return lambda: cls(OfflinePlanner(llm_delay_ms))
