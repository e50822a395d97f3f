"""Scenarios of plain runs: ``primary`` (the happy path), ``fallback`` (a primary path made to
fail) and ``concurrency`` (N connections at once)."""

from __future__ import annotations

import asyncio

from agent_events.conformance.live.scenario_base import (
    LiveConnection, ScenarioProbe, _rules_where, _single_run, judge_claim, not_claimed, start_runs,
)

# -- primary -----------------------------------------------------------------------

async def primary(probe: ScenarioProbe) -> None:
    """One run: the happy path, where every rule that applies to a normal run is exercised."""
    await _single_run(probe)


# -- fallback ----------------------------------------------------------------------

FALLBACK_RULES = _rules_where(category="fallback")


async def fallback(probe: ScenarioProbe) -> None:
    """A run asked to fail its primary path; N/A (not failed) when a 1.0 endpoint cannot, a failure of
    ``capabilities.honest`` when a 1.1 endpoint declares it can, not claimed when it declares it cannot."""
    if not_claimed(probe, "simulate_failure", FALLBACK_RULES):
        return
    outcome = await _single_run(probe, {"simulate_failure": "primary"})
    if outcome is None:
        return
    conn, run_id = outcome
    run = conn.runs[run_id]
    if run.completed:
        judge_claim(probe, "simulate_failure", run.fallback_taken,
                    "the fallback attempt ran" if run.fallback_taken else
                    "the run completed without a fallback attempt", conn.name)
    if run.completed and not run.fallback_taken:
        reason = ("the endpoint did not take the fallback path for options.simulate_failure=\"primary\" "
                  "(an implementation that does not support it ignores it)")
        for rule_id in FALLBACK_RULES:
            probe.not_applicable(rule_id, reason)
        probe.note(reason)




# -- concurrency -------------------------------------------------------------------

async def concurrency(probe: ScenarioProbe) -> None:
    """N connections at once, each with its own runs: isolation, and nothing dropped."""
    options = probe.engine.options
    conns = await probe.connect_many(options.concurrency)
    per_conn = options.runs_for("concurrency")

    async def drive(conn: LiveConnection) -> None:
        await conn.wait_runs(await start_runs(probe, conn, per_conn))

    await asyncio.gather(*(drive(c) for c in conns))
    opened = f"{len(conns)} connection(s)" if len(conns) == options.concurrency else \
        f"{len(conns)} of {options.concurrency} connection(s) opened"
    probe.note(f"{opened} x {per_conn} run(s) at once")
