"""The ``multiplex`` scenario: several runs at once on one connection, then start_run's promises
(a duplicate run_id, runs without run_id, the bound on runs in flight)."""

from __future__ import annotations

import asyncio

from agent_events.conformance.core.client import RunRecord
from agent_events.conformance.live import verdicts as _v
from agent_events.conformance.live.scenario_base import (
    LiveConnection, ScenarioProbe, _connection, _rules_where, reply_timeout, start_runs,
)

# -- multiplex ---------------------------------------------------------------------

#: Runs started without run_id at once on one connection: their server-generated ids must differ.
SERVER_ID_RUNS = 3
#: The most runs the too_many_runs probe keeps in flight on one connection; an endpoint that
#: accepts them all has a higher bound (or none), and start.too_many_runs is then N/A.
RUNS_BOUND_PROBE = 32
START_RULES = _rules_where(category="start")


async def multiplex(probe: ScenarioProbe) -> None:
    """Several runs at once on one connection: told apart by run_id, each with its own seq; then
    the promises of start_run: a duplicate run_id, runs without run_id, and the bound on runs."""
    conn = await probe.connect()
    if conn is None:
        return
    run_ids = await start_runs(probe, conn, probe.engine.options.runs_for("multiplex"))
    await conn.wait_runs(run_ids)
    if run_ids and not any(conn.runs[r].completed for r in run_ids):
        reason = "no run of this scenario completed, so the start_run probes were not made"
        probe.note(reason)
        for rule_id in START_RULES:
            probe.not_applicable(rule_id, reason)
        return
    bound = await _too_many_runs(probe)  # first: the probes below stay within the bound it finds
    conn = None  # a fresh connection: nothing left of the runs above (refusals, errors) to read past
    for step in (_duplicate_run, _server_run_ids):
        conn = await _connection(probe, conn)
        if conn is None:
            return
        await step(probe, conn, bound)


async def _duplicate_run(probe: ScenarioProbe, conn: LiveConnection, bound: int | None) -> None:
    """A start_run with the run_id of a run in flight: answered duplicate_run, the run goes on."""
    rule = "start.duplicate_run"
    if bound is not None and bound < 2:
        probe.not_applicable(rule, "the endpoint allows one run in flight per connection: a second start_run is over "
                             "its bound, duplicate or not")
        return
    run_id = await conn.start_run()
    run = conn.runs[run_id]
    # Sent once the run has shown an event: an error naming the id then cannot read as refusing the run.
    await conn.wait(lambda: run.first_at is not None or run.ended, conn.run_deadline(run_id))
    if run.ended or run.first_at is None:
        probe.not_applicable(rule, "the run whose id was to be reused " + (
            "completed at once (its first event came with its last)" if run.completed else
            "was refused" if run.refused else "sent no event") + "; no run was in flight to start again")
        return
    errors_before = conn.error_count
    await conn.start_run(run_id=run_id)
    if run.duplicate_sent_at is None:
        return  # the connection had closed: transport.connection_kept says so
    # An answer, or a second run seen under the id (a second agent_started primary): no need to wait longer.
    await conn.wait(lambda: run.error_code is not None or conn.error_count > errors_before
                    or run.attempts.count("primary") > 1, reply_timeout(probe))
    error = ({"code": run.error_code} if run.error_code is not None else
             conn.errors[errors_before][1] if errors_before < min(conn.error_count, len(conn.errors)) else None)
    await conn.wait_runs([run_id])
    latest = conn.runs.get(run_id)
    if latest is not None and latest.restarted:
        await conn.wait_runs([run_id])
    _v.apply(probe, _v.duplicate_run(error, run, latest, conn=conn.name, conn_open=conn.open,
                                     timeout_s=reply_timeout(probe)))


async def _server_run_ids(probe: ScenarioProbe, conn: LiveConnection, bound: int | None) -> None:
    """start_runs without run_id, at once (within the endpoint's bound on runs in flight): each run
    gets its own server-generated id."""
    rule = "start.generated_run_id"
    errors_before = conn.error_count
    count = SERVER_ID_RUNS if bound is None else max(1, min(SERVER_ID_RUNS, bound))
    runs = [r for r in [await conn.start_unnamed_run() for _ in range(count)] if r is not None]
    if not runs:
        return
    engine = probe.engine
    budget_ms = engine.options.profile.deadline_s * 1000.0 + engine.options.grace_ms
    deadline = max(0.0, (runs[0].started_at + budget_ms - engine.clock.now()) / 1000.0)
    def settled() -> bool:  # every run ended, or errors answered the starts that no event named
        if all(r.ended for r in runs) or any(r.attempts.count("primary") > 1 for r in runs):
            return True  # (or one id already carries two runs: the verdict is known)
        waiting = sum(1 for r in runs if not r.run_id and not r.ended)
        unexplained = conn.error_count - errors_before - sum(1 for r in runs if r.refused)
        return 0 < waiting <= unexplained

    await conn.wait(settled, deadline)
    refused = [r.refused for r in runs if r.refused]
    if refused:  # over the endpoint's bound (too_many_runs, naming no run): judged on the runs that ran
        probe.note(f"{len(refused)} of {len(runs)} start_runs without run_id refused ({', '.join(sorted(set(refused)))})")
        runs = [r for r in runs if not r.refused]
        if not runs:
            probe.not_applicable(rule, f"every start_run without run_id was refused ({', '.join(sorted(set(refused)))})")
            return
    errors = [e.get("code") for _, e in conn.errors[errors_before:]]
    _v.apply(probe, _v.generated_run_ids(runs, errors, conn=conn.name, conn_open=conn.open))


async def _too_many_runs(probe: ScenarioProbe) -> int | None:
    """Runs on a fresh connection until the endpoint answers too_many_runs (or RUNS_BOUND_PROBE
    are in flight); the runs are then cancelled, and one more start must be accepted.

    Returns the endpoint's bound on runs in flight when it showed one."""
    conn = await probe.connect()
    if conn is None:
        return None
    timeout = reply_timeout(probe)
    runs: list[RunRecord] = []
    peak = 0  # runs in flight at once, at most, as the client saw them
    for _ in range(RUNS_BOUND_PROBE):
        if not conn.open or conn.too_many_runs or any(r.refused for r in runs):
            break
        runs.append(conn.runs[await conn.start_run()])
        peak = max(peak, sum(1 for r in runs if not r.ended))
        await asyncio.sleep(0)  # let the read loop deliver a refusal before the next start
    # Every start answered: by an event (within the first-event budget), or by a refusal.
    profile = probe.engine.options.profile
    timeout = min(timeout + profile.first_event_ms / 1000.0, profile.deadline_s)
    await conn.wait(lambda: all(r.events or r.ended for r in runs), timeout)
    refused = [r for r in runs if r.refused]
    silent = [r for r in runs if not r.events and not r.ended]
    in_flight = [r for r in runs if not r.ended]
    for run in in_flight:  # the bound is found: end the runs (cheaper than letting them run)
        await conn.cancel_run(run.run_id)
    await conn.wait_runs([r.run_id for r in in_flight])
    bound = None
    outcome = _v.too_many_runs_burst(len(runs), refused, silent, peak=peak, conn=conn.name, conn_open=conn.open,
                                     refusals_without_id=conn.too_many_runs, timeout_s=timeout)
    if outcome is not None:
        _v.apply(probe, outcome)
    else:
        accepted = len(runs) - len(refused)
        bound = accepted
        # A server may free a run's place a moment after its agent_completed: a refusal right
        # after the runs ended is tried again, twice, a little later.
        for pause in (0.0, 0.05, 0.2):
            await asyncio.sleep(pause)
            again = conn.runs[await conn.start_run()]
            await conn.wait_runs([again.run_id])
            if again.refused != "too_many_runs" or not conn.open:
                break
        probe.note(f"the endpoint answered too_many_runs with {accepted} run(s) in flight on a connection")
        _v.apply(probe, _v.too_many_runs_after(accepted, again, conn=conn.name))
    return bound
