"""The agent-events reference agent: a real WebSocket server speaking protocol v1.

It is what implementers copy and what the conformance kit is demonstrated on.
Write an agent by subclassing :class:`BaseAgent`; run agents with
:func:`serve` (asyncio) or :func:`run_in_thread` (sync callers), or from the
shell with ``agent-events serve``. This package never imports
``conformance``: the two meet only in ``schemas`` and on the wire.
"""

from agent_events.reference_agent.actions import ActionsAgent
from agent_events.reference_agent.base import BaseAgent, RunRequest, ToolCall
from agent_events.reference_agent.bridge import WebSocketBridgeAdapter
from agent_events.reference_agent.config import ServerConfig
from agent_events.reference_agent.errors import AgentUsageError, BridgeNotSetError, ConnectionGone, PayloadError
from agent_events.reference_agent.llm import LLM, LLMError, OfflinePlanner
from agent_events.reference_agent.server import VERSION, AgentServer, ServerThread, run_in_thread, serve
from agent_events.reference_agent.session import Session
from agent_events.reference_agent.workers import WorkersError, serve_forever, serve_workers

__all__ = [
    "ActionsAgent", "AgentServer", "AgentUsageError", "BaseAgent", "BridgeNotSetError", "ConnectionGone",
    "LLM", "LLMError", "OfflinePlanner", "PayloadError", "RunRequest", "ServerConfig", "ServerThread",
    "Session", "ToolCall", "VERSION", "WebSocketBridgeAdapter", "WorkersError", "run_in_thread", "serve",
    "serve_forever", "serve_workers",
]
