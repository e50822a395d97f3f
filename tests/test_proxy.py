"""``agent-events proxy``: each fault, end to end through the proxy against the real reference agent.

Every test points the live check (or a plain websockets client) at a proxy
in front of a reference agent on 127.0.0.1, records what arrived and checks
two things: the exact effect on the stream (which seqs arrived, in which
order) and the rule id the checker reports for it. The planner itself is
pure and is also driven directly with made-up frames.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

import misbehaving_servers as m
from agent_events import conformance, proxy, reference_agent
from agent_events.conformance.core import rules
from agent_events.conformance.cli import main
from agent_events.conformance.core.violations import FAIL, PASS, WARN
from agent_events.proxy import Applied, Cut, FaultSpecError, Forward, Planner, make_plan, parse_fault
from agent_events.proxy.addressing import Addressing

#: Every budget relaxed but the one a test is about: these tests are about behaviour, never speed.
RELAXED = m.RELAXED
#: A delivery budget the faults below overshoot five times over.
TIGHT_DELIVERY = {**RELAXED, "delivery_ms": 300}
PRIMARY_SEQS = list(range(11))


def sync(coroutine_function):
    """Run an async test body on its own event loop (the suite has no async test plugin)."""
    import functools

    @functools.wraps(coroutine_function)
    def run(*args, **kwargs):
        return asyncio.run(coroutine_function(*args, **kwargs))

    return run  # the reference agent's primary run: agent_started (0) .. agent_completed (10)


@pytest.fixture(scope="module")
def agent():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        yield server


def failing(report) -> dict[str, str]:
    return {rule: status for rule, status in report.statuses().items() if status in (FAIL, WARN)}


def received(path: Path) -> list:
    """The run events received, in order: their seq, or ``"corrupt"`` for a frame that is not JSON."""
    seqs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        frame = json.loads(line)
        if frame.get("dir") != "recv" or "text" not in frame:
            continue
        try:
            message = json.loads(frame["text"])
        except ValueError:
            seqs.append("corrupt")
            continue
        if isinstance(message, dict) and "seq" in message:
            seqs.append(message["seq"])
    return seqs


def check_through(agent, faults, tmp_path, budgets=RELAXED, **options):
    """One primary run through a proxy with ``faults``: (report, seqs received, faults applied)."""
    record = tmp_path / "run.jsonl"
    with proxy.run_in_thread(agent.url, faults, **options) as p:
        report = conformance.check(p.url, scenarios=["primary"], record=record, deadline_s=5, **budgets)
        applied = p.applied
    return report, received(record), applied


# -- each fault: the stream it makes and the rule that catches it --------------------------------

def test_drop_removes_the_event_and_fails_seq_contiguous(agent, tmp_path):
    report, seqs, applied = check_through(agent, ["drop:9"], tmp_path)
    assert seqs == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10]
    assert failing(report) == {"seq.contiguous": FAIL}
    assert [(a["seq"], a["fault"]) for a in applied] == [(9, "drop:9")]


def test_dup_sends_the_event_twice_and_fails_seq_contiguous(agent, tmp_path):
    report, seqs, _ = check_through(agent, ["dup:9"], tmp_path)
    assert seqs == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 10]
    assert failing(report) == {"seq.contiguous": FAIL}


def test_swap_of_two_middle_events_fails_seq_contiguous(agent, tmp_path):
    report, seqs, _ = check_through(agent, ["swap:8"], tmp_path)
    assert seqs == [0, 1, 2, 3, 4, 5, 6, 7, 9, 8, 10]
    assert failing(report) == {"seq.contiguous": FAIL}


def test_swap_before_agent_completed_also_fails_completed_last(agent, tmp_path):
    report, seqs, _ = check_through(agent, ["swap:9"], tmp_path)
    assert seqs == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 9]
    assert failing(report) == {"seq.contiguous": FAIL, "order.completed_last": FAIL}


def test_corrupt_replaces_the_frame_with_non_json_and_fails_frame_json(agent, tmp_path):
    report, seqs, _ = check_through(agent, ["corrupt:9"], tmp_path)
    assert seqs == [0, 1, 2, 3, 4, 5, 6, 7, 8, "corrupt", 10]
    # the corrupted event's seq is missing from the run as well: both rules see it
    assert failing(report) == {"frame.json": FAIL, "seq.contiguous": FAIL}


def test_cut_drops_the_connection_before_the_event_and_the_run_never_completes(agent, tmp_path):
    report, seqs, _ = check_through(agent, ["cut:5"], tmp_path)
    assert seqs == [0, 1, 2, 3, 4]
    expected = {"order.completed_last": FAIL}
    if "transport.connection_kept" in rules.BY_ID:  # the endpoint also dropped a well-behaved client
        expected["transport.connection_kept"] = FAIL
    assert failing(report) == expected
    observed = [v.observed for s in report.sections for v in s.violations if v.rule_id == "order.completed_last"]
    assert "without agent_completed" in observed[0]


@sync
async def test_cut_closes_without_a_close_frame(agent):
    async with proxy.FaultProxy(agent.url, ["cut:3"]) as url:
        async with connect(url, subprotocols=["agent-events.v1"]) as ws:
            await ws.send(json.dumps({"type": "start_run", "run_id": "r1", "input": "x"}))
            seqs = []
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        message = json.loads(await ws.recv())
                        if "seq" in message:  # (not the 1.1 capabilities message)
                            seqs.append(message["seq"])
    assert seqs == [0, 1, 2]
    assert closed.value.rcvd is None  # no close frame: a network cut, as the client sees one


def test_delay_past_the_budget_fails_latency_delivery_and_keeps_the_order(agent, tmp_path):
    report, seqs, applied = check_through(agent, ["delay:9:1000"], tmp_path, TIGHT_DELIVERY)
    assert seqs == PRIMARY_SEQS  # later events waited behind the delayed one
    assert failing(report) == {"latency.delivery": FAIL}
    late = [v for s in report.sections for v in s.violations if v.rule_id == "latency.delivery"]
    assert any(" seq=9 " in v.excerpt[-1] for v in late)
    assert applied[0]["fault"] == "delay:9:1000"


def test_delay_within_the_budget_is_not_a_violation(agent, tmp_path):
    report, seqs, _ = check_through(agent, ["delay:9:20"], tmp_path)
    assert seqs == PRIMARY_SEQS
    assert failing(report) == {}


def test_stall_holds_the_run_after_its_first_event_and_fails_latency_delivery(agent, tmp_path):
    report, seqs, applied = check_through(agent, ["stall:1000"], tmp_path, TIGHT_DELIVERY)
    assert seqs == PRIMARY_SEQS
    assert failing(report) == {"latency.delivery": FAIL}
    assert report.statuses()["latency.first_event"] == PASS  # the first event itself is not held
    assert [(a["seq"], a["fault"]) for a in applied] == [(0, "stall:1000")]


def test_drip_throttles_the_stream_without_changing_it(agent, tmp_path):
    rate = 4000
    report, seqs, applied = check_through(agent, [f"drip:{rate}"], tmp_path, TIGHT_DELIVERY)
    assert seqs == PRIMARY_SEQS
    assert failing(report) == {"latency.delivery": FAIL}
    frames = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    recv = [f for f in frames if f.get("dir") == "recv" and '"seq"' in f.get("text", "")]
    after_first = sum(len(f["text"].encode()) for f in recv[1:])
    # a lower bound the throttle guarantees by construction (the bytes cannot leave sooner)
    assert recv[-1]["t"] - recv[0]["t"] >= 0.9 * after_first * 1000 / rate
    assert [a["fault"] for a in applied][:1] == [f"drip:{rate}"]


# -- transparency ----------------------------------------------------------------------------------

def test_a_full_check_through_a_fault_free_proxy_is_conformant_within_the_budgets(tmp_path):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=20) as server, \
            proxy.run_in_thread(server.url) as p:
        # every scenario, the profile's own latency budgets; the races' tries kept few: agent, proxy and
        # check share one process (and its GIL) here, and provoking the races is tests/test_races.py's job
        report = conformance.check(p.url, race_tries=4)
        assert p.applied == []
    assert report.exit_code() == 0, failing(report)
    assert {r: s for r, s in failing(report).items() if s == FAIL} == {}
    statuses = report.statuses()
    for rule_id in ("latency.first_event", "latency.delivery", "transport.subprotocol", "isolation.run_scope",
                    "cancel.terminal", "robustness.error_reply", "robustness.stays_open", "time_sync.reply"):
        assert statuses[rule_id] == PASS, rule_id


def test_a_misbehaving_endpoint_is_judged_the_same_through_the_proxy():
    with m.running(m.SendsInvalidUtf8()) as url, proxy.run_in_thread(url) as p:
        report = conformance.check(p.url, scenarios=["primary"], deadline_s=2, **RELAXED)
    assert failing(report) == {"frame.json": FAIL}  # the non-UTF-8 text frame went through as it came


def test_no_subprotocol_upstream_gives_none_to_the_client():
    with m.running(m.NoSubprotocol()) as url, proxy.run_in_thread(url) as p:
        report = conformance.check(p.url, scenarios=["primary"], deadline_s=2, **RELAXED)
    assert failing(report) == {"transport.subprotocol": WARN}


# -- determinism --------------------------------------------------------------------------------------

def start_cli_proxy(*argv: str) -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen([sys.executable, "-m", "agent_events.conformance.cli", "proxy", *argv],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = child.stdout.readline().strip()
    assert url.startswith("ws://127.0.0.1:"), child.stderr.read()
    return child, url


def stop_cli_proxy(child: subprocess.Popen) -> tuple[int, str]:
    child.send_signal(signal.SIGTERM)
    try:
        out, err = child.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
    assert out == ""  # the URL is the only line on stdout
    return child.returncode, err


def test_two_recordings_through_the_same_random_seed_hold_the_same_faults_at_the_same_seqs(agent, tmp_path):
    runs = []
    for i in range(2):
        log = tmp_path / f"faults{i}.jsonl"
        child, url = start_cli_proxy(agent.url, "--random", "drop=0.15,dup=0.15,swap=0.1,corrupt=0.1",
                                     "--seed", "7", "--log", str(log))
        try:
            assert main(["record", url, "-o", str(tmp_path / f"rec{i}.jsonl"), "--deadline-s", "3"]) == 0
        finally:
            code, err = stop_cli_proxy(child)
        assert code == 0 and "Traceback" not in err
        logged = [json.loads(line) for line in log.read_text().splitlines()]
        on_stderr = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert logged == on_stderr  # stderr and --log say the same
        runs.append((logged, received(tmp_path / f"rec{i}.jsonl")))
    (faults0, seqs0), (faults1, seqs1) = runs
    assert faults0, "seed 7 picks faults for this stream"
    assert [(f["run"], f["seq"], f["fault"]) for f in faults0] == [(f["run"], f["seq"], f["fault"]) for f in faults1]
    assert seqs0 == seqs1 and seqs0 != PRIMARY_SEQS
    assert {f["source"] for f in faults0} == {"random"}


def test_random_draws_do_not_depend_on_the_order_runs_interleave():
    plan = make_plan(random="drop=0.3,dup=0.3", seed=7)
    frames = [(r, s) for s in range(30) for r in ("a", "b")]

    def applied(order):
        planner = Planner(plan, connection=0)
        out = set()
        for run_id, seq in order:
            for action in planner.receive("text", orjson.dumps({"run_id": run_id, "seq": seq}), 0.0):
                if isinstance(action, Applied):
                    out.add((action.run, action.seq, str(action.fault)))
        return out

    assert applied(frames) == applied(sorted(frames)) != set()
    assert applied(frames) != {(r, s, f) for r, s, f in applied(frames) if r == "a"}  # both runs get faults


# -- the planner, pure -------------------------------------------------------------------------------

def event(seq: int, run_id: str = "r1") -> bytes:
    return orjson.dumps({"type": "agent_thinking", "run_id": run_id, "seq": seq})


def forwards(actions) -> list:
    return [(orjson.loads(a.data).get("seq") if a.data.startswith(b"{") else "x", a.not_before)
            for a in actions if isinstance(a, Forward)]


def test_planner_delay_holds_later_events_of_the_run_but_not_other_runs():
    planner = Planner(make_plan(["delay:1:100"]))
    assert forwards(planner.receive("text", event(0), 0.0)) == [(0, 0.0)]
    assert forwards(planner.receive("text", event(1), 10.0)) == [(1, 110.0)]
    assert forwards(planner.receive("text", event(2), 20.0)) == [(2, 110.0)]  # waits behind seq 1
    assert forwards(planner.receive("text", event(1, "other"), 30.0)) == [(1, 130.0)]  # its own seq 1
    assert forwards(planner.receive("text", event(2, "other"), 31.0)) == [(2, 130.0)]
    assert forwards(planner.receive("text", event(3), 200.0)) == [(3, 200.0)]


def test_planner_stall_swap_and_non_run_frames():
    planner = Planner(make_plan(["stall:500", "swap:1"]))
    assert forwards(planner.receive("text", event(0), 0.0)) == [(0, 0.0)]
    assert forwards(planner.receive("text", event(1), 1.0)) == []  # swapped: held
    assert forwards(planner.receive("text", b'{"type":"time_sync"}', 2.0)) == [(None, 2.0)]  # not a run event
    assert forwards(planner.receive("binary", b"\x00", 3.0)) == [("x", 3.0)]
    assert forwards(planner.receive("text", event(2), 4.0)) == [(2, 500.0), (1, 500.0)]
    planner.receive("text", event(3), 5.0)
    assert forwards(planner.receive("text", b"not json", 6.0)) == [("x", 6.0)]


def test_planner_swap_of_the_last_event_is_released_when_the_upstream_ends():
    planner = Planner(make_plan(["swap:0"]))
    assert forwards(planner.receive("text", event(0), 0.0)) == []
    assert forwards(planner.drain(5.0)) == [(0, 5.0)]


def test_planner_cut_stops_everything_after_it():
    planner = Planner(make_plan(["cut:1", "corrupt:0"]))
    first = planner.receive("text", event(0), 0.0)
    assert forwards(first) == [("x", 0.0)]
    actions = planner.receive("text", event(1), 1.0)
    assert [type(a) for a in actions] == [Applied, Cut]
    assert planner.receive("text", event(2), 2.0) == [] and planner.drain(3.0) == []


def test_a_fault_free_plan_forwards_every_frame_as_is():
    planner = Planner(make_plan())
    for data in (event(0), b"\xff", b"[]"):
        assert planner.receive("text", data, 1.0) == [Forward("text", data, None, 1.0)]


def test_fault_specs_round_trip():
    for spec in ("drop:0", "dup:3", "swap:4", "delay:5:200", "delay:5:0.5", "corrupt:9", "cut:2", "stall:300",
                 "drip:1000"):
        assert str(parse_fault(spec)) == spec


# -- usage errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, named", [
    (["--fault", "drop"], "drop"),
    (["--fault", "drop:x"], "drop:x"),
    (["--fault", "drop:-1"], "drop:-1"),
    (["--fault", "explode:3"], "explode:3"),
    (["--fault", "delay:3"], "delay:3"),
    (["--fault", "delay:3:nan"], "delay:3:nan"),
    (["--fault", "stall:0"], "stall:0"),
    (["--fault", "drip:1.5"], "drip:1.5"),
    (["--fault", "drop:3", "--fault", "dup:3"], "dup:3"),
    (["--random", "drop=0.7,dup=0.7"], "drop=0.7,dup=0.7"),
    (["--random", "stall=0.1"], "stall=0.1"),
    (["--random", "delay=0.1"], "delay=0.1"),
    (["--random", ""], "''"),
])
def test_a_bad_fault_spec_is_a_usage_error_naming_the_spec_and_the_forms(argv, named, capsys):
    assert main(["proxy", "ws://127.0.0.1:9/", *argv]) == 2
    err = capsys.readouterr().err
    assert named in err and "accepted form" in err and "Traceback" not in err
    if argv[0] == "--fault":
        assert "drop:SEQ" in err and "delay:SEQ:MS" in err and "drip:BYTES_PER_S" in err


def test_a_bad_upstream_url_is_a_usage_error(capsys):
    assert main(["proxy", "http://127.0.0.1:9/"]) == 2
    assert "not a ws:// or wss:// URL" in capsys.readouterr().err


def test_the_api_raises_fault_spec_error():
    with pytest.raises(FaultSpecError, match="accepted forms"):
        proxy.FaultProxy("ws://127.0.0.1:9/", ["drop:"])


# -- pass-through: handshake, headers, close codes --------------------------------------------------------

def test_a_token_passes_through_and_a_refusal_keeps_its_http_status():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0, token="s3cret") as server, \
            proxy.run_in_thread(server.url) as p:
        assert failing(conformance.check(p.url, scenarios=["primary"], token="s3cret", **RELAXED)) == {}
        assert failing(conformance.check(p.url + "?token=s3cret", scenarios=["primary"], **RELAXED)) == {}
        with pytest.raises(conformance.ConnectError, match="HTTP 401"):
            conformance.check(p.url, scenarios=["primary"])


def test_an_unreachable_upstream_is_http_502_and_exit_3(capsys):
    with proxy.run_in_thread(f"ws://127.0.0.1:{m.unused_port()}/") as p:
        assert main(["check", p.url, "--scenario", "primary"]) == 3
    err = capsys.readouterr().err
    assert "HTTP 502" in err and "cannot open the upstream" in err and "Traceback" not in err


class EchoUpstream:
    """A plain websockets server: says what handshake it saw, echoes, closes on request, notes how clients close."""

    def __init__(self) -> None:
        self.closes: list = []

    async def handler(self, ws):
        request = ws.request
        await ws.send(json.dumps({"path": request.path, "x_test": request.headers.get("X-Test"),
                                  "subprotocol": ws.subprotocol}))
        try:
            async for message in ws:
                if message == "close-me":
                    await ws.close(4001, "upstream done")
                    return
                if message == "drop-me":
                    ws.transport.abort()
                    return
                if message == "huge":
                    await ws.send("x" * 5000)
                else:
                    await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            await ws.wait_closed()
            self.closes.append((ws.close_code, ws.close_reason))


@sync
async def test_path_query_headers_subprotocol_and_close_codes_pass_through():
    echo = EchoUpstream()
    async with serve(echo.handler, "127.0.0.1", 0, subprotocols=["agent-events.v1", "other"]) as server:
        port = server.sockets[0].getsockname()[1]
        async with proxy.FaultProxy(f"ws://127.0.0.1:{port}/base?a=1", ["drop:0"]) as url:
            async with connect(url + "sub?b=2", subprotocols=["other"], additional_headers={"X-Test": "yes"}) as ws:
                hello = json.loads(await ws.recv())
                assert hello == {"path": "/base/sub?a=1&b=2", "x_test": "yes", "subprotocol": "other"}
                assert ws.subprotocol == "other"
                await ws.send(b"\x00\x01binary")
                assert await ws.recv() == b"\x00\x01binary"
                await ws.send("close-me")
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert (ws.close_code, ws.close_reason) == (4001, "upstream done")
            async with connect(url, subprotocols=["other"]) as ws:
                await ws.recv()
                await ws.close(4002, "client done")
            async with connect(url, subprotocols=["other"]) as dropped:
                await dropped.recv()
                await dropped.send("drop-me")
                with pytest.raises(ConnectionClosed) as closed:
                    await dropped.recv()
            assert closed.value.rcvd is None  # the upstream vanished without a close frame: so does the proxy
            for _ in range(200):
                if len(echo.closes) == 3:
                    break
                await asyncio.sleep(0.01)
    assert echo.closes[1] == (4002, "client done")


@sync
async def test_hostile_traffic_never_takes_the_proxy_down():
    echo = EchoUpstream()
    async with serve(echo.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with proxy.FaultProxy(f"ws://127.0.0.1:{port}/", max_size=2048) as url:
            # a client message over the limit: that client is closed with 1009
            async with connect(url) as ws:
                await ws.recv()
                await ws.send("y" * 5000)
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == 1009
            # an upstream message over the limit: the client hears 1014 (bad gateway)
            async with connect(url) as ws:
                await ws.recv()
                await ws.send("huge")
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == 1014
            # garbage instead of a handshake, and a client that vanishes mid-connection
            host, proxy_port = url[len("ws://"):].rstrip("/").split(":")
            with socket.create_connection((host, int(proxy_port))) as raw:
                raw.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
            ws = await connect(url)
            await ws.recv()
            ws.transport.abort()
            # still serving
            async with connect(url) as ws:
                await ws.recv()
                await ws.send("still there?")
                assert await ws.recv() == "still there?"


def test_a_client_that_vanishes_closes_its_upstream_connection(agent):
    with proxy.run_in_thread(agent.url) as p:
        async def vanish():
            ws = await connect(p.url, subprotocols=["agent-events.v1"])
            await ws.send(json.dumps({"type": "time_sync", "client_time_ms": 1.0}))
            await ws.recv()
            ws.transport.abort()

        asyncio.run(vanish())
        for _ in range(500):
            if agent.stats()["connections"] == 0:
                break
            asyncio.run(asyncio.sleep(0.01))
    assert agent.stats()["connections"] == 0


# -- the pytest fixture ------------------------------------------------------------------------------------

def test_the_pytest_fixture_puts_a_proxy_in_front_of_the_reference_agent(agent_events_proxy):
    p = agent_events_proxy(faults=["drop:9"])
    report = conformance.check(p.url, scenarios=["primary"], **RELAXED)
    assert failing(report) == {"seq.contiguous": FAIL}
    assert [a["fault"] for a in p.applied] == ["drop:9"]


def test_plain_http_requests_are_relayed_so_health_checks_and_pages_work_through_the_proxy(agent):
    import urllib.error
    import urllib.request

    with proxy.run_in_thread(agent.url) as p:
        with urllib.request.urlopen(p.url.replace("ws://", "http://") + "healthz", timeout=10) as response:
            assert response.status == 200 and json.loads(response.read())["status"] == "ok"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(p.url.replace("ws://", "http://") + "nowhere", timeout=10)
        assert refused.value.code == 404  # the upstream's own answer
        refused.value.close()
    with proxy.run_in_thread(f"ws://127.0.0.1:{m.unused_port()}/") as p:
        with pytest.raises(urllib.error.HTTPError) as unreachable:
            urllib.request.urlopen(p.url.replace("ws://", "http://") + "healthz", timeout=10)
        assert unreachable.value.code == 502
        unreachable.value.close()


def test_the_testing_your_client_page_examples_run_and_its_fixture_example_passes(tmp_path):
    from test_docs import ROOT, python_examples, run_examples

    proc = run_examples("testing-your-client.md", tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    blocks = python_examples((ROOT / "docs" / "testing-your-client.md").read_text(encoding="utf-8"))
    (tmp_path / "test_client_example.py").write_text("\n\n".join(blocks), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_client_example.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_every_fault_spec_shown_in_the_docs_is_accepted():
    from agent_events.conformance.cli import build_parser
    from test_docs import shown_command_lines

    shown = [argv for _, argv in shown_command_lines() if argv[0] == "proxy"]
    assert len(shown) >= 5
    for argv in shown:
        args = build_parser().parse_args(argv)
        # raises FaultSpecError for a bad one, or a seq address shown with a dialect that has no seq
        make_plan(args.fault, args.random, args.seed, Addressing.of(args.dialect))


@sync
async def test_a_flood_held_back_by_a_stall_is_bounded_and_delivered_in_order():
    with m.running(m.Floods()) as upstream:
        fault_proxy = proxy.FaultProxy(upstream, ["stall:300"], max_held=50)
        async with fault_proxy as url:
            # close_timeout: a client that stops reading a flood cannot see the close frame behind it
            async with connect(url, subprotocols=["agent-events.v1"], close_timeout=0.2) as ws:
                await ws.send(json.dumps({"type": "start_run", "run_id": "r1", "input": "x"}))
                async with asyncio.timeout(20):
                    seqs = [json.loads(await ws.recv())["seq"] for _ in range(400)]
    assert seqs == list(range(400))
    assert 50 <= fault_proxy.held_peak <= 53  # the upstream was read no further: TCP back-pressure, not memory


def test_an_explicit_fault_wins_over_a_random_one_at_its_seq():
    planner = Planner(make_plan(["dup:2"], random="drop=1", seed=3))
    applied = [a for seq in range(4) for a in planner.receive("text", event(seq), 0.0) if isinstance(a, Applied)]
    assert [(a.seq, str(a.fault), a.source) for a in applied] == [
        (0, "drop:0", "random"), (1, "drop:1", "random"), (2, "dup:2", "fault"), (3, "drop:3", "random")]


def test_an_unwritable_fault_log_is_a_usage_error(tmp_path, capsys):
    assert main(["proxy", "ws://127.0.0.1:9/", "--fault", "drop:1", "--log", str(tmp_path / "no" / "such" / "dir.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the fault log" in err and "Traceback" not in err


#: (misbehaving endpoint, scenario, extra check arguments): each breaks one thing a proxy must not hide or add
SAME_VERDICT = [
    (m.SendsBinary, "primary", {}), (m.SendsInvalidUtf8, "primary", {}), (m.WrapsProgressInAString, "primary", {}),
    (m.ClosesMidRun, "primary", {}), (m.NoSubprotocol, "primary", {}), (m.NoTimeSync, "latency", {"runs": 2}),
    (m.IgnoresCancel, "cancel", {"race_tries": 4}), (m.NoErrors, "robustness", {"deadline_s": 0.2}), (m.NoFallback, "fallback", {}),
]


@pytest.mark.parametrize("endpoint, scenario, extra", SAME_VERDICT, ids=[c[0].__name__ for c in SAME_VERDICT])
def test_a_fault_free_proxy_gives_the_same_verdict_as_no_proxy(endpoint, scenario, extra):
    options = {"deadline_s": 1, **RELAXED, **extra}
    with m.running(endpoint()) as url:
        direct = conformance.check(url, scenarios=[scenario], **options)
        with proxy.run_in_thread(url) as p:
            proxied = conformance.check(p.url, scenarios=[scenario], **options)
    assert set(direct.statuses().values()) - {PASS}  # each endpoint shows something (else the comparison proves little)
    assert proxied.statuses() == direct.statuses()
