"""The ``cancel`` scenario: cancel_run at every stage of a run (mid-run, right behind start_run,
during a tool call, at random delays across concurrent runs); each run judged by
:func:`agent_events.conformance.live.verdicts.cancel`."""

from __future__ import annotations

import asyncio
import math
import random

from agent_events.conformance.core.client import RunRecord
from agent_events.conformance.live import verdicts as _v
from agent_events.conformance.live.scenario_base import (
    LiveConnection, ScenarioProbe, _connection, not_claimed, reply_timeout,
)

# -- cancel ------------------------------------------------------------------------

#: The random cancels: delays spread log-uniformly from 1 ms up to this (at most a quarter of the
#: run deadline), so that fast endpoints and slow ones alike are cancelled at every stage of a run.
CANCEL_SPREAD_MS = 1000.0
#: Seed of those delays: the same check cancels at the same moments (a verdict can be reproduced).
CANCEL_SEED = 13


async def _answer_of(probe: ScenarioProbe, conn: LiveConnection, runs: list[RunRecord]) -> None:
    """Give the endpoint a moment to answer the cancels of runs that completed uncancelled
    (``unknown_run`` says the run had finished before the cancel arrived)."""
    waiting = [r for r in runs if r.completed and r.result.get("cancelled") is not True and r.error_code is None]
    if waiting:
        await conn.wait(lambda: all(r.error_code is not None for r in waiting), reply_timeout(probe) / 4)


def _judge_cancel(tally: _v.CancelTally, probe: ScenarioProbe, conn: LiveConnection, run: RunRecord,
                  label: str) -> None:
    """Judge one run that was sent cancel_run, once it ended or its deadline passed
    (:func:`agent_events.conformance.live.verdicts.cancel`), and tally it."""
    for outcome in _v.cancel(run, label, conn=conn.name, conn_open=conn.open,
                             deadline_s=probe.engine.options.profile.deadline_s):
        _v.apply(probe, tally.count(outcome))


async def _cancel_mid_run(probe: ScenarioProbe, conn: LiveConnection, tally: _v.CancelTally) -> None:
    """cancel_run as soon as the run's first event arrives."""
    run_id = await conn.start_run()
    run = conn.runs[run_id]
    await conn.wait(lambda: run.first_at is not None or run.ended, conn.run_deadline(run_id))
    if run.completed:
        tally.count(_v.Skip("cancel.terminal", "the run completed before its first event could be answered with "
                            "cancel_run; a slower run is needed to exercise cancellation"))
        return
    if run.first_at is None:
        return  # refused, or nothing started within the deadline: the checker reports it
    await conn.cancel_run(run_id)
    await conn.wait(lambda: run.ended, conn.run_deadline(run_id))
    await _answer_of(probe, conn, [run])
    _judge_cancel(tally, probe, conn, run, "cancelled at its first event")
    if run.completed and run.result.get("cancelled") is True:
        probe.note(f"cancel_run to agent_completed: {run.completed_at - run.cancel_sent_at:.1f} ms")


async def _cancel_before_first_event(probe: ScenarioProbe, conn: LiveConnection, tally: _v.CancelTally) -> None:
    """cancel_run right behind start_run, before the endpoint can have sent anything of the run."""
    run_id = await conn.start_run()
    run = conn.runs[run_id]
    if await conn.cancel_run(run_id) is None:
        return
    await conn.wait(lambda: run.ended, conn.run_deadline(run_id))
    await _answer_of(probe, conn, [run])
    _judge_cancel(tally, probe, conn, run, "cancel_run sent right after start_run")


async def _cancel_during_tool(probe: ScenarioProbe, conn: LiveConnection, tally: _v.CancelTally) -> None:
    """cancel_run while a tool call is open: the tool must still complete, then the run (pairing is
    the checker's, on the same stream)."""
    run_id = await conn.start_run()
    run = conn.runs[run_id]
    # Half the run deadline at most: a run that opened no tool by then is cancelled all the same.
    watch = min(conn.run_deadline(run_id), probe.engine.options.profile.deadline_s / 2)
    await conn.wait(lambda: run.tools_open > 0 or run.ended, watch)
    if run.ended:
        probe.note("cancel during a tool: not exercised (the run ended with no tool call seen open)")
        return
    during = run.tools_open > 0
    if not during:
        probe.note("cancel during a tool: no tool call was open within half the run deadline; cancelled mid-run")
    if await conn.cancel_run(run_id) is None:
        return
    await conn.wait(lambda: run.ended, conn.run_deadline(run_id))
    await _answer_of(probe, conn, [run])
    _judge_cancel(tally, probe, conn, run, "cancelled while a tool call was open" if during else "cancelled mid-run")


async def _cancel_at_random(probe: ScenarioProbe, conn: LiveConnection, tally: _v.CancelTally) -> None:
    """``--runs`` runs at once, each cancelled at its own random delay (0 for the first): cancels
    before the first event, mid-run, mid-tool and racing the run's end, all on one connection."""
    engine = probe.engine
    spread = max(2.0, min(CANCEL_SPREAD_MS, engine.options.profile.deadline_s * 250.0))
    rng = random.Random(CANCEL_SEED)

    async def cancel_later(run: RunRecord, delay_ms: float) -> None:
        if run.started_at is None:
            return
        wait_s = max(0.0, (run.started_at + delay_ms - engine.clock.now()) / 1000.0)
        if not await conn.wait(lambda: run.ended, wait_s):
            await conn.cancel_run(run.run_id)

    runs: list[RunRecord] = []
    delays: list[float] = []
    cancels = []
    for i in range(engine.options.runs_for("cancel")):
        if not probe.may_start(conn):
            break
        run = conn.runs[await conn.start_run()]
        delay = 0.0 if i == 0 else math.exp(rng.uniform(0.0, math.log(spread)))
        runs.append(run)
        delays.append(delay)
        if delay == 0.0:
            await cancel_later(run, 0.0)  # right behind its start_run
        else:
            cancels.append(cancel_later(run, delay))
        await asyncio.sleep(0)  # let the read loop deliver a refusal before the next start
    await asyncio.gather(*cancels)
    cancelled = [r for r in runs if r.cancel_sent_at is not None]
    await conn.wait_runs([r.run_id for r in cancelled])
    await _answer_of(probe, conn, cancelled)
    for run in cancelled:
        _judge_cancel(tally, probe, conn, run, "a random cancel")
    early = sum(1 for r in cancelled if r.first_at is None or r.first_at > r.cancel_sent_at)
    if runs:
        probe.note(f"random cancels: {len(cancelled)} of {len(runs)} run(s) cancelled at delays from 0 to "
                   f"{max(delays):.0f} ms ({early} before the run's first event), the rest completed first")


async def cancel(probe: ScenarioProbe) -> None:
    """cancel_run at every stage of a run: mid-run, right after start_run (before the run's first
    event), while a tool call is open, and at random delays across concurrent runs. Each cancelled
    run must still end well-formed with a cancelled agent_completed."""
    if not_claimed(probe, "cancel", ("cancel.terminal", "cancel.before_first_event")):
        return
    tally = _v.CancelTally()
    conn = None
    for step in (_cancel_mid_run, _cancel_before_first_event, _cancel_during_tool, _cancel_at_random):
        conn = await _connection(probe, conn)
        if conn is None:
            break
        await step(probe, conn, tally)
        if not any(r.events for c in probe.connections for r in c.runs.values()):
            # Not one event within a run deadline: every further cancel would wait out another.
            probe.note("no run sent any event, so the later cancel probes were not made")
            break
    for skip in tally.unjudged():
        _v.apply(probe, skip)
