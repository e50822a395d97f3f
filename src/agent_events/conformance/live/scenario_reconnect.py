"""The ``reconnect`` scenario (1.1): the connection dropped mid-run at three points, the run
resumed from a new one; a resume with a forged secret refused."""

from __future__ import annotations

import asyncio

from agent_events.conformance.live import verdicts as _v
from agent_events.conformance.live.scenario_base import (
    ScenarioProbe, _rules_where, judge_claim, reply_timeout,
)

# -- reconnect (1.1) -------------------------------------------------------------------

RESUME_RULES = _rules_where(category="resume")


def _cut_points(length: int) -> tuple[tuple[str, object], ...]:
    """Where the reconnect probe drops its connection, given the events of an uncut run: before the
    first tool (right after agent_started), inside a tool call, and just before agent_completed."""
    return (
        ("before the first tool", lambda run: run.events >= 1),
        ("inside a tool call", lambda run: run.tools_open > 0),
        ("just before agent_completed", lambda run: run.events >= max(1, length - 1)),
    )


async def _cut_and_resume(probe: ScenarioProbe, label: str, when, wrong_secret: bool = False) -> None:
    """One run, its connection dropped (no close frame) at ``when``; resumed from a new connection,
    which must receive every event after the last one received, once, in order, to the end."""
    first = await probe.connect()
    if first is None:
        return
    run_id = await first.start_run()
    run = first.runs[run_id]
    first.cut_when(lambda: when(run) and run.completed_at is None)
    await first.wait(lambda: first.close_info is not None or run.ended, first.run_deadline(run_id))
    if first.close_info is None:
        if run.completed:
            probe.note(f"reconnect {label}: the run completed before the cut point; not exercised")
        await first.close()
        return
    token, last_seq = run.resume_token, run.last_seq
    if token is None or last_seq is None:
        judge_claim(probe, "resume", False, "the run's agent_started carried no resume_token", first.name)
        return
    if wrong_secret:
        thief = await probe.connect()
        if thief is None:
            return
        errors = thief.error_count
        forged = token[:-1] + ("A" if token[-1] != "A" else "B")
        await thief.resume_run(run_id, forged, last_seq)
        error = await thief.wait_error(errors, reply_timeout(probe))
        await asyncio.sleep(min(0.2, reply_timeout(probe)))  # anything of the run sent here would show now
        leaked = thief.runs[run_id].events
        _v.apply(probe, _v.resume_secret(error, leaked, conn=thief.name))
        await thief.close()
    second = await probe.connect()
    if second is None:
        return
    errors = second.error_count
    await second.resume_run(run_id, token, last_seq)
    resumed = second.runs[run_id]
    done = await second.wait(lambda: resumed.completed or second.error_count > errors, second.run_deadline(run_id))
    error = second.errors[errors][1] if second.error_count > errors and errors < len(second.errors) else None
    _v.apply(probe, _v.resumed(probe.engine.claimed("resume"), resumed, error, done=done, last_seq=last_seq,
                               label=label, conn=second.name))
    await second.close()


async def reconnect(probe: ScenarioProbe) -> None:
    """1.1: drop the connection mid-run (no close frame) at three points, reconnect, resume: nothing
    lost, nothing repeated, the run completes. And a resume without the secret must be refused."""
    if probe.engine.claimed("resume") is not True:
        reason = ("not claimed: a 1.0 endpoint (no capabilities message)" if probe.engine.features is None
                  else "not claimed: the endpoint's capabilities do not declare resume")
        for rule_id in RESUME_RULES:
            probe.not_applicable(rule_id, reason)
        probe.note(f"{reason} ({', '.join(RESUME_RULES)} not exercised)")
        return
    conn = await probe.connect()  # one uncut run first: how many events a run of this endpoint has
    if conn is None:
        return
    run_id = await conn.start_run()
    await conn.wait_runs([run_id])
    length = conn.runs[run_id].events
    await conn.close()
    for label, when in _cut_points(length):
        await _cut_and_resume(probe, label, when)
    await _cut_and_resume(probe, "after agent_started, with a forged secret first",
                          lambda run: run.events >= 1, wrong_secret=True)
