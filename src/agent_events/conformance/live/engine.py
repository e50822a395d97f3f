"""The live check: connect, estimate the clock offset, run the scenarios, freeze a report.

One :class:`LiveCheck` is one ``agent-events check``. It owns the things a
check shares across scenarios (the clock, the transcript, the clock offset,
whether the endpoint was reachable at all) and gives each scenario a fresh
checker, so that a report says which scenario revealed what.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from agent_events.conformance.core.checker import Checker
from agent_events.conformance.live import scenarios as _scenarios
from agent_events.conformance.live.races import DEFAULT_TRIES as DEFAULT_RACE_TRIES
from agent_events.conformance.core.harness_lag import LagMonitor, LagRecord
from agent_events.conformance.core.clock_sync import ASSUMED_SAME_CLOCK, ClockEstimate, estimate
from agent_events.conformance.live.session import ScenarioProbe
from agent_events.conformance.live.wire import Clock, Endpoint
from agent_events.conformance.core.profiles import Profile
from agent_events.conformance.reporting.report import Section
from agent_events.conformance.offline.transcript import TranscriptWriter

#: Runs per scenario when ``--runs`` is not given: enough for what each proves.
DEFAULT_RUNS = {"multiplex": 5, "concurrency": 3, "latency": 20, "cancel": 8}
DEFAULT_CONCURRENCY = 10
DEFAULT_INPUT = "Create optimization action plan"
SYNC_SAMPLES = 8
#: Messages read from one connection before the harness stops reading it (a flood guard).
MAX_MESSAGES = 200_000


@dataclass
class LiveOptions:
    """Everything a live check needs, already validated (the CLI and the API build it)."""

    endpoint: Endpoint
    profile: Profile
    scenarios: tuple[str, ...] = tuple(_scenarios.SCENARIOS)
    input: str = DEFAULT_INPUT
    #: runs per scenario; ``None`` uses DEFAULT_RUNS
    runs: int | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    record: Path | None = None
    #: a connection that sends more than this is closed (flood guard; memory and time stay bounded)
    max_messages_per_connection: int = MAX_MESSAGES
    #: extra wait past the deadline before giving up on a run (ms)
    grace_ms: float = 500.0
    sync_samples: int = SYNC_SAMPLES
    progress: Callable[[str], None] | None = field(default=None, repr=False)
    #: the run_id of the first run started (``agent-events record --run-id``); the others are generated
    first_run_id: str | None = None
    #: tries of each race a scenario provokes (see :mod:`agent_events.conformance.live.races`)
    race_tries: int = DEFAULT_RACE_TRIES

    def __post_init__(self) -> None:
        unknown = [s for s in self.scenarios if s not in _scenarios.SCENARIOS]
        if unknown:
            raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(_scenarios.SCENARIOS)}")
        if not self.scenarios:
            raise ValueError("no scenario selected")
        if self.runs is not None and self.runs < 1:
            raise ValueError(f"runs must be at least 1, not {self.runs}")
        if isinstance(self.race_tries, bool) or not isinstance(self.race_tries, int) or self.race_tries < 1:
            raise ValueError(f"race_tries must be an integer of at least 1, not {self.race_tries!r}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")
        # canonical order, no duplicates: the report reads the same whatever the flag order
        self.scenarios = tuple(s for s in _scenarios.SCENARIOS if s in self.scenarios)

    def runs_for(self, scenario: str) -> int:
        return self.runs if self.runs is not None else DEFAULT_RUNS.get(scenario, 1)


#: How long the check waits for a 1.1 endpoint's capabilities message after the first handshake.
CAPABILITIES_WAIT_S = 0.3


class LiveCheck:
    """One live check of one endpoint."""

    def __init__(self, options: LiveOptions) -> None:
        self.options = options
        self.clock = Clock()
        self.connected_once = False
        #: 1.1: what the endpoint declared (``None``: no capabilities message, a 1.0 endpoint)
        self.capabilities: dict | None = None
        self.features: dict | None = None
        self.protocol_version = "1.0"
        #: when the harness itself was stalled (CPU starvation, a busy loop): see harness_lag
        self.lag = LagRecord()
        #: record --run-id: whether the first run already took the chosen id
        self.first_run_id_used = False
        self.clock_estimate: ClockEstimate = ASSUMED_SAME_CLOCK
        self.started_at = self.clock.now()
        self.notes: list[str] = []
        self._transcript_file = None
        self._transcript: TranscriptWriter | None = None
        #: frames seen before the transcript is opened (those that came with the first handshake)
        self._unwritten: list | None = [] if options.record is not None else None
        self._current: ScenarioProbe | None = None
        self._position = (0, len(options.scenarios))

    # -- transcript ------------------------------------------------------------------
    def record(self, direction: str, frame, at: float, conn: str) -> None:
        writer = self._transcript
        if writer is None and self._unwritten is not None:
            self._unwritten.append((direction, frame, at, conn))
        elif writer is not None:
            if direction == "recv":
                writer.recv(frame, round(at, 3), conn)
            elif direction == "close":  # frame: {"code", "cause", "detail"} of the close
                writer.close(round(at, 3), conn, **frame)
            else:
                writer.send(frame, round(at, 3), conn)

    def _open_transcript(self) -> None:
        """Open the transcript once the endpoint answered: an unreachable one leaves no file behind
        (and an existing file untouched)."""
        path = self.options.record
        if path is None or self._transcript is not None:
            return
        path = Path(path)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        self._transcript_file = path.open("wb")
        self._transcript = TranscriptWriter(self._transcript_file)
        self._transcript.header(url=self.options.endpoint.url, started_at=round(self.started_at, 3),
                                scenarios=list(self.options.scenarios), profile=self.options.profile.name)
        unwritten, self._unwritten = self._unwritten or [], None
        for frame in unwritten:
            self.record(*frame)

    def _close_transcript(self) -> None:
        if self._transcript_file is not None:
            self._transcript_file.close()
            self._transcript_file = self._transcript = None

    # -- the check ---------------------------------------------------------------------
    def _checker(self) -> Checker:
        # every scenario's checker judges its latencies net of the harness's own stalls
        return Checker(self.options.profile, lag=self.lag)

    async def run(self) -> list[Section]:
        """Run every selected scenario; raise ConnectError when the endpoint is unreachable."""
        options = self.options
        ticker = asyncio.get_running_loop().create_task(self._tick()) if options.progress else None
        monitor = LagMonitor(self.lag, self.clock.now)
        monitor.start()
        try:
            owners = {rule_id: name for name, s in _scenarios.SCENARIOS.items() for rule_id in s.focus}
            probes = {name: ScenarioProbe(self, name, self._checker(), owners) for name in options.scenarios}
            await self._synchronise(probes.get("latency") or ScenarioProbe(self, "preflight", self._checker(), owners))
            sections = []
            stuck = None
            for position, name in enumerate(options.scenarios, 1):
                probe = probes[name]
                self._current, self._position = probe, (position, len(options.scenarios))
                if stuck is None:
                    await self._run_scenario(probe)
                    if probe.runs_started and not probe.runs_completed:
                        stuck = name
                else:
                    # An endpoint whose runs never end would make every later scenario wait out
                    # its deadline to learn nothing new: the check stays bounded by one deadline.
                    probe.note(f"skipped: no run completed in the {stuck} scenario, so this one could not either")
                    await probe.finish()
                sections.append(Section.from_checker(name, probe.checker, kind="scenario", notes=probe.notes))
            return sections
        finally:
            await monitor.stop()
            if ticker is not None:
                ticker.cancel()
            self._close_transcript()

    async def _run_scenario(self, probe: ScenarioProbe) -> None:
        scenario = _scenarios.SCENARIOS[probe.name]
        deadline_s = self.options.profile.deadline_s
        # No run starts after one run deadline (whatever --runs asks), and each gets one deadline to end.
        probe.starts_until = self.clock.now() + deadline_s * 1000.0
        # Every wait inside is bounded already; this is the backstop against a bug.
        backstop = deadline_s * 3 + 60
        try:
            await asyncio.wait_for(scenario.run(probe), backstop)
        except asyncio.TimeoutError:
            probe.note(f"the scenario was stopped after {backstop:g} s")
        await probe.finish()

    async def _synchronise(self, probe: ScenarioProbe) -> None:
        """Connect once (exit 3 if that fails) and estimate the clock offset with time_sync."""
        conn = await probe.connect()
        try:
            self._open_transcript()
        except OSError:
            await conn.close()
            raise
        # A 1.1 server's first message, sent right after the handshake; a 1.0 server sends nothing
        # until asked, so this costs a 1.0 endpoint at most CAPABILITIES_WAIT_S once per check.
        await conn.wait(lambda: conn.core.received > 0, min(CAPABILITIES_WAIT_S, self.options.profile.deadline_s))
        declared = conn.core.capabilities
        if declared is not None:
            self.capabilities = declared
            self.protocol_version = str(declared.get("protocol_version"))
            self.features = declared.get("features") or {}
            claimed = ", ".join(name for name, value in self.features.items() if value is not False) or "none"
            self.notes.append(f"the endpoint speaks protocol {self.protocol_version}; features declared: {claimed}")
        else:
            self.notes.append("the endpoint sent no capabilities message: judged as protocol 1.0 "
                              "(its optional features probed as in 1.0; resume not claimed)")
        if declared is not None and not self.features.get("time_sync"):
            self.notes.append("time_sync not claimed: clocks assumed equal")
        else:
            samples = await _scenarios.time_sync(probe, conn, self.options.sync_samples)
            self.clock_estimate = estimate(samples)
            self.notes.append(self.clock_estimate.describe())
        await conn.close()

    def claimed(self, feature: str) -> bool | None:
        """Whether the endpoint declares ``feature``: True or False under 1.1, ``None`` for a 1.0
        endpoint (which declares nothing: its features are probed as 1.0 does)."""
        if self.features is None:
            return None
        value = self.features.get(feature)
        return value is not None and value is not False

    # -- progress ----------------------------------------------------------------------
    def progress_text(self) -> str:
        probe = self._current
        position, total = self._position
        elapsed = (self.clock.now() - self.started_at) / 1000.0
        if probe is None:
            return f"[0/{total}] connecting ... {elapsed:.1f}s"
        checker = probe.checker
        violations = sum(checker.violation_counts.values())
        return (f"[{position}/{total} {probe.name}] {checker.runs_completed}/{max(checker.starts_sent, checker.runs)} runs, "
                f"{checker.run_events} events, {violations} violation(s), {elapsed:.1f}s")

    async def _tick(self) -> None:
        while True:
            try:
                self.options.progress(self.progress_text())
            except Exception:  # noqa: BLE001 - a broken progress sink must not break the check
                return
            await asyncio.sleep(0.2)
