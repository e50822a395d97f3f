"""A realistic AG-UI 1.1 recording for measurement 10, written once as NDJSON.

Many sequential runs on one stream, as an AG-UI client logs a conversation: each run
opens with ``RUN_STARTED``, plans in a step with a reasoning span (``REASONING_START``,
one streamed reasoning message, ``REASONING_END``), acts in a step (an assistant message
streamed in fragments, one or two tool calls with their arguments streamed as JSON
fragments and each answered by ``TOOL_CALL_RESULT``), answers in a step (a longer
streamed message), and finishes with ``RUN_FINISHED`` and its ``result``. Every event
carries a millisecond ``timestamp`` (AG-UI's optional base field; an AG-UI validator
warns on a stream without any). Sizes vary per run from a seeded generator, so the file
is the same on every machine and every run.

The stream is valid against the vendored AG-UI 1.1 schema and breaks none of the
``ag-ui`` dialect's rules, nor any of ``ag-ui-validate``'s: measurement 10 asserts 0
findings from both tools, and ``tests/test_benchmark_ag_ui.py`` checks it on a short one.
"""

from __future__ import annotations

import random
from typing import Iterator

import orjson

THREAD = "thread-bench"
WORDS = ("the", "plan", "needs", "three", "steps", "first", "we", "check", "inventory", "then", "order",
         "parts", "and", "schedule", "delivery", "for", "Tuesday", "results", "look", "good", "so", "far",
         "weather", "in", "Lisbon", "is", "sunny", "with", "a", "light", "breeze", "tomorrow")
TOOLS = (("search", ("query", "limit")), ("get_weather", ("city", "unit")), ("create_ticket", ("title", "priority")))


def _text(rng: random.Random, words: int) -> list[str]:
    """A message's fragments: one to three words each, as a model streams them."""
    out, left = [], words
    while left > 0:
        n = min(left, rng.randint(1, 3))
        out.append(" ".join(rng.choice(WORDS) for _ in range(n)) + " ")
        left -= n
    return out


def run_events(index: int, rng: random.Random, clock: list[float]) -> list[dict]:
    """One run's events (about 40 on average), stamped from ``clock`` (ms, advanced in place)."""
    run_id = f"run-{index:07d}"
    events: list[dict] = []

    def add(event: dict) -> None:
        clock[0] += rng.uniform(0.5, 25.0)
        event["timestamp"] = round(clock[0])
        events.append(event)

    add({"type": "RUN_STARTED", "threadId": THREAD, "runId": run_id, "protocolVersion": "1.1"})
    add({"type": "STEP_STARTED", "stepName": "plan"})
    span, thought = f"{run_id}-span", f"{run_id}-think"
    add({"type": "REASONING_START", "messageId": span})
    add({"type": "REASONING_MESSAGE_START", "messageId": thought, "role": "reasoning"})
    for delta in _text(rng, rng.randint(4, 12)):
        add({"type": "REASONING_MESSAGE_CONTENT", "messageId": thought, "delta": delta})
    add({"type": "REASONING_MESSAGE_END", "messageId": thought})
    add({"type": "REASONING_END", "messageId": span})
    add({"type": "STEP_FINISHED", "stepName": "plan"})

    add({"type": "STEP_STARTED", "stepName": "act"})
    intro = f"{run_id}-m1"
    add({"type": "TEXT_MESSAGE_START", "messageId": intro, "role": "assistant"})
    for delta in _text(rng, rng.randint(3, 10)):
        add({"type": "TEXT_MESSAGE_CONTENT", "messageId": intro, "delta": delta})
    add({"type": "TEXT_MESSAGE_END", "messageId": intro})
    for call in range(rng.randint(1, 2)):
        name, params = rng.choice(TOOLS)
        call_id = f"{run_id}-tc{call + 1}"
        add({"type": "TOOL_CALL_START", "toolCallId": call_id, "toolCallName": name, "parentMessageId": intro})
        args = orjson.dumps({params[0]: " ".join(rng.choice(WORDS) for _ in range(3)),
                             params[1]: rng.randint(1, 20)}).decode()
        cuts = sorted(rng.sample(range(1, len(args)), 2))
        for part in (args[:cuts[0]], args[cuts[0]:cuts[1]], args[cuts[1]:]):
            add({"type": "TOOL_CALL_ARGS", "toolCallId": call_id, "delta": part})
        add({"type": "TOOL_CALL_END", "toolCallId": call_id})
        add({"type": "TOOL_CALL_RESULT", "messageId": f"{call_id}-result", "toolCallId": call_id, "role": "tool",
             "content": orjson.dumps({"ok": True, "items": rng.randint(0, 9)}).decode()})
    add({"type": "STEP_FINISHED", "stepName": "act"})

    add({"type": "STEP_STARTED", "stepName": "answer"})
    answer = f"{run_id}-m2"
    add({"type": "TEXT_MESSAGE_START", "messageId": answer, "role": "assistant"})
    for delta in _text(rng, rng.randint(8, 30)):
        add({"type": "TEXT_MESSAGE_CONTENT", "messageId": answer, "delta": delta})
    add({"type": "TEXT_MESSAGE_END", "messageId": answer})
    add({"type": "STEP_FINISHED", "stepName": "answer"})
    add({"type": "RUN_FINISHED", "threadId": THREAD, "runId": run_id, "result": {"status": "done"}})
    return events


def events(minimum: int, seed: int = 23) -> Iterator[dict]:
    """Whole runs until at least ``minimum`` events have been given (the same ones for a seed)."""
    rng = random.Random(seed)
    clock = [1_780_000_000_000.0]
    given = index = 0
    while given < minimum:
        index += 1
        batch = run_events(index, rng, clock)
        given += len(batch)
        yield from batch


def write_ndjson(path, minimum: int, seed: int = 23) -> tuple[int, int]:
    """Write the recording as NDJSON (one event per line); returns (events, runs)."""
    count = runs = 0
    dumps = orjson.dumps
    with open(path, "wb", buffering=1 << 20) as out:
        for event in events(minimum, seed):
            out.write(dumps(event) + b"\n")
            count += 1
            runs += event["type"] == "RUN_STARTED"
    return count, runs
