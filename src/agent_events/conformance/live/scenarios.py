"""The scenarios of a live check: named, selectable groups of probes.

Each scenario drives one or more connections the way a real client would
(or, for ``robustness``, the way a broken one would) and lets its own checker
judge the stream. A scenario states the rules it is *for* (``focus``: what
the docs and the pytest plugin list under it); the report shows every rule
it actually exercised, since a scenario also exercises the schema and
sequence rules on every event it receives.

The scenarios never judge the event stream themselves: that is the
checker's job. They judge only what a stream cannot show: whether the
endpoint answered a cancel, a time_sync, or malformed input.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

from agent_events import schemas
from agent_events.conformance import rules as _rules
from agent_events.conformance.live.clock_sync import SyncSample
from agent_events.conformance.live.session import LiveConnection, ScenarioProbe

#: How long the probe waits for an answer that is not a run (an error reply,
#: a time_sync reply), at most; shorter when the run deadline is shorter.
REPLY_TIMEOUT_S = 2.0
#: A run that completes, not cancelled, this soon after cancel_run may simply have finished
#: first; one that goes on longer ignored the cancel.
CANCEL_RACE_MS = 50.0


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    #: The rules this scenario exists to exercise (docs, pytest items).
    focus: tuple[str, ...]
    run: Callable[[ScenarioProbe], Awaitable[None]]


def _rules_where(**match) -> tuple[str, ...]:
    return tuple(r.id for r in _rules.RULES if all(getattr(r, k) == v for k, v in match.items()))


def _run_rules() -> tuple[str, ...]:
    """Rules any well-formed run exercises: frames, schemas, sequence, order, pairing, latency, profile."""
    return tuple(r.id for r in _rules.RULES if r.scope in ("frame", "run", "timing") and r.category != "fallback")


def reply_timeout(probe: ScenarioProbe) -> float:
    return min(REPLY_TIMEOUT_S, probe.engine.options.profile.deadline_s)


async def start_runs(probe: ScenarioProbe, conn: LiveConnection, count: int) -> list[str]:
    """Start up to ``count`` runs on ``conn``, fewer when :meth:`ScenarioProbe.may_start` says stop
    (too_many_runs, a closed connection, the scenario's time used up): ``--runs`` is a wish, not a promise."""
    run_ids: list[str] = []
    for _ in range(count):
        if not probe.may_start(conn):
            break
        run_ids.append(await conn.start_run())
        await asyncio.sleep(0)  # let the read loop deliver a refusal before the next start
    return run_ids


async def _single_run(probe: ScenarioProbe, options: dict | None = None) -> tuple[LiveConnection, str] | None:
    conn = await probe.connect()
    if conn is None:
        return None
    run_id = await conn.start_run(options=options)
    await conn.wait_runs([run_id])
    return conn, run_id


# -- primary -----------------------------------------------------------------------

async def primary(probe: ScenarioProbe) -> None:
    """One run: the happy path, where every rule that applies to a normal run is exercised."""
    await _single_run(probe)


# -- fallback ----------------------------------------------------------------------

FALLBACK_RULES = _rules_where(category="fallback")


async def fallback(probe: ScenarioProbe) -> None:
    """A run asked to fail its primary path; N/A (not failed) when the endpoint cannot."""
    outcome = await _single_run(probe, {"simulate_failure": "primary"})
    if outcome is None:
        return
    conn, run_id = outcome
    run = conn.runs[run_id]
    if run.completed and not run.fallback_taken:
        reason = ("the endpoint did not take the fallback path for options.simulate_failure=\"primary\" "
                  "(an implementation that does not support it ignores it)")
        for rule_id in FALLBACK_RULES:
            probe.not_applicable(rule_id, reason)
        probe.note(reason)


# -- multiplex ---------------------------------------------------------------------

async def multiplex(probe: ScenarioProbe) -> None:
    """Several runs at once on one connection: told apart by run_id, each with its own seq."""
    conn = await probe.connect()
    if conn is None:
        return
    run_ids = await start_runs(probe, conn, probe.engine.options.runs_for("multiplex"))
    await conn.wait_runs(run_ids)


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
                observed = (f"an error with code {error.get('code')!r} instead" if error is not None else
                            f"no time_sync reply within {reply_timeout(probe):g} s")
                probe.external("time_sync.reply", False, conn=conn.name,
                               expected="a time_sync reply echoing client_time_ms", observed=observed)
            break
        sample = conn.sync_replies[seen].sample
        if sample is None:
            break  # a wrong echo: judged by the core, and no clock sample to trust
        answered.append(sample)
    return answered


# -- cancel ------------------------------------------------------------------------

async def cancel(probe: ScenarioProbe) -> None:
    """cancel_run once the run has started: it must still end with a cancelled agent_completed."""
    conn = await probe.connect()
    if conn is None:
        return
    run_id = await conn.start_run()
    run = conn.runs[run_id]
    await conn.wait(lambda: run.first_at is not None or run.completed, conn.run_deadline(run_id))
    if run.completed:
        probe.not_applicable("cancel.terminal", "the run completed before its first event could be answered "
                             "with cancel_run; a slower run is needed to exercise cancellation")
        return
    if run.first_at is None:
        return  # nothing started within the deadline: the checker reports it
    errors_before = conn.error_count
    await conn.cancel_run(run_id)
    await conn.wait(lambda: run.completed, conn.run_deadline(run_id))
    result = run.result
    if run.completed and result.get("cancelled") is True and result.get("success") is False:
        probe.external("cancel.terminal", True, conn=conn.name, run_id=run_id)
        probe.note(f"cancel_run to agent_completed: {run.completed_at - run.cancel_sent_at:.1f} ms")
        return
    if run.completed:
        # The run may simply have finished before the cancel arrived: the endpoint then says unknown_run.
        error = await conn.wait_error(errors_before, reply_timeout(probe) / 4)
        after_ms = run.completed_at - run.cancel_sent_at
        if error is not None and error.get("code") == "unknown_run":
            probe.not_applicable("cancel.terminal", "the run completed before cancel_run reached the endpoint "
                                 "(it answered unknown_run); a slower run is needed to exercise cancellation")
            return
        if result.get("cancelled") is not True and after_ms <= CANCEL_RACE_MS:
            # Too close to tell "ignored the cancel" from "had already finished", and the endpoint
            # did not say which (no unknown_run): not exercised, rather than a guess either way.
            probe.not_applicable("cancel.terminal", f"the run completed {after_ms:.1f} ms after cancel_run, not "
                                 "cancelled, and the endpoint sent no unknown_run: it may have finished first")
            return
        observed = (f"agent_completed with cancelled={result.get('cancelled')!r}, success={result.get('success')!r} "
                    f"{after_ms:.1f} ms after cancel_run")
    else:
        observed = ("the connection closed without agent_completed" if not conn.open
                    else "no agent_completed before the run deadline")
    probe.external("cancel.terminal", False, conn=conn.name, run_id=run_id,
                   expected="agent_completed with result.cancelled true and result.success false", observed=observed)


# -- robustness --------------------------------------------------------------------

#: (what, frame, the error code the spec names for it). ``bytes`` is a binary frame.
MALFORMED: tuple[tuple[str, str | bytes, str], ...] = (
    ("a text frame that is not JSON", "{this is not json", "invalid_json"),
    ("a JSON array instead of an object", "[1, 2, 3]", "invalid_json"),
    ("a binary frame", b"\x00\x01\x02binary", "unsupported_frame"),
    ("an unknown message type", '{"type": "no_such_message_type"}', "unknown_type"),
    ("a start_run without input", '{"type": "start_run", "run_id": "robustness-missing-input"}', "invalid_message"),
    ("a start_run whose input is a number", '{"type": "start_run", "run_id": "robustness-bad-input", "input": 42}',
     "invalid_message"),
    ("a cancel_run of a run that does not exist", '{"type": "cancel_run", "run_id": "robustness-no-such-run"}',
     "unknown_run"),
)
assert all(code in schemas.ERROR_CODES for _, _, code in MALFORMED)


async def robustness(probe: ScenarioProbe) -> None:
    """Malformed input gets an error of the documented code, and the connection stays usable."""
    conn = await probe.connect()
    if conn is None:
        return
    timeout = reply_timeout(probe)
    for what, frame, code in MALFORMED:
        if not conn.open:
            conn = await probe.connect()
            if conn is None:
                return
        before = conn.error_count
        await conn.send(frame)
        error = await conn.wait_error(before, timeout)
        if error is not None:
            got = error.get("code")
            probe.external("robustness.error_reply", got == code, conn=conn.name,
                           expected=f"an error with code {code!r} for {what}", observed=f"an error with code {got!r}")
        else:
            probe.external("robustness.error_reply", False, conn=conn.name,
                           expected=f"an error with code {code!r} for {what}",
                           observed="the connection closed instead" if not conn.open
                           else f"no error message within {timeout:g} s")
        if not conn.open:
            info = conn.close_info
            probe.external("robustness.stays_open", False, conn=conn.name,
                           expected=f"the connection stays open after {what}",
                           observed=f"closed (code {info.code}, {info.reason or info.detail or 'no reason'})")
    if not conn.open:
        return
    run_id = await conn.start_run()
    await conn.wait_runs([run_id])
    run = conn.runs[run_id]
    probe.external("robustness.stays_open", run.completed, conn=conn.name, run_id=run_id,
                   expected="a run started after the malformed input completes on the same connection",
                   observed="it did not complete" if not run.completed else "it completed")


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("primary", "one run on the primary path; every rule that applies to a normal run",
             ("transport.subprotocol", "transport.connection_kept", "frame.size", *_run_rules(), "fallback.flag"), primary),
    Scenario("fallback", "one run with options.simulate_failure \"primary\"; N/A when the endpoint has no fallback",
             (*_run_rules(), *FALLBACK_RULES), fallback),
    Scenario("multiplex", "several runs at once on one connection",
             (*_run_rules(), "isolation.run_scope"), multiplex),
    Scenario("concurrency", "N connections at once (default 10): isolation, and nothing dropped",
             ("transport.connections", *_run_rules(), "isolation.run_scope"), concurrency),
    Scenario("latency", "clock offset by time_sync, then enough runs for p50/p95/p99/max",
             ("time_sync.reply", *_rules_where(category="latency")), latency),
    Scenario("cancel", "cancel_run mid-run ends with a well-formed, cancelled agent_completed",
             ("cancel.terminal", "pair.tool_matched", "order.completed_last"), cancel),
    Scenario("robustness", "malformed client input is answered with error messages (SHOULD level)",
             _rules_where(category="robustness"), robustness),
)}
