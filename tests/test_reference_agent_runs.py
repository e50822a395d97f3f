"""The ActionsAgent's streams over a real socket: primary, fallback, cancel, time_sync, concurrency."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent_events.reference_agent import ActionsAgent, OfflinePlanner
from test_reference_agent_support import (
    FAST, ONE_GOAL, PRIMARY_TOOLS, TWO_GOALS, agent, arun, check_well_formed, connect, one_run,
    primary_types, recv, recv_until_completed, result, start_run, tools, types,
)


class ScriptedLLM:
    """A model that answers a fixed text, to drive the parser's three outcomes."""

    def __init__(self, answer: str, delay_s: float = 0.0) -> None:
        self.answer, self.delay_s = answer, delay_s

    async def complete(self, prompt: str) -> str:
        await asyncio.sleep(self.delay_s)
        return self.answer


def actions_with(llm, **kwargs):
    return lambda: ActionsAgent(llm, **kwargs)


@pytest.mark.parametrize("request_text, thinking", [(TWO_GOALS, 3), (ONE_GOAL, 2)])
def test_primary_path_is_exactly_the_spec_sequence(request_text, thinking):
    async def body():
        async with agent(**FAST) as server:
            return await one_run(server.url, "p1", request_text)

    events = arun(body())
    check_well_formed(events)
    assert types(events) == primary_types(thinking)
    assert tools(events) == PRIMARY_TOOLS
    assert {e["agent_name"] for e in events} == {"ActionsAgent"}
    res = result(events)
    plan = res["action_plan"]["steps"]
    assert res["success"] is True and res["fallback_used"] is False and res["has_partial_extraction"] is False
    assert res["steps_generated"] == len(plan) >= 3
    assert all(step["title"] and step["rationale"] for step in plan)
    assert "cancelled" not in res and "error" not in res
    completed = {e["payload"]["tool_name"]: e["payload"] for e in events if e["type"] == "tool_completed"}
    assert completed["prompt_builder"]["result"]["prompt_chars"] > len(request_text)
    assert completed["llm_processor"]["result"]["response_chars"] > 0
    assert completed["action_plan_processor"]["result"]["steps_generated"] == len(plan)


def test_the_plan_follows_the_request():
    async def body():
        async with agent(**FAST) as server:
            return await one_run(server.url, "p1", TWO_GOALS)

    titles = [step["title"] for step in result(arun(body()))["action_plan"]["steps"]]
    assert "Reduce cloud costs by 20%" in titles and "Improve API latency" in titles


def test_simulated_failure_runs_the_real_fallback():
    async def body():
        async with agent(**FAST) as server:
            return await one_run(server.url, "f1", TWO_GOALS, simulate_failure="primary")

    events = arun(body())
    check_well_formed(events)
    fallback_at = [i for i, e in enumerate(events) if e["type"] == "agent_started"][1]
    assert types(events[:fallback_at]) == primary_types(3)[:8]  # up to the failed llm_processor
    assert tools(events) == PRIMARY_TOOLS[:3] + [("tool_completed", "llm_processor", "error")]
    failed = events[fallback_at - 1]["payload"]
    assert failed["error"]["type"] == "LLMError" and "simulate_failure" in failed["error"]["message"]
    assert types(events[fallback_at:]) == ["agent_started", "agent_thinking", "agent_completed"]
    assert events[fallback_at]["payload"]["attempt"] == "fallback"
    res = result(events)
    assert res["success"] is True and res["fallback_used"] is True
    assert res["steps_generated"] == len(res["action_plan"]["steps"]) > 0
    assert res["primary_error"]["type"] == "LLMError"


def test_unparseable_model_output_fails_the_plan_tool_and_falls_back():
    async def body():
        async with agent(agent_factory=actions_with(ScriptedLLM("I cannot help with that."))) as server:
            return await one_run(server.url)

    events = arun(body())
    check_well_formed(events)
    assert tools(events)[-1] == ("tool_completed", "action_plan_processor", "error")
    assert result(events)["fallback_used"] is True and result(events)["success"] is True


def test_salvaged_model_output_reports_partial_extraction():
    answer = "Sure! Here is your plan:\n1. Cut idle instances - they cost money\n2. Cache hot reads: faster pages\n"

    async def body():
        async with agent(agent_factory=actions_with(ScriptedLLM(answer))) as server:
            return await one_run(server.url)

    events = arun(body())
    check_well_formed(events)
    res = result(events)
    assert res["fallback_used"] is False and res["has_partial_extraction"] is True
    assert [s["title"] for s in res["action_plan"]["steps"]] == ["Cut idle instances", "Cache hot reads"]


def test_a_model_timeout_falls_back():
    async def body():
        factory = actions_with(ScriptedLLM("{}", delay_s=5.0), llm_timeout_ms=20)
        async with agent(agent_factory=factory) as server:
            return await one_run(server.url)

    events = arun(body())
    check_well_formed(events)
    llm_done = [e for e in events if e["type"] == "tool_completed" and e["payload"]["tool_name"] == "llm_processor"][0]
    assert llm_done["payload"]["status"] == "error" and "20 ms" in llm_done["payload"]["error"]["message"]
    assert result(events)["fallback_used"] is True


class BrokenFallbackAgent(ActionsAgent):
    def default_plan(self, request):
        raise RuntimeError("the default plan store is unreachable")


def test_a_failing_fallback_still_ends_the_stream_with_success_false():
    async def body():
        async with agent(agent_factory=BrokenFallbackAgent) as server:
            return await one_run(server.url, simulate_failure="primary")

    events = arun(body())
    check_well_formed(events)
    res = result(events)
    assert res["success"] is False and res["fallback_used"] is True
    assert res["error"] == {"message": "the default plan store is unreachable", "type": "RuntimeError"}
    assert types(events)[-4:] == ["tool_completed", "agent_started", "agent_thinking", "agent_completed"]


def test_cancel_mid_tool_completes_the_open_tool_then_the_run():
    async def body():
        async with agent(llm_delay_ms=5000) as server, connect(server.url) as ws:
            await ws.send(start_run("c1"))
            seen = []
            while not (seen and seen[-1]["type"] == "tool_executing" and seen[-1]["payload"]["tool_name"] == "llm_processor"):
                seen.append(await recv(ws))
            await ws.send(json.dumps({"type": "cancel_run", "run_id": "c1"}))
            runs, others = await recv_until_completed(ws, ["c1"], timeout=3)
            return seen + runs["c1"], others

    events, others = arun(body())
    check_well_formed(events)
    assert others == []
    assert types(events)[-3:] == ["tool_executing", "tool_completed", "agent_completed"]
    assert events[-2]["payload"]["status"] == "error" and events[-2]["payload"]["error"]["type"] == "cancelled"
    res = result(events)
    assert res["cancelled"] is True and res["success"] is False and res["fallback_used"] is False


def test_cancel_right_after_start_still_gives_a_well_formed_run():
    async def body():
        async with agent(llm_delay_ms=5000) as server, connect(server.url) as ws:
            await ws.send(start_run("c2"))
            await ws.send(json.dumps({"type": "cancel_run", "run_id": "c2"}))
            runs, _ = await recv_until_completed(ws, ["c2"], timeout=3)
            return runs["c2"]

    events = arun(body())
    check_well_formed(events)
    assert result(events)["cancelled"] is True
    assert "agent_thinking" in types(events)  # even a cut-short attempt says what happened


def test_time_sync_is_answered_with_the_server_clock():
    async def body():
        async with agent(**FAST) as server, connect(server.url) as ws:
            await ws.send(json.dumps({"type": "time_sync", "client_time_ms": 1234.5}))
            return await recv(ws)

    reply = arun(body())
    assert reply["type"] == "time_sync" and reply["client_time_ms"] == 1234.5
    assert reply["server_time_ms"] > 1.7e12  # an epoch in milliseconds, not seconds
    assert "seq" not in reply


def test_the_server_names_runs_the_client_did_not_name():
    async def body():
        async with agent(**FAST) as server, connect(server.url) as ws:
            await ws.send(start_run(None))
            await ws.send(start_run(None))
            runs: dict[str, list[dict]] = {}
            while sum(types(events)[-1:] == ["agent_completed"] for events in runs.values()) < 2:
                event = await recv(ws)
                runs.setdefault(event["run_id"], []).append(event)
            return runs

    runs = arun(body())
    assert len(runs) == 2
    for events in runs.values():
        check_well_formed(events)


def test_ten_connections_five_runs_each_never_mix():
    async def client(url: str, index: int) -> dict[str, list[dict]]:
        async with connect(url) as ws:
            run_ids = [f"conn{index}-run{n}" for n in range(5)]
            for n, run_id in enumerate(run_ids):
                options = {"simulate_failure": "primary"} if n == 4 else {}
                await ws.send(start_run(run_id, f"Goal {index}.{n}: cut costs and speed up builds", **options))
            runs, others = await recv_until_completed(ws, run_ids, timeout=15)
            assert others == []
            return runs

    async def body():
        async with agent(llm_delay_ms=10) as server:
            results = await asyncio.gather(*(client(server.url, i) for i in range(10)))
            return results, server.stats()

    results, stats = arun(body(), timeout=30)
    assert stats["runs_started"] == 50 and stats["runs_in_flight"] == 0
    for index, runs in enumerate(results):
        assert sorted(runs) == sorted(f"conn{index}-run{n}" for n in range(5))
        for run_id, events in runs.items():
            check_well_formed(events)
            assert result(events)["fallback_used"] is run_id.endswith("run4")


def test_default_planner_is_deterministic():
    from agent_events.reference_agent.llm import build_prompt
    from agent_events.reference_agent.plans import extract_goals

    prompt = build_prompt(TWO_GOALS, extract_goals(TWO_GOALS))
    first = arun(OfflinePlanner(0).complete(prompt))
    assert first == arun(OfflinePlanner(0).complete(prompt))
    assert json.loads(first)["steps"][1]["title"] == "Reduce cloud costs by 20%"
