"""Bad input, limits and back-pressure: errors as protocol data, never a crash or a hang."""

from __future__ import annotations

import asyncio
import socket

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agent_events import schemas
from test_reference_agent_support import (
    FAST, agent, arun, check_well_formed, connect, recv, recv_until_completed, result, start_run, wait_for,
)

ERROR = schemas.validator("error")

BAD_INPUT = [
    # (frame sent, error code, details.path or None)
    ("this is not JSON", "invalid_json", None),
    (b"\x00\x01binary", "unsupported_frame", None),
    ('{"type": "dance"}', "unknown_type", None),
    ('[1, 2]', "invalid_json", None),
    ('{"input": "no type"}', "invalid_message", "/type"),
    ('{"type": "start_run"}', "invalid_message", "/input"),
    ('{"type": "start_run", "input": 7}', "invalid_message", "/input"),
    ('{"type": "start_run", "input": "x", "colour": "red"}', "invalid_message", "/colour"),
    ('{"type": "start_run", "input": "x", "options": {"simulate_failure": "always"}}',
     "invalid_message", "/options/simulate_failure"),
    ('{"type": "start_run", "input": "x", "run_id": ""}', "invalid_message", "/run_id"),
    ('{"type": "cancel_run"}', "invalid_message", "/run_id"),
    ('{"type": "time_sync", "client_time_ms": "noon"}', "invalid_message", "/client_time_ms"),
    ('{"type": "cancel_run", "run_id": "never-started"}', "unknown_run", None),
]


def assert_error(message: dict, code: str) -> dict:
    assert message["type"] == "error", message
    assert not list(ERROR.iter_errors(message)), message
    assert message["code"] == code, message
    assert code in schemas.ERROR_CODES
    return message


@pytest.mark.parametrize("frame, code, path", BAD_INPUT, ids=[f"{c}:{p}" for _, c, p in BAD_INPUT])
def test_bad_input_gets_its_error_and_the_connection_stays_usable(frame, code, path):
    async def body():
        async with agent(**FAST) as server, connect(server.url) as ws:
            await ws.send(frame)
            error = await recv(ws)
            await ws.send(start_run("after"))
            runs, others = await recv_until_completed(ws, ["after"])
            return error, runs["after"], others

    error, events, others = arun(body())
    assert_error(error, code)
    if path is not None:
        assert error["details"]["path"] == path
    if code == "unknown_run":
        assert error["run_id"] == "never-started"
    check_well_formed(events)
    assert others == []


def test_a_duplicate_in_flight_run_id_is_refused_and_the_first_run_is_untouched():
    async def body():
        async with agent(llm_delay_ms=300) as server, connect(server.url) as ws:
            await ws.send(start_run("dup"))
            await ws.send(start_run("dup"))
            runs, others = await recv_until_completed(ws, ["dup"])
            await ws.send(start_run("dup"))  # no longer in flight: a new run may take the id
            again, _ = await recv_until_completed(ws, ["dup"])
            return runs["dup"], others, again["dup"]

    events, others, again = arun(body())
    assert len(others) == 1
    assert assert_error(others[0], "duplicate_run")["run_id"] == "dup"
    check_well_formed(events)
    check_well_formed(again)


def test_too_many_runs_on_one_connection_is_refused_without_harm():
    async def body():
        async with agent(llm_delay_ms=200, max_runs_per_connection=2) as server:
            async with connect(server.url) as ws, connect(server.url) as other:
                for run_id in ("a", "b", "c"):
                    await ws.send(start_run(run_id))
                await other.send(start_run("elsewhere"))
                runs, others = await recv_until_completed(ws, ["a", "b"])
                elsewhere, _ = await recv_until_completed(other, ["elsewhere"])
                await ws.send(start_run("d"))
                later, _ = await recv_until_completed(ws, ["d"])
                return runs, others, elsewhere, later

    runs, others, elsewhere, later = arun(body())
    error = assert_error(others[0], "too_many_runs")
    assert error["run_id"] == "c" and error["details"]["limit"] == 2
    for events in [*runs.values(), elsewhere["elsewhere"], later["d"]]:
        check_well_formed(events)


def test_a_message_over_the_limit_gets_message_too_big_and_a_huge_one_closes_1009():
    limit = 1024

    async def body():
        async with agent(max_message_size=limit, **FAST) as server, connect(server.url) as ws:
            await ws.send(start_run("big", "x" * (2 * limit)))
            error = await recv(ws)
            await ws.send(start_run("small"))
            runs, _ = await recv_until_completed(ws, ["small"])
            await ws.send(start_run("huge", "x" * (5 * limit)))
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            return error, runs["small"], closed.value.rcvd

    error, events, close = arun(body())
    assert_error(error, "message_too_big")
    assert error["details"]["limit"] == limit and error["details"]["size"] > limit
    check_well_formed(events)
    assert close is not None and close.code == 1009


def test_connections_over_the_limit_get_503_and_the_slot_frees_up():
    async def body():
        async with agent(max_connections=2, **FAST) as server:
            async with connect(server.url), connect(server.url):
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(server.url):
                        pass
            await wait_for(lambda: server.stats()["connections"] == 0)
            async with connect(server.url) as ws:
                await ws.send(start_run("ok"))
                runs, _ = await recv_until_completed(ws, ["ok"])
            return refused.value.response, runs["ok"]

    response, events = arun(body())
    assert response.status_code == 503 and b"Too many connections" in response.body
    check_well_formed(events)


def tiny_buffers_listener() -> socket.socket:
    """A listener whose accepted sockets have a tiny send buffer (they inherit it),
    so a reader that stops reading fills the server's buffers after a few KiB."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


async def stalled_client(url: str, port: int):
    """A client with a tiny receive buffer whose transport will be paused (it reads nothing)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return connect(url, sock=sock, max_queue=1)


def test_a_slow_reader_waits_alone_and_loses_nothing():
    slow_ids = [f"slow{n}" for n in range(32)]

    async def body():
        async with agent(sock=tiny_buffers_listener(), send_queue=4096, max_runs_per_connection=32,
                         slow_reader_timeout=None, **FAST) as server:
            async with await stalled_client(server.url, server.port) as slow:
                slow.transport.pause_reading()
                for run_id in slow_ids:
                    await slow.send(start_run(run_id))
                # the server has taken every start_run (it reads them one per loop turn) and is paused
                await wait_for(lambda: server.stats()["paused_connections"] == 1
                               and server.stats()["runs_started"] == len(slow_ids))
                waiting = server.stats()["runs_in_flight"]
                async with connect(server.url) as fast:
                    for n in range(5):
                        await fast.send(start_run(f"fast{n}"))
                    fast_runs, _ = await recv_until_completed(fast, [f"fast{n}" for n in range(5)])
                still_waiting = server.stats()["runs_in_flight"]
                slow.transport.resume_reading()
                slow_runs, _ = await recv_until_completed(slow, slow_ids, timeout=15)
            return waiting, fast_runs, still_waiting, slow_runs

    waiting, fast_runs, still_waiting, slow_runs = arun(body())
    assert waiting > 0, "the slow reader's runs never had to wait: the test did not exercise back-pressure"
    assert still_waiting == waiting, "the slow reader's runs moved while it read nothing"
    for events in fast_runs.values():
        check_well_formed(events)
    assert sorted(slow_runs) == sorted(slow_ids)
    for events in slow_runs.values():
        check_well_formed(events)
        assert result(events)["success"] is True


def test_a_reader_stuck_past_the_timeout_is_closed_with_1008():
    async def body():
        async with agent(sock=tiny_buffers_listener(), send_queue=4096, max_runs_per_connection=32,
                         slow_reader_timeout=0.2, **FAST) as server:
            async with await stalled_client(server.url, server.port) as slow:
                slow.transport.pause_reading()
                for n in range(32):
                    await slow.send(start_run(f"stuck{n}"))
                await wait_for(lambda: server.stats()["slow_readers_closed"] == 1)
                slow.transport.resume_reading()
                with pytest.raises(ConnectionClosed) as closed:
                    for _ in range(10_000):
                        await recv(slow)
                await wait_for(lambda: server.stats()["runs_in_flight"] == 0)
            return closed.value.rcvd, server.stats()

    close, stats = arun(body())
    assert close is not None and close.code == 1008 and "slow reader" in close.reason
    assert stats["connections"] == 0
