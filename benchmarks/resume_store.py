"""Measurement 9: what the shared resume store (``--resume-store redis://...``, issue 24) costs.

The same reference agent twice in the same run, interleaved: its runs' logs in process (the
embedded default) and also in a Redis stream per run. Reported: events/s and the agent's CPU per
event (the baseline is the in-process agent), redis-server's own CPU per event (the store's cost
that the agent's figure does not show), and RSS per in-flight run of both (the store must not
make a run heavier in the agent: its frames leave through one pipeline per loop turn).

Needs Debian's ``redis-server``; without it the row says so and is not judged.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
import subprocess
import time
from typing import Any, Iterator

import psutil

from benchmarks import measurements as m
from agent_events.conformance.loadgen.server import reference_agent_command, spawn_server

AGENT_ARGS = ("--llm-delay-ms", "0", "--max-connections", "4096", "--max-runs-per-connection", "64")


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, int] | None]:
    """``(url, pid)`` of a throw-away redis-server on 127.0.0.1 (no persistence), or None without one."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process.pid
    finally:
        process.kill()
        process.wait(10)


async def resume_store_cost(scale: m.Scale) -> dict[str, Any]:
    with redis_server() as redis:
        if redis is None:
            return m._result(9, "resume store cost (redis)", "us", "redis-server is not installed", math.nan,
                             math.nan, "the same agent, in-process buffers", "report", None, {"skipped": True})
        url, redis_pid = redis
        redis_proc = psutil.Process(redis_pid)
        commands = {"memory": reference_agent_command(*AGENT_ARGS),
                    "redis": reference_agent_command(*AGENT_ARGS, "--resume-store", url)}
        samples: dict[str, list[dict]] = {name: [] for name in commands}
        store_us: list[float] = []
        async with contextlib.AsyncExitStack() as stack:
            servers = {name: await stack.enter_async_context(spawn_server(cmd)) for name, cmd in commands.items()}
            for _ in range(scale.repeats):
                for name in commands:  # interleaved: a noisy minute hurts both alike
                    before = redis_proc.cpu_times()
                    sample = await m._drive(servers[name].url, servers[name].pid, scale)
                    after = redis_proc.cpu_times()
                    samples[name].append(sample)
                    if name == "redis" and sample["events"]:
                        used = (after.user + after.system) - (before.user + before.system)
                        store_us.append(used * 1e6 / sample["events"])
        med = {name: {key: m._median([s[key] for s in samples[name]]) for key in ("events_per_s", "server_us_per_event")}
               for name in commands}
        delay = f"{scale.memory_delay_ms:g}"
        per_connection = scale.memory_per_connection
        memory_args = ("--llm-delay-ms", delay, "--max-runs-per-connection", str(per_connection + 1))
        rss = {"memory": await m._memory_of(reference_agent_command(*memory_args), scale),
               "redis": await m._memory_of(reference_agent_command(*memory_args, "--resume-store", url), scale)}
    agent_us, base_us = med["redis"]["server_us_per_event"], med["memory"]["server_us_per_event"]
    kib = {name: round((r["per_run_bytes"] or math.nan) / 1024.0, 2) for name, r in rss.items()}
    return m._result(
        9, "resume store cost (redis)", "us",
        f"reference agent with --resume-store (a local redis-server) against in-process buffers, "
        f"{scale.throughput_connections} connections x {scale.throughput_in_flight} runs in flight, --llm-delay-ms 0, "
        f"median of {scale.repeats}; RSS as measurement 3",
        round(agent_us, 2), round(base_us, 2), "the same agent, in-process buffers only",
        "report: the store's cost per event; RSS per in-flight run unchanged",
        None,
        {"events_per_s": {name: round(v["events_per_s"]) for name, v in med.items()},
         "redis_server_us_per_event": round(m._median(store_us), 2),
         "kib_per_in_flight_run": kib,
         "runs_completed": {name: r["runs_completed"] for name, r in rss.items()},
         "violations": {name: r["violations"] for name, r in rss.items()},
         "samples": samples})
