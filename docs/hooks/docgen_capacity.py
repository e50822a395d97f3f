"""docs/capacity.md's figures and its worked example, generated from one recorded benchmark run.

The capacity plan is arithmetic on measured figures. Written by hand, its figures drifted: on
2026-12-07 the page still planned a Locust worker at 20.5 us and 79.6 KiB per connection, five
days and many optimisations after the run that measured them, when it costs 8-9 us and 36-46
KiB. So the page now names one recorded run, the JSON of ``python -m benchmarks --json``
committed under ``benchmarks/results/``, and every figure and every product below is computed
from it here: a new run is a new file and one changed argument, and the arithmetic cannot be
left behind.

Blocks (each takes the results file, relative to the repository, as its argument):

* ``capacity-figures``: who costs what per event and per connection or run, and which
  measurement says so;
* ``capacity-store``: the shared resume store's cost (measurement 9), when the run measured it;
* ``capacity-example``: the worked example (1 million runs in flight at 10 events/s each) and
  the figures derived from it (one ``load`` process's ceiling, the network against the cores).
"""

from __future__ import annotations

import json
import math
import statistics
from functools import lru_cache
from pathlib import Path
from typing import Any

from docgen_markdown import code, table
from agent_events.reference_agent.config import ServerConfig

ROOT = Path(__file__).resolve().parents[2]

#: The worked example: runs in flight, events per second per run, runs per connection.
EXAMPLE_RUNS, EXAMPLE_EVENTS_PER_RUN_S, EXAMPLE_RUNS_PER_CONNECTION = 1_000_000, 10, 10
#: Keep each process below this share of its core (the page says why).
HEADROOM = 0.7
#: Bytes on the wire per event to plan with (288 measured, plus the WebSocket header; the page says how).
BYTES_PER_EVENT = 300
#: Cores per machine in the example: the agent's machines and the Locust workers' machines.
AGENT_MACHINE_CORES, AGENT_WORKERS_PER_MACHINE, LOCUST_MACHINE_CORES = 32, 30, 8
LINK_GBIT = 10
#: The reference agent's default ``--max-connections`` per worker.
DEFAULT_MAX_CONNECTIONS = ServerConfig.max_connections


@lru_cache(maxsize=None)
def load_run(arg: str | None) -> dict[str, Any]:
    """The recorded run ``arg`` (a path relative to the repository), its measurements by id."""
    if not arg:
        raise ValueError("needs the results file, e.g. benchmarks/results/2026-12-07.json")
    path = ROOT / arg
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the recorded run {arg}: {exc}") from None
    data["by_id"] = {m["id"]: m for m in data["measurements"]}
    return data


def _need(data: dict, *ids: int) -> list[dict]:
    missing = [i for i in ids if i not in data["by_id"]]
    if missing:
        raise ValueError(f"the recorded run lacks measurement(s) {missing}: record it with `python -m benchmarks --json`")
    return [data["by_id"][i] for i in ids]


def _us(value: float) -> str:
    return f"{value:.2f} us"


def _kib(value: float) -> str:
    return f"{value:.1f} KiB"


def _base_mib(mib: float) -> int:
    """A process's base RSS to plan with: the measured one, rounded up to 10 MiB."""
    return int(math.ceil(mib / 10.0) * 10)


def figures_of(data: dict) -> dict[str, Any]:
    """The per-event and per-connection figures the plan uses, named."""
    m1, m3, m6, m7, m8 = _need(data, 1, 3, 6, 7, 8)
    memory = m8["details"]["memory"]
    few = {tool: statistics.median(r["rss_mib"]["few"] for r in memory[tool].get("rounds", [memory[tool]]))
           for tool in ("locust", "load")}
    return {
        "agent_us": m1["details"]["server_us_per_event"]["agent"],
        "agent_kib_per_run": m3["value"],
        "agent_base_mib": m3["details"]["agent"]["rss_start_bytes"] / 2**20,
        "workers1_us": m7["details"]["server_us_per_event"]["agent"],
        "workers2_us": m7["details"]["server_us_per_event"]["agent_workers2"],
        "load_us": m6["value"],
        "load_kib_per_connection": memory["load"]["kib_per_connection"],
        "load_kib_per_run": memory["load"]["kib_per_in_flight_run"],
        "load_base_mib": few["load"],
        "locust_us": m8["value"],
        "locust_kib_per_connection": memory["locust"]["kib_per_connection"],
        "locust_kib_per_run": memory["locust"]["kib_per_in_flight_run"],
        "locust_base_mib": few["locust"],
        "memory_rounds": len(memory["locust"].get("rounds", [None])),
    }


def capacity_figures(arg: str | None, _ctx: Any = None) -> str:
    data = load_run(arg)
    f = figures_of(data)
    machine = data["machine"]
    rounds = f["memory_rounds"]
    rows = [
        ("reference agent (`agent-events serve`, one process)", _us(f["agent_us"]),
         f"{_kib(f['agent_kib_per_run'])} per in-flight run (10 runs per connection)",
         "measurements 1 (CPU, counting client, 100 connections x 5 runs) and 3 (RSS growth at 1,000 runs in flight)"),
        ("reference agent, `--workers 2`",
         f"{_us(f['workers2_us'])}, summed over both workers (`--workers 1` in the same run: {_us(f['workers1_us'])})",
         "per worker, as above", "measurement 7"),
        ("`agent-events load` (one process)", _us(f["load_us"]),
         f"{_kib(f['load_kib_per_connection'])} per connection, {_kib(f['load_kib_per_run'])} per in-flight run",
         "measurements 6 (CPU, 20 connections x 5 runs) and 8 (peak RSS, 10 / 200 connections x 1 and 200 x 10 "
         f"runs, median of {rounds} rounds)"),
        ("Locust worker (one `locust` process, `AgentEventsUser`)", _us(f["locust_us"]),
         f"{_kib(f['locust_kib_per_connection'])} per connection (user), {_kib(f['locust_kib_per_run'])} per "
         "in-flight run", "measurement 8 (CPU: 20 users x 5 runs; memory as for load)"),
    ]
    head = (f"Recorded by {code(data['command'])} on {data['date']}"
            + (f" at commit {code(data['commit'])}" if data.get("commit") else "")
            + f" ({code(arg)}): {machine['nproc']} x {machine['cpu']}, Python {machine['python']}, "
            f"websockets {machine['websockets']}, load average {machine['loadavg'][0]} before and "
            f"{machine['loadavg_after'][0]} after.\n\n")
    base = (f"\nBase RSS of a process in that run: the reference agent {f['agent_base_mib']:.1f} MiB with 100 "
            f"connections open and no run (measurement 3), a Locust worker {f['locust_base_mib']:.1f} MiB and "
            f"`agent-events load` {f['load_base_mib']:.1f} MiB with 10 connections (measurement 8); the plan "
            f"takes {_base_mib(f['agent_base_mib'])}, {_base_mib(f['locust_base_mib'])} and "
            f"{_base_mib(f['load_base_mib'])} MiB.\n")
    return head + table(["who", "CPU per event", "memory", "measured by"], rows) + base


def capacity_store(arg: str | None, _ctx: Any = None) -> str:
    data = load_run(arg)
    m9 = data["by_id"].get(9)
    if m9 is None or m9["details"].get("skipped"):
        return "The recorded run did not measure the shared store (measurement 9 needs `redis-server`).\n"
    d = m9["details"]
    eps, kib = d["events_per_s"], d["kib_per_in_flight_run"]
    rows = [
        ("agent CPU per event", _us(m9["value"]), f"{_us(m9['baseline'])} ({m9['ratio']}x)",
         "measurement 9, 100 connections x 5 runs, median of 3"),
        ("events/s (one agent process)", f"{eps['redis']:,}", f"{eps['memory']:,}", "measurement 9"),
        ("redis-server CPU per event", _us(d["redis_server_us_per_event"]), "-", "measurement 9 (psutil on redis-server)"),
        ("agent RSS per in-flight run", _kib(kib["redis"]), _kib(kib["memory"]),
         "measurement 9, as measurement 3 (1,000 runs in flight)"),
    ]
    return table(["figure", "with the store", "in-process only (same run)", "measured by"], rows)


def _gib(kib: float) -> float:
    return kib / 2**20


def _processes(events: int, us: float) -> int:
    """Processes (one per core) that carry ``events`` per second at ``us`` each, below the headroom."""
    return math.ceil(events * us / 1e6 / HEADROOM)


def capacity_example(arg: str | None, _ctx: Any = None) -> str:
    f = figures_of(load_run(arg))
    runs, per_run, k = EXAMPLE_RUNS, EXAMPLE_EVENTS_PER_RUN_S, EXAMPLE_RUNS_PER_CONNECTION
    events = runs * per_run
    connections = runs // k
    out = [f"E = {runs:,} x {per_run} = {events:,} events/s; with k = {k} runs per connection, "
           f"C = {connections:,} connections.\n\n"]
    rows = []

    def side(who: str, us: float, kib_conn: float | None, kib_run: float, base: int, machines: str = "",
             per_machine: int = 1) -> None:
        """One row: cores and processes for ``us`` per event; ``machines`` says how they are housed."""
        processes = _processes(events, us)
        parts = [f"{connections:,} x {kib_conn:.1f} KiB"] if kib_conn is not None else []
        parts += [f"{runs:,} x {kib_run:.1f} KiB", f"{processes} x {base} MiB"]
        total = _gib(connections * (kib_conn or 0.0) + runs * kib_run) + processes * base / 1024.0
        rows.append((who, f"{events:,} x {us:.2f} us = {events * us / 1e6:.0f} cores",
                     f"{processes} processes{machines.format(machines=math.ceil(processes / per_machine))}",
                     f"{' + '.join(parts)} = {total:.1f} GiB"))

    side("reference agent", f["agent_us"], None, f["agent_kib_per_run"], _base_mib(f["agent_base_mib"]),
         f", e.g. {{machines}} machines with {AGENT_MACHINE_CORES} cores (`serve --workers {AGENT_WORKERS_PER_MACHINE}`)",
         AGENT_WORKERS_PER_MACHINE)
    side("Locust workers", f["locust_us"], f["locust_kib_per_connection"], f["locust_kib_per_run"],
         _base_mib(f["locust_base_mib"]),
         f", e.g. {{machines}} machines with {LOCUST_MACHINE_CORES} cores (`--processes {LOCUST_MACHINE_CORES}`)",
         LOCUST_MACHINE_CORES)
    side("`agent-events load` instead", f["load_us"], f["load_kib_per_connection"], f["load_kib_per_run"],
         _base_mib(f["load_base_mib"]), ", but nothing merges their reports")
    out.append(table(["side", "cores (E x CPU per event)", f"at {HEADROOM:.0%}", "memory"], rows))

    ceiling = 1e6 / f["load_us"]
    link_events = LINK_GBIT * 1e9 / 8 / BYTES_PER_EVENT
    wire = events * BYTES_PER_EVENT
    out.append(
        f"\n- One `agent-events load` process tops out near 1 / {f['load_us']:.2f} us = {ceiling:,.0f} events/s of "
        f"its core ({ceiling * HEADROOM:,.0f} at {HEADROOM:.0%}): below that, `load` is the simpler tool; above it, "
        "Locust's master merges the workers' statistics and nothing of ours needs to coordinate. The Locust master "
        "only aggregates: one process, a core at most.\n"
        f"- Network: {events:,} x {BYTES_PER_EVENT} bytes = {wire / 1e9:.1f} GB/s = {wire * 8 / 1e9:.0f} Gbit/s leave "
        f"the agent machines. A {LINK_GBIT} Gbit/s link carries about {link_events / 1e6:.1f} million events/s, which "
        f"is {link_events * f['agent_us'] / 1e6:.0f} cores of the reference agent (on agent machines with more cores "
        "than that, the network card binds before the CPU) and "
        f"{link_events * f['locust_us'] / 1e6:.0f} cores of Locust workers.\n")
    agents = _processes(events, f["agent_us"])
    locust_machines = math.ceil(_processes(events, f["locust_us"]) / LOCUST_MACHINE_CORES)
    per_worker = math.ceil(connections / agents)
    out.append(
        f"- Descriptors and ports (see the limits below): the {connections:,} connections over {agents} agent workers "
        f"are {per_worker:,} per worker ({'within' if per_worker <= DEFAULT_MAX_CONNECTIONS else 'over'} the default "
        f"`--max-connections` of {DEFAULT_MAX_CONNECTIONS:,}); with one run per connection (k = 1) they are "
        f"{math.ceil(runs / agents):,} per worker. The {locust_machines} Locust machines open about "
        f"{math.ceil(connections / locust_machines):,} connections each, one local port apiece.\n")
    return "".join(out)


GENERATORS = {
    "capacity-figures": capacity_figures,
    "capacity-store": capacity_store,
    "capacity-example": capacity_example,
}
