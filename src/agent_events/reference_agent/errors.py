"""Exceptions of the reference agent.

They are few on purpose: an agent author needs to tell apart "I used the
BaseAgent API wrongly" (a bug, fail loudly) from "the client went away"
(nothing to report to anyone, just stop).
"""

from __future__ import annotations


class AgentUsageError(RuntimeError):
    """The agent called the emit API in a way that would break protocol v1.

    Raised instead of sending the event, so a buggy agent fails on the server
    (where BaseAgent turns the failure into a well-formed ``agent_completed``)
    rather than sending a malformed stream to the user.
    """


class BridgeNotSetError(AgentUsageError):
    """An ``emit_*`` method was called before ``set_websocket_bridge``."""


class PayloadError(AgentUsageError):
    """An event payload could not be serialised to JSON; nothing was sent."""


class ConnectionGone(BaseException):
    """The client's connection closed while a run was emitting.

    A ``BaseException`` like :class:`asyncio.CancelledError`, and for the same
    reason: agent code routinely says ``except Exception`` to fall back or to
    report a failure, and losing the client is neither; there is nobody left
    to tell, so it must unwind the run untouched.
    """
