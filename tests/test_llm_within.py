"""``llm.within``: a model call bounded as ``asyncio.timeout`` bounds it, without a timer for an answer at once."""

from __future__ import annotations

import asyncio

import pytest

from agent_events.reference_agent.llm import OfflinePlanner, build_prompt, within


def run(coro):
    return asyncio.run(coro)


async def answer_at_once():
    return "now"


async def answer_after(seconds: float, log: list | None = None):
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        if log is not None:
            log.append("cancelled")
        raise
    return f"after {seconds}"


def test_an_answer_at_once_arms_no_timer():
    async def body():
        loop = asyncio.get_running_loop()
        before = len(loop._scheduled)  # the loop's timer heap: asyncio.timeout would push one
        value = await within(answer_at_once(), 10.0)
        return value, len(loop._scheduled) - before

    assert run(body()) == ("now", 0)


@pytest.mark.parametrize("first_wait", [0.0, 0.01])  # sleep(0) yields a bare None; sleep(0.01) a future
def test_a_waiting_answer_within_the_bound_is_returned(first_wait):
    assert run(within(answer_after(first_wait), 5.0)) == f"after {first_wait}"


def test_a_waiting_answer_past_the_bound_is_a_timeout_and_the_model_is_cancelled():
    log: list = []

    async def body():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(TimeoutError):
            await within(answer_after(10.0, log), 0.05)
        return loop.time() - t0

    assert run(body()) < 5.0
    assert log == ["cancelled"]


def test_the_bound_counts_from_the_call_not_from_the_first_wait():
    async def slow_start():
        import time
        time.sleep(0.06)  # a first step that blocks the loop (a model doing work before it awaits)
        await asyncio.sleep(0.2)
        return "late"

    with pytest.raises(TimeoutError):
        run(within(slow_start(), 0.1))


def test_a_cancellation_from_outside_stays_a_cancellation():
    log: list = []

    async def body():
        task = asyncio.ensure_future(within(answer_after(10.0, log), 5.0))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(body())
    assert log == ["cancelled"]


@pytest.mark.parametrize("when", ["first step", "after a wait"])
def test_the_models_own_errors_pass_through(when):
    async def failing():
        if when == "after a wait":
            await asyncio.sleep(0.001)
        raise ValueError("model broke")

    with pytest.raises(ValueError, match="model broke"):
        run(within(failing(), 5.0))


def test_an_awaitable_that_is_not_a_coroutine_is_bounded_too():
    async def body():
        loop = asyncio.get_running_loop()
        never = loop.create_future()
        with pytest.raises(TimeoutError):
            await within(never, 0.02)
        ready = loop.create_future()
        loop.call_soon(ready.set_result, "set")
        return await within(ready, 5.0)

    assert run(body()) == "set"


def test_the_offline_planner_answers_the_same_through_within():
    prompt = build_prompt("Cut cloud spend by 10%", ["Cut cloud spend by 10%"])

    async def body():
        planner = OfflinePlanner(delay_ms=0)
        direct = await planner.complete(prompt)
        bounded = await within(planner.complete(prompt), 1.0)
        delayed = await within(OfflinePlanner(delay_ms=5).complete(prompt), 1.0)
        return direct, bounded, delayed

    direct, bounded, delayed = run(body())
    assert direct == bounded == delayed and '"steps"' in direct
