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
import math
import random
from dataclasses import dataclass
from typing import Awaitable, Callable

from agent_events import schemas
from agent_events.conformance import rules as _rules
from agent_events.conformance.live.clock_sync import SyncSample
from agent_events.conformance.client import RunRecord
from agent_events.conformance.live import races
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
    return tuple(r.id for r in _rules.RULES if r.scope in ("frame", "run", "timing")
                 and r.category not in ("fallback", "capabilities", "resume"))


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


def not_claimed(probe: ScenarioProbe, feature: str, rule_ids) -> bool:
    """1.1: when the endpoint's capabilities leave ``feature`` out, report its rules "not claimed"
    (never passed) and return True: nothing of it is probed. A 1.0 endpoint declares nothing, and
    its optional features are probed as 1.0 does (resume excepted: it is 1.1's)."""
    if probe.engine.claimed(feature) is not False:
        return False
    reason = f"not claimed: the endpoint's capabilities do not declare {feature}"
    for rule_id in rule_ids:
        probe.not_applicable(rule_id, reason)
    probe.note(f"{reason} ({', '.join(rule_ids)} not exercised)")
    return True


def judge_claim(probe: ScenarioProbe, feature: str, works: bool, observed: str, conn: str = "-") -> None:
    """1.1: a declared feature is held to its promise (``capabilities.honest``, MUST)."""
    if probe.engine.claimed(feature):
        probe.external("capabilities.honest", works, conn=conn,
                       expected=f"{feature}, declared in the endpoint's capabilities, works as the spec says",
                       observed=observed)


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
    expected = "an error with code 'duplicate_run', and the run in flight completes unharmed"
    details = dict(conn=conn.name, run_id=run_id, expected=expected)
    if error is not None and error.get("code") == "duplicate_run":
        probe.external(rule, run.completed, **details,
                       observed="duplicate_run, and the run completed" if run.completed else
                       "duplicate_run, but the run in flight did not complete")
    elif error is None and latest is not None and latest.restarted:
        probe.not_applicable(rule, "the endpoint completed the run before it read the second start_run of its id, "
                             "which then started a new run (the id was free again): no duplicate was in flight")
    elif error is not None:
        probe.external(rule, False, **details, observed=f"an error with code {error.get('code')!r}")
    else:
        twice = run.attempts.count("primary") > 1
        probe.external(rule, False, **details, observed=(
            "the connection closed" if not conn.open else
            "no error, and a second run started under the same run_id" if twice else
            f"no error within {reply_timeout(probe):g} s"))


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
    named = [r.run_id for r in runs if r.run_id]
    distinct = sorted(set(named))
    shared = [r.run_id for r in runs if r.run_id and r.attempts.count("primary") > 1]
    expected = f"{len(runs)} runs, each under its own server-generated run_id, each completed"
    if len(distinct) == len(runs) and not shared and all(r.completed for r in runs):
        probe.external(rule, True, conn=conn.name)
        return
    errors = [e.get("code") for _, e in conn.errors[errors_before:]]
    if shared:
        observed = f"run_id {shared[0]!r} carried two runs (two agent_started with attempt primary)"
    elif len(distinct) < len(runs):
        observed = (f"{len(runs)} start_runs without run_id; events came for {len(distinct)} run_id(s)"
                    f"{': ' + ', '.join(map(repr, distinct)) if distinct else ''}"
                    f"{f'; errors: {errors}' if errors else ''}"
                    f"{'; the connection closed' if not conn.open else ''}")
    else:
        observed = "a run without run_id did not complete" + ("; the connection closed" if not conn.open else "")
    probe.external(rule, False, conn=conn.name, expected=expected, observed=observed)


async def _too_many_runs(probe: ScenarioProbe) -> int | None:
    """Runs on a fresh connection until the endpoint answers too_many_runs (or RUNS_BOUND_PROBE
    are in flight); the runs are then cancelled, and one more start must be accepted.

    Returns the endpoint's bound on runs in flight when it showed one."""
    rule = "start.too_many_runs"
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
    expected = "a start_run over the bound refused with too_many_runs, and a start accepted once the runs ended"
    details = dict(conn=conn.name, expected=expected)
    codes = sorted({r.refused for r in refused})
    bound = None
    if silent and conn.too_many_runs:
        probe.external(rule, False, **details, observed=f"too_many_runs errors naming no run_id: {len(silent)} of "
                       f"{len(runs)} start_runs cannot be told refused (a refusal carries the run_id the client gave)")
    elif silent:
        probe.external(rule, False, **details, observed=f"{len(silent)} of {len(runs)} start_runs got neither an "
                       f"event nor an error within {timeout:g} s")
    elif not conn.open:
        probe.external(rule, False, **details, observed=f"the connection closed after {len(runs)} start_run(s)"
                       f"{f' ({len(refused)} refused)' if refused else ''}")
    elif not refused:
        probe.not_applicable(rule, f"the endpoint accepted every one of the {len(runs)} start_runs sent at once on "
                             f"one connection (up to {peak} runs in flight): its bound, if any, is higher")
    elif codes != ["too_many_runs"]:
        probe.external(rule, False, **details, observed=f"start_run refused with {', '.join(codes)} after "
                       f"{len(runs) - len(refused)} run(s) in flight")
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
        if again.refused == "too_many_runs":
            probe.external(rule, False, **details, run_id=again.run_id, observed=(
                f"too_many_runs after {accepted} run(s), and again once every run had ended"))
        else:
            probe.external(rule, again.completed, **details, run_id=again.run_id, observed=(
                "too_many_runs, then the next start completed" if again.completed else
                f"too_many_runs; the next start, once the runs had ended, did not complete "
                f"({again.refused or 'no agent_completed'})"))
    return bound


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

#: The random cancels: delays spread log-uniformly from 1 ms up to this (at most a quarter of the
#: run deadline), so that fast endpoints and slow ones alike are cancelled at every stage of a run.
CANCEL_SPREAD_MS = 1000.0
#: Seed of those delays: the same check cancels at the same moments (a verdict can be reproduced).
CANCEL_SEED = 13


@dataclass
class _Cancelled:
    """What one scenario's cancels showed, per rule: passes are recorded at once, N/A reasons kept
    in case no run of the rule could be judged at all."""

    probe: ScenarioProbe
    judged: dict[str, int]
    not_judged: dict[str, str]

    @classmethod
    def new(cls, probe: ScenarioProbe) -> "_Cancelled":
        return cls(probe, {"cancel.terminal": 0, "cancel.before_first_event": 0}, {})

    def external(self, rule_id: str, passed: bool, **details) -> None:
        self.judged[rule_id] += 1
        self.probe.external(rule_id, passed, **details)

    def skip(self, rule_id: str, reason: str) -> None:
        self.not_judged.setdefault(rule_id, reason)

    def finish(self) -> None:
        for rule_id, count in self.judged.items():
            if not count and rule_id in self.not_judged:
                self.probe.not_applicable(rule_id, self.not_judged[rule_id])


async def _answer_of(probe: ScenarioProbe, conn: LiveConnection, runs: list[RunRecord]) -> None:
    """Give the endpoint a moment to answer the cancels of runs that completed uncancelled
    (``unknown_run`` says the run had finished before the cancel arrived)."""
    waiting = [r for r in runs if r.completed and r.result.get("cancelled") is not True and r.error_code is None]
    if waiting:
        await conn.wait(lambda: all(r.error_code is not None for r in waiting), reply_timeout(probe) / 4)


def _judge_cancel(tally: _Cancelled, conn: LiveConnection, run: RunRecord, label: str) -> None:
    """Judge one run that was sent cancel_run, once it ended or its deadline passed.

    ``cancel.before_first_event``: a run cancelled before any of its events was received still
    sends its events (silence, or ``unknown_run`` for a run that was started, fails it).
    ``cancel.terminal``: a cancelled run that sent events ends with a cancelled agent_completed;
    one that completed uncancelled may have finished before the cancel arrived (N/A for that run).
    """
    early = run.first_at is None or run.first_at > run.cancel_sent_at
    details = dict(conn=conn.name, run_id=run.run_id)
    if run.refused is not None:
        tally.skip("cancel.before_first_event" if early else "cancel.terminal",
                   f"the endpoint refused the run ({run.refused}) that was to be cancelled {label}")
        return
    if early:
        if run.events:
            tally.external("cancel.before_first_event", True, **details)
        else:
            why = ("the connection closed" if not conn.open else
                   f"the run deadline passed ({conn.probe.engine.options.profile.deadline_s:g} s)")
            answer = (f"; the cancel_run was answered with {run.error_code} as if the run had never started"
                      if run.error_code else "")
            tally.external("cancel.before_first_event", False, **details,
                           expected="agent_started, then agent_completed, for a run cancelled before its first event",
                           observed=f"no event of the run at all ({label}) before {why}{answer}")
            return
    result = run.result or {}
    if run.completed and result.get("cancelled") is True and result.get("success") is False:
        tally.external("cancel.terminal", True, **details)
        return
    if run.completed:
        after_ms = run.completed_at - run.cancel_sent_at
        if run.error_code == "unknown_run":
            tally.skip("cancel.terminal", "the run completed before cancel_run reached the endpoint (it answered "
                       "unknown_run); a slower run is needed to exercise cancellation")
            return
        if result.get("cancelled") is not True and after_ms <= CANCEL_RACE_MS:
            # Too close to tell "ignored the cancel" from "had already finished", and the endpoint
            # did not say which (no unknown_run): not exercised, rather than a guess either way.
            tally.skip("cancel.terminal", f"the run completed {after_ms:.1f} ms after cancel_run, not cancelled, and "
                       "the endpoint sent no unknown_run: it may have finished first")
            return
        observed = (f"agent_completed with cancelled={result.get('cancelled')!r}, success={result.get('success')!r} "
                    f"{after_ms:.1f} ms after cancel_run ({label})")
    else:
        observed = (f"the connection closed without agent_completed ({label})" if not conn.open
                    else f"no agent_completed before the run deadline ({label})")
    tally.external("cancel.terminal", False, **details,
                   expected="agent_completed with result.cancelled true and result.success false", observed=observed)


async def _connection(probe: ScenarioProbe, conn: LiveConnection | None) -> LiveConnection | None:
    """``conn`` while it is open, else a new connection (None when that fails)."""
    return conn if conn is not None and conn.open else await probe.connect()


async def _cancel_mid_run(probe: ScenarioProbe, conn: LiveConnection, tally: _Cancelled) -> None:
    """cancel_run as soon as the run's first event arrives."""
    run_id = await conn.start_run()
    run = conn.runs[run_id]
    await conn.wait(lambda: run.first_at is not None or run.ended, conn.run_deadline(run_id))
    if run.completed:
        tally.skip("cancel.terminal", "the run completed before its first event could be answered with cancel_run; "
                   "a slower run is needed to exercise cancellation")
        return
    if run.first_at is None:
        return  # refused, or nothing started within the deadline: the checker reports it
    await conn.cancel_run(run_id)
    await conn.wait(lambda: run.ended, conn.run_deadline(run_id))
    await _answer_of(probe, conn, [run])
    _judge_cancel(tally, conn, run, "cancelled at its first event")
    if run.completed and run.result.get("cancelled") is True:
        probe.note(f"cancel_run to agent_completed: {run.completed_at - run.cancel_sent_at:.1f} ms")


async def _cancel_before_first_event(probe: ScenarioProbe, conn: LiveConnection, tally: _Cancelled) -> None:
    """cancel_run right behind start_run, before the endpoint can have sent anything of the run."""
    run_id = await conn.start_run()
    run = conn.runs[run_id]
    if await conn.cancel_run(run_id) is None:
        return
    await conn.wait(lambda: run.ended, conn.run_deadline(run_id))
    await _answer_of(probe, conn, [run])
    _judge_cancel(tally, conn, run, "cancel_run sent right after start_run")


async def _cancel_during_tool(probe: ScenarioProbe, conn: LiveConnection, tally: _Cancelled) -> None:
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
    _judge_cancel(tally, conn, run, "cancelled while a tool call was open" if during else "cancelled mid-run")


async def _cancel_at_random(probe: ScenarioProbe, conn: LiveConnection, tally: _Cancelled) -> None:
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
        _judge_cancel(tally, conn, run, "a random cancel")
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
    tally = _Cancelled.new(probe)
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
    tally.finish()


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
    ("a message without type", '{"run_id": "robustness-no-type"}', "invalid_message"),
)
assert all(code in schemas.ERROR_CODES for _, _, code in MALFORMED)


#: Sizes of the oversize probe, in bytes: just over the bound the spec asks a server to allow at
#: least (64 KiB), then, when that was read, just over 1 MiB (a common library default).
OVERSIZE_BYTES = (64 * 1024 + 1024, 2**20 + 1024)
#: The oversize message: a type no server knows, so that one that reads it answers unknown_type.
OVERSIZE_TYPE = "no_such_message_type"


def oversize_message(size: int) -> str:
    """A JSON object of exactly ``size`` bytes."""
    head, tail = f'{{"type": "{OVERSIZE_TYPE}", "padding": "', '"}'
    return head + "x" * (size - len(head) - len(tail)) + tail


async def _oversize(probe: ScenarioProbe, conn: LiveConnection, answers_unknown_type: bool) -> None:
    """Messages over the endpoint's size bound: answered message_too_big (the connection stays
    open), or a close with 1009. The bound of a foreign endpoint is unknown: a message it reads
    (an unknown_type answer) tells that its bound is higher, and the next size is tried."""
    rule = "robustness.message_too_big"
    timeout = reply_timeout(probe)
    read: list[str] = []
    for size in OVERSIZE_BYTES:
        conn = await _connection(probe, conn)
        if conn is None:
            return
        before = conn.error_count
        await conn.send(oversize_message(size))
        await conn.wait(lambda: conn.error_count > before, timeout)
        error = conn.errors[before][1] if conn.error_count > before and before < len(conn.errors) else None
        code = error.get("code") if error is not None else None
        expected = f"an error with code 'message_too_big' (the connection staying open) or a close with 1009 " \
                   f"for a message of {size} bytes"
        details = dict(conn=conn.name, expected=expected)
        if code == "message_too_big":
            await conn.wait(lambda: not conn.open, timeout / 4)  # the connection must stay open (or close 1009)
            info = conn.close_info
            probe.external(rule, conn.open or (info is not None and info.code == 1009), **details,
                           observed="message_too_big" + ("" if conn.open else
                                                        f", then a close with code {info.code if info else None}"))
            return
        if not conn.open:
            info = conn.close_info
            probe.external(rule, info is not None and info.code == 1009, **details,
                           observed=f"a close with code {info.code if info else None}"
                                    f"{f' ({info.reason})' if info and info.reason else ''}"
                                    + (f" after an error with code {code!r}" if code else ""))
            return
        if error is None:
            if answers_unknown_type:
                probe.external(rule, False, **details, observed=f"no answer within {timeout:g} s (an unknown type of "
                               "ordinary size was answered with an error)")
            else:
                probe.not_applicable(rule, f"no answer to a message of {size} bytes, and none to an unknown type of "
                                     "ordinary size either: whether the endpoint read it is unknown")
            return
        read.append(f"{size} bytes (answered {code})")
    probe.not_applicable(rule, f"the endpoint read every oversize probe ({', '.join(read)}): its bound, if any, "
                         "is higher")


async def robustness(probe: ScenarioProbe) -> None:
    """Malformed input gets an error of the documented code, and the connection stays usable."""
    conn = await probe.connect()
    if conn is None:
        return
    timeout = reply_timeout(probe)
    answers_unknown_type = False
    for what, frame, code in MALFORMED:
        if not conn.open:
            conn = await probe.connect()
            if conn is None:
                return
        before = conn.error_count
        await conn.send(frame)
        error = await conn.wait_error(before, timeout)
        answers_unknown_type |= code == "unknown_type" and error is not None
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
    if conn.open:
        run_id = await conn.start_run()
        await conn.wait_runs([run_id])
        run = conn.runs[run_id]
        probe.external("robustness.stays_open", run.completed, conn=conn.name, run_id=run_id,
                       expected="a run started after the malformed input completes on the same connection",
                       observed="it did not complete" if not run.completed else "it completed")
    await _oversize(probe, conn, answers_unknown_type)


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
        code = error.get("code") if error is not None else None
        probe.external("resume.secret", code == "resume_denied" and not leaked, conn=thief.name,
                       expected="error resume_denied, and no event of the run",
                       observed=(f"error {code!r}" if error is not None else "no error") +
                                (f" and {leaked} event(s) of the run" if leaked else ""))
        await thief.close()
    second = await probe.connect()
    if second is None:
        return
    errors = second.error_count
    await second.resume_run(run_id, token, last_seq)
    resumed = second.runs[run_id]
    done = await second.wait(lambda: resumed.completed or second.error_count > errors, second.run_deadline(run_id))
    error = second.errors[errors][1] if second.error_count > errors and errors < len(second.errors) else None
    works = resumed.completed and error is None
    judge_claim(probe, "resume", works,
                f"resumed after seq {last_seq} ({label}): " + (
                    f"{resumed.events} event(s) replayed and live, the run completed" if works else
                    f"refused with {error.get('code')!r}" if error is not None else
                    "the run did not complete within its deadline" if not done else "the run did not complete"),
                second.name)
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


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("primary", "one run on the primary path; every rule that applies to a normal run",
             ("transport.subprotocol", "transport.connection_kept", "frame.size", *_run_rules(), "fallback.flag"), primary),
    Scenario("fallback", "one run with options.simulate_failure \"primary\"; N/A when the endpoint has no fallback",
             (*_run_rules(), *FALLBACK_RULES), fallback),
    Scenario("multiplex", "several runs at once on one connection; a duplicate run_id, runs without run_id, "
             "and the bound on runs in flight; then the race of a duplicate start_run in the same write as the first",
             (*_run_rules(), "isolation.run_scope", *START_RULES), races.then(multiplex, races.START_RACES)),
    Scenario("concurrency", "N connections at once (default 10): isolation, and nothing dropped",
             ("transport.connections", *_run_rules(), "isolation.run_scope"), concurrency),
    Scenario("latency", "clock offset by time_sync, then enough runs for p50/p95/p99/max",
             ("time_sync.reply", *_rules_where(category="latency")), latency),
    Scenario("cancel", "cancel_run mid-run, right after start_run, during a tool and at random delays across "
             "concurrent runs: each ends with a well-formed, cancelled agent_completed; then the races of cancel_run "
             "in the same write as start_run and of cancel_run racing agent_completed",
             ("cancel.terminal", "cancel.before_first_event", "pair.tool_matched", "order.completed_last"),
             races.then(cancel, races.CANCEL_RACES)),
    Scenario("robustness", "malformed and oversize client input is answered with error messages (SHOULD level)",
             _rules_where(category="robustness"), robustness),
    Scenario("reconnect", "1.1: the connection dropped mid-run at three points, then resumed from a new one: "
             "nothing lost, nothing repeated; a resume without the secret is refused; then the races of resume_run "
             "and the run's completion, and of cancel_run in the same write as resume_run",
             ("capabilities.first", "capabilities.honest", *RESUME_RULES, "seq.contiguous", "order.completed_last",
              "isolation.run_scope"), races.then(reconnect, races.RESUME_RACES)),
)}
