"""The model behind ``llm_processor``: an interface and an offline default.

The reference agent must run anywhere with no network and no keys, and give
the same answer for the same request so that tests and demos are repeatable.
So the default "model" is a deterministic planner that reads the request out
of the prompt and answers the JSON a well-behaved model would. Plug a real
model in by passing any object with ``async complete(prompt) -> str``.
"""

from __future__ import annotations

import asyncio
import functools
import time
import types
from typing import Any, Awaitable, Generator, Protocol, Sequence, runtime_checkable

import orjson

from agent_events.reference_agent.plans import plan_for_request

_REQUEST_START = "<<<REQUEST\n"
_REQUEST_END = "\nREQUEST>>>"


@runtime_checkable
class LLM(Protocol):
    async def complete(self, prompt: str) -> str:
        """The model's answer to ``prompt``; raise on failure (the agent falls back)."""
        ...


class LLMError(RuntimeError):
    """The model failed: outage, timeout, refusal."""


def build_prompt(request: str, goals: Sequence[str]) -> str:
    """The prompt the ActionsAgent sends: instructions, the request verbatim, the goals it saw."""
    listed = "\n".join(f"- {goal}" for goal in goals) or "- (none stated; propose how to clarify)"
    return (
        "You are an operations planner. Turn the user's request into an action plan.\n"
        'Answer with JSON only: {"steps": [{"title": "...", "rationale": "..."}]}.\n'
        f"{_REQUEST_START}{request}{_REQUEST_END}\n"
        f"Goals identified:\n{listed}\n"
    )


def request_from_prompt(prompt: str) -> str:
    start = prompt.find(_REQUEST_START)
    end = prompt.rfind(_REQUEST_END)
    if start < 0 or end < start:
        return prompt
    return prompt[start + len(_REQUEST_START):end]


async def within(awaitable: Awaitable[Any], seconds: float) -> Any:
    """``await awaitable``, raising :class:`TimeoutError` if it waits longer than ``seconds``.

    What ``async with asyncio.timeout(seconds)`` does, without arming a timer for a coroutine that
    finishes without waiting: its first step runs here, and only if it then waits is the rest
    bounded, by the deadline taken before that step. A model that answers at once (a cache, the
    offline planner) cannot hang the user, and a timer per model call was 4.8 us against 1.0
    without (``asyncio.timeout`` schedules a timer handle and cancels it; issue 26).
    """
    if type(awaitable) is not types.CoroutineType:
        async with asyncio.timeout(seconds):
            return await awaitable
    started = time.monotonic()
    try:
        first = awaitable.send(None)
    except StopIteration as done:  # answered without waiting
        return done.value
    # the loop is asked for only now: on Linux, CPython 3.11's get_running_loop() makes a getpid()
    # system call each time (its fork check), and a model that answers at once needs no deadline.
    # The first step's duration is the same on any clock, so the deadline is on the loop's own.
    deadline = asyncio.get_running_loop().time() + seconds - (time.monotonic() - started)
    async with asyncio.timeout_at(deadline):
        return await _carry_on(awaitable, first)


@types.coroutine
def _carry_on(coro: Any, first: Any) -> Generator[Any, Any, Any]:
    """The rest of a coroutine whose first step yielded ``first``: ``yield from`` (PEP 380), picked up
    after that step, so the task sees every wait and cancellation as if it awaited ``coro`` itself."""
    to_yield = first
    while True:
        try:
            sent = yield to_yield
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - a cancellation (the timeout's) goes into the coroutine
            try:
                to_yield = coro.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                to_yield = coro.send(sent)
            except StopIteration as done:
                return done.value


class OfflinePlanner:
    """A deterministic stand-in for a model: real plans, no network.

    ``delay_ms`` simulates model latency so a demo looks like an agent at work
    (and so runs overlap under load); 0 answers at once, for benchmarks.
    """

    def __init__(self, delay_ms: float = 25.0) -> None:
        self.delay_ms = delay_ms

    async def complete(self, prompt: str) -> str:
        if self.delay_ms > 0:
            await asyncio.sleep(self.delay_ms / 1000.0)
        return _answer(request_from_prompt(prompt))


@functools.lru_cache(maxsize=256)
def _answer(request: str) -> str:
    """Deterministic, so the same request need not be planned twice."""
    return orjson.dumps(plan_for_request(request).as_payload()).decode()


class SimulatedOutage:
    """A model that is down. ``options.simulate_failure: "primary"`` swaps it in.

    Failing inside the real ``llm_processor`` step (rather than jumping to a
    separate fake path) is what makes the simulation honest: the open tool is
    completed with status error and the real fallback code runs.
    """

    async def complete(self, prompt: str) -> str:
        raise LLMError('simulated model outage (options.simulate_failure = "primary")')
