"""``python -m benchmarks [--quick] [--json] [--only 1,3]``: every measurement, one table.

Servers run as subprocesses (one core for the server, one for the client,
as the targets assume) and are started once and reused by the measurements
that load the same configuration. See ``benchmarks/README.md`` for the
recorded numbers and how to read them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from benchmarks import ag_ui, capacity, measurements as m, resume_store
from agent_events.conformance.loadgen.server import reference_agent_command, spawn_server

SERVERS = {
    "agent": reference_agent_command("--llm-delay-ms", "0", "--max-connections", "4096",
                                     "--max-runs-per-connection", "64"),
    "bare": m.BARE,
    "bare_batched": [*m.BARE, "--mode", "batched"],
    "agent_workers2": capacity.WORKERS2,
    "agent_v10": reference_agent_command("--llm-delay-ms", "0", "--max-connections", "4096",
                                         "--max-runs-per-connection", "64", "--protocol-version", "1.0"),
    # where resume's cost goes (issue 26 target 1): the same 1.1 agent keeping 6 finished runs per
    # connection instead of 64 (its run limit), and with resume off
    "agent_keep6": reference_agent_command("--llm-delay-ms", "0", "--max-connections", "4096",
                                           "--max-runs-per-connection", "6"),
    "agent_resume_off": reference_agent_command("--llm-delay-ms", "0", "--max-connections", "4096",
                                                "--max-runs-per-connection", "64", "--resume-window-s", "0"),
}
NEEDS = {1: ("agent", "agent_v10", "agent_keep6", "agent_resume_off", "bare", "bare_batched"), 2: ("agent", "bare"), 3: (), 4: (), 5: ("bare_batched",),
         6: ("agent",), 7: ("agent", "agent_workers2"), 8: ("agent",), 9: (), 10: ()}


def commit() -> str | None:
    """The checkout's commit (``+changes`` when its tracked files differ from it), or ``None`` outside
    a git checkout: a recorded run says which code it measured."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10)
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+changes" if changed.stdout.strip() else "")


async def run(scale: m.Scale, only: set[int]) -> dict[str, Any]:
    started = _dt.datetime.now(_dt.timezone.utc)
    machine = m.machine()
    results = []
    needed = sorted({name for i in only for name in NEEDS[i]})
    async with contextlib.AsyncExitStack() as stack:
        spawned = await asyncio.gather(*(stack.enter_async_context(spawn_server(SERVERS[n])) for n in needed))
        servers = dict(zip(needed, spawned))
        if 1 in only:
            results.append(await m.throughput(servers, scale))
        if 2 in only:
            results.append(await m.latency(servers, scale))
        if 5 in only:
            results.append(await m.harness(servers, scale))
        if 6 in only:
            results.append(await m.load_cost(servers, scale))
        if 7 in only:
            results.append(await capacity.workers(servers, scale))
        if 8 in only:
            results.append(await capacity.clients(servers, scale.repeats,
                                                  capacity.QUICK_CLIENTS if scale is m.QUICK else capacity.FULL_CLIENTS))
    if 3 in only:
        results.append(await m.memory(scale))
    if 4 in only:
        results.append(await m.checker(scale))
    if 9 in only:
        results.append(await resume_store.resume_store_cost(scale))
    if 10 in only:
        results.append(await ag_ui.ag_ui_validate(scale))
    results.sort(key=lambda r: r["id"])
    machine["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    machine["bytecode_cache"] = "PYTHONDONTWRITEBYTECODE" not in os.environ
    return {"date": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "mode": "quick" if scale is m.QUICK else "full", "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
            "commit": commit(),
            "machine": machine, "measurements": results}


def _num(value: Any, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "events/s":
        return f"{value:,.0f} ev/s"
    return f"{value:g} {unit}"


def _detail(result: dict[str, Any]) -> list[str]:
    d = result["details"]
    i = result["id"]
    if i == 1:
        us = d["server_us_per_event"]
        lines = [f"server CPU per event: agent {us['agent']} us, bare {us['bare']} us (CPU ratio {d['cpu_ratio']}), "
                 f"bare with one write per run {us['bare_batched']} us ({d['bare_batched_events_per_s']:,} ev/s)"]
        if "resume_cost" in d:
            rc = d["resume_cost"]
            lines.append(f"resume on (1.1) against --protocol-version 1.0 ({us['agent_v10']} us): CPU {rc['cpu_vs_1_0']}, "
                         f"events/s {rc['events_per_s_vs_1_0']}; against the one-write ceiling: CPU "
                         f"{rc['cpu_vs_one_write_ceiling']} (issue 26 target 1: >= 0.9 and >= 0.5)")
            b = rc["breakdown_us_per_event"]
            lines.append(f"resume's cost per event: {b['finished_runs_kept']} us keeping 64 finished runs per "
                         f"connection rather than 6 ({us['agent_keep6']} us), {b['everything_else']} us the rest "
                         f"(resume off: {us['agent_resume_off']} us)")
        return lines
    if i == 2:
        a, b, n = d["agent_ms"], d["bare_ms"], d["machine_wakeup_lateness"]
        return [f"agent p50 {a['p50']} / p99.9 {a['p99.9']} / max {a['max']} ms; bare p50 {b['p50']} / p99.9 {b['p99.9']} "
                f"/ max {b['max']} ms; violations {d['violations']}",
                f"machine noise: a 0.5 ms sleep wakes late by p99 {n['p99_ms']} / p99.9 {n['p99.9_ms']} / "
                f"max {n['max_ms']} ms"]
    if i == 3:
        a = d["agent"]
        return [f"agent: {a['in_flight_peak']} in flight at the peak, RSS {a['rss_start_bytes'] / 2**20:.1f} -> "
                f"{a['rss_peak_bytes'] / 2**20:.1f} MiB, {a['runs_completed']} runs completed, {a['violations']} violations"]
    if i == 4:
        return [f"{d['events']:,} events in {d['seconds']} s, peak RSS {d['peak_rss_mib']} MiB, "
                f"{d['violations']} violations; baseline on the first {d['baseline_messages']:,} messages"]
    if i == 6:
        return [" / ".join(f"load {x['load_us_per_event']} us, agent {x['agent_us_per_event']} us "
                           f"({x['events_per_s']:,} ev/s, {x['violations']} violations)" for x in d["samples"])]
    if i == 7:
        us, busy, client = d["server_us_per_event"], d["server_cores_busy"], d["client_cores_busy"]
        return [f"server CPU per event: --workers 1 {us['agent']} us, --workers 2 {us['agent_workers2']} us; "
                f"cores busy: server {busy['agent']} / {busy['agent_workers2']}, "
                f"counting client {client['agent']} / {client['agent_workers2']}"]
    if i == 8:
        mem = d["memory"]
        return [f"locust {d['locust_events_per_s']:,.0f} ev/s on one core ({d['events_per_run']} events per run); "
                f"memory per connection: locust {mem['locust']['kib_per_connection']} KiB, "
                f"load {mem['load']['kib_per_connection']} KiB; per in-flight run: locust "
                f"{mem['locust']['kib_per_in_flight_run']} KiB, load {mem['load']['kib_per_in_flight_run']} KiB",
                f"issue 26 target 2 (<= 1.25 and <= 2): CPU {d['target_2']['cpu_ratio']}, memory per connection "
                f"{d['target_2']['memory_per_connection_ratio']} (rounds: "
                f"{', '.join(str(r) for r in d['target_2']['memory_ratio_rounds'])})"]
    if i == 9:
        if d.get("skipped"):
            return ["not measured: redis-server is not installed (apt-get install redis-server)"]
        eps, kib = d["events_per_s"], d["kib_per_in_flight_run"]
        return [f"events/s: redis {eps['redis']:,}, in-process {eps['memory']:,}; redis-server's own CPU "
                f"{d['redis_server_us_per_event']} us per event",
                f"RSS per in-flight run: redis {kib['redis']} KiB, in-process {kib['memory']} KiB "
                f"(runs completed {d['runs_completed']}, violations {d['violations']})"]
    if i == 10:
        mib = d["theirs_peak_rss_mib"]
        return [f"{d['events']:,} events: validate --dialect ag-ui {d['ours_seconds']} s ({d['ours_cpu_seconds']} s CPU), "
                f"ag-ui-validate {d['theirs_seconds']} s ({d['theirs_cpu_seconds']} s CPU; CPU ratio {d['cpu_ratio']}); "
                f"{d['inputs']}; findings: "
                f"ours {d['findings']['ours']}, ag-ui-validate {d['findings']['theirs']}",
                f"peak RSS: ours {d['ours_peak_rss_mib']} MiB ({d['ours_quarter_peak_rss_mib']} MiB at "
                f"{d['ours_quarter_events']:,} events: {d['rss_growth']:+.1%}, flat {'yes' if d['flat'] else 'NO'}), "
                f"ag-ui-validate {mib if mib is not None else '-'} MiB"]
    if i == 5:
        live, load, costs = d["live_check"], d["load_command"], d["in_process_us_per_event"]
        return [f"live check {live['client_us_per_event']} us CPU/event ({live['violations']} violations; whole command "
                f"{live['whole_command_events_per_s']:,} ev/s, {live['fixed_seconds']} s of it fixed); "
                f"agent-events load {load['events_per_s']:,} ev/s, {load['client_us_per_event']} us CPU/event "
                f"({load['violations']} violations)",
                f"the target leaves {d['budget_us_per_event']} us per event for everything; in-process, no I/O: "
                + ", ".join(f"{name} {us} us" for name, us in costs.items())]
    return []


def render_table(data: dict[str, Any]) -> str:
    mc = data["machine"]
    out = [f"agent-events benchmarks ({data['mode']}) - {data['date']} - {mc['nproc']} x {mc['cpu']}, "
           f"Python {mc['python']}, websockets {mc['websockets']}, schema engine {mc['schema_engine']} - load average {mc['loadavg'][0]} before, "
           f"{mc['loadavg_after'][0]} after",
           f"{'#':<2} {'measurement':<44} {'value':>14} {'baseline':>14} {'ratio':>6}  {'met':<4} target"]
    for r in data["measurements"]:
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        out.append(f"{r['id']:<2} {r['name']:<44} {_num(r['value'], r['unit']):>14} "
                   f"{_num(r['baseline'], r['unit']):>14} {ratio:>6}  {met:<4} {r['target']}")
        out.append(f"   setup: {r['setup']}; baseline: {r['baseline_label']}")
        out.extend(f"   {line}" for line in _detail(r))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke test (seconds)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--only", default=",".join(map(str, NEEDS)), metavar="IDS",
                        help=f"comma-separated measurement numbers (default all: {','.join(map(str, NEEDS))})")
    args = parser.parse_args(argv)
    try:
        only = {int(x) for x in args.only.split(",") if x.strip()}
    except ValueError:
        parser.error(f"--only takes numbers 1-{max(NEEDS)}, not {args.only!r}")
    if not only or not only <= set(NEEDS):
        parser.error(f"--only takes numbers 1-{max(NEEDS)}, not {args.only!r}")
    # Measured as a user runs it: with the byte-code cache. Under PYTHONDONTWRITEBYTECODE (some CI
    # images and sandboxes set it) an editable install never caches, so every command measured
    # with its start-up (4, 10) recompiled the package each time: 60-70 ms a start, 7 % of
    # measurement 10 (2026-12-07). The warm-ups write the cache; the run records that it could.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    data = asyncio.run(run(m.QUICK if args.quick else m.FULL, only))
    if args.json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_table(data))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
