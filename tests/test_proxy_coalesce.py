"""The proxy's ``coalesce:N`` fault: N client frames reach the server in one write, so a team can
provoke, from its own polite client, the races a server hides from one (tests/race_endpoints.py).

The planner is pure and driven with made-up frames; the live test puts a real proxy in front of
a real Starlette endpoint whose cancel of a task not yet started leaves the run silent.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from agent_events.proxy import Applied, FaultSpecError, Planner, make_plan, parse_fault
from agent_events.proxy.faults import COALESCE_WAIT_MS, Fault
from agent_events.proxy.planner import Upstream
from agent_events.proxy.server import FaultProxy

sys.path.insert(0, str(Path(__file__).parent))


def test_coalesce_is_parsed_and_printed_back():
    assert parse_fault("coalesce:2") == Fault("coalesce", None, 2.0)
    assert str(parse_fault(" COALESCE:3 ")) == "coalesce:3"
    plan = make_plan(["coalesce:2", "drop:3"])
    assert plan.coalesce == 2 and 3 in plan.by_seq
    assert plan.describe() == "drop:3, coalesce:2"
    assert make_plan(["coalesce:2"]).empty  # nothing on the server-to-client stream: its fast path stays


@pytest.mark.parametrize("spec, why", [
    ("coalesce:1", "between 2 and 1000"), ("coalesce:1001", "between 2 and 1000"), ("coalesce:x", "integer"),
    ("coalesce", "coalesce is written coalesce:N"), ("coalesce:2:3", "coalesce is written coalesce:N"),
])
def test_a_bad_coalesce_is_refused_with_the_accepted_forms(spec, why):
    with pytest.raises(FaultSpecError, match=why) as info:
        parse_fault(spec)
    assert "coalesce:N" in str(info.value)


def test_coalesce_given_twice_is_refused():
    with pytest.raises(FaultSpecError, match="coalesce is given twice"):
        make_plan(["coalesce:2", "coalesce:3"])


def test_the_planner_groups_n_client_frames_into_one_write():
    planner = Planner(make_plan(["coalesce:2"]), connection=4)
    assert planner.client_deadline is None
    assert planner.from_client("text", b"start", 100.0) == []
    assert planner.client_deadline == 100.0 + COALESCE_WAIT_MS
    actions = planner.from_client("binary", b"cancel", 101.0)
    assert actions == [Applied(4, None, None, Fault("coalesce", None, 2.0)),
                       Upstream((("text", b"start"), ("binary", b"cancel")))]
    assert planner.client_deadline is None
    # the next group starts afresh; one short of N goes as it is once its wait is over
    assert planner.from_client("text", b"again", 500.0) == []
    assert planner.flush_client(500.0 + COALESCE_WAIT_MS) == [Upstream((("text", b"again"),))]
    assert planner.flush_client(1000.0) == []


def test_without_coalesce_each_client_frame_goes_alone():
    planner = Planner(make_plan([]))
    assert planner.from_client("text", b"a", 0.0) == [Upstream((("text", b"a"),))]
    assert planner.client_deadline is None


async def _first_answer(url: str, pause_s: float) -> dict | None:
    """A polite client: start_run, a pause, cancel_run; the run's first message within 0.5 s, if any."""
    async with connect(url, subprotocols=["agent-events.v1"]) as ws:
        await ws.send(json.dumps({"type": "start_run", "run_id": "r1", "input": "x"}))
        await asyncio.sleep(pause_s)
        await ws.send(json.dumps({"type": "cancel_run", "run_id": "r1"}))
        try:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                if message.get("run_id") == "r1":
                    return message
        except asyncio.TimeoutError:
            return None


def test_coalesce_makes_a_polite_client_provoke_the_early_cancel_race():
    pytest.importorskip("starlette", reason="the race endpoints are Starlette apps: pip install -e '.[test]'")
    pytest.importorskip("uvicorn", reason="the race endpoints run under uvicorn: pip install -e '.[test]'")
    from race_endpoints import RaceEndpoint

    async def scenario(url: str):
        async with FaultProxy(url) as plain:
            through_plain = await _first_answer(plain, 0.05)
        applied: list[dict] = []
        async with FaultProxy(url, ["coalesce:2"], on_fault=applied.append) as coalescing:
            through_coalesce = await _first_answer(coalescing, 0.05)
        return through_plain, through_coalesce, applied

    with RaceEndpoint("silent_cancel") as url:
        plain, coalesced, applied = asyncio.run(scenario(url))
    assert plain is not None and plain["type"] == "agent_started"  # the task had begun: no race
    assert coalesced is None  # start and cancel read together: the bug, provoked
    assert [a["fault"] for a in applied] == ["coalesce:2"]


def test_the_sync_wire_sends_packed_frames_in_one_write():
    """The Locust user's path (the plain-socket SocketWire): start_run and cancel_run packed reach
    the silent endpoint in one read, which the same frames sent one by one, a moment apart, do not."""
    pytest.importorskip("starlette", reason="the race endpoints are Starlette apps: pip install -e '.[test]'")
    pytest.importorskip("uvicorn", reason="the race endpoints run under uvicorn: pip install -e '.[test]'")
    import threading
    import time

    from agent_events.conformance.core.client import ClientConnection
    from agent_events.conformance.core.checker import Checker
    from agent_events.conformance.live import wire_core
    from agent_events.conformance.live.wire_sync import SocketWire
    from race_endpoints import RaceEndpoint

    def first_answer(url: str, packed: bool) -> dict | None:
        core = ClientConnection("c0", Checker())
        answers: list[dict] = []
        got = threading.Event()

        def on_messages(_wire, messages, _at):
            for _kind, data in messages:
                answers.append(json.loads(data))
                got.set()

        conn = SocketWire("c0", wire_core.Endpoint(url), wire_core.Clock(), on_messages, lambda *_: got.set())
        conn.open(["agent-events.v1"])
        reader = threading.Thread(target=conn.read_loop, daemon=True)
        reader.start()
        try:
            run_id, start = core.start_run(0.0, input="x")
            cancel = core.cancel_run(run_id, 0.0)
            if packed:
                assert conn.send_many(core.pack(start, cancel)) is not None
            else:
                conn.send("text", start)
                time.sleep(0.05)
                conn.send("text", cancel)
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                for message in answers:
                    if message.get("run_id") == run_id:
                        return message
                got.wait(0.05)
                got.clear()
            return None
        finally:
            conn.close()
            reader.join(5)

    with RaceEndpoint("silent_cancel") as url:
        assert first_answer(url, packed=False)["type"] == "agent_started"
        assert first_answer(url, packed=True) is None
