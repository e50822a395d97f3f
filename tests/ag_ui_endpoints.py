"""AG-UI WebSocket endpoints for the tests, written from AG-UI's public docs alone.

Events are built from the ``ag-ui-protocol`` pydantic models and framed as AG-UI's SDK frames
them: ``EventEncoder`` for an SSE record per text frame (what a cloud runtime's ``/ws`` route
sends), ``model_dump_json(by_alias=True)`` for one JSON object per frame (AG-UI 1.1's "one event
object per frame"), or that JSON inside an envelope ``{"action": "event", "payload": ...}``. The
client's ``RunAgentInput`` is read first and validated with the models; input that is not one is
answered with a ``RUN_ERROR`` and a close. The path picks the variant: ``/<variant>/<framing>``.
"""

from __future__ import annotations

import asyncio
import json

from ag_ui.core import (
    RunAgentInput, RunErrorEvent, RunFinishedEvent, RunStartedEvent, TextMessageContentEvent, TextMessageEndEvent,
    TextMessageStartEvent, ToolCallArgsEvent, ToolCallEndEvent, ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from agent_events._loop_thread import LoopThread

FRAMINGS = ("json", "sse", "envelope")
VARIANTS = ("conformant", "nested_run", "tool_never_ended", "event_after_finished", "silence", "not_an_event",
            "late_start", "holds_the_gil")
#: How long ``late_start`` waits before its first event, and ``holds_the_gil`` keeps the process's
#: interpreter busy before it (s): three times the default profile's 100 ms first-event budget.
STALL_S = 0.3


def _hold_the_gil(seconds: float) -> None:
    """Busy pure-Python work: with a long switch interval (the test sets it) no other thread of the
    process runs meanwhile, so a harness in this process is starved as on a busy CI machine."""
    import time

    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def _events(variant: str, run: RunAgentInput) -> list:
    t, r = run.thread_id, run.run_id
    text = [TextMessageStartEvent(message_id="m1", role="assistant"),
            TextMessageContentEvent(message_id="m1", delta="Looking it up."), TextMessageEndEvent(message_id="m1")]
    tool = [ToolCallStartEvent(tool_call_id="c1", tool_call_name="lookup", parent_message_id="m1"),
            ToolCallArgsEvent(tool_call_id="c1", delta='{"word": "agent"}'), ToolCallEndEvent(tool_call_id="c1")]
    if variant in ("conformant", "late_start", "holds_the_gil"):
        return [RunStartedEvent(thread_id=t, run_id=r), *text, *tool, RunFinishedEvent(thread_id=t, run_id=r)]
    if variant == "nested_run":
        return [RunStartedEvent(thread_id=t, run_id=r), RunStartedEvent(thread_id=t, run_id=r + "-2"), *text,
                RunFinishedEvent(thread_id=t, run_id=r)]
    if variant == "tool_never_ended":
        return [RunStartedEvent(thread_id=t, run_id=r), *text, *tool[:2], RunFinishedEvent(thread_id=t, run_id=r)]
    if variant == "event_after_finished":
        return [RunStartedEvent(thread_id=t, run_id=r), *text, RunFinishedEvent(thread_id=t, run_id=r), *text]
    if variant == "not_an_event":
        return [RunStartedEvent(thread_id=t, run_id=r), "hello, this is not an event", RunFinishedEvent(thread_id=t, run_id=r)]
    return []  # silence


def _frame(event, framing: str) -> str:
    if isinstance(event, str):
        return event
    if framing == "sse":
        return EventEncoder().encode(event)
    body = event.model_dump_json(by_alias=True, exclude_none=True)
    return body if framing == "json" else json.dumps({"action": "event", "payload": json.loads(body)})


async def _handler(ws) -> None:
    variant, framing = (ws.request.path.strip("/").split("/") + ["conformant", "json"])[:2]
    try:
        first = await asyncio.wait_for(ws.recv(), 5)
        run = RunAgentInput.model_validate_json(first)
    except Exception as exc:  # noqa: BLE001 - anything but a RunAgentInput is refused
        await ws.send(_frame(RunErrorEvent(message=f"not a RunAgentInput: {type(exc).__name__}"), framing))
        await ws.close(1003, "expected a RunAgentInput")
        return
    try:
        if variant == "late_start":  # the endpoint itself is late
            await asyncio.sleep(STALL_S)
        if variant == "holds_the_gil":  # the process is starved, the harness with it: it cannot tell whose
            # lag it is. (Held before the send, not after: a send releases the interpreter for its system
            # call, and a harness that takes it then reads the event in time: CI saw it once in three runs.)
            _hold_the_gil(STALL_S)
        for event in _events(variant, run):
            await ws.send(_frame(event, framing))
        if variant == "silence":  # silent until the client leaves or the server stops (then the handler
            # ends at once, so that stopping the server never waits out the silence), at most 30 s
            try:
                await asyncio.wait_for(ws.wait_closed(), 30)
            except TimeoutError:
                pass
        await ws.close(1000)
    except ConnectionClosed:  # a client that dropped mid-run (the drop scenario): nothing is owed to it
        return


class AgUiEndpoint(LoopThread):
    thread_name = "ag-ui-endpoint"
    what = "the AG-UI test endpoint"

    async def _serve(self) -> str:
        self._server = await serve(_handler, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def _close(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    def stop(self) -> None:
        self._stop_and_join(5)
