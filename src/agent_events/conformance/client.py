"""The client's half of protocol v1, sans I/O: what one connection sends, and what it makes of
what comes back.

The live check (:mod:`agent_events.conformance.live`), ``agent-events load``
(:mod:`agent_events.conformance.loadgen`) and the Locust user are thin asyncio
(or gevent) shells around :class:`ClientConnection`, the way websockets'
``protocol.py`` sits under its asyncio and threading layers. What was written
twice before, and drifted (load ignored refused starts and never checked the
time_sync echo), is written here once.

Rules of this module:

* No sockets, no clocks, no event loop. Every method takes the time (``at``,
  client epoch ms, timed at the socket by the caller) and returns the bytes
  to send, or what a received frame meant.
* Every frame, both ways, goes to the checker exactly once, parsed once with
  the checker's own JSON parser (:mod:`agent_events.conformance.json_text`),
  so the client and the judge never disagree on what is JSON.
* The checker is the only judge of the stream. This core judges only the
  exchange a stream cannot show, the time_sync echo (``time_sync.reply``),
  and it keeps only the bookkeeping a client needs to know what to send or
  wait for next: O(1) per run, bounded per connection, so a flooding
  endpoint cannot grow it.
* Latency samples are the checker's (:attr:`Checker.latencies`): a shell
  reports them, it never computes them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from agent_events.conformance import json_text
from agent_events.conformance.checker import Checker, refused_run_id
from agent_events.conformance.live.clock_sync import SyncSample
from agent_events.conformance.schema_validation import RUN_EVENT_TYPES

_loads = json_text.loads
_dumps = orjson.dumps
_JSONDecodeError = orjson.JSONDecodeError
_NUMBER = (int, float)
#: ``error`` messages and time_sync replies kept per connection (the checker counts them all).
MAX_KEPT = 64
#: time_sync requests remembered while their replies are awaited.
MAX_PENDING_SYNC = 16
#: How close an echoed ``client_time_ms`` must be to the one sent (a float's round trip through JSON).
ECHO_TOLERANCE_MS = 0.01

#: ``(direction, frame, at, conn)``: the transcript writer of a shell that records ("send"/"recv").
Recorder = Callable[[str, "str | bytes", float, str], None]


@dataclass(slots=True)
class RunRecord:
    """What a client knows about one run it started: enough to know when it ended, and how."""

    run_id: str
    started_at: float | None
    #: counted in a load's figures (``False``: a warm-up run, checked but not measured)
    measured: bool = True
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


@dataclass(frozen=True, slots=True)
class SyncReply:
    """One time_sync exchange as the client saw it; ``sample`` is ``None`` when the echo was wrong."""

    sent_at: float | None
    reply: dict
    received_at: float
    sample: SyncSample | None


class ClientConnection:
    """One connection's client state: runs it started, errors and time_sync replies it got.

    ``forget_ended``: drop a run's record once it ended (a load keeps millions of
    runs going; a check keeps every record to judge its scenarios).
    """

    __slots__ = ("name", "checker", "recorder", "forget_ended", "runs", "errors", "error_count", "too_many_runs",
                 "sync_replies", "received", "invalid_utf8", "_pending_sync", "_counter", "_run_prefix")

    def __init__(self, name: str, checker: Checker, *, recorder: Recorder | None = None,
                 forget_ended: bool = False, run_prefix: str | None = None) -> None:
        self.name = name
        self.checker = checker
        self.recorder = recorder
        self.forget_ended = forget_ended
        self.runs: dict[str, RunRecord] = {}
        self.errors: list[tuple[float, dict]] = []
        self.error_count = 0
        #: the endpoint answered a start_run with too_many_runs: more starts would be refused too
        self.too_many_runs = False
        self.sync_replies: list[SyncReply] = []
        self.received = 0
        #: the first text frame that was not UTF-8, as ``(reason, byte offset)``, for a note
        self.invalid_utf8: tuple[str, int] | None = None
        self._pending_sync: dict[float, float] = {}
        self._counter = 0
        self._run_prefix = run_prefix if run_prefix is not None else name

    # -- out -------------------------------------------------------------------------------
    def next_run_id(self) -> str:
        self._counter += 1
        return f"{self._run_prefix}-r{self._counter}"

    def start_run(self, at: float, *, input: str, run_id: str | None = None, options: dict | None = None,
                  measured: bool = True) -> tuple[str, bytes]:
        """A ``start_run`` with a client-chosen run_id (so isolation can be judged): ``(run_id, frame)``.

        Accounted before it is written: the first event may be read while the frame is still
        being flushed."""
        run_id = run_id if run_id is not None else self.next_run_id()
        message: dict[str, Any] = {"type": "start_run", "run_id": run_id, "input": input}
        if options:
            message["options"] = options
        self.runs[run_id] = RunRecord(run_id, at, measured)
        return run_id, self._sent(message, at)

    def cancel_run(self, run_id: str, at: float) -> bytes:
        run = self.runs.get(run_id)
        if run is not None:
            run.cancel_sent_at = at
        return self._sent({"type": "cancel_run", "run_id": run_id}, at)

    def time_sync(self, at: float) -> bytes:
        """A ``time_sync`` carrying ``at``; its reply must echo it (``time_sync.reply``)."""
        if len(self._pending_sync) >= MAX_PENDING_SYNC:
            self._pending_sync.pop(next(iter(self._pending_sync)))
        self._pending_sync[at] = at
        return self._sent({"type": "time_sync", "client_time_ms": at}, at)

    def send(self, message: Any, at: float) -> tuple[str, bytes]:
        """Any client message, valid or not (the robustness probes): ``(frame kind, data)``.
        A dict is serialised; ``str`` goes as a text frame, ``bytes`` as a binary one."""
        if isinstance(message, bytes):
            self._account(message, message, at)
            return "binary", message
        if isinstance(message, str):
            self._account(message, message, at)
            return "text", message.encode()
        return "text", self._sent(message, at)

    def _sent(self, message: dict, at: float) -> bytes:
        data = _dumps(message)
        if self.recorder is not None:
            self.recorder("send", data.decode(), at, self.name)
        self.checker.send(message, at, self.name)
        return data

    def _account(self, frame: Any, checked: Any, at: float) -> None:
        if self.recorder is not None:
            self.recorder("send", frame, at, self.name)
        self.checker.send(checked, at, self.name)

    # -- in --------------------------------------------------------------------------------
    def receive(self, kind: str, data: bytes, at: float) -> RunRecord | None:
        """Feed one received message (``kind`` "text" or "binary"); returns the run it ended
        (completed, or refused before its first event), else ``None``."""
        self.received += 1
        recorder = self.recorder
        if kind == "text" and recorder is None:
            # The common case, parsed straight from the bytes (orjson checks the UTF-8 itself);
            # anything it refuses takes the path below, which keeps the frame's text for the checker.
            try:
                message = _loads(data)
            except _JSONDecodeError:
                pass
            else:
                if type(message) is dict:
                    self.checker.receive(message, at, self.name)
                    return self._bookkeep(message, at)
        if kind == "text":
            try:
                frame: str | bytes = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                # Not UTF-8: keep the bytes visible as \x escapes. The result is never valid
                # JSON (JSON has no \x escape), so live and replay agree: frame.json.
                frame = data.decode("utf-8", "backslashreplace")
                if self.invalid_utf8 is None:
                    self.invalid_utf8 = (exc.reason, exc.start)
        else:
            frame = data
        if recorder is not None:
            recorder("recv", frame, at, self.name)
        try:
            message = _loads(frame)  # binary too: the checker judges its content, so the client follows it
        except _JSONDecodeError:
            message = None
        # A text frame holding an object goes to the checker decoded; anything else as received,
        # so the checker sees a binary frame as binary and a JSON string as a string.
        if kind == "text" and type(message) is dict:
            self.checker.receive(message, at, self.name)
            return self._bookkeep(message, at)
        self.checker.receive(frame, at, self.name)
        if type(message) is dict:
            return self._bookkeep(message, at)
        return None

    def _bookkeep(self, message: dict, at: float) -> RunRecord | None:
        type_ = message.get("type")
        if type_ in RUN_EVENT_TYPES:
            run_id = message.get("run_id")
            run = self.runs.get(run_id) if type(run_id) is str else None
            if run is None or run.completed_at is not None:
                return None  # not ours, or after its agent_completed: the checker has said so
            run.events += 1
            if run.first_at is None:
                run.first_at = at
            if type_ == "agent_started":
                payload = message.get("payload")
                if type(payload) is dict:
                    run.attempts.append(str(payload.get("attempt")))
            elif type_ == "agent_completed":
                run.completed_at = at
                payload = message.get("payload")
                result = payload.get("result") if type(payload) is dict else None
                run.result = result if type(result) is dict else {}
                return self._ended(run)
            return None
        if type_ == "error":
            self.error_count += 1
            if len(self.errors) < MAX_KEPT:
                self.errors.append((at, message))
            code = message.get("code")
            if code == "too_many_runs":
                self.too_many_runs = True
            run_id = refused_run_id(message)
            run = self.runs.get(run_id) if run_id is not None else None
            if run is not None and run.events == 0 and run.refused is None:
                run.refused = code if type(code) is str else "?"  # as the checker sees it: refused, not unfinished
                return self._ended(run)
            return None
        if type_ == "time_sync":
            self._sync_reply(message, at)
        return None

    def _ended(self, run: RunRecord) -> RunRecord:
        if self.forget_ended:
            del self.runs[run.run_id]
        return run

    def _sync_reply(self, reply: dict, at: float) -> None:
        """Judge ``time_sync.reply``: the echo names a request this connection sent, and the
        server's time is a number. Only a correct reply becomes a clock sample."""
        echoed = reply.get("client_time_ms")
        server_time = reply.get("server_time_ms")
        sent_at = None
        if type(echoed) in _NUMBER:
            sent_at = self._pending_sync.pop(echoed, None)
            if sent_at is None:  # a float that lost its last digit on the way
                sent_at = next((t for t in self._pending_sync if abs(t - echoed) < ECHO_TOLERANCE_MS), None)
                if sent_at is not None:
                    del self._pending_sync[sent_at]
        ok = sent_at is not None and type(server_time) in _NUMBER
        sample = SyncSample(sent_at, float(server_time), at) if ok else None
        if len(self.sync_replies) < MAX_KEPT:
            self.sync_replies.append(SyncReply(sent_at, reply, at, sample))
        pending = ", ".join(f"{t!r}" for t in list(self._pending_sync)[:3]) or "none pending"
        self.checker.external(
            "time_sync.reply", ok, conn=self.name, at=at,
            expected=f"client_time_ms echoing a time_sync this connection sent ({pending}) and a numeric "
                     "server_time_ms",
            observed=f"client_time_ms {echoed!r}, server_time_ms {server_time!r}")

    # -- what the shells ask ---------------------------------------------------------------
    @property
    def runs_in_flight(self) -> int:
        return sum(1 for r in self.runs.values() if not r.ended)

    def set_clock_offset(self, offset_ms: float) -> None:
        self.checker.set_clock_offset(self.name, offset_ms)
