"""The ``latency`` scenario (the clock offset by time_sync, then enough runs for the
percentiles) and the time_sync exchange the engine runs first."""

from __future__ import annotations

from agent_events.conformance.core.clock_sync import SyncSample
from agent_events.conformance.live import verdicts as _v
from agent_events.conformance.live.scenario_base import (
    LiveConnection, ScenarioProbe, reply_timeout, start_runs,
)

# -- latency -----------------------------------------------------------------------

LATENCY_BATCH = 5


async def latency(probe: ScenarioProbe) -> None:
    """Enough runs (in small concurrent batches) for the latency percentiles to mean something."""
    engine = probe.engine
    probe.note(engine.clock_estimate.describe())
    conn = await probe.connect()
    if conn is None:
        return
    remaining = engine.options.runs_for("latency")
    while remaining > 0:
        run_ids = await start_runs(probe, conn, min(LATENCY_BATCH, remaining))
        if not run_ids:
            break
        remaining -= len(run_ids)
        if not await conn.wait_runs(run_ids):
            probe.note(f"stopped after {engine.options.runs_for('latency') - remaining} run(s): "
                       "a run did not complete")
            break


async def time_sync(probe: ScenarioProbe, conn: LiveConnection, samples: int) -> list[SyncSample]:
    """Exchange up to ``samples`` time_sync messages; the client core judges each reply's echo
    (``time_sync.reply``), this waits for them and judges the silence the core cannot see.

    Returns the clock samples of the correctly echoed replies. A silent endpoint costs one
    reply timeout, not one per sample.
    """
    answered: list[SyncSample] = []
    for i in range(samples):
        seen, errors_seen = len(conn.sync_replies), conn.error_count
        if await conn.time_sync() is None:
            break
        # An error reply (say unknown_type) is an answer too: no need to wait out the timeout.
        await conn.wait(lambda: len(conn.sync_replies) > seen or conn.error_count > errors_seen,
                        reply_timeout(probe))
        if len(conn.sync_replies) <= seen:
            if i == 0:
                error = conn.errors[errors_seen][1] if errors_seen < len(conn.errors) else None
                _v.apply(probe, _v.time_sync_silence(error, reply_timeout(probe), conn.name))
            break
        sample = conn.sync_replies[seen].sample
        if sample is None:
            break  # a wrong echo: judged by the core, and no clock sample to trust
        answered.append(sample)
    return answered
