"""BaseAgent: write an agent, get a conforming protocol-v1 stream.

An agent author implements :meth:`BaseAgent.execute` with the ``emit_*``
methods and :meth:`BaseAgent.tool`; BaseAgent keeps the run's bookkeeping
(attempt, open tools, thinking per attempt, completion) and refuses calls
that would break a protocol rule, before anything reaches the wire.
:meth:`BaseAgent.run` is the guarantee the seed calls event continuity:
whatever ``execute`` does (returns early, raises, is cancelled by the
client or the server) the user's stream ends with one ``agent_completed``,
every tool completed before it.

A minimal agent::

    class EchoAgent(BaseAgent):
        name = "EchoAgent"

        async def execute(self, request):
            await self.emit_agent_started("Echoing your request")
            await self.emit_thinking("Reading the request")
            async with self.tool("echo", "Echoing") as call:
                call.done("Echoed", chars=len(request.input))
            await self.emit_agent_completed("Done", {"success": True, "steps_generated": 1})

Serve it with ``agent_events.reference_agent.serve(agent_factory=EchoAgent)``.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

from agent_events import run_rules as _rr
from agent_events import schemas
from agent_events.reference_agent.errors import AgentUsageError, BridgeNotSetError, PayloadError

_perf = time.perf_counter
# Bounds read from the schemas, so that BaseAgent refuses exactly what a validator would.
_DEFS = schemas.load("defs")["$defs"]
_NAME = re.compile(_DEFS["name"]["pattern"])
MAX_MESSAGE = _DEFS["message"]["maxLength"]

#: The run rules BaseAgent refuses with: the checker's own table (:mod:`agent_events.run_rules`), so an
#: agent is refused exactly what the checker would flag. The tool call is the table's tool family.
RULES = _rr.V1
_TOOLS = RULES.family("tool_call")
_ATTEMPT_OF_STATE = {_rr.PRIMARY: "primary", _rr.FALLBACK: "fallback"}

#: Why a row of the table that names a rule is refused, in an agent author's words, by
#: ``(rule id, kind)`` (``kind`` None: any kind); the rule id is appended.
_REFUSALS: dict[tuple[str, str | None], str] = {
    ("order.completed_last", None): "run {run_id!r} already sent agent_completed; nothing may follow it",
    ("order.first_started", _rr.STARTED_FALLBACK):
        "a fallback attempt needs a primary attempt before it, and happens at most once",
    ("order.first_started", None):
        "the first event of a run must be agent_started (call emit_agent_started first)",
    ("fallback.single", _rr.STARTED_PRIMARY): "agent_started (primary) must be the first event of the run, and only once",
    ("fallback.single", None): "a fallback attempt needs a primary attempt before it, and happens at most once",
    ("fallback.continuity", None): "the fallback attempt uses no tools (protocol v1: started -> thinking -> completed)",
}

#: Why a run was ended from outside, as ``(result.error.type, message)``.
CANCEL_REASONS: dict[str, tuple[str, str]] = {
    "client": ("cancelled", "The run was cancelled by the client (cancel_run)."),
    "shutdown": ("shutting_down", "The server is shutting down; the run was stopped."),
    "deadline": ("deadline_exceeded", "The run took longer than the server's run deadline and was stopped."),
}


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What a client asked for in ``start_run``."""

    run_id: str
    input: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def simulate_failure(self) -> str | None:
        value = self.options.get("simulate_failure")
        return value if isinstance(value, str) else None


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """A user-facing message within the protocol's bounds (1..4096 characters)."""
    if not text:
        return "-"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(exc: BaseException) -> dict[str, str]:
    """An exception as the protocol's ``error`` object."""
    return {"message": clip(str(exc) or type(exc).__name__, 1000), "type": type(exc).__name__}


class ToolCall:
    """One tool call; ``async with agent.tool(...) as call`` always completes it.

    On a normal exit the tool completes with status success and whatever the
    body passed to :meth:`done`; on an exception it completes with status
    error and the exception re-raises (pairing holds on failure). On
    cancellation it stays open for :meth:`BaseAgent.run`, which completes it
    with the reason for the cancellation.
    """

    __slots__ = ("agent", "tool_name", "message", "arguments", "tool_call_id", "result", "completed_message", "_t0")

    def __init__(self, agent: "BaseAgent", tool_name: str, message: str, arguments: dict | None) -> None:
        self.agent = agent
        self.tool_name = tool_name
        self.message = message
        self.arguments = arguments
        self.tool_call_id = ""
        self.result: dict[str, Any] | None = None
        self.completed_message: str | None = None
        self._t0 = 0.0

    def done(self, message: str | None = None, **result: Any) -> None:
        """Set the tool_completed message and result metrics (prompt size, steps, ...)."""
        if message is not None:
            self.completed_message = message
        if result:
            self.result = result

    async def __aenter__(self) -> "ToolCall":
        self.tool_call_id = await self.agent.emit_tool_executing(self.tool_name, self.message, arguments=self.arguments)
        self._t0 = _perf()
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        if self.tool_call_id not in self.agent._open_tools:
            return False
        duration_ms = (_perf() - self._t0) * 1000.0
        if exc_type is None:
            await self.agent.emit_tool_completed(
                self.tool_call_id, self.completed_message or f"{self.tool_name} completed",
                duration_ms=duration_ms, result=self.result)
        elif issubclass(exc_type, Exception):
            await self.agent.emit_tool_completed(
                self.tool_call_id, f"{self.tool_name} failed: {describe(exc)['message']}",
                status="error", duration_ms=duration_ms, result=self.result, error=describe(exc))
        return False


class BaseAgent:
    """Base of every agent the reference server runs; one instance per run.

    Subclasses set :attr:`name` (the wire's ``agent_name``) and implement
    :meth:`execute`. The server calls ``set_websocket_bridge`` then
    :meth:`run`.
    """

    #: ``agent_name`` on the wire: letters, digits, ``_ . : -``.
    name: str = "BaseAgent"
    #: Whether ``options.simulate_failure`` really makes this agent's primary path fail (declared
    #: in the 1.1 ``capabilities`` message; a harness then holds the agent to it).
    supports_simulate_failure: bool = False

    def __init__(self) -> None:
        self._bridge = None
        self.run_id: str | None = None
        self.attempt: str | None = None
        self._open_tools: dict[str, str] = {}
        #: every tool_call_id the run used (the tool family's ids are unique per run)
        self._tool_ids: set[str] = set()
        self._thinking_in_attempt = 0
        self._tool_calls = 0
        self._completed = False
        self._finishing = False
        self._cancel_reason: str | None = None
        self._t0 = _perf()

    # -- wiring -------------------------------------------------------------

    def set_websocket_bridge(self, bridge: Any, run_id: str) -> None:
        """Attach the bridge that carries this run's events (before :meth:`run`)."""
        if not _NAME.match(self.name):
            raise AgentUsageError(f"agent name {self.name!r} is not a protocol name (letters, digits, _ . : -, 1-128)")
        bridge.bind(run_id, self.name)
        self._bridge = bridge
        self.run_id = run_id

    @property
    def bridge(self):
        """The run's :class:`~agent_events.reference_agent.bridge.WebSocketBridgeAdapter`.

        ``await self.bridge.emit(type_, payload)`` stamps and sends an event
        with none of BaseAgent's checks: the way for a test-only agent to
        break one protocol rule on purpose. Conforming agents never need it.
        """
        return self._bridge

    @property
    def completed(self) -> bool:
        return self._completed

    @property
    def open_tools(self) -> dict[str, str]:
        """``tool_call_id -> tool_name`` of tools executing now."""
        return dict(self._open_tools)

    def elapsed_ms(self) -> float:
        return (_perf() - self._t0) * 1000.0

    async def _emit(self, type_: str, payload: dict, undo=None) -> None:
        """Send through the bridge; the caller has already recorded the event
        in the run's state, because the frame is on the wire before the first
        await returns (a cancellation there must see it as sent). ``undo``
        reverts that record when the payload could not even be serialised."""
        bridge = self._bridge
        if bridge is None:
            if undo is not None:
                undo()
            raise BridgeNotSetError(
                f"{type(self).__name__}.emit_* called before set_websocket_bridge(bridge, run_id): "
                "there is no connection to send the event to")
        try:
            await bridge.emit(type_, payload)
        except PayloadError:
            if undo is not None:
                undo()
            raise

    # -- the emit API ---------------------------------------------------------

    async def emit_agent_started(self, message: str, *, attempt: str = "primary") -> None:
        """Open the run (attempt primary) or its one fallback attempt."""
        if attempt not in _rr.ATTEMPTS:
            raise AgentUsageError(f"attempt must be 'primary' or 'fallback', not {attempt!r}")
        self._guard(_rr.kind_of(_rr.STARTED, {"attempt": attempt}))
        self._check_message(message)
        previous = (self.attempt, self._thinking_in_attempt)

        def undo() -> None:
            self.attempt, self._thinking_in_attempt = previous

        self.attempt = attempt
        self._thinking_in_attempt = 0
        await self._emit("agent_started", {"message": message, "attempt": attempt}, undo)

    async def emit_thinking(self, message: str, *, step: int | None = None) -> None:
        self._guard(_rr.THINKING)
        self._check_message(message)
        payload: dict[str, Any] = {"message": message}
        if step is not None:
            if not isinstance(step, int) or step < 0:
                raise AgentUsageError(f"step is an integer >= 0, not {step!r}")
            payload["step"] = step
        self._thinking_in_attempt += 1
        await self._emit("agent_thinking", payload)

    async def emit_tool_executing(self, tool_name: str, message: str, *, arguments: dict | None = None,
                                  tool_call_id: str | None = None) -> str:
        """Announce a tool call; return its ``tool_call_id`` for :meth:`emit_tool_completed`."""
        self._guard(_rr.TOOL_EXECUTING)
        if not isinstance(tool_name, str) or not _NAME.match(tool_name):
            raise AgentUsageError(f"tool name {tool_name!r} is not a protocol name (letters, digits, _ . : -)")
        self._check_message(message)
        if tool_call_id is None:
            self._tool_calls += 1
            tool_call_id = f"call_{self._tool_calls}"
            while tool_call_id in self._tool_ids:  # an id the author chose before: never used twice
                self._tool_calls += 1
                tool_call_id = f"call_{self._tool_calls}"
        elif not isinstance(tool_call_id, str) or not 0 < len(tool_call_id) <= 128:
            raise AgentUsageError(f"tool_call_id {tool_call_id!r} is not 1-128 characters")
        elif tool_call_id in self._open_tools or (_TOOLS.unique and tool_call_id in self._tool_ids):
            raise AgentUsageError(f"tool_call_id {tool_call_id!r} is used already in this run "
                                  f"[{_TOOLS.breaches.duplicate}]")
        payload: dict[str, Any] = {"tool_call_id": tool_call_id, "tool_name": tool_name, "message": message}
        if arguments is not None:
            payload["arguments"] = arguments
        self._open_tools[tool_call_id] = tool_name
        self._tool_ids.add(tool_call_id)

        def undo() -> None:
            self._open_tools.pop(tool_call_id, None)
            self._tool_ids.discard(tool_call_id)

        await self._emit("tool_executing", payload, undo)
        return tool_call_id

    async def emit_tool_completed(self, tool_call_id: str, message: str, *, status: str = "success",
                                  duration_ms: float = 0.0, result: dict | None = None,
                                  error: dict | None = None) -> None:
        """Complete an open tool call; status error needs ``error`` ({message, type?})."""
        self._guard(_rr.TOOL_COMPLETED)
        tool_name = self._open_tools.get(tool_call_id)
        if tool_name is None:
            raise AgentUsageError(f"tool_call_id {tool_call_id!r} is not an open tool call of this run "
                                  f"[{_TOOLS.breaches.orphan}]")
        if status not in ("success", "error"):
            raise AgentUsageError(f"status must be 'success' or 'error', not {status!r}")
        if status == "error" and not error:
            error = {"message": clip(message, 1000)}
        self._check_message(message)
        payload: dict[str, Any] = {"tool_call_id": tool_call_id, "tool_name": tool_name, "status": status,
                                   "message": message, "duration_ms": max(0.0, duration_ms)}
        if result is not None:
            payload["result"] = result
        if error is not None:
            payload["error"] = error
        del self._open_tools[tool_call_id]
        await self._emit("tool_completed", payload, lambda: self._open_tools.__setitem__(tool_call_id, tool_name))

    async def emit_progress(self, message: str, *, percent: float | None = None) -> None:
        self._guard(_rr.PROGRESS)
        self._check_message(message)
        payload: dict[str, Any] = {"message": message}
        if percent is not None:
            payload["percent"] = min(100.0, max(0.0, float(percent)))
        await self._emit("progress", payload)

    async def emit_agent_completed(self, message: str, result: dict[str, Any] | None = None) -> None:
        """End the run. ``result`` gets the required fields it lacks.

        ``execution_time_ms`` is measured and ``fallback_used`` is always set
        from what actually happened, because the protocol makes them facts
        about the run, not claims of the agent.
        """
        self._guard(_rr.COMPLETED_EVENT)
        self._check_message(message)
        result = dict(result or {})
        result.setdefault("success", True)
        result.setdefault("steps_generated", 0)
        result.setdefault("has_partial_extraction", False)
        result["execution_time_ms"] = self.elapsed_ms()
        result["fallback_used"] = self.attempt == "fallback"
        self._completed = True
        await self._emit("agent_completed", {"message": message, "result": result},
                         lambda: setattr(self, "_completed", False))

    def tool(self, tool_name: str, message: str, *, arguments: dict | None = None) -> ToolCall:
        """``async with agent.tool("search", "Searching...") as call: ...`` - see :class:`ToolCall`."""
        return ToolCall(self, tool_name, message, arguments)

    @property
    def state(self) -> str:
        """Where the run is in :data:`agent_events.run_rules.TRANSITIONS` (an agent is never headless:
        it is refused the event that would make it so)."""
        if self._completed:
            return _rr.COMPLETED
        if self.attempt is None:
            return _rr.AWAITING_START
        return _rr.FALLBACK if self.attempt == "fallback" else _rr.PRIMARY

    def _guard(self, kind: str) -> None:
        """Refuse ``kind`` when the table's row for the run's state names a rule, or when it would end
        an attempt with tool calls open (the tool family is closed by the end of each attempt)."""
        state = self.state
        nxt, rule_id = RULES.transitions[state, kind]
        if rule_id is not None:
            text = _REFUSALS.get((rule_id, kind)) or _REFUSALS.get((rule_id, None)) \
                or "{kind} in state {state}"
            raise AgentUsageError(text.format(run_id=self.run_id, kind=kind, state=state) + f" [{rule_id}]")
        if (self._open_tools and _TOOLS.closed_by == _rr.ATTEMPT_END and state in RULES.attempt_states
                and nxt != state):
            where = "when the fallback starts" if nxt == _rr.FALLBACK else f"at {kind}"
            raise AgentUsageError(f"tools still open {where}: {sorted(self._open_tools)} [{_TOOLS.breaches.unclosed}]")

    @staticmethod
    def _check_message(message: str) -> None:
        if not isinstance(message, str) or not 0 < len(message) <= MAX_MESSAGE:
            raise AgentUsageError(f"an event message is a string of 1-{MAX_MESSAGE} characters, not {message!r:.60}")

    # -- the run ------------------------------------------------------------

    async def execute(self, request: RunRequest) -> None:
        """Do the work, emitting events; end with :meth:`emit_agent_completed`."""
        raise NotImplementedError(f"{type(self).__name__} must implement execute(request)")

    def request_cancel(self, reason: str) -> bool:
        """Ask the run to stop for ``reason`` (a key of :data:`CANCEL_REASONS`).

        Returns whether the caller should interrupt the run's task: not when
        the run is already ending, so that a late cancel can never cut a
        terminal sequence in half. Idempotent.
        """
        if self._cancel_reason is not None or self._finishing or self._completed:
            return False
        self._cancel_reason = reason
        return True

    async def run(self, request: RunRequest) -> None:
        """Run :meth:`execute` so that the stream always ends well-formed.

        Raises only :class:`ConnectionGone` (the client left: nobody to tell)
        or :class:`asyncio.CancelledError` when cancelled without a reason
        (the connection is being torn down).
        """
        self._t0 = _perf()
        try:
            if self._cancel_reason is None:
                await self.execute(request)
        except asyncio.CancelledError:
            if self._cancel_reason is None or self._finishing or self._completed:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except Exception as exc:  # noqa: BLE001 - any failure becomes a well-formed end
            if self._completed:
                raise
            await self._end(describe(exc), cancelled=False)
            return
        if self._completed:
            return
        if self._cancel_reason is not None:
            error_type, text = CANCEL_REASONS.get(
                self._cancel_reason, ("cancelled", f"The run was stopped ({self._cancel_reason})."))
            await self._end({"message": text, "type": error_type}, cancelled=True)
        else:
            await self._end({"message": f"{type(self).__name__}.execute() returned without agent_completed",
                             "type": "AgentUsageError"}, cancelled=False)

    async def _end(self, error: dict[str, str], *, cancelled: bool) -> None:
        """The terminal sequence: complete open tools with the error, then agent_completed."""
        self._finishing = True
        for tool_call_id in list(self._open_tools):
            await self.emit_tool_completed(tool_call_id, clip(f"Stopped: {error['message']}"), status="error",
                                           error=error)
        if self.attempt is None:
            await self.emit_agent_started("Starting the run", attempt="primary")
        if self._thinking_in_attempt == 0:
            await self.emit_thinking(clip(f"Stopping: {error['message']}"))
        result: dict[str, Any] = {"success": False, "steps_generated": 0, "has_partial_extraction": False,
                                  "error": error}
        if cancelled:
            result["cancelled"] = True
        await self.emit_agent_completed("The run was cancelled" if cancelled else "The run failed", result)
