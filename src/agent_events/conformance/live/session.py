"""The live probe's plumbing: connections wired to a scenario's checker and the transcript.

Every frame, both ways, goes through one place (:class:`LiveConnection`): it
is timed at the socket, written to the transcript, fed to the scenario's
checker, and noted in a little bookkeeping (which runs started, completed,
which ``error`` codes came back) that the scenarios wait on. The checker
stays the only judge of the stream; the bookkeeping only tells the probe
when to stop waiting and what to send next, and it is O(1) per run so that
a flooding endpoint cannot grow it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from agent_events import schemas
from agent_events.conformance import json_text
from agent_events.conformance.checker import refused_run_id
from agent_events.conformance.live.wire import (
    ClientLimitError, CloseInfo, ConnectError, FrameKind, WireConnection, open_connection,
)

_loads = json_text.loads  # the checker's parser, so probe and checker agree on what is JSON
_dumps = orjson.dumps
#: ``error`` messages kept per connection (the checker counts them all).
MAX_ERRORS_KEPT = 64


@dataclass
class RunInfo:
    """What the probe knows about one run it started (bookkeeping, not judgement)."""

    run_id: str
    started_at: float | None
    events: int = 0
    first_at: float | None = None
    completed_at: float | None = None
    result: dict | None = None
    attempts: list[str] = field(default_factory=list)
    cancel_sent_at: float | None = None
    #: the error code the endpoint refused the run with (no event will come)
    refused: str | None = None

    @property
    def completed(self) -> bool:
        return self.completed_at is not None

    @property
    def ended(self) -> bool:
        return self.completed_at is not None or self.refused is not None

    @property
    def fallback_taken(self) -> bool:
        return "fallback" in self.attempts


class LiveConnection:
    """One connection of one scenario: send client messages, wait for what comes back."""

    def __init__(self, probe: "ScenarioProbe", name: str) -> None:
        self.probe = probe
        self.name = name
        self.wire: WireConnection | None = None
        self.runs: dict[str, RunInfo] = {}
        self.errors: list[tuple[float, dict]] = []
        self.error_count = 0
        #: the endpoint answered a start_run with too_many_runs: starting more would only be refused too
        self.too_many_runs = False
        self.sync_replies: list[tuple[float, dict]] = []
        self.received = 0
        self.close_info: CloseInfo | None = None
        self._changed = asyncio.Event()
        self._run_counter = 0
        self._flood_stopped = False
        self._closing: asyncio.Task | None = None  # referenced, so the loop cannot drop it

    # -- callbacks from the wire (must be quick, never raise) ----------------------
    def on_message(self, wire: WireConnection, kind: FrameKind, data: bytes, at: float) -> None:
        if self._flood_stopped:
            return  # past the cap: what is still in flight until the close completes is ignored
        probe = self.probe
        self.received += 1
        if kind == "text":
            try:
                frame: str | bytes = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                # Not UTF-8: keep the bytes visible as \x escapes. The result is never
                # valid JSON (JSON has no \x escape), so live and replay agree: frame.json.
                frame = data.decode("utf-8", "backslashreplace")
                probe.note_once("invalid_utf8", f"{self.name} received a text frame that is not UTF-8 "
                                f"({exc.reason} at byte {exc.start}); shown with \\x escapes")
        else:
            frame = data
        probe.engine.record("recv", frame, at, self.name)
        try:
            message = _loads(frame)  # binary too: the checker judges its content, so the probe follows it
        except orjson.JSONDecodeError:
            message = None
        # Parsed once: a text frame holding an object goes to the checker decoded. Anything else goes
        # as received, so that the checker sees a binary frame as binary and a JSON string as a string.
        checked = message if kind == "text" and type(message) is dict else frame
        probe.checker.receive(checked, at, self.name)
        if type(message) is dict:
            self._bookkeep(message, at)
        if self.received >= probe.engine.options.max_messages_per_connection and not self._flood_stopped:
            self._flood_stopped = True
            probe.note(f"{self.name} received {self.received} messages; the harness stopped reading it "
                       "(a flood, or --max-messages too low)")
            self._closing = asyncio.get_running_loop().create_task(wire.close(1008, "too many messages"))
        self._changed.set()

    def _bookkeep(self, message: dict, at: float) -> None:
        type_ = message.get("type")
        if type_ == "error":
            self.error_count += 1
            if len(self.errors) < MAX_ERRORS_KEPT:
                self.errors.append((at, message))
            code = message.get("code")
            run_id = refused_run_id(message)
            run = self.runs.get(run_id) if run_id is not None else None
            if run is not None and run.events == 0:
                run.refused = code if type(code) is str else "?"  # as the checker sees it: refused, not unfinished
            if code == "too_many_runs":
                self.too_many_runs = True
            return
        if type_ == "time_sync":
            if len(self.sync_replies) < MAX_ERRORS_KEPT:
                self.sync_replies.append((at, message))
            return
        run = self.runs.get(message.get("run_id")) if type(message.get("run_id")) is str else None
        if run is None:
            return
        run.events += 1
        if run.first_at is None:
            run.first_at = at
        payload = message.get("payload")
        if type_ == "agent_started" and type(payload) is dict:
            run.attempts.append(str(payload.get("attempt")))
        elif type_ == "agent_completed" and run.completed_at is None:
            run.completed_at = at
            result = payload.get("result") if type(payload) is dict else None
            run.result = result if type(result) is dict else {}

    def on_close(self, wire: WireConnection, info: CloseInfo) -> None:
        self.close_info = info
        probe = self.probe
        if info.cause == "message_too_big":
            limit = probe.engine.options.endpoint.max_size
            probe.checker.external(
                "frame.size", False, conn=self.name, at=probe.engine.clock.now(),
                expected=f"every message at most {limit} bytes (the client's frame limit)",
                observed=f"a message over the limit ({info.detail}); the client closed the connection with 1009")
        elif info.cause == "protocol_error":
            probe.note(f"{self.name}: the endpoint broke the WebSocket framing ({info.detail}); "
                       "the client closed the connection with 1002")
        self._changed.set()

    # -- sending -------------------------------------------------------------------
    async def send(self, message: Any) -> float | None:
        """Send a client message (a dict is serialised; ``str``/``bytes`` go as a raw text/binary frame)."""
        if isinstance(message, bytes):
            kind, data, frame = "binary", message, message
        else:
            text = message if isinstance(message, str) else _dumps(message).decode()
            kind, data, frame = "text", text.encode(), text
        wire = self.wire
        if wire is None or not wire.is_open:
            return None
        # Account first: the answer may be read while the frame is still being flushed.
        at = self.probe.engine.clock.now()
        self.probe.engine.record("send", frame, at, self.name)
        self.probe.checker.send(frame, at, self.name)
        await wire.send(kind, data)
        return at

    def next_run_id(self) -> str:
        self._run_counter += 1
        engine = self.probe.engine
        chosen = engine.options.first_run_id
        if chosen is not None and not getattr(engine, "_first_run_id_used", False):
            engine._first_run_id_used = True
            return chosen
        return f"{self.probe.name}-{self.name.rsplit('/', 1)[-1]}-r{self._run_counter}"

    async def start_run(self, input_text: str | None = None, options: dict | None = None) -> str:
        """Start a run with a fresh client-chosen run_id (so isolation can be judged) and return it."""
        run_id = self.next_run_id()
        message: dict = {"type": "start_run", "run_id": run_id,
                         "input": input_text if input_text is not None else self.probe.engine.options.input}
        if options:
            message["options"] = options
        info = RunInfo(run_id, None)
        self.runs[run_id] = info
        info.started_at = await self.send(message)
        return run_id

    async def cancel_run(self, run_id: str) -> float | None:
        at = await self.send({"type": "cancel_run", "run_id": run_id})
        if run_id in self.runs:
            self.runs[run_id].cancel_sent_at = at
        return at

    # -- waiting ---------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self.close_info is None and self.wire is not None

    async def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds, the connection closes, or ``timeout`` s pass.

        Returns whether the predicate holds. Every wait of the probe goes
        through here, so none can outlive its timeout.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + max(0.0, timeout)
        while not predicate():
            if self.close_info is not None:
                return predicate()
            remaining = end - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return predicate()
        return True

    def run_deadline(self, run_id: str) -> float:
        """Seconds left before giving up on ``run_id``: its deadline, plus a little grace."""
        engine = self.probe.engine
        run = self.runs[run_id]
        started = run.started_at if run.started_at is not None else engine.clock.now()
        budget_ms = engine.options.profile.deadline_s * 1000.0 + engine.options.grace_ms
        return max(0.0, (started + budget_ms - engine.clock.now()) / 1000.0)

    async def wait_runs(self, run_ids: list[str]) -> bool:
        """Wait for every run to complete or be refused (each bounded by its own deadline);
        return whether every one completed."""
        done = True
        for run_id in run_ids:
            run = self.runs[run_id]
            await self.wait(lambda run=run: run.ended, self.run_deadline(run_id))
            done &= run.completed
        return done

    async def wait_error(self, after: int, timeout: float) -> dict | None:
        """The first ``error`` message after the ``after``-th one, within ``timeout`` s."""
        if await self.wait(lambda: self.error_count > after, timeout) and after < len(self.errors):
            return self.errors[after][1]
        return None

    async def close(self) -> None:
        if self._closing is not None:
            await self._closing
        if self.wire is not None:
            await self.wire.close()


class ScenarioProbe:
    """One scenario's run: its checker, its connections, its notes."""

    def __init__(self, engine, name: str, checker) -> None:
        self.engine = engine
        self.name = name
        self.checker = checker
        self.connections: list[LiveConnection] = []
        self.notes: list[str] = []
        self._noted: set[str] = set()
        self._declared_na: set[str] = set()
        #: client epoch ms after which the scenario starts no more runs (set when it begins)
        self.starts_until: float | None = None
        #: connections the harness's own machine could not open (see ClientLimitError)
        self.client_limited = 0
        self.client_limit_error: ClientLimitError | None = None

    def note(self, text: str) -> None:
        if len(self.notes) < 50:
            self.notes.append(text)

    def note_once(self, key: str, text: str) -> None:
        if key not in self._noted:
            self._noted.add(key)
            self.note(text)

    def external(self, rule_id: str, passed: bool, **details) -> None:
        details.setdefault("at", self.engine.clock.now())
        self.checker.external(rule_id, passed, **details)

    def not_applicable(self, rule_id: str, reason: str) -> None:
        self._declared_na.add(rule_id)
        self.checker.not_applicable(rule_id, reason)

    def may_start(self, conn: LiveConnection) -> bool:
        """Whether to start one more run on ``conn``; says once in the notes why not.

        Why a scenario stops early: whatever ``--runs`` asks, a scenario must
        end, and starts the endpoint refuses (too_many_runs) or that could not
        finish before the run deadline measure nothing.
        """
        if not conn.open:
            return False
        if conn.too_many_runs:
            self.note_once("too_many_runs", f"{conn.name}: the endpoint answered a start_run with too_many_runs "
                           f"({len(conn.runs)} started on that connection); no more runs were started on it")
            return False
        if self.starts_until is not None and self.engine.clock.now() >= self.starts_until:
            self.note_once("start_budget", f"stopped starting runs after {self.engine.options.profile.deadline_s:g} s "
                           "(the run deadline), before every run asked for by --runs had started")
            return False
        return True

    async def connect(self) -> LiveConnection | None:
        """Open one more connection; a refusal after the first check-wide connection is a finding.

        The very first connection of a check raises :class:`ConnectError`
        (nothing can be checked: exit 3); any later refusal is reported as
        ``transport.connections`` and the scenario goes on without it, unless
        the harness's own machine refused it (:class:`ClientLimitError`): that
        is a note, and the rule is N/A, since the endpoint never saw the attempt.
        """
        engine = self.engine
        conn = LiveConnection(self, f"{self.name}/c{len(self.connections)}")
        self.connections.append(conn)
        try:
            conn.wire = await open_connection(
                conn.name, engine.options.endpoint, engine.clock,
                on_message=conn.on_message, on_close=conn.on_close, subprotocols=[schemas.SUBPROTOCOL])
        except ConnectError as exc:
            if not engine.connected_once:
                raise
            conn.close_info = CloseInfo(None, "", "network", detail=str(exc))
            if isinstance(exc, ClientLimitError):
                self._client_limited(exc)
                return None
            self.external("transport.connections", False, conn=conn.name,
                          expected="the WebSocket handshake succeeds", observed=str(exc))
            return None
        engine.connected_once = True
        self.external("transport.connections", True, conn=conn.name)
        selected = conn.wire.subprotocol
        self.external("transport.subprotocol", selected == schemas.SUBPROTOCOL, conn=conn.name,
                      expected=f"Sec-WebSocket-Protocol: {schemas.SUBPROTOCOL} selected",
                      observed="no subprotocol selected" if selected is None else f"{selected!r} selected")
        self.checker.set_clock_offset(conn.name, engine.clock_estimate.offset_ms)
        return conn

    def _client_limited(self, exc: ClientLimitError) -> None:
        self.client_limited += 1
        self.client_limit_error = self.client_limit_error or exc
        self.note_once("client_limit", f"the harness could not open a connection: {exc} - a limit of the machine "
                       "running the check, not of the endpoint (raise `ulimit -n`, or lower --concurrency)")
        self.not_applicable("transport.connections", f"{self.client_limited} connection(s) could not be opened "
                            f"because of a limit of the machine running the check ({exc}); the endpoint was not "
                            "tested with every connection asked for")

    async def connect_many(self, count: int) -> list[LiveConnection]:
        """Open ``count`` connections at once (the point of the concurrency scenario).

        Raises :class:`ConnectError` (exit 3) when not one opens: with no
        connection the scenario has nothing to judge, and an empty scenario
        must not read as a pass.
        """
        results = await asyncio.gather(*(self.connect() for _ in range(count)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
        opened = [r for r in results if isinstance(r, LiveConnection)]
        if count and not opened:
            errors = [r for r in results if isinstance(r, Exception)]
            cause = self.client_limit_error or (errors[0] if errors else None)
            if cause is None:  # every failure was recorded on its connection
                cause = next((c.close_info.detail for c in reversed(self.connections) if c.close_info), "")
            kind = ClientLimitError if self.client_limit_error is not None else ConnectError
            hint = (" - a limit of the machine running the check (raise `ulimit -n`, or lower --concurrency)"
                    if kind is ClientLimitError else "")
            raise kind(f"the {self.name} scenario could not open any of its {count} connection(s): {cause}{hint}")
        return opened

    async def finish(self) -> None:
        """Close every connection, then judge what the end of the stream leaves open."""
        await asyncio.gather(*(c.close() for c in self.connections), return_exceptions=True)
        now = self.engine.clock.now()
        for conn in self.connections:
            if conn.wire is not None and (conn.close_info is None or conn.close_info.cause != "message_too_big"):
                self.checker.external("frame.size", True, conn=conn.name, at=now)
            if conn.wire is not None and conn.wire.callback_errors:
                self.note(f"{conn.name}: internal error while handling frames: {conn.wire.callback_errors[0]}")
        self.checker.close(now)
        self._explain_unexercised()

    def _explain_unexercised(self) -> None:
        """Say "not part of this scenario" rather than a generic reason for another scenario's live rules."""
        from agent_events.conformance import rules as _rules
        from agent_events.conformance.live.scenarios import SCENARIOS

        owners = {rule_id: name for name, s in SCENARIOS.items() for rule_id in s.focus}
        outcomes = self.checker.outcomes()
        for rule in _rules.RULES:
            if rule.scope == "live" and not outcomes[rule.id].applicable:
                owner = owners.get(rule.id)
                if owner != self.name and rule.id not in self._declared_na:
                    where = f"the {owner} scenario" if owner else "another scenario"
                    self.checker.not_applicable(rule.id, f"not exercised by this scenario (see {where})")

    @property
    def runs_started(self) -> int:
        return sum(len(c.runs) for c in self.connections)

    @property
    def runs_completed(self) -> int:
        return sum(1 for c in self.connections for r in c.runs.values() if r.completed)
