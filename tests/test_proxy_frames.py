"""Faults addressed by frame index (``drop:frame=I``): how the proxy breaks a stream that has no ``seq``.

The planner is pure and driven with made-up frames (frame indices in, actions out), with AG-UI's
addressing (no seq: one lane, the connection's) and with ours (both addresses work). End to end,
a real proxy in front of the conformant AG-UI endpoint of ``tests/ag_ui_endpoints.py`` (JSON and
SSE framings): dropping the frame that holds ``TOOL_CALL_END`` makes ``agent-events check
--dialect ag-ui`` through the proxy fail the rule for a tool call left open, and with no fault
the check passes. A seq address where the dialect has none is a usage error naming why.
"""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest
from websockets.asyncio.client import connect

from agent_events import proxy, reference_agent
from agent_events.conformance.cli import main
from agent_events.proxy import Applied, Cut, FaultSpecError, Forward, Planner, make_plan, parse_fault
from agent_events.proxy.addressing import CONNECTION, OURS, Addressing
from agent_events.proxy.faults import Fault

AG_UI = Addressing.of("ag-ui")
#: The conformant AG-UI run, one event per frame (tests/ag_ui_endpoints.py)
AG_UI_RUN = ["RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END", "TOOL_CALL_START",
             "TOOL_CALL_ARGS", "TOOL_CALL_END", "RUN_FINISHED"]
TOOL_CALL_END = AG_UI_RUN.index("TOOL_CALL_END")


def ag_ui_frame(index: int) -> bytes:
    return orjson.dumps({"type": AG_UI_RUN[index % len(AG_UI_RUN)], "n": index})


def sse_frame(index: int) -> bytes:
    return b"data: " + ag_ui_frame(index) + b"\n\n"


def forwarded(actions) -> list:
    """(the frame's ``n`` or ``"x"`` for a frame that is not JSON/SSE of ours, not_before, lane)."""
    out = []
    for a in actions:
        if isinstance(a, Forward):
            body = a.data[6:] if a.data.startswith(b"data: ") else a.data
            try:
                n = orjson.loads(body)["n"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                n = "x"
            out.append((n, a.not_before, a.lane))
    return out


def drive(planner: Planner, count: int, frame=ag_ui_frame, step: float = 1.0) -> list:
    actions = []
    for i in range(count):
        actions += planner.receive("text", frame(i), i * step)
    return actions


# -- the planner, pure: frame indices in, actions out -------------------------------------------------

def test_frame_addresses_parse_and_print_back():
    assert parse_fault("drop:frame=3") == Fault("drop", frame=3)
    assert parse_fault("delay:frame=2:500") == Fault("delay", value=500.0, frame=2)
    assert parse_fault("drop:seq=3") == parse_fault("drop:3") == Fault("drop", 3)
    for spec in ("drop:frame=0", "dup:frame=1", "swap:frame=2", "delay:frame=3:200", "corrupt:frame=4", "cut:frame=5"):
        assert str(parse_fault(spec)) == spec and parse_fault(parse_fault(spec)) == parse_fault(spec)
    assert str(parse_fault(" DROP : FRAME = 7 ")) == "drop:frame=7"


@pytest.mark.parametrize("spec, why", [
    ("drop:frame=", "I (a frame index) must be an integer"), ("drop:frame=-1", "between 0 and 2**53"),
    ("drop:row=3", "'row' is not an address"), ("delay:frame=3", "delay:frame=I:MS"),
    ("stall:frame=3", "MS must be a number"),
])
def test_a_bad_frame_address_is_refused_with_the_accepted_forms(spec, why):
    with pytest.raises(FaultSpecError, match="accepted forms") as info:
        parse_fault(spec)
    assert why in str(info.value) and "drop:frame=I" in str(info.value)


def test_a_seq_address_is_refused_where_the_dialect_has_no_seq_and_says_why():
    with pytest.raises(FaultSpecError) as info:
        make_plan(["delay:3:200"], addressing=AG_UI)
    message = str(info.value)
    assert "dialect ag-ui 1.1 has no seq" in message and "AG-UI events carry no sequence number" in message
    assert "delay:frame=3:200" in message  # the form to use instead
    plan = make_plan(["drop:frame=3", "delay:frame=4:200"], addressing=AG_UI)
    assert set(plan.by_frame) == {3, 4} and not plan.by_seq
    with pytest.raises(FaultSpecError, match="frame 3 already has the fault drop:frame=3"):
        make_plan(["drop:frame=3", "dup:frame=3"], addressing=AG_UI)
    assert set(make_plan(["drop:3", "drop:frame=3"]).by_seq) == {3}  # ours: both addresses, side by side


def test_a_dropped_frame_is_not_forwarded_and_every_other_frame_is_in_order_in_the_connection_lane():
    planner = Planner(make_plan(["drop:frame=6"], addressing=AG_UI), connection=2)
    actions = drive(planner, 8)
    assert [n for n, _, _ in forwarded(actions)] == [0, 1, 2, 3, 4, 5, 7]
    assert {lane for _, _, lane in forwarded(actions)} == {CONNECTION}
    (applied,) = [a for a in actions if isinstance(a, Applied)]
    assert applied.to_json() == {"connection": 2, "run": None, "seq": None, "frame": 6, "fault": "drop:frame=6",
                                 "kind": "drop", "source": "fault"}


def test_frame_faults_dup_swap_delay_corrupt_cut_on_a_stream_without_seq():
    planner = Planner(make_plan(["dup:frame=0", "swap:frame=1", "delay:frame=3:100", "corrupt:frame=5"],
                                addressing=AG_UI))
    assert [(n, t) for n, t, _ in forwarded(drive(planner, 7, step=10.0))] == [
        (0, 0.0), (0, 0.0), (2, 20.0), (1, 20.0), (3, 130.0), (4, 130.0), ("x", 130.0), (6, 130.0)]
    planner = Planner(make_plan(["corrupt:frame=1", "cut:frame=2"], addressing=AG_UI))
    first = planner.receive("text", ag_ui_frame(0), 0.0) + planner.receive("text", ag_ui_frame(1), 0.0)
    assert [a.data for a in first if isinstance(a, Forward)][1] == b"agent-events proxy corrupted frame 1 {"
    assert [type(a) for a in planner.receive("text", ag_ui_frame(2), 1.0)] == [Applied, Cut]
    assert planner.receive("text", ag_ui_frame(3), 2.0) == [] and planner.drain(3.0) == []


def test_frames_are_counted_whatever_they_hold_and_sse_frames_are_addressed_the_same():
    planner = Planner(make_plan(["drop:frame=2"], addressing=AG_UI))
    actions = planner.receive("binary", b"\x00", 0.0) + planner.receive("text", b"not json", 1.0)
    actions += planner.receive("text", sse_frame(2), 2.0) + planner.receive("text", sse_frame(3), 3.0)
    assert [n for n, _, _ in forwarded(actions)] == ["x", "x", 3]


def test_a_stall_without_seq_holds_the_connection_after_its_first_frame():
    planner = Planner(make_plan(["stall:500"], addressing=AG_UI))
    actions = drive(planner, 3)
    assert [(n, t) for n, t, _ in forwarded(actions)] == [(0, 0.0), (1, 500.0), (2, 500.0)]
    assert [(a.frame, str(a.fault)) for a in actions if isinstance(a, Applied)] == [(0, "stall:500")]


def random_applied(plan, connection: int, count: int) -> list:
    planner = Planner(plan, connection=connection)
    return [(a.frame, str(a.fault), a.source) for a in drive(planner, count) if isinstance(a, Applied)]


def test_random_faults_without_seq_are_drawn_per_frame_reproducibly():
    plan = make_plan(random="drop=0.2,dup=0.2,delay=0.1:50", seed=7, addressing=AG_UI)
    assert plan.random.by == "frame" and "by frame" in plan.describe()
    first = random_applied(plan, 0, 60)
    assert first == random_applied(make_plan(random="drop=0.2,dup=0.2,delay=0.1:50", seed=7, addressing=AG_UI), 0, 60)
    assert first and {source for _, _, source in first} == {"random"}
    assert all(fault.endswith(f"frame={frame}") or f"frame={frame}:" in fault for frame, fault, _ in first)
    assert first != random_applied(plan, 1, 60)  # each connection has its own draws
    assert first != random_applied(make_plan(random="drop=0.2,dup=0.2,delay=0.1:50", seed=8, addressing=AG_UI), 0, 60)
    # with ours the draws stay per run event, by seq: frames that are not run events get none
    ours = Planner(make_plan(random="drop=1", seed=7))
    assert ours.plan.random.by == "seq"
    assert forwarded(ours.receive("text", b'{"type":"capabilities"}', 0.0)) == [("x", 0.0, None)]


def our_event(seq: int, run_id: str = "r1") -> bytes:
    return orjson.dumps({"type": "agent_thinking", "run_id": run_id, "seq": seq, "n": seq + 1})


def test_with_ours_both_addresses_work_and_the_frame_address_wins_on_its_frame():
    capabilities = b'{"type":"capabilities","n":0}'

    def run(faults):
        planner = Planner(make_plan(faults))
        actions = planner.receive("text", capabilities, 0.0)  # frame 0: not a run event, addressed by index
        for seq in range(4):  # frames 1..4: seqs 0..3
            actions += planner.receive("text", our_event(seq), 1.0 + seq)
        return ([n for n, _, _ in forwarded(actions)],
                [(a.frame, a.seq, str(a.fault)) for a in actions if isinstance(a, Applied)])

    assert run(["drop:frame=0", "corrupt:frame=3", "dup:3"]) == (
        [1, 2, "x", 4, 4], [(0, None, "drop:frame=0"), (3, 2, "corrupt:frame=3"), (4, 3, "dup:3")])
    # one fault per frame: the frame's own address wins over its seq's
    assert run(["dup:2", "corrupt:frame=3"]) == ([0, 1, 2, "x", 4], [(3, 2, "corrupt:frame=3")])
    # a frame fault on our run event keeps it in its run's lane; one on another frame, the connection's
    planner = Planner(make_plan(["delay:frame=1:100", "delay:frame=0:100"]))
    lanes = forwarded(planner.receive("text", capabilities, 0.0) + planner.receive("text", our_event(0), 0.0))
    assert [lane for _, _, lane in lanes] == [CONNECTION, "r1"]


def test_the_addressing_of_a_dialect_is_data():
    assert OURS.has_seq and OURS.address("text", our_event(4, "a")) == ("a", 4)
    assert OURS.address("text", b'{"run_id":"a","seq":true}') is None and OURS.address("binary", our_event(1)) is None
    assert not AG_UI.has_seq and AG_UI.address("text", ag_ui_frame(0)) is None
    envelope = Addressing.of("examples/dialects/envelope.toml")
    frame = b'{"action":"agent_event","payload":{"kind":"note","runId":"r9","n":5}}'
    assert envelope.address("text", frame) == ("r9", 5)
    planner = Planner(make_plan(["drop:5"], addressing=envelope))
    assert forwarded(planner.receive("text", frame, 0.0)) == []  # a dialect file's seq, through its envelope


# -- end to end: the proxy in front of the conformant AG-UI endpoint ---------------------------------------

@pytest.fixture(scope="module")
def endpoint():
    pytest.importorskip("ag_ui.core", reason="ag-ui-protocol (the test extra) is not installed")
    from ag_ui_endpoints import AgUiEndpoint

    server = AgUiEndpoint().start()
    yield server.url
    server.stop()


def check_ag_ui(capsys, url: str) -> tuple[int, dict]:
    code = main(["check", "--dialect", "ag-ui", url, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def failed(report: dict) -> set[str]:
    return {r["id"] for r in report["rules"] if r["status"] == "FAIL"}


async def received_types(url: str) -> list[str]:
    """One run through ``url``: the types of the events received, in order (JSON framing)."""
    start = {"threadId": "t", "runId": "r", "state": {}, "tools": [], "context": [], "forwardedProps": {},
             "messages": [{"id": "m0", "role": "user", "content": "hi"}]}
    async with connect(url) as ws:
        await ws.send(json.dumps(start))
        types = []
        async with asyncio.timeout(10):
            async for frame in ws:
                types.append(json.loads(frame)["type"])
    return types


@pytest.mark.parametrize("framing", ["json", "sse"])
def test_dropping_the_frame_of_tool_call_end_fails_the_check_through_the_proxy(capsys, endpoint, framing):
    with proxy.run_in_thread(endpoint, [f"drop:frame={TOOL_CALL_END}"], dialect="ag-ui") as p:
        code, report = check_ag_ui(capsys, f"{p.url}/conformant/{framing}")
        applied = p.applied
    assert code == 1
    assert failed(report) == {"ag-ui.run.finished_open"}  # RUN_FINISHED with the tool call still open
    run = next(s for s in report["sections"] if s["name"] == "run")
    (violation,) = [v for v in run["violations"] if v["rule"] == "ag-ui.run.finished_open"]
    assert "tool_call" in json.dumps(violation) or "c1" in json.dumps(violation)
    assert applied and {(a["frame"], a["fault"]) for a in applied} == {(TOOL_CALL_END, f"drop:frame={TOOL_CALL_END}")}


def test_dropping_the_frame_of_tool_call_start_fails_the_tool_pairing_rule(capsys, endpoint):
    with proxy.run_in_thread(endpoint, [f"drop:frame={AG_UI_RUN.index('TOOL_CALL_START')}"], dialect="ag-ui") as p:
        code, report = check_ag_ui(capsys, f"{p.url}/conformant/sse")
    assert code == 1 and "ag-ui.tool.paired" in failed(report)  # TOOL_CALL_ARGS for no open call


@pytest.mark.parametrize("framing", ["json", "sse"])
def test_with_no_fault_the_check_through_the_proxy_passes(capsys, endpoint, framing):
    with proxy.run_in_thread(endpoint, dialect="ag-ui") as p:
        code, report = check_ag_ui(capsys, f"{p.url}/conformant/{framing}")
        assert p.applied == []
    assert code == 0, failed(report)


def test_the_exact_effect_of_a_frame_drop_on_the_ag_ui_stream(endpoint):
    with proxy.run_in_thread(endpoint, [f"drop:frame={TOOL_CALL_END}"], dialect="ag-ui") as p:
        types = asyncio.run(received_types(f"{p.url}/conformant/json"))
    assert types == [t for t in AG_UI_RUN if t != "TOOL_CALL_END"]


def test_the_cli_refuses_a_seq_address_for_ag_ui_naming_the_reason(capsys):
    assert main(["proxy", "ws://127.0.0.1:9/", "--dialect", "ag-ui", "--fault", "drop:6"]) == 2
    err = capsys.readouterr().err
    assert "ag-ui 1.1 has no seq" in err and "drop:frame=6" in err and "Traceback" not in err
    assert main(["proxy", "ws://127.0.0.1:9/", "--dialect", "no-such-dialect"]) == 2
    assert "--dialect" in capsys.readouterr().err


def test_the_dialect_comes_from_the_config_file_as_for_check(tmp_path, monkeypatch, capsys):
    (tmp_path / "agent-events.toml").write_text('[proxy]\ndialect = "ag-ui"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["proxy", "ws://127.0.0.1:9/", "--fault", "drop:6"]) == 2
    assert "ag-ui 1.1 has no seq" in capsys.readouterr().err
    (tmp_path / "agent-events.toml").write_text('dialect = "nope"\n', encoding="utf-8")
    assert main(["proxy", "ws://127.0.0.1:9/", "--fault", "drop:frame=6"]) == 2
    assert "agent-events.toml: dialect must be" in capsys.readouterr().err


def test_random_faults_by_frame_through_the_cli_are_the_same_for_the_same_seed(endpoint, tmp_path):
    from test_proxy import start_cli_proxy, stop_cli_proxy

    runs = []
    for i in range(2):
        log = tmp_path / f"faults{i}.jsonl"
        child, url = start_cli_proxy(endpoint, "--dialect", "ag-ui", "--random", "drop=0.2,dup=0.2,swap=0.1",
                                     "--seed", "7", "--log", str(log))
        try:
            types = [asyncio.run(received_types(f"{url}/conformant/json")) for _ in range(3)]
        finally:
            code, err = stop_cli_proxy(child)
        assert code == 0 and "Traceback" not in err
        logged = [json.loads(line) for line in log.read_text().splitlines()]
        runs.append(([(f["connection"], f["frame"], f["fault"]) for f in logged], types))
    assert runs[0][0] and runs[0] == runs[1]
    assert {f["seq"] for f in logged} == {None} and any(t != AG_UI_RUN for t in runs[0][1])


# -- ours: a frame address against the reference agent ------------------------------------------------

async def our_frames(url: str) -> list[dict]:
    async with connect(url, subprotocols=["agent-events.v1"]) as ws:
        await ws.send(json.dumps({"type": "start_run", "run_id": "r1", "input": "Reduce cloud costs"}))
        frames = []
        async with asyncio.timeout(20):
            async for message in ws:
                frames.append(json.loads(message))
                if frames[-1].get("type") == "agent_completed":
                    return frames
    return frames


def test_with_ours_a_frame_address_drops_exactly_that_frame():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as agent:
        with proxy.run_in_thread(agent.url) as clean:
            plain = asyncio.run(our_frames(clean.url))
        with proxy.run_in_thread(agent.url, ["drop:frame=4", "dup:2"]) as p:
            broken = asyncio.run(our_frames(p.url))
            applied = p.applied

    def shape(frames):
        return [(f.get("type"), f.get("seq")) for f in frames]

    at_seq_2 = next(i for i, f in enumerate(plain) if f.get("seq") == 2)
    assert at_seq_2 != 4 and plain[4].get("seq") is not None  # two different frames, both run events
    expected = [f for i, f in enumerate(plain) if i != 4]
    expected.insert(expected.index(plain[at_seq_2]), plain[at_seq_2])
    assert shape(broken) == shape(expected)
    assert sorted((a["frame"], a["fault"]) for a in applied) == sorted([(4, "drop:frame=4"), (at_seq_2, "dup:2")])
