"""Live checking of a foreign dialect over WebSocket: the I/O shell around the paired-family judge.

The client's side of AG-UI over WebSocket (1.1 names it a custom transport: one event object per
frame, the client's ``RunAgentInput`` first): connect, send the dialect's start message, hand every
frame to the judge with its receive time, until the run ended (then a short linger, so an event
after the end is seen), the server closed, or nothing came for the deadline. One run per
connection unless the dialect says runs may follow (AG-UI's cloud runtime closes after one).

Scenarios (each a report section):

* ``run``: one run;
* ``concurrency``: several connections at once, a run each;
* ``tool``: a run whose ``RunAgentInput`` offers a tool (the agent may or may not call it; its
  calls, if any, are judged);
* ``bad_input``: a frame that is not a start message; the endpoint must refuse it outside a run's
  stream (a ``RUN_ERROR``, or a close), never start a run on it and never stay silent
  (``ag-ui.transport.bad_input``);
* ``drop``: the client drops mid-run; AG-UI promises such a client nothing, so that is not judged,
  but the endpoint must still serve the next connection's run (judged as ``run``).

Framing is detected per frame (``auto``) unless the dialect (or ``--framing``) pins it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from agent_events.conformance.core.harness_lag import LagMonitor, LagRecord
from agent_events.conformance.reporting.report import Report, Section, _now
from agent_events.dialects import Dialect, make_checker, start_message

#: Seconds read after a run ended, so that an event after RUN_FINISHED is seen.
LINGER_S = 0.3
#: Seconds the bad-input probe waits for a refusal.
REFUSAL_S = 2.0
SCENARIOS = ("run", "concurrency", "tool", "bad_input", "drop")
BAD_INPUT_RULE = "ag-ui.transport.bad_input"
_TOOL = {"name": "lookup", "description": "Look a word up", "parameters": {
    "type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}}


class LiveConnectError(Exception):
    """The endpoint could not be reached or refused the handshake (exit code 3)."""


@dataclass
class LiveOptions:
    url: str
    dialect: Dialect
    profile: Any
    scenarios: tuple[str, ...] = SCENARIOS
    concurrency: int = 3
    input: str = "Create an action plan"
    open_timeout: float = 10.0
    headers: dict = field(default_factory=dict)
    record: Any = None  # a TranscriptWriter


def _now_ms() -> float:
    return time.time() * 1000.0


async def _connect(options: LiveOptions):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidURI

    try:
        return await connect(options.url, open_timeout=options.open_timeout, max_size=16 * 2**20,
                             additional_headers=options.headers or None, compression=None)
    except (InvalidURI, InvalidHandshake, OSError, TimeoutError) as exc:
        raise LiveConnectError(f"{type(exc).__name__}: {exc}") from None


def _run_over(judge, conn: str) -> bool:
    c = judge._conns.get(conn)
    return c is not None and not c.runs and bool(c.states) and not c.starts


async def _one_run(options: LiveOptions, judge, conn: str, message: Any | None = None, *,
                   drop_after: int | None = None) -> None:
    """Connect, start a run, read until it ended (or the server closed, or the deadline passed)."""
    from websockets.exceptions import ConnectionClosed

    ws = await _connect(options)
    deadline = time.monotonic() + options.profile.deadline_s
    rec = options.record
    try:
        start = message if message is not None else start_message(options.dialect, options.input)
        text = json.dumps(start)
        at = _now_ms()
        await ws.send(text)
        judge.send(start, at, conn)
        if rec:
            rec.send(text, at, conn)
        received = 0
        linger_until = None
        while True:
            now = time.monotonic()
            limit = min(deadline, linger_until) if linger_until else deadline
            if now >= limit:
                break
            try:
                frame = await asyncio.wait_for(ws.recv(), limit - now)
            except (TimeoutError, asyncio.TimeoutError):
                break
            except ConnectionClosed:
                break
            at = _now_ms()
            if rec:
                rec.recv(frame, at, conn)
            judge.receive(frame, at, conn)
            received += 1
            if drop_after is not None and received >= drop_after:
                ws.transport.abort()
                judge.note_drop = True
                return
            if linger_until is None and _run_over(judge, conn):
                linger_until = time.monotonic() + LINGER_S
    finally:
        at = _now_ms()
        if drop_after is None:
            await ws.close()
        judge.end_connection(conn, at)
        if rec:
            rec.close(at, conn, code=ws.close_code)


async def _bad_input(options: LiveOptions, judge, conn: str) -> tuple[bool, str]:
    """Send a frame that is no start message; (refused properly?, what happened)."""
    from websockets.exceptions import ConnectionClosed

    ws = await _connect(options)
    try:
        await ws.send("this is not a RunAgentInput")  # not a start: the judge is told of no run to come
        until = time.monotonic() + REFUSAL_S
        while time.monotonic() < until:
            try:
                frame = await asyncio.wait_for(ws.recv(), until - time.monotonic())
            except (TimeoutError, asyncio.TimeoutError):
                break
            except ConnectionClosed:
                return True, f"the endpoint closed the connection (code {ws.close_code})"
            judge.receive(frame, _now_ms(), conn)
            text = frame if isinstance(frame, str) else ""
            if "RUN_STARTED" in text:
                return False, "the endpoint started a run on input that is not a RunAgentInput"
            if "RUN_ERROR" in text:
                return True, "the endpoint answered with RUN_ERROR"
        return False, f"no refusal within {REFUSAL_S:g} s: neither a RUN_ERROR nor a close"
    finally:
        await ws.close()
        judge.end_connection(conn, _now_ms())
        judge._conns.pop(conn, None)


async def check_live(options: LiveOptions, policy, command: str = "check") -> Report:
    started = _now()
    # the harness's own stalls (a busy machine, our loop busy): an over-budget latency they explain is
    # inconclusive, never a failure of the endpoint (as for our protocol; see core.harness_lag)
    lag = LagRecord()
    monitor = LagMonitor(lag, _now_ms)
    monitor.start()
    try:
        sections = await _scenarios(options, lag)
    finally:
        await monitor.stop()
    return Report(options.profile, sections, policy, target={"kind": "url", "url": options.url}, command=command,
                  started_at=started, protocol_version=options.dialect.version, dialect=options.dialect)


async def _scenarios(options: LiveOptions, lag: LagRecord) -> list:
    """Each scenario's section, its judge fed the harness's lag record."""
    sections = []
    for name in options.scenarios:
        judge = make_checker(options.dialect, options.profile, lag=lag)
        notes: list[str] = [f"judged as dialect {options.dialect.label}, framing {options.dialect.framing}"]
        if name == "run":
            await _one_run(options, judge, "c0")
        elif name == "concurrency":
            await asyncio.gather(*(_one_run(options, judge, f"c{i}") for i in range(options.concurrency)))
            notes.append(f"{options.concurrency} connections at once, one run each")
        elif name == "tool":
            message = start_message(options.dialect, options.input)
            if isinstance(message, dict) and "tools" in message:
                message["tools"] = [_TOOL]
            await _one_run(options, judge, "c0", message)
            calls = judge._checked.get("ag-ui.tool.paired", 0)
            notes.append("the run's RunAgentInput offered a tool; " +
                         ("its calls were judged" if calls else "the agent called none: tool rules had nothing to judge"))
        elif name == "bad_input":
            ok, what = await _bad_input(options, judge, "c0")
            judge.external(BAD_INPUT_RULE, ok, expected="a RUN_ERROR or a close, never a run nor silence",
                           observed=what)
            notes.append(what)
        elif name == "drop":
            judge.note_drop = False
            await _one_run(options, judge, "c0", drop_after=1)
            dropped = judge
            judge = make_checker(options.dialect, options.profile, lag=lag)
            await _one_run(options, judge, "c1")
            notes.append("the client dropped its first connection after one frame: AG-UI promises such a client "
                         "nothing, so that connection is not judged; the next connection's run is"
                         + ("" if dropped.frames else " (the endpoint had sent nothing before the drop)"))
        judge.close(_now_ms())
        judge.not_applicable(BAD_INPUT_RULE, "exercised only by the bad_input scenario") if name != "bad_input" else None
        sections.append(Section.from_checker(name, judge, kind="scenario", notes=notes))
    return sections

