"""The five measurements of issue 8, each with a baseline measured in the same run.

The machine is shared and small (2 cores: one for the server, one for the
client), so every figure comes with a baseline taken minutes apart on the
same machine, the ratio is what is compared with a target, and each
throughput figure also comes as server CPU time per event, which other
processes on the machine disturb far less than wall-clock rates.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks.bare_server import INPUT
from benchmarks.driver import CountingDriver
from agent_events import _native
from agent_events.conformance.core import profiles, schema_validation
from agent_events.conformance.live.wire import Endpoint
from agent_events.conformance.loadgen.engine import LoadOptions, run_load
from agent_events.conformance.loadgen.server import ServerWatch, reference_agent_command, spawn_server

BARE = [sys.executable, "-m", "benchmarks.bare_server"]


@dataclass(frozen=True)
class Scale:
    """How big each measurement is: ``FULL`` for the recorded numbers, ``QUICK`` for a smoke run."""

    repeats: int = 3
    throughput_connections: int = 100
    throughput_in_flight: int = 5
    throughput_warmup_s: float = 0.5
    throughput_window_s: float = 3.0
    latency_connections: int = 100
    latency_rate: float = 2000.0
    latency_duration_s: float = 5.0
    memory_runs: int = 1000
    memory_connections: int = 100
    memory_delay_ms: float = 3000.0
    memory_ramp_s: float = 1.0
    checker_events: int = 1_000_000
    checker_baseline_messages: int = 20_000
    harness_connections: int = 20
    harness_runs: int = 500
    harness_window_s: float = 2.0
    noise_probe_s: float = 2.0
    ag_ui_events: int = 200_000
    ag_ui_repeats: int = 5

    @property
    def memory_per_connection(self) -> int:
        return max(1, self.memory_runs // self.memory_connections)


FULL = Scale()
QUICK = Scale(repeats=1, throughput_warmup_s=0.15, throughput_window_s=0.5, latency_duration_s=0.6,
              memory_runs=200, memory_delay_ms=400.0, memory_ramp_s=0.1, checker_events=50_000,
              checker_baseline_messages=1_000, harness_connections=10, harness_runs=10, harness_window_s=0.4,
              noise_probe_s=0.2, ag_ui_events=20_000, ag_ui_repeats=1)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _ratio(value: float, baseline: float) -> float | None:
    return round(value / baseline, 3) if baseline and not math.isnan(baseline) and not math.isnan(value) else None


def _result(id_: int, name: str, unit: str, setup: str, value: float, baseline: float, baseline_label: str,
            target: str, met: bool | None, details: dict[str, Any]) -> dict[str, Any]:
    """One row of the table: a figure, its same-run baseline, their ratio, and the target it answers."""
    return {"id": id_, "name": name, "unit": unit, "setup": setup, "value": value, "baseline": baseline,
            "baseline_label": baseline_label, "ratio": _ratio(value, baseline), "target": target, "met": met,
            "details": details}


def noise_probe(seconds: float, sleep_s: float = 0.0005) -> dict[str, float]:
    """How late this machine wakes a sleeping process: the floor under every latency figure."""
    late = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        time.sleep(sleep_s)
        late.append((time.perf_counter() - t - sleep_s) * 1000.0)
    late.sort()
    n = len(late)
    return {"p50_ms": round(late[n // 2], 3), "p99_ms": round(late[int(n * 0.99)], 3),
            "p99.9_ms": round(late[min(n - 1, int(n * 0.999))], 3), "max_ms": round(late[-1], 3), "samples": n}


# -- 1. throughput ---------------------------------------------------------------------

async def _drive(url: str, pid: int, scale: Scale) -> dict[str, float]:
    driver = CountingDriver(url, scale.throughput_connections, scale.throughput_in_flight, INPUT)
    await driver.connect()
    watch = ServerWatch(pid)
    try:
        events, runs, elapsed = await driver.measure(scale.throughput_warmup_s, scale.throughput_window_s, watch.begin)
    finally:
        driver.close()
    server = watch.end()
    return {"events_per_s": events / elapsed, "runs": runs, "events": events,
            "server_us_per_event": server["cpu_seconds"] * 1e6 / events if events else math.nan,
            "server_cpu_percent": server["cpu_percent"]}


async def throughput(servers: dict[str, Any], scale: Scale) -> dict[str, Any]:
    order = ("agent", "agent_v10", "agent_keep6", "agent_resume_off", "bare", "bare_batched")
    samples: dict[str, list[dict]] = {name: [] for name in order}
    for _ in range(scale.repeats):
        for name in order:  # interleaved, so a noisy minute hurts every series alike
            samples[name].append(await _drive(servers[name].url, servers[name].pid, scale))
    med = {name: {key: _median([s[key] for s in samples[name]]) for key in ("events_per_s", "server_us_per_event")}
           for name in order}
    agent, bare = med["agent"]["events_per_s"], med["bare"]["events_per_s"]
    ratio = _ratio(agent, bare)
    cpu_ratio = _ratio(med["bare"]["server_us_per_event"], med["agent"]["server_us_per_event"])
    return _result(
        1, "reference agent throughput", "events/s",
        f"{scale.throughput_connections} connections x {scale.throughput_in_flight} runs in flight, "
        f"closed loop, --llm-delay-ms 0, counting client, median of {scale.repeats}",
        round(agent), round(bare), "bare websockets (await send per message)",
        ">= 20,000 events/s and >= 60% of the baseline", agent >= 20_000 and ratio is not None and ratio >= 0.6,
        {"server_us_per_event": {n: round(med[n]["server_us_per_event"], 2) for n in order},
         "cpu_ratio": cpu_ratio,
         "capacity_events_per_cpu_s": {n: round(1e6 / med[n]["server_us_per_event"]) for n in order},
         "bare_batched_events_per_s": round(med["bare_batched"]["events_per_s"]),
         # issue 26 target 1: resume on (1.1) within 10 % of the same agent speaking 1.0, and at least
         # half the one-write-per-run ceiling, both in server CPU per event (what the load on the
         # shared machine disturbs least) and events/s
         "resume_cost": {
             "events_per_s_vs_1_0": _ratio(agent, med["agent_v10"]["events_per_s"]),
             "cpu_vs_1_0": _ratio(med["agent_v10"]["server_us_per_event"], med["agent"]["server_us_per_event"]),
             "cpu_vs_one_write_ceiling": _ratio(med["bare_batched"]["server_us_per_event"],
                                                med["agent"]["server_us_per_event"]),
             "target": "cpu_vs_1_0 >= 0.9 and cpu_vs_one_write_ceiling >= 0.5",
             # where it goes: the finished runs a connection keeps for a late resume (64 against 6),
             # and everything else resume does (6 kept against resume off)
             "breakdown_us_per_event": {
                 "finished_runs_kept": round(med["agent"]["server_us_per_event"]
                                             - med["agent_keep6"]["server_us_per_event"], 2),
                 "everything_else": round(med["agent_keep6"]["server_us_per_event"]
                                          - med["agent_resume_off"]["server_us_per_event"], 2)}},
         "samples": samples})


# -- 2. latency ----------------------------------------------------------------------------

def _endpoint_options(url: str, **overrides) -> LoadOptions:
    options = dict(endpoint=Endpoint(url), profile=profiles.get("actions-agent"), input=INPUT)
    options.update(overrides)
    return LoadOptions(**options)


async def latency(servers: dict[str, Any], scale: Scale) -> dict[str, Any]:
    samples: dict[str, list[dict]] = {"agent": [], "bare": []}
    for _ in range(scale.repeats):
        for name in samples:
            result = await run_load(_endpoint_options(
                servers[name].url, connections=scale.latency_connections, runs_per_connection=4,
                rate=scale.latency_rate, duration=scale.latency_duration_s))
            samples[name].append({"delivery": result.delivery, "events_per_s": round(result.events_per_s),
                                  "violations": sum(result.checker.violation_counts.values()),
                                  "violations_by_rule": dict(result.checker.violation_counts),
                                  "worst": [f"{v.rule_id}: {v.observed}" for v in result.checker.violations[:2]],
                                  "generator_lag_ms": result.generator_lag})
    noise = noise_probe(scale.noise_probe_s)

    def med(name: str, key: str) -> float:
        return _median([s["delivery"][key] for s in samples[name] if s["delivery"][key] is not None])

    p99, bare_p99 = med("agent", "p99"), med("bare", "p99")
    violations = sum(s["violations"] for s in samples["agent"])
    return _result(
        2, "delivery latency p99", "ms",
        f"open loop at {scale.latency_rate:g} events/s over {scale.latency_connections} connections, "
        f"{scale.latency_duration_s:g} s, --llm-delay-ms 0, every event checked, median of {scale.repeats}",
        round(p99, 3), round(bare_p99, 3), "bare websockets, same load", "p99 <= 2 ms, zero violations",
        p99 <= 2.0 and violations == 0,
        {"agent_ms": {k: med("agent", k) for k in ("p50", "p99", "p99.9", "max")},
         "bare_ms": {k: med("bare", k) for k in ("p50", "p99", "p99.9", "max")},
         "violations": violations, "machine_wakeup_lateness": noise, "samples": samples})


# -- 3. memory --------------------------------------------------------------------------------

async def _memory_of(command: list[str], scale: Scale) -> dict[str, Any]:
    per_connection = scale.memory_per_connection
    async with spawn_server(command) as server:
        watch = ServerWatch(server.pid)
        result = await run_load(_endpoint_options(
            server.url, connections=scale.memory_connections, runs_per_connection=per_connection,
            runs=scale.memory_runs, ramp_up=scale.memory_ramp_s, server=watch, sample_interval=0.05))
    stats = result.server
    return {"per_run_bytes": stats["rss_growth_per_in_flight_run_bytes"], "in_flight_peak": stats["in_flight_peak"],
            "rss_start_bytes": stats["rss_start_bytes"], "rss_peak_bytes": stats["rss_peak_bytes"],
            "runs_completed": result.runs_completed, "violations": sum(result.checker.violation_counts.values())}


async def memory(scale: Scale) -> dict[str, Any]:
    per_connection = scale.memory_per_connection
    delay = f"{scale.memory_delay_ms:g}"
    agent = await _memory_of(reference_agent_command(
        "--llm-delay-ms", delay, "--max-runs-per-connection", str(per_connection + 1)), scale)
    bare = await _memory_of([*BARE, "--delay-ms", delay], scale)
    kib = (agent["per_run_bytes"] or math.nan) / 1024.0
    bare_kib = (bare["per_run_bytes"] or math.nan) / 1024.0
    return _result(
        3, "RSS per in-flight run", "KiB",
        f"{scale.memory_runs} concurrent runs ({scale.memory_connections} connections x {per_connection}), "
        f"--llm-delay-ms {delay}, ramped over {scale.memory_ramp_s:g} s; RSS growth at the peak / runs in flight",
        round(kib, 2), round(bare_kib, 2), "bare websockets, a task per run",
        "<= 64 KiB, every run completes, zero violations",
        kib <= 64 and agent["runs_completed"] == scale.memory_runs and agent["violations"] == 0
        and agent["in_flight_peak"] >= scale.memory_runs,
        {"agent": agent, "bare": bare})


# -- 4. checker ----------------------------------------------------------------------------------

def _jsonschema_rate(path: Path, messages: int) -> float:
    """Plain jsonschema on the same transcript: parse each line, validate each message, no sequence logic."""
    from agent_events import schemas

    validator = schemas.validator(schemas.SERVER_MESSAGE)
    loads = orjson.loads
    done = 0
    t0 = time.perf_counter()
    with path.open("rb") as stream:
        for line in stream:
            record = loads(line)
            if record.get("dir") != "recv":
                continue
            validator.is_valid(loads(record["text"]))
            done += 1
            if done >= messages:
                break
    return done / (time.perf_counter() - t0)


async def checker(scale: Scale) -> dict[str, Any]:
    from agent_events.conformance.tooling import synth

    runs = math.ceil(scale.checker_events / 11)  # a synthetic actions-agent run has 11 events
    with tempfile.TemporaryDirectory(prefix="agent-events-bench-") as tmp:
        path = Path(tmp) / "transcript.jsonl"
        with path.open("wb", buffering=1 << 20) as out:
            out.writelines(synth.transcript_lines(runs))
        size = path.stat().st_size
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent_events.conformance.cli", "validate", str(path), "--format", "json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        t0 = time.perf_counter()
        watch = ServerWatch(process.pid)
        watch.begin()
        communicate = asyncio.ensure_future(process.communicate())
        while not communicate.done():
            watch.sample(0)
            await asyncio.sleep(0.05)
        stdout, stderr = communicate.result()
        elapsed = time.perf_counter() - t0
        usage = watch.end()
        if process.returncode != 0:
            raise RuntimeError(f"validate exited {process.returncode}: {stderr.decode()[-500:]}")
        summary = orjson.loads(stdout)["summary"]
        baseline = _jsonschema_rate(path, scale.checker_baseline_messages)
    events = summary["events"]
    rate = events / elapsed
    ratio = _ratio(rate, baseline)
    return _result(
        4, "checker throughput (agent-events validate)", "events/s",
        f"a generated {events:,}-event transcript ({size / 2**20:.0f} MiB), whole command incl. start-up",
        round(rate), round(baseline), "plain jsonschema per message, no sequence logic",
        ">= 100,000 events/s and >= 10x the baseline",
        rate >= 100_000 and ratio is not None and ratio >= 10 and summary["violations"] == 0,
        {"events": events, "seconds": round(elapsed, 2), "violations": summary["violations"],
         "peak_rss_mib": round(usage["rss_peak_bytes"] / 2**20, 1), "cpu_seconds": usage["cpu_seconds"],
         "baseline_messages": scale.checker_baseline_messages})


# -- 5. harness overhead ------------------------------------------------------------------------------

async def _live_check(url: str, connections: int, runs: int) -> dict[str, float]:
    from agent_events.conformance.live.api import check_async

    cpu0, t0 = time.process_time(), time.perf_counter()
    report = await check_async(url, scenarios=["concurrency"], concurrency=connections, runs=runs, input=INPUT)
    return {"events": report.stat("events"), "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0, "violations": report.violation_total}


def _per_event_costs(frames: list[bytes], emitted_at: float, repeats: int = 3) -> dict[str, float]:
    """CPU per event (us) of the steps every checked event takes, in-process on the endpoint's own
    frames (stamped ``emitted_at``; received 0.5 ms later), no I/O: where a live check's time goes,
    and the floor under it."""
    from agent_events.conformance.core.checker import Checker
    from agent_events.conformance.core.client import ClientConnection

    loads = orjson.loads
    is_valid = schema_validation.SERVER_IS_VALID
    per_run = len(frames)
    runs = max(1, 120_000 // per_run)

    def parse() -> None:
        for _ in range(runs):
            for frame in frames:
                loads(frame)

    def parse_validate() -> None:
        for _ in range(runs):
            for frame in frames:
                message = loads(frame)
                is_valid[message["type"]](message)

    # each run's frames carry its own run_id (the ids the core gives: c0-r1, c0-r2, ...)
    batches = [[("text", f.replace(b'"run_id":"bench"', b'"run_id":"c0-r%d"' % (n + 1))) for f in frames]
               for n in range(runs)]

    def client_core() -> None:
        core = ClientConnection("c0", Checker(), forget_ended=True)
        now = emitted_at + 0.5  # in time: a late event would cost a violation's excerpt
        for batch in batches:
            core.start_run(now, input=INPUT)
            core.receive_many(batch, now)

    out = {}
    for name, fn in (("parse (orjson)", parse), ("parse + schema validation", parse_validate),
                     ("client core: parse, validate, judge, bookkeep", client_core)):
        best = math.inf
        for _ in range(repeats):
            t = time.process_time()
            fn()
            best = min(best, time.process_time() - t)
        out[name] = round(best * 1e6 / (runs * per_run), 2)
    return out


async def _counting_rate(url: str, connections: int, window_s: float) -> float:
    driver = CountingDriver(url, connections, 5, INPUT)
    await driver.connect()
    try:
        events, _, elapsed = await driver.measure(0.2, window_s)
    finally:
        driver.close()
    return events / elapsed


async def _steady_check(url: str, connections: int, runs: int) -> dict[str, Any]:
    """The steady rate, as the counting client's is (it is measured in a window after a warm-up):
    a check of one run per connection takes the fixed costs (connecting, the capabilities wait,
    time_sync); the marginal rate of the big check over it is what the harness consumes."""
    small = await _live_check(url, connections, 1)
    big = await _live_check(url, connections, runs)
    extra_events = big["events"] - small["events"]
    return {"small": small, "big": big,
            "rate": extra_events / max(1e-9, big["seconds"] - small["seconds"]),
            "us": (big["cpu_seconds"] - small["cpu_seconds"]) * 1e6 / extra_events if extra_events else math.nan}


async def harness(servers: dict[str, Any], scale: Scale) -> dict[str, Any]:
    from benchmarks.bare_server import capture_run

    fast = servers["bare_batched"]
    # Interleaved repeats, each a counting window then the check, and the median of their ratios:
    # both rates move with the machine from one second to the next (the counting client's by a
    # fifth between runs), so one pair of windows decided the verdict by chance near the target.
    repeats = []
    for _ in range(scale.repeats):
        counting_rate = await _counting_rate(fast.url, scale.harness_connections, scale.harness_window_s)
        check = await _steady_check(fast.url, scale.harness_connections, scale.harness_runs)
        repeats.append({"counting": counting_rate, "check": check,
                        "ratio": check["rate"] / counting_rate if counting_rate else math.nan})
    # (a repeat with no counting rate sorts lowest: never the one that passes)
    middle = sorted(repeats, key=lambda r: r["ratio"] if r["ratio"] == r["ratio"] else -math.inf)[len(repeats) // 2]
    counting, live_rate, live_us = middle["counting"], middle["check"]["rate"], middle["check"]["us"]
    big, small = middle["check"]["big"], middle["check"]["small"]

    cpu0 = time.process_time()
    load = await run_load(_endpoint_options(fast.url, connections=scale.harness_connections,
                                            runs_per_connection=5, duration=scale.harness_window_s))
    load_cpu = time.process_time() - cpu0

    stamp = time.time() * 1000.0
    frames = [orjson.dumps(dict(m, run_id="bench", seq=i, emitted_at=stamp))
              for i, m in enumerate(await capture_run(INPUT))]
    costs = _per_event_costs(frames, stamp, repeats=min(3, scale.repeats))
    ratio = _ratio(live_rate, counting)
    return _result(
        5, "harness: events/s the live check consumes", "events/s",
        f"agent-events check --scenario concurrency, {scale.harness_connections} connections x "
        f"{scale.harness_runs} runs, against a fast endpoint (bare websockets, one write per run); steady rate: "
        f"(events, seconds) of that check minus those of the same check with 1 run per connection; "
        f"{scale.repeats} repeat(s) interleaved with the counting client's windows, the one of median ratio",
        round(live_rate), round(counting), "counting-only client, same endpoint",
        ">= 50% of the baseline (the harness must not be what a check measures)",
        ratio is not None and ratio >= 0.5,
        {"live_check": {"events": big["events"], "seconds": round(big["seconds"], 3),
                        "whole_command_events_per_s": round(big["events"] / big["seconds"]),
                        "fixed_seconds": round(small["seconds"], 3),
                        "client_us_per_event": round(live_us, 2),
                        "violations": sum(r["check"]["big"]["violations"] + r["check"]["small"]["violations"]
                                          for r in repeats)},
         "repeats": [{"ratio": round(r["ratio"], 3), "live_events_per_s": round(r["check"]["rate"]),
                      "counting_events_per_s": round(r["counting"]),
                      "client_us_per_event": round(r["check"]["us"], 2)} for r in repeats],
         "budget_us_per_event": round(1e6 / (0.5 * counting), 2) if counting else None,
         "in_process_us_per_event": costs,
         "load_command": {"events_per_s": round(load.events_per_s),
                          "client_us_per_event": round(load_cpu * 1e6 / load.events, 2) if load.events else None,
                          "violations": sum(load.checker.violation_counts.values())}})


# -- 6. the load generator against the endpoint it loads --------------------------------------

async def load_cost(servers: dict[str, Any], scale: Scale) -> dict[str, Any]:
    """CPU per event of ``agent-events load`` (every run checked) and of the reference agent it
    drives, in the same run: the generator must not be what a load test measures."""
    from agent_events.conformance.loadgen.server import ServerWatch

    agent = servers["agent"]
    samples = []
    for _ in range(scale.repeats):
        watch = ServerWatch(agent.pid)
        cpu0 = time.process_time()
        result = await run_load(_endpoint_options(
            agent.url, connections=scale.harness_connections, runs_per_connection=5,
            duration=scale.harness_window_s, server=watch))
        load_cpu = time.process_time() - cpu0
        server = result.server or {}
        samples.append({
            "events": result.events, "events_per_s": round(result.events_per_s),
            "load_us_per_event": round(load_cpu * 1e6 / result.events, 2) if result.events else None,
            "agent_us_per_event": (round(server["cpu_seconds"] * 1e6 / result.events, 2)
                                   if result.events and server.get("cpu_seconds") is not None else None),
            "violations": sum(result.checker.violation_counts.values())})
    load_us = _median([s["load_us_per_event"] for s in samples if s["load_us_per_event"] is not None])
    agent_us = _median([s["agent_us_per_event"] for s in samples if s["agent_us_per_event"] is not None])
    ratio = _ratio(load_us, agent_us)
    return _result(
        6, "load: client CPU per event", "us",
        f"agent-events load, {scale.harness_connections} connections x 5 runs in flight, closed loop, "
        f"{scale.harness_window_s:g} s, against the reference agent (--llm-delay-ms 0), every run checked, "
        f"median of {scale.repeats}",
        load_us, agent_us, "the reference agent's CPU per event, same load",
        "<= the baseline (ratio <= 1: the generator is not the bottleneck)",
        ratio is not None and ratio <= 1.0,
        {"samples": samples})


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import platform

    import websockets

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "websockets": websockets.__version__, "orjson": orjson.__version__,
            # The checker's fast path: without jsonschema-rs (the [fast] extra) validation
            # falls back to jsonschema and measurement 4 is some 30x slower.
            "schema_engine": schema_validation.ENGINE,
            # The client core compiled with mypyc (issue 26, target 3), or the Python sources: which
            # modules this process runs compiled (none without a C compiler, or with AGENT_EVENTS_PURE_PYTHON=1)
            "compiled_core": _native.compiled_modules(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}
