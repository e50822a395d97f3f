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
  the checker's own JSON parser (:mod:`agent_events.conformance.core.json_text`),
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

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import orjson

from agent_events.conformance.core import json_text
from agent_events.conformance.core import schema_validation as _sv
from agent_events.conformance.core.checker import Checker
from agent_events.conformance.core.run_ownership import ANONYMOUS_REFUSALS, refused_run_id
from agent_events.conformance.core.clock_sync import SyncSample
from agent_events.conformance.core.schema_validation import RUN_EVENT_TYPES

_loads = json_text.loads
_orjson_loads = orjson.loads
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
    #: bytes of the run's events as received (the frames' payloads)
    size: int = 0
    first_at: float | None = None
    completed_at: float | None = None
    result: dict | None = None
    attempts: list[str] = field(default_factory=list)
    cancel_sent_at: float | None = None
    #: the error code the endpoint refused the run with (no event will come)
    refused: str | None = None
    #: the code of the last error naming this run that did not refuse it (``unknown_run`` answering
    #: a cancel, ``duplicate_run`` answering a second start of its id)
    error_code: str | None = None
    #: tool calls open now (tool_executing seen, its tool_completed not yet)
    tools_open: int = 0
    #: when a second start_run of this run_id was sent while the run was in flight
    duplicate_sent_at: float | None = None
    #: this record is the run a duplicate start_run started after the first run of its id had
    #: completed (the server read it late, when the id was free again): not a duplicate after all
    restarted: bool = False
    #: 1.1: the resume_token of the run's agent_started, and the seq of the last event received
    resume_token: str | None = None
    last_seq: int | None = None

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

    __slots__ = ("name", "checker", "recorder", "forget_ended", "runs", "unnamed", "errors", "error_count", "too_many_runs",
                 "sync_replies", "received", "invalid_utf8", "provoked", "unsent_starts", "closed",
                 "capabilities", "cut", "_pending_sync", "_counter", "_run_prefix")

    def __init__(self, name: str, checker: Checker, *, recorder: Recorder | None = None,
                 forget_ended: bool = False, run_prefix: str | None = None) -> None:
        self.name = name
        self.checker = checker
        self.recorder = recorder
        self.forget_ended = forget_ended
        self.runs: dict[str, RunRecord] = {}
        #: runs started without run_id, oldest first, not yet named by an event: the server chose
        #: their ids, and each is filed in ``runs`` under the id of the first event that claims it
        self.unnamed: deque[RunRecord] = deque()
        self.errors: list[tuple[float, dict]] = []
        self.error_count = 0
        #: the endpoint answered a start_run with too_many_runs: more starts would be refused too
        self.too_many_runs = False
        self.sync_replies: list[SyncReply] = []
        self.received = 0
        #: the first text frame that was not UTF-8, as ``(reason, byte offset)``, for a note
        self.invalid_utf8: tuple[str, int] | None = None
        #: this client sent something malformed (a robustness probe): the endpoint may close on it
        self.provoked = False
        #: runs the client meant to start but could not send: the connection was already closed
        self.unsent_starts = 0
        self.closed = False
        #: 1.1: the endpoint's capabilities message (the connection's first), ``None`` from a 1.0 server
        self.capabilities: dict | None = None
        #: the client dropped the connection on purpose, without a close frame (the reconnect probe)
        self.cut = False
        self._pending_sync: dict[float, float] = {}
        self._counter = 0
        self._run_prefix = run_prefix if run_prefix is not None else name

    # -- out -------------------------------------------------------------------------------
    def next_run_id(self) -> str:
        self._counter += 1
        return f"{self._run_prefix}-r{self._counter}"

    def start_run(self, at: float, *, input: str, run_id: str | None = None, options: dict | None = None,
                  measured: bool = True, server_run_id: bool = False) -> tuple[str | None, bytes]:
        """A ``start_run`` with a client-chosen run_id (so isolation can be judged): ``(run_id, frame)``.

        ``server_run_id``: send no run_id, so that the server generates one; returns ``(None,
        frame)``, and the run's record waits in :attr:`unnamed` until the first event of a run
        this connection does not know names it. A ``run_id`` of a run still in flight is sent as
        it is (a duplicate start, which the server should refuse): the record of the run in flight
        is kept, marked with ``duplicate_sent_at``.

        Accounted before it is written: the first event may be read while the frame is still
        being flushed."""
        if server_run_id:
            if run_id is not None:
                raise ValueError("server_run_id=True sends no run_id: do not give one")
            message: dict[str, Any] = {"type": "start_run", "input": input}
        else:
            run_id = run_id if run_id is not None else self.next_run_id()
            message = {"type": "start_run", "run_id": run_id, "input": input}
        if options:
            message["options"] = options
        if run_id is None:
            self.unnamed.append(RunRecord("", at, measured))
        else:
            current = self.runs.get(run_id)
            if current is not None and not current.ended:
                current.duplicate_sent_at = at
            else:
                self.runs[run_id] = RunRecord(run_id, at, measured)
        return run_id, self._sent(message, at)

    def resume_run(self, at: float, *, run_id: str, resume_token: str, last_seq: int) -> bytes:
        """1.1: take over a run another connection started (its events continue here)."""
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = RunRecord(run_id, None)
        run.last_seq = last_seq
        run.resume_token = resume_token
        return self._sent({"type": "resume_run", "run_id": run_id, "resume_token": resume_token,
                           "last_seq": last_seq}, at)

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
            self.provoked = True
            self._account(message, message, at)
            return "binary", message
        if isinstance(message, str):
            try:
                valid = _sv.is_valid_client(_loads(message))
            except _JSONDecodeError:
                valid = False
            self.provoked |= not valid
            self._account(message, message, at)
            return "text", message.encode()
        self.provoked |= type(message) is not dict or not _sv.is_valid_client(message)
        return "text", self._sent(message, at)

    @staticmethod
    def pack(*frames: "bytes | tuple[str, bytes]") -> list[tuple[str, bytes]]:
        """Several frames built by this core (``start_run``'s, ``cancel_run``'s, ...: each already
        accounted, in order) as ONE send, ``[(kind, data), ...]``: a shell writes them in one
        write (``WireConnection.send_many``, ``SocketWire.send_many``), so that the endpoint reads
        them together. Plain ``bytes`` are text frames. That is how a client provokes the races
        a polite one never shows: ``start_run`` and ``cancel_run`` in the same read of the server,
        a duplicate ``start_run`` in the same read as the first."""
        return [("text", f) if isinstance(f, (bytes, bytearray)) else (f[0], f[1]) for f in frames]

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
        ended = self.receive_many(((kind, data),), at)
        return ended[0] if ended else None

    def receive_many(self, messages: Iterable[tuple[str, bytes]], at: float) -> list[RunRecord]:
        """Feed the messages of one read (``(kind, data)`` pairs, in order, all received at ``at``);
        returns the runs they ended. The common case (a text frame holding a JSON object, no
        transcript) is parsed straight from the bytes (orjson checks the UTF-8 itself); anything
        orjson refuses takes the careful path, which keeps the frame's text for the checker."""
        ended: list[RunRecord] = []
        careful = self._receive_careful
        if self.recorder is not None:  # a transcript keeps every frame's text: the careful path for all
            for kind, data in messages:
                run = careful(kind, data, at)
                if run is not None:
                    ended.append(run)
            return ended
        checker_receive = self.checker.receive
        bookkeep = self._bookkeep
        name = self.name
        for kind, data in messages:
            if kind == "text":
                try:
                    message = _orjson_loads(data)
                except _JSONDecodeError:
                    message = None
                if type(message) is dict:
                    self.received += 1
                    checker_receive(message, at, name)
                    run = bookkeep(message, at, len(data))
                    if run is not None:
                        ended.append(run)
                    continue
            run = careful(kind, data, at)
            if run is not None:
                ended.append(run)
        return ended

    def _receive_careful(self, kind: str, data: bytes, at: float) -> RunRecord | None:
        """One message as the checker must see it when it is not a plain JSON object (not UTF-8,
        not JSON, a number beyond a double, binary), or when a transcript records it."""
        self.received += 1
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
        if self.recorder is not None:
            self.recorder("recv", frame, at, self.name)
        try:
            message = _loads(frame)  # binary too: the checker judges its content, so the client follows it
        except _JSONDecodeError:
            message = None
        # A text frame holding an object goes to the checker decoded; anything else as received,
        # so the checker sees a binary frame as binary and a JSON string as a string.
        if kind == "text" and type(message) is dict:
            self.checker.receive(message, at, self.name)
            return self._bookkeep(message, at, len(data))
        self.checker.receive(frame, at, self.name)
        if type(message) is dict:
            return self._bookkeep(message, at, len(data))
        return None

    def _bookkeep(self, message: dict, at: float, size: int = 0) -> RunRecord | None:
        type_ = message.get("type")
        if type_ in RUN_EVENT_TYPES:
            run_id = message.get("run_id")
            if type(run_id) is not str:
                return None
            run = self.runs.get(run_id)
            if run is None or run.completed_at is not None:
                # A run this connection did not name: one it started without run_id (the server
                # chose the id), or a duplicate start the server read once the first run had completed.
                # The checker attributes such events the same way.
                run = self._claim(run_id, run, type_ == "agent_started")
                if run is None:
                    return None  # not ours, or after its agent_completed: the checker has said so
            run.events += 1
            run.size += size
            if run.first_at is None:
                run.first_at = at
            seq = message.get("seq")
            if type(seq) is int:
                run.last_seq = seq
            if type_ == "agent_started":
                payload = message.get("payload")
                if type(payload) is dict:
                    run.attempts.append(str(payload.get("attempt")))
                    token = payload.get("resume_token")
                    if type(token) is str and run.resume_token is None:
                        run.resume_token = token
            elif type_ == "tool_executing":
                run.tools_open += 1
            elif type_ == "tool_completed":
                if run.tools_open:  # (a close with none open is the checker's to judge)
                    run.tools_open -= 1
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
            named = message.get("run_id")
            run = self.runs.get(named) if type(named) is str else None
            if run is not None:
                run.error_code = code if type(code) is str else "?"
            elif type(named) in (str, type(None)) and type(code) is str and code in ANONYMOUS_REFUSALS and self.unnamed:
                run = self.unnamed.pop()  # the latest start without run_id, as the checker takes it
                run.refused = code
                return run
            return None
        if type_ == "time_sync":
            self._sync_reply(message, at)
        elif type_ == "capabilities" and self.capabilities is None:
            features = message.get("features")
            self.capabilities = message if type(features) is dict else None
        return None

    def _claim(self, run_id: str, completed: RunRecord | None, started: bool) -> RunRecord | None:
        """The record an event of ``run_id`` that no run in flight owns belongs to, if any: the
        oldest run started without run_id, else (for an agent_started after the run of that id
        completed) the run a duplicate start_run of that id started."""
        if completed is not None and not started:
            return None
        if self.unnamed:
            run = self.unnamed.popleft()
            run.run_id = run_id
        elif completed is not None and completed.duplicate_sent_at is not None:
            run = RunRecord(run_id, completed.duplicate_sent_at, completed.measured, restarted=True)
            completed.duplicate_sent_at = None
        else:
            return None
        self.runs[run_id] = run
        return run

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

    # -- the end of the connection ------------------------------------------------------------
    def start_not_sent(self, at: float, detail: str) -> None:
        """A run the client meant to start could not be sent: the endpoint had closed the
        connection. Nothing of that run can be judged, so it counts against the endpoint
        (``transport.connection_kept``) rather than vanishing from the report."""
        self.unsent_starts += 1
        if not self.provoked:
            self.checker.external(
                "transport.connection_kept", False, conn=self.name, at=at,
                expected="the connection open, so the client can start its run",
                observed=f"the endpoint had closed the connection before the run could start ({detail})")

    def connection_closed(self, by: str, code: int | None, cause: str | None, detail: str, at: float, *,
                          max_size: int | None = None) -> None:
        """Judge how the connection ended (once): ``by`` "client", "server" or "network".

        ``frame.size``: the client closed with 1009 because a message was over its limit.
        ``transport.connection_kept``: a connection the client did not close, and did not
        provoke with malformed input, was closed by the endpoint with a code other than 1001
        (shutting down) or 1013 (over its connection limit), or dropped."""
        if self.closed:
            return
        self.closed = True
        checker = self.checker
        if self.recorder is not None:  # a transcript keeps the close, so validate replays it
            self.recorder("close", {"code": code, "cause": cause, "detail": detail}, at, self.name)
        if cause == "message_too_big":
            limit = f"{max_size} bytes" if max_size is not None else "the client's frame limit"
            checker.external("frame.size", False, conn=self.name, at=at,
                             expected=f"every message at most {limit}",
                             observed=f"a message over the limit ({detail}); the client closed the connection with 1009")
        else:
            checker.external("frame.size", True, conn=self.name, at=at)
        if self.cut:
            by = "client"  # dropped on purpose by the client (no close frame): not the endpoint's doing
        if self.provoked or cause == "message_too_big" or cause == "protocol_error":
            checker.end_connection(self.name, at)
            return  # provoked by the client, or judged by its own rule
        if by == "client":
            checker.external("transport.connection_kept", True, conn=self.name, at=at)
        elif code not in (1001, 1013):
            how = f"closed it with code {code}" if code is not None else "dropped it without a close frame"
            in_flight = self.runs_in_flight
            checker.external(
                "transport.connection_kept", False, conn=self.name, at=at,
                expected="the connection kept open until the client closes it (or a close with 1001 or 1013)",
                observed=f"the endpoint {how}{f' ({detail})' if detail else ''}"
                         f"{f' with {in_flight} run(s) in flight' if in_flight else ''}")
        checker.end_connection(self.name, at)  # its runs end here, as in a replay of the transcript

    # -- what the shells ask ---------------------------------------------------------------
    @property
    def runs_in_flight(self) -> int:
        return sum(1 for r in self.runs.values() if not r.ended)

    def set_clock_offset(self, offset_ms: float, uncertainty_ms: float | None = None) -> None:
        self.checker.set_clock_offset(self.name, offset_ms, uncertainty_ms)
