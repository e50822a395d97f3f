"""What every scenario of a live check shares: the Scenario record and the probe's small moves.

A scenario (one module per family: ``scenario_runs``, ``scenario_start``, ``scenario_timing``,
``scenario_cancel``, ``scenario_robustness``, ``scenario_reconnect``; registered in
:mod:`agent_events.conformance.live.scenarios`) drives one or more connections the way a real
client would, or a broken one, and lets its own checker judge the stream. It judges only what a
stream cannot show, and even that through the pure :mod:`agent_events.conformance.live.verdicts`:
the scenario gathers the facts, the verdicts module says what they mean.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

from agent_events.conformance.core import rules as _rules
from agent_events.conformance.live import verdicts as _v
from agent_events.conformance.live.session import LiveConnection, ScenarioProbe

#: How long the probe waits for an answer that is not a run (an error reply,
#: a time_sync reply), at most; shorter when the run deadline is shorter.
REPLY_TIMEOUT_S = 2.0
#: A run that completes, not cancelled, this soon after cancel_run may simply have finished
#: first; one that goes on longer ignored the cancel.
CANCEL_RACE_MS = _v.CANCEL_RACE_MS


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



async def _connection(probe: ScenarioProbe, conn: LiveConnection | None) -> LiveConnection | None:
    """``conn`` while it is open, else a new connection (None when that fails)."""
    return conn if conn is not None and conn.open else await probe.connect()


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
    _v.apply(probe, _v.claim(probe.engine.claimed(feature), feature, works, observed, conn))
