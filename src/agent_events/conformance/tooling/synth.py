"""Synthetic conforming streams, built deterministically.

One builder serves three users: the hypothesis strategies (which draw its
parameters), the benchmarks and memory tests (which need millions of events
fast, without hypothesis), and anyone who wants a known-good transcript to
test a consumer. Everything it builds passes the checker; mutations that
break rules are the strategies' business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import orjson

from agent_events.conformance.offline import transcript

#: The client epoch (ms) synthetic streams start at: 2025-11-25T10:00:00Z.
EPOCH_MS = 1764064800000.0
AGENT_NAME = "ActionsAgent"


@dataclass(frozen=True)
class Tool:
    name: str
    #: executing -> completed, ms (server clock; receive times keep the same gap)
    duration_ms: float = 1.0
    fails: bool = False


@dataclass(frozen=True)
class RunSpec:
    """What one synthetic run does. The defaults are the actions-agent primary path."""

    run_id: str = "run-1"
    conn: str = "c0"
    thinking: int = 2
    tools: tuple[Tool, ...] = (Tool("prompt_builder", 0.5), Tool("llm_processor", 20.0), Tool("action_plan_processor", 0.5))
    progress: int = 1
    #: run the fallback attempt after the primary's last tool (which then fails)
    fallback: bool = False
    fallback_thinking: int = 1
    #: cancel after this many events have been received (None: never)
    cancel_after: int | None = None
    #: include the client's start_run (and cancel_run) frames
    client_frames: bool = True
    #: include receive times ("t")
    timing: bool = True
    #: ms between consecutive events (server clock)
    step_ms: float = 2.0
    #: ms from emission to receipt
    delivery_ms: float = 0.5
    #: server clock minus client clock, ms
    offset_ms: float = 0.0
    start_at: float = EPOCH_MS
    agent_name: str = AGENT_NAME
    #: emit the first event this long after start_run
    first_event_ms: float = 1.0
    extra_payload: dict = field(default_factory=dict, compare=False)


def run_frames(spec: RunSpec) -> list[dict]:
    """The frames of one run, in the transcript's dict form (``msg`` values), in order."""
    frames: list[dict] = []
    server_now = spec.start_at + spec.offset_ms + spec.first_event_ms - spec.delivery_ms
    server_start = server_now
    seq = 0
    received = 0

    def frame(direction: str, msg: dict, t: float) -> dict:
        f = {"t": t, "dir": direction, "conn": spec.conn, "msg": msg}
        if not spec.timing:
            del f["t"]
        return f

    if spec.client_frames:
        frames.append(frame("send", {"type": "start_run", "run_id": spec.run_id, "input": "Create optimization action plan"},
                            spec.start_at))
    cancelled = False

    def emit(type_: str, payload: dict, advance: float | None = None) -> None:
        nonlocal seq, server_now, received, cancelled
        msg = {"type": type_, "run_id": spec.run_id, "seq": seq, "emitted_at": round(server_now, 3),
               "agent_name": spec.agent_name, "payload": {**payload, **spec.extra_payload}}
        t = round(server_now - spec.offset_ms + spec.delivery_ms, 3)
        frames.append(frame("recv", msg, t))
        seq += 1
        received += 1
        server_now += spec.step_ms if advance is None else advance
        if spec.cancel_after is not None and received == spec.cancel_after and not cancelled:
            cancelled = True
            if spec.client_frames:
                frames.append(frame("send", {"type": "cancel_run", "run_id": spec.run_id}, round(t + 0.1, 3)))

    emit("agent_started", {"message": "Creating action plan", "attempt": "primary"})
    steps = 0
    for i in range(spec.thinking):
        if cancelled:
            break
        emit("agent_thinking", {"message": f"Thinking, step {i + 1}", "step": i})
    failed = False
    for n, tool in enumerate(spec.tools, 1):
        if cancelled:
            break
        call_id = f"{spec.run_id}-t{n}"
        last = n == len(spec.tools)
        fails = tool.fails or (spec.fallback and last)
        emit("tool_executing", {"tool_call_id": call_id, "tool_name": tool.name, "message": f"Running {tool.name}"},
             advance=tool.duration_ms)
        done = {"tool_call_id": call_id, "tool_name": tool.name, "message": f"{tool.name} done",
                "status": "error" if (fails or cancelled) else "success", "duration_ms": tool.duration_ms}
        if fails or cancelled:
            done["error"] = {"message": "cancelled" if cancelled and not fails else f"{tool.name} failed"}
        emit("tool_completed", done)
        if fails:
            failed = True
            break
        steps += 1
    fallback_ran = False
    if failed and spec.fallback and not cancelled:
        fallback_ran = True
        emit("agent_started", {"message": "Using the fallback method", "attempt": "fallback"})
        for i in range(spec.fallback_thinking):
            if cancelled:
                break
            emit("agent_thinking", {"message": f"Fallback step {i + 1}"})
    if not cancelled and not failed:
        for i in range(spec.progress):
            if cancelled:
                break
            emit("progress", {"message": "Action plan generation completed", "percent": 100.0})
    result = {"success": not cancelled and (not failed or fallback_ran), "steps_generated": steps,
              "execution_time_ms": round(server_now - server_start, 3),
              "has_partial_extraction": False, "fallback_used": fallback_ran}
    if cancelled:
        result["cancelled"] = True
        result["success"] = False
    emit("agent_completed", {"message": "Action plan ready", "result": result})
    return frames


def interleave(*runs: list[dict]) -> list[dict]:
    """Several runs' frames merged as one client would see them: by time when
    every frame has one (a stable sort keeps each run's order), else round-robin."""
    if all("t" in f for frames in runs for f in frames):
        return sorted((f for frames in runs for f in frames), key=lambda f: f["t"])
    merged: list[dict] = []
    longest = max((len(frames) for frames in runs), default=0)
    for i in range(longest):
        merged.extend(frames[i] for frames in runs if i < len(frames))
    return merged


def frame_line(frame: dict) -> bytes:
    """One transcript line, with ``msg`` re-encoded as the raw ``text`` a recorder writes."""
    record = {k: v for k, v in frame.items() if k != "msg"}
    record["text"] = orjson.dumps(frame["msg"]).decode()
    return orjson.dumps(record) + b"\n"


def transcript_lines(runs: int, *, conns: int = 1, fallback_every: int = 0, header: bool = True,
                     plain: bool = False) -> Iterator[bytes]:
    """A conforming transcript of ``runs`` actions-agent runs (about 11 events each), lazily.

    Runs follow each other in time, spread round-robin over ``conns``
    connections; every ``fallback_every``-th run takes the fallback path.
    ``plain`` writes server messages only, as plain JSONL.
    """
    if header and not plain:
        yield orjson.dumps({transcript.HEADER_KEY: transcript.FORMAT, "url": "synthetic", "started_at": EPOCH_MS}) + b"\n"
    start = EPOCH_MS
    for n in range(runs):
        spec = RunSpec(run_id=f"run-{n}", conn=f"c{n % conns}", start_at=start,
                       fallback=bool(fallback_every) and n % fallback_every == fallback_every - 1)
        for frame in run_frames(spec):
            if plain:
                if frame["dir"] == "recv":
                    yield orjson.dumps(frame["msg"]) + b"\n"
            else:
                yield frame_line(frame)
        start += 50.0
