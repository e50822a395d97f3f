"""Lifecycles: disconnects leak nothing, shutdown finishes runs, deadlines end runs, the CLI and thread API."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import socket
import weakref

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from agent_events import schemas
from agent_events.conformance.cli import main
from agent_events.reference_agent import ActionsAgent, BaseAgent, OfflinePlanner, run_in_thread
from test_reference_agent_support import (
    SUBPROTOCOLS, agent, arun, check_well_formed, connect, recv, recv_until_completed, result, served_cli,
    start_run, types, valid, wait_for,
)


async def until(ws, predicate, limit: int = 200) -> list[dict]:
    """Receive until ``predicate(message)``; bounded by a message count and recv timeouts."""
    seen = []
    for _ in range(limit):
        seen.append(await recv(ws))
        if predicate(seen[-1]):
            return seen
    raise AssertionError(f"not seen in {limit} messages: {seen[-3:]}")


def in_llm(message: dict) -> bool:
    return message["type"] == "tool_executing" and message["payload"]["tool_name"] == "llm_processor"


@pytest.mark.parametrize("window", [0.0, 0.3], ids=["resume off", "resume window 0.3 s"])
def test_a_mid_run_disconnect_cancels_its_runs_and_leaks_nothing(window):
    """Without resume the runs end with their connection; with it (1.1) they outlive it for the
    window, then end: either way nothing is left behind."""
    agents: list[weakref.ref] = []

    def tracked_agent():
        made = ActionsAgent(OfflinePlanner(delay_ms=5000))
        agents.append(weakref.ref(made))
        return made

    async def body():
        async with agent(agent_factory=tracked_agent, resume_window_s=window) as server:
            baseline = len(asyncio.all_tasks())
            ws = await connect(server.url)
            for n in range(5):
                await ws.send(start_run(f"gone{n}"))
            for _ in range(5):
                await until(ws, in_llm)
            assert server.stats()["runs_in_flight"] == 5
            ws.transport.abort()  # vanish without a closing handshake
            if window:
                await wait_for(lambda: server.stats()["connections"] == 0)
                assert server.stats()["runs_in_flight"] == 5 and len(server.resume) == 5  # waiting for a resume
            await wait_for(lambda: server.stats()["connections"] == 0 and server.stats()["runs_in_flight"] == 0)
            if window:
                assert len(server.resume) == 0
            await wait_for(lambda: len(asyncio.all_tasks()) == baseline)
            return baseline, len(asyncio.all_tasks()), server.sessions

    before, after, sessions = arun(body())
    assert after == before and not sessions
    gc.collect()
    assert len(agents) == 5 and all(ref() is None for ref in agents), "an agent outlived its connection"


def test_shutdown_lets_in_flight_runs_finish_then_closes_1001():
    async def body():
        async with agent(llm_delay_ms=300, shutdown_timeout=10) as server:
            async with connect(server.url) as ws:
                ids = ["s1", "s2", "s3"]
                for run_id in ids:
                    await ws.send(start_run(run_id))
                head = await until(ws, in_llm)
                shutdown = asyncio.create_task(server.shutdown())
                await wait_for(lambda: server.shutting_down)
                with pytest.raises(OSError):
                    await connect(server.url)
                await ws.send(start_run("late"))
                runs, others = await recv_until_completed(ws, ids)
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(ws)
                await shutdown
                return {run_id: [m for m in head if m["run_id"] == run_id] + events for run_id, events in runs.items()}, \
                    others, closed.value.rcvd

    runs, others, close = arun(body())
    assert [m["code"] for m in others] == ["shutting_down"] and others[0]["run_id"] == "late"
    assert close.code == 1001
    assert sorted(runs) == ["s1", "s2", "s3"]
    for events in runs.values():
        check_well_formed(events)
        assert result(events)["success"] is True and "cancelled" not in result(events)


def test_shutdown_past_its_deadline_cancels_runs_with_a_well_formed_end():
    async def body():
        async with agent(llm_delay_ms=5000, shutdown_timeout=0.2) as server:
            async with connect(server.url) as ws:
                await ws.send(start_run("slow"))
                head = await until(ws, in_llm)
                shutdown = asyncio.create_task(server.shutdown())
                runs, _ = await recv_until_completed(ws, ["slow"])
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(ws)
                await shutdown
                return head + runs["slow"], closed.value.rcvd

    events, close = arun(body())
    check_well_formed(events)
    assert types(events)[-3:] == ["tool_executing", "tool_completed", "agent_completed"]
    assert events[-2]["payload"]["status"] == "error"
    res = result(events)
    assert res["cancelled"] is True and res["success"] is False and res["error"]["type"] == "shutting_down"
    assert close.code == 1001


class HangingAgent(BaseAgent):
    name = "HangingAgent"

    async def execute(self, request):
        await self.emit_agent_started("Starting something slow")
        await self.emit_thinking("Calling a service that never answers")
        async with self.tool("slow_service", "Waiting for the service"):
            await asyncio.sleep(3600)


def test_a_run_past_the_run_timeout_is_ended_by_the_server():
    async def body():
        async with agent(agent_factory=HangingAgent, run_timeout=0.2) as server:
            async with connect(server.url) as ws:
                await ws.send(start_run("hang"))
                runs, _ = await recv_until_completed(ws, ["hang"])
                return runs["hang"]

    events = arun(body())
    check_well_formed(events)
    assert events[-2]["payload"]["status"] == "error"
    assert result(events)["error"]["type"] == "deadline_exceeded" and result(events)["cancelled"] is True


def test_a_broken_agent_factory_is_an_internal_error_not_a_dead_connection():
    calls = []

    def factory():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("factory exploded")
        return ActionsAgent(OfflinePlanner(0))

    async def body():
        async with agent(agent_factory=factory) as server, connect(server.url) as ws:
            await ws.send(start_run("first"))
            error = await recv(ws)
            await ws.send(start_run("second"))
            runs, _ = await recv_until_completed(ws, ["second"])
            return error, runs["second"]

    error, events = arun(body())
    assert error["code"] == "internal_error" and error["run_id"] == "first"
    check_well_formed(events)


def test_run_in_thread_serves_sync_callers():
    with run_in_thread(port=0, llm_delay_ms=0) as server:
        with sync_connect(server.url, subprotocols=SUBPROTOCOLS, open_timeout=5) as ws:
            ws.send(start_run("sync"))
            capabilities = valid(json.loads(ws.recv(timeout=5)))
            assert capabilities["type"] == "capabilities" and capabilities["protocol_version"] == "1.1"
            events = []
            while not events or events[-1]["type"] != "agent_completed":
                events.append(valid(json.loads(ws.recv(timeout=5))))
        stats = server.stats()
        assert server.running
        url = server.url
    check_well_formed(events)
    assert stats["runs_started"] == 1
    assert not server.running
    with pytest.raises(OSError):
        sync_connect(url, open_timeout=2)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_cli_prints_its_url_and_shuts_down_gracefully_on_a_signal(sig):
    with served_cli("--llm-delay-ms", "300") as (proc, url):
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/")

        async def body():
            async with connect(url) as ws:
                await ws.send(start_run("cli"))
                head = await until(ws, lambda m: m["type"] == "agent_started")
                proc.send_signal(sig)
                runs, _ = await recv_until_completed(ws, ["cli"])
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(ws)
                return head + runs["cli"], closed.value.rcvd

        events, close = arun(body())
        assert proc.wait(timeout=15) == 0
    check_well_formed(events)
    assert result(events)["success"] is True
    assert close.code == 1001


def test_serve_cli_token_from_the_environment():
    from test_reference_agent_auth import handshake_status

    with served_cli(env={"AGENT_EVENTS_TOKEN": "from-env"}) as (proc, url):
        async def statuses():
            return (await handshake_status(url),
                    await handshake_status(url, additional_headers={"Authorization": "Bearer from-env"}))

        assert arun(statuses()) == (401, 101)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


@pytest.mark.parametrize("argv, needle", [
    (["--port", "70000"], "port must be 0..65535"),
    (["--max-runs-per-connection", "0"], "max_runs_per_connection must be at least 1"),
    (["--keyfile", "k.pem"], "keyfile needs certfile"),
    (["--certfile", "/nonexistent/cert.pem"], "cannot serve"),
    (["--run-timeout", "nan"], "run_timeout must be a finite number"),
    (["--run-timeout", "-1"], "run_timeout must be a finite number"),
    (["--slow-reader-timeout", "-5"], "slow_reader_timeout must be a finite number"),
    (["--llm-timeout-ms", "nan"], "llm_timeout_ms must be a finite number"),
    (["--llm-delay-ms", "inf"], "llm_delay_ms must be a finite number"),
])
def test_serve_cli_bad_settings_are_usage_errors(argv, needle, capsys):
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_serve_cli_port_in_use_is_a_usage_error(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "cannot serve on 127.0.0.1" in err and "Traceback" not in err


def test_healthz_counts_follow_the_runs():
    async def body():
        async with agent(llm_delay_ms=5000) as server, connect(server.url) as ws:
            await ws.send(start_run("h1"))
            await until(ws, in_llm)
            during = dict(server.stats())
            await ws.send(json.dumps({"type": "cancel_run", "run_id": "h1"}))
            await recv_until_completed(ws, ["h1"])
            await wait_for(lambda: server.stats()["runs_in_flight"] == 0)
            return during, server.stats()

    during, after = arun(body())
    assert during["runs_in_flight"] == 1 and during["connections"] == 1
    assert after["runs_in_flight"] == 0 and after["runs_started"] == 1
    assert after["subprotocol"] == schemas.SUBPROTOCOL
