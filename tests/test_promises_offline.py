"""The checker's side of the promises the live probes exercise (issue 13, "every promise exercised"):
a cancel answered unknown_run does not excuse a run with no events, a duplicate start the server read
late and a server-generated id used again once its run completed start new runs, not late events.

The checker and the client core must attribute these alike (a check and its replay agree).
"""

from __future__ import annotations

import orjson

from agent_events.conformance.core.checker import Checker, refused_run_id
from agent_events.conformance.core.client import ClientConnection
from agent_events.conformance.tooling.synth import RunSpec, run_frames
from agent_events.conformance.offline.transcript import feed, frames_from_vector

START = {"type": "start_run", "run_id": "r1", "input": "x"}


def judged(frames) -> Checker:
    checker = Checker("actions-agent")
    feed(checker, frames_from_vector(frames))
    checker.close()
    return checker


def events(run_id: str, t0: float = 1000.0) -> list[dict]:
    """The received frames of one whole primary run of ``run_id``, starting at ``t0``."""
    frames = run_frames(RunSpec(run_id=run_id, start_at=t0, client_frames=False))
    return [f for f in frames if f["dir"] == "recv"]


def after(frames: list[dict]) -> float:
    """A moment just after the last of ``frames``: the next run starts then (within the first-event budget)."""
    return frames[-1]["t"] + 1.0


def send(msg: dict, t: float = 1000.0) -> dict:
    return {"t": t, "dir": "send", "conn": "c0", "msg": msg}


def recv(msg: dict, t: float = 1001.0) -> dict:
    return {"t": t, "dir": "recv", "conn": "c0", "msg": msg}


def error(code: str, run_id: str | None = "r1", t: float = 1001.0) -> dict:
    msg = {"type": "error", "code": code, "message": code}
    if run_id is not None:
        msg["run_id"] = run_id
    return recv(msg, t)


def test_unknown_run_never_refuses_a_start():
    assert refused_run_id({"type": "error", "code": "unknown_run", "run_id": "r1"}) is None
    assert refused_run_id({"type": "error", "code": "duplicate_run", "run_id": "r1"}) is None
    assert refused_run_id({"type": "error", "code": "too_many_runs", "run_id": "r1"}) == "r1"


def test_a_run_cancelled_at_once_and_answered_unknown_run_with_no_event_fails():
    # The outside implementation of issue 13: its task had not started, so it knew no such run.
    checker = judged([send(START), send({"type": "cancel_run", "run_id": "r1"}, 1000.1), error("unknown_run")])
    assert checker.violation_counts.get("order.completed_last") == 1
    assert "before any event of the run" in next(v.observed for v in checker.violations
                                                 if v.rule_id == "order.completed_last")


def test_a_start_refused_with_too_many_runs_owes_nothing():
    checker = judged([send(START), error("too_many_runs")])
    assert checker.violation_counts == {} and checker.runs_refused == 1


def test_a_duplicate_start_the_server_read_after_the_first_run_completed_starts_a_new_run():
    first = events("r1", 1000.0)
    second = events("r1", after(first))
    checker = judged([send(START), send(START, 1000.05), *first, *second])
    assert checker.violation_counts == {}
    assert checker.runs_completed == 2


def test_a_duplicate_refused_leaves_no_room_for_a_second_run():
    first = events("r1", 1000.0)
    second = events("r1", after(first))
    checker = judged([send(START), send(START, 1000.05), error("duplicate_run"), *first, *second])
    assert checker.violation_counts.get("order.completed_last", 0) >= 1
    assert checker.runs_completed == 1


def test_a_server_generated_id_used_again_after_its_run_completed_is_a_new_run():
    anonymous = {"type": "start_run", "input": "x"}
    first = events("srv-1", 1000.0)
    checker = judged([send(anonymous), *first, send(anonymous, after(first)), *events("srv-1", after(first))])
    assert checker.violation_counts == {}
    assert checker.runs_completed == 2


def core_and_checker():
    checker = Checker("actions-agent")
    return ClientConnection("c0", checker), checker


def feed_core(core: ClientConnection, frames: list[dict]) -> None:
    for f in frames:
        core.receive("text", orjson.dumps(f["msg"]), f["t"])


def test_the_core_files_runs_started_without_run_id_under_the_ids_the_server_chose():
    core, checker = core_and_checker()
    assert core.start_run(1000.0, input="x", server_run_id=True)[0] is None
    assert core.start_run(1000.1, input="x", server_run_id=True)[0] is None
    first, second = core.unnamed
    feed_core(core, events("srv-7", 1000.0)[:1] + events("srv-8", 1000.0) + events("srv-7", 1000.0)[1:])
    assert (first.run_id, second.run_id) == ("srv-7", "srv-8")
    assert first.completed and second.completed and not core.unnamed
    assert core.runs["srv-7"] is first and first.attempts == ["primary"]
    checker.close()
    assert checker.violation_counts == {}


def test_the_core_keeps_the_run_in_flight_on_a_duplicate_start_and_follows_a_late_restart():
    core, checker = core_and_checker()
    core.start_run(1000.0, input="x", run_id="r1")
    original = core.runs["r1"]
    core.start_run(1000.05, input="x", run_id="r1")
    assert core.runs["r1"] is original and original.duplicate_sent_at == 1000.05
    first = events("r1", 1000.0)
    feed_core(core, first)
    assert original.completed
    feed_core(core, events("r1", after(first)))
    restarted = core.runs["r1"]
    assert restarted is not original and restarted.restarted and restarted.completed
    checker.close()
    assert checker.violation_counts == {}


def test_the_core_records_the_error_that_answered_a_runs_cancel_and_its_open_tools():
    core, _ = core_and_checker()
    core.start_run(1000.0, input="x", run_id="r1")
    frames = events("r1", 1000.0)
    executing = next(i for i, f in enumerate(frames) if f["msg"]["type"] == "tool_executing")
    feed_core(core, frames[:executing + 1])
    assert core.runs["r1"].tools_open == 1
    feed_core(core, frames[executing + 1:])
    run = core.runs["r1"]
    assert run.tools_open == 0 and run.completed
    core.cancel_run("r1", 1100.0)
    core.receive("text", orjson.dumps({"type": "error", "code": "unknown_run", "message": "m", "run_id": "r1"}), 1101.0)
    assert run.error_code == "unknown_run" and run.refused is None


def test_a_start_without_run_id_refused_over_the_bound_owes_nothing_in_the_checker_and_the_core():
    anonymous = {"type": "start_run", "input": "x"}
    for named in (None, "srv-2"):  # an error naming no run, or the id the server would have given it
        core, checker = core_and_checker()
        core.start_run(1000.0, input="x", server_run_id=True)
        core.start_run(1000.1, input="x", server_run_id=True)
        first, second = core.unnamed
        refusal = {"type": "error", "code": "too_many_runs", "message": "m"}
        if named:
            refusal["run_id"] = named
        core.receive("text", orjson.dumps(refusal), 1000.5)
        assert second.refused == "too_many_runs" and second.ended and list(core.unnamed) == [first]
        feed_core(core, events("srv-1", 1000.0))
        checker.close()
        assert first.run_id == "srv-1" and first.completed
        assert checker.violation_counts == {} and checker.runs_refused == 1
    # offline, the same stream judges the same
    replay = judged([send(anonymous), send(anonymous, 1000.1), error("too_many_runs", None, 1000.5),
                     *events("srv-1", 1000.0)])
    assert replay.violation_counts == {} and replay.runs_refused == 1


def test_an_unrelated_error_does_not_excuse_a_start_without_run_id():
    anonymous = {"type": "start_run", "input": "x"}
    checker = judged([send(anonymous), error("unknown_type", None)])
    assert checker.violation_counts.get("order.completed_last") == 1
