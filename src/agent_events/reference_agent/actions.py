"""ActionsAgent: the seed's ActionsToMeetGoalsSubAgent, emitting protocol v1.

Primary path: agent_started -> 2 or 3 agent_thinking -> prompt_builder ->
llm_processor -> action_plan_processor (each a tool pair) -> progress ->
agent_completed with real counts. When anything on it fails (a tool raises,
the model times out or answers something that is not a plan) the failing
tool completes with status error and the fallback path runs: agent_started
(attempt fallback) -> agent_thinking -> the default plan -> agent_completed
with ``fallback_used: true``. If the fallback fails too, BaseAgent still ends
the run with ``success: false``.

The seams a test or a custom deployment overrides are methods, not flags:
:meth:`ActionsAgent.parse_response` (the ActionPlanBuilder),
:meth:`ActionsAgent.default_plan` (its fallback), and the ``llm`` object.
"""

from __future__ import annotations

from agent_events.reference_agent.base import BaseAgent, RunRequest, describe
from agent_events.reference_agent.llm import LLM, LLMError, OfflinePlanner, SimulatedOutage, build_prompt, within
from agent_events.reference_agent.plans import ActionPlan, default_action_plan, extract_goals, parse_plan


class ActionsAgent(BaseAgent):
    """Turns a request into an action plan, with a fallback that always answers."""

    name = "ActionsAgent"
    supports_simulate_failure = True

    def __init__(self, llm: LLM | None = None, *, llm_timeout_ms: float = 10_000.0) -> None:
        super().__init__()
        self.llm: LLM = llm if llm is not None else OfflinePlanner()
        self.llm_timeout_ms = llm_timeout_ms

    async def execute(self, request: RunRequest) -> None:
        try:
            await self.execute_primary(request)
        except Exception as exc:  # noqa: BLE001 - every primary failure falls back, by design
            await self.execute_fallback(request, exc)

    # -- primary ------------------------------------------------------------

    async def execute_primary(self, request: RunRequest) -> None:
        await self.emit_agent_started("Creating action plan based on optimization strategies and data analysis")
        await self.emit_thinking("Starting action plan generation based on optimization strategies...", step=1)
        goals = extract_goals(request.input)
        await self.emit_thinking("Analyzing optimization recommendations and data insights...", step=2)
        if len(goals) > 1:
            await self.emit_thinking(f"Found {len(goals)} goals in the request; planning a step for each", step=3)

        async with self.tool("prompt_builder", "Building prompt from optimization data...",
                             arguments={"input_chars": len(request.input), "goals": len(goals)}) as call:
            prompt = build_prompt(request.input, goals)
            call.done("Prompt built successfully", prompt_chars=len(prompt))

        llm = SimulatedOutage() if request.simulate_failure == "primary" else self.llm
        async with self.tool("llm_processor", "Processing with AI model...",
                             arguments={"prompt_chars": len(prompt)}) as call:
            answer = await self.ask_llm(llm, prompt)
            call.done("AI processing complete", response_chars=len(answer))

        async with self.tool("action_plan_processor", "Creating structured action plan...") as call:
            plan = self.parse_response(answer)
            call.done("Action plan structured successfully", steps_generated=len(plan.steps),
                      partial_extraction=plan.partial)

        await self.emit_progress("Action plan generation completed", percent=100)
        count = len(plan.steps)
        await self.emit_agent_completed(
            f"Action plan ready with {count} step{'s' if count != 1 else ''}",
            {"success": True, "steps_generated": count, "has_partial_extraction": plan.partial,
             "action_plan": plan.as_payload()})

    async def ask_llm(self, llm: LLM, prompt: str) -> str:
        """One model call, bounded: a model that hangs must not hang the user."""
        try:
            answer = await within(llm.complete(prompt), self.llm_timeout_ms / 1000.0)
        except TimeoutError:
            raise LLMError(f"the model did not answer within {self.llm_timeout_ms:g} ms") from None
        if not isinstance(answer, str):
            raise LLMError(f"the model answered {type(answer).__name__}, not text")
        return answer

    def parse_response(self, answer: str) -> ActionPlan:
        """The seed's ActionPlanBuilder.process_llm_response."""
        return parse_plan(answer)

    # -- fallback -----------------------------------------------------------

    async def execute_fallback(self, request: RunRequest, cause: BaseException) -> None:
        reason = describe(cause)
        await self.emit_agent_started("Creating fallback action plan...", attempt="fallback")
        await self.emit_thinking(f"Switching to fallback generation: {reason['message']}")
        plan = self.default_plan(request)
        count = len(plan.steps)
        await self.emit_agent_completed(
            f"Fallback action plan created with {count} steps",
            {"success": True, "steps_generated": count, "has_partial_extraction": False,
             "action_plan": plan.as_payload(), "primary_error": reason})

    def default_plan(self, request: RunRequest) -> ActionPlan:
        """The seed's ActionPlanBuilder.get_default_action_plan."""
        return default_action_plan(request.input)
