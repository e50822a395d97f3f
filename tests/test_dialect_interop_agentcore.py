"""Interop: the cloud agent runtime's AG-UI WebSocket app, checked as it ships.

``bedrock-agentcore[ag-ui]`` (PyPI) builds a Starlette app with ``build_ag_ui_app``; its ``/ws``
route reads one ``RunAgentInput`` and sends each event as an SSE record inside a text frame, one
run per socket, then a close. It runs here on 127.0.0.1 under uvicorn with a scripted agent (no
cloud account, no network): conformant, and a broken run of it (a tool call never ended) fails.
Skipped, with the reason, where the package cannot be installed.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

pytest.importorskip("bedrock_agentcore.runtime", reason="bedrock-agentcore[ag-ui] is not installed (PyPI)")
pytest.importorskip("uvicorn", reason="uvicorn is not installed")
core = pytest.importorskip("ag_ui.core", reason="ag-ui-protocol is not installed")

import uvicorn  # noqa: E402
from bedrock_agentcore.runtime import build_ag_ui_app  # noqa: E402

from agent_events._loop_thread import LoopThread  # noqa: E402
from agent_events.conformance.cli import main  # noqa: E402


def _agent(broken: bool):
    async def agent(run_input):
        t, r = run_input.thread_id, run_input.run_id
        yield core.RunStartedEvent(thread_id=t, run_id=r)
        yield core.TextMessageStartEvent(message_id="m1", role="assistant")
        yield core.TextMessageContentEvent(message_id="m1", delta="On it.")
        yield core.TextMessageEndEvent(message_id="m1")
        yield core.ToolCallStartEvent(tool_call_id="c1", tool_call_name="lookup")
        yield core.ToolCallArgsEvent(tool_call_id="c1", delta='{"word": "agent"}')
        if not broken:
            yield core.ToolCallEndEvent(tool_call_id="c1")
        await asyncio.sleep(0)
        yield core.RunFinishedEvent(thread_id=t, run_id=r)
    return agent


class Uvicorn(LoopThread):
    thread_name = "agentcore-uvicorn"
    what = "the AgentCore AG-UI app"

    def __init__(self, app) -> None:
        super().__init__()
        self._app = app

    async def _serve(self) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._server = uvicorn.Server(uvicorn.Config(self._app, log_level="warning", lifespan="off"))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        for _ in range(500):
            if self._server.started:
                break
            await asyncio.sleep(0.01)
        return f"ws://127.0.0.1:{sock.getsockname()[1]}/ws"

    async def _close(self) -> None:
        self._server.should_exit = True
        await self._task

    def stop(self) -> None:
        self._stop_and_join(10)


@pytest.fixture(scope="module", params=[False, True], ids=["conformant", "broken"])
def runtime(request):
    server = Uvicorn(build_ag_ui_app(_agent(broken=request.param))).start()
    yield request.param, server.url
    server.stop()


def test_agentcore_ag_ui_websocket_app(capsys, runtime):
    broken, url = runtime
    code = main(["check", "--dialect", "ag-ui", url, "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    failed = {r["id"] for r in report["rules"] if r["status"] == "FAIL"}
    if broken:
        assert code == 1 and failed == {"ag-ui.run.finished_open"}, failed
    else:
        assert code == 0, failed
        statuses = {r["id"]: r["status"] for r in report["rules"]}
        assert statuses["ag-ui.transport.bad_input"] == "PASS"  # it closes with 1003 on bad input
        assert statuses["ag-ui.tool.paired"] == "PASS"
    assert any("framing auto" in n for s in report["sections"] for n in s["notes"])
