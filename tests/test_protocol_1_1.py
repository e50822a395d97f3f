"""Protocol 1.1: the capabilities message and resumable runs, at the wire and through the harness
(issue 18). Real servers on 127.0.0.1, real sockets; the connection drops are real aborts."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from agent_events import conformance, reference_agent, schemas
from agent_events.conformance.core.violations import FAIL, NOT_APPLICABLE, PASS
from agent_events.reference_agent import ActionsAgent, OfflinePlanner, WebSocketBridgeAdapter
from test_reference_agent_support import agent, arun, connect, recv, start_run, valid


async def _until_seq(ws, run_id: str, seq: int) -> list[dict]:
    events = []
    while not events or events[-1]["seq"] < seq:
        message = await recv(ws)
        if message.get("run_id") == run_id and "seq" in message:
            events.append(message)
    return events


async def _rest_of(ws, run_id: str) -> list[dict]:
    events = []
    while not events or events[-1]["type"] != "agent_completed":
        message = await recv(ws)
        if message.get("run_id") == run_id:
            events.append(message)
    return events


def _resume(run_id: str, token: str, last_seq: int) -> str:
    return orjson.dumps({"type": "resume_run", "run_id": run_id, "resume_token": token, "last_seq": last_seq}).decode()


# -- the wire ---------------------------------------------------------------------------------

def test_every_connection_opens_with_one_valid_capabilities_message():
    async def body():
        async with agent(llm_delay_ms=0) as server:
            ws = await connect(server.url)
            first = await recv(ws, capabilities=True)
            await ws.send(start_run("r1"))
            rest = await _rest_of(ws, "r1")
            await ws.close()
            return first, rest

    first, rest = arun(body())
    assert first["type"] == "capabilities" and first["protocol_version"] == "1.1"
    features = first["features"]
    assert features["resume"] == {"window_s": 30.0, "buffer_events": 256}
    assert features["simulate_failure"] is features["cancel"] is features["time_sync"] is True
    assert all(m["type"] != "capabilities" for m in rest)
    assert len(rest[0]["payload"]["resume_token"]) >= 16


def test_a_1_0_server_sends_no_capabilities_and_no_resume_token():
    async def body():
        async with agent(llm_delay_ms=0, protocol_version="1.0") as server:
            ws = await connect(server.url)
            await ws.send(start_run("r1"))
            first = await recv(ws, capabilities=True)
            await ws.close()
            return first

    first = arun(body())
    assert first["type"] == "agent_started" and "resume_token" not in first["payload"]


def test_a_dropped_run_is_replayed_exactly_once_in_order_and_never_to_a_wrong_secret():
    async def body():
        async with agent(llm_delay_ms=100) as server:
            ws = await connect(server.url)
            await ws.send(start_run("r1"))
            seen = await _until_seq(ws, "r1", 3)
            token = seen[0]["payload"]["resume_token"]
            ws.transport.abort()  # the link is gone: no close frame
            thief = await connect(server.url)
            await thief.send(_resume("r1", token[:-2] + "xx", 3))
            denied = await recv(thief)
            leaked = []
            with pytest.raises(asyncio.TimeoutError):
                leaked.append(await recv(thief, timeout=0.3))
            await thief.close()
            owner = await connect(server.url)
            await owner.send(_resume("r1", token, 3))
            rest = await _rest_of(owner, "r1")
            await owner.close()
            return seen, denied, leaked, rest

    seen, denied, leaked, rest = arun(body())
    assert denied["type"] == "error" and denied["code"] == "resume_denied" and not leaked
    whole = seen + rest
    assert [e["seq"] for e in whole] == list(range(len(whole)))  # nothing lost, nothing repeated
    assert whole[-1]["type"] == "agent_completed" and whole[-1]["payload"]["result"]["success"] is True


def test_a_finished_run_keeps_only_its_frames_and_a_resume_still_replays_them_whole():
    """A finished run waits for a resume as its frames alone (issue 26): no handle, no bridge, its
    frames a tuple the garbage collector does not walk; a resume from any seq still gets them."""
    import gc

    async def body():
        async with agent(llm_delay_ms=0) as server:
            ws = await connect(server.url)
            await ws.send(start_run("r1"))
            first = await _rest_of(ws, "r1")
            states = [s for s in server.resume._states.values() if s.run_id == "r1"]
            gc.collect()
            kept = [(s.done, s.handle, s.bridge, type(s.buffer), gc.is_tracked(s.buffer), s.next_seq) for s in states]
            token = first[0]["payload"]["resume_token"]
            ws.transport.abort()
            again = await connect(server.url)
            await again.send(_resume("r1", token, 2))
            replay = await _rest_of(again, "r1")
            await again.send(_resume("r1", token, len(first) - 1))  # nothing after the last event
            await again.send(start_run("r2"))
            after = await recv(again)
            await again.close()
            return first, kept, replay, after

    first, kept, replay, after = arun(body())
    assert kept == [(True, None, None, tuple, False, len(first))]
    assert replay == first[3:]  # the same events, from seq 3 on
    assert after["run_id"] == "r2" and after["type"] == "agent_started"  # an empty replay sends nothing


def test_past_the_window_or_the_buffer_the_client_gets_resume_expired():
    async def body():
        async with agent(llm_delay_ms=0, resume_window_s=0.2) as server:
            ws = await connect(server.url)
            await ws.send(start_run("late"))
            token = (await _until_seq(ws, "late", 0))[0]["payload"]["resume_token"]
            ws.transport.abort()
            await asyncio.sleep(0.6)
            again = await connect(server.url)
            await again.send(_resume("late", token, 0))
            window = await recv(again)
            await again.close()
        async with agent(llm_delay_ms=0, resume_buffer_events=3) as server:
            ws = await connect(server.url)
            await ws.send(start_run("long"))
            token = (await _until_seq(ws, "long", 0))[0]["payload"]["resume_token"]
            await _rest_of(ws, "long")
            ws.transport.abort()
            again = await connect(server.url)
            await again.send(_resume("long", token, 0))  # seq 1.. are no longer buffered (only the last 3)
            buffer = await recv(again)
            await again.close()
        return window, buffer

    window, buffer = arun(body())
    assert window["code"] == "resume_expired" and "window" in window["message"]
    assert buffer["code"] == "resume_expired" and "no longer buffered" in buffer["message"]


# -- through the harness -----------------------------------------------------------------------

FAST = dict(first_event_ms=60_000, delivery_ms=60_000, tool_gap_ms=60_000)


def _statuses(report, *rule_ids):
    statuses = report.statuses()
    return {rule_id: statuses[rule_id] for rule_id in rule_ids}


def test_the_reconnect_scenario_is_conformant_against_the_reference_agent():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        report = conformance.check(server.url, scenarios=["reconnect"])  # default budgets: a claim
    assert report.conformant and report.exit_code() == 0, report
    assert report.protocol_version == "1.1" and report.features["resume"]
    assert _statuses(report, "resume.replay", "resume.secret", "capabilities.first", "capabilities.honest") == {
        "resume.replay": PASS, "resume.secret": PASS, "capabilities.first": PASS, "capabilities.honest": PASS}
    claim = report.claim()
    assert claim.statement is not None or claim.withheld_because == "inconclusive", claim.reason  # a busy runner
    if claim.statement is not None:
        assert "protocol v1.1" in claim.statement
        assert "features claimed and proven: cancel, resume, simulate_failure, time_sync" in claim.statement
        from agent_events.conformance.reporting.claim import badge_svg

        assert "agent-events v1.1: conformant: cancel+resume+simulate_failure+time_sync" in badge_svg(report)


def test_a_1_0_endpoint_is_judged_as_1_0_with_resume_not_claimed_and_exits_0():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0, protocol_version="1.0") as server:
        report = conformance.check(server.url, scenarios=["primary", "reconnect"], **FAST)
    assert report.exit_code() == 0 and report.conformant
    assert report.protocol_version == "1.0" and report.features is None
    reconnect = next(s for s in report.sections if s.name == "reconnect")
    for rule_id in ("resume.replay", "resume.secret"):
        assert report.statuses()[rule_id] == NOT_APPLICABLE
        assert "not claimed: a 1.0 endpoint" in reconnect.outcomes[rule_id].reason


class DuplicatingBridge(WebSocketBridgeAdapter):
    """Keeps every frame twice for the replay: a resume gets each missed event two times."""

    __slots__ = ()

    async def send_frame(self, data: bytes) -> None:
        await super().send_frame(data)
        if self.resume is not None:
            self.resume.keep(self._seq - 1, data)


class SkippingBridge(WebSocketBridgeAdapter):
    """Never keeps seq 6 for the replay: a resume from before it skips it."""

    __slots__ = ()

    async def send_frame(self, data: bytes) -> None:
        resume = self.resume
        if self._seq - 1 == 6:
            self.resume = None
        try:
            await super().send_frame(data)
        finally:
            self.resume = resume


@pytest.mark.parametrize("bridge", [DuplicatingBridge, SkippingBridge])
def test_an_endpoint_that_declares_resume_but_replays_wrong_fails_resume_replay(bridge):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0,
                                       bridge_factory=lambda ws, session: bridge(ws, session=session)) as server:
        report = conformance.check(server.url, scenarios=["reconnect"], **FAST)
    assert report.statuses()["resume.replay"] == FAIL and not report.conformant
    observed = next(v.observed for s in report.sections for v in s.violations if v.rule_id == "resume.replay")
    assert "after resume_run" in observed


class IgnoresCancel(ActionsAgent):
    """Declares cancel (every reference server does) and ignores cancel_run."""

    def request_cancel(self, reason: str) -> bool:
        return False


def test_an_endpoint_that_declares_cancel_and_ignores_it_fails_cancel_terminal_at_must():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=50,
                                       agent_factory=lambda: IgnoresCancel(OfflinePlanner(50))) as server:
        report = conformance.check(server.url, scenarios=["cancel"], runs=2, **FAST)
    assert report.features["cancel"] is True
    assert report.statuses()["cancel.terminal"] == FAIL and "cancel.terminal" in report.must_failures


def test_the_capabilities_schema_and_resume_run_are_part_of_the_protocol():
    assert schemas.SERVER_TYPES["capabilities"] == "capabilities"
    assert schemas.CLIENT_TYPES["resume_run"] == "resume_run"
    assert {"resume_denied", "resume_expired"} <= set(schemas.ERROR_CODES)
    assert schemas.load("capabilities")["x-since"] == schemas.load("resume_run")["x-since"] == "1.1"
    assert valid({"type": "capabilities", "protocol_version": "1.1", "features": {"cancel": True}})


def test_two_connections_may_each_leave_a_resumable_run_of_the_same_id():
    """run_ids are per connection: two dropped runs both named r1 are two runs, each judged at close."""
    from agent_events.conformance.core.checker import Checker

    checker = Checker("actions-agent")
    for conn, token in (("c0", "token-of-the-first-run-0001"), ("c1", "token-of-the-second-run-0002")):
        checker.send({"type": "start_run", "run_id": "r1", "input": "x"}, 1.0, conn)
        checker.receive({"type": "agent_started", "run_id": "r1", "seq": 0, "emitted_at": 1.5, "agent_name": "A",
                         "payload": {"message": "m", "attempt": "primary", "resume_token": token}}, 2.0, conn)
        checker.end_connection(conn, 3.0)
    checker.close(4.0)
    unfinished = [v for v in checker.violations if v.rule_id == "order.completed_last"]
    assert sorted(v.conn for v in unfinished) == ["c0", "c1"]


# -- offline: what a recording declared ------------------------------------------------------

CAPS = {"type": "capabilities", "protocol_version": "1.1", "features": {"cancel": True}}


def test_a_connection_name_used_again_after_a_close_declares_anew():
    """A transcript may reuse a connection's name once it closed: the new connection's
    capabilities are its first message, not a second one (the declaration ends with its connection)."""
    from agent_events.conformance.api import validate_frames

    frames = [{"t": 1.0, "dir": "recv", "conn": "c0", "msg": CAPS},
              {"t": 2.0, "dir": "close", "conn": "c0"},
              {"t": 3.0, "dir": "recv", "conn": "c0", "msg": CAPS}]
    report = validate_frames(frames)
    assert report.sections[0].violation_counts == {}
    assert report.sections[0].statuses(report.policy)["capabilities.first"] == PASS
    # a second one on the same, still open, connection is still a failure
    report = validate_frames(frames[:1] + frames[2:])
    assert report.sections[0].violation_counts == {"capabilities.first": 1}


def test_an_offline_report_claims_the_version_its_recording_showed(tmp_path, capsys):
    """A recording without capabilities is a 1.0 stream: the report and its claim say 1.0, not the kit's
    1.1; with capabilities, the version they declared; over several files, the oldest."""
    from agent_events.conformance.cli import main

    run = [{"type": "agent_started", "run_id": "r1", "seq": 0, "emitted_at": 1.0, "agent_name": "A",
            "payload": {"message": "m", "attempt": "primary"}},
           {"type": "agent_thinking", "run_id": "r1", "seq": 1, "emitted_at": 2.0, "agent_name": "A",
            "payload": {"message": "t"}},
           {"type": "agent_completed", "run_id": "r1", "seq": 2, "emitted_at": 3.0, "agent_name": "A",
            "payload": {"message": "done", "result": {"success": True, "fallback_used": False, "steps_generated": 0,
                                                      "has_partial_extraction": False, "execution_time_ms": 1.0}}}]
    old = tmp_path / "old.jsonl"
    old.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in run))
    new = tmp_path / "new.jsonl"
    new.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in [CAPS, *run]))
    versions = {}
    for name, files in (("old", [old]), ("new", [new]), ("both", [new, old])):
        main(["validate", *map(str, files), "--profile", "generic", "--format", "json"])
        data = orjson.loads(capsys.readouterr().out)
        versions[name] = data["protocol_version"]
        assert f"protocol v{versions[name]} " in data["claim"]["statement"]
    assert versions == {"old": "1.0", "new": "1.1", "both": "1.0"}
    assert conformance.validate_messages(run, "generic").protocol_version == "1.0"
    assert conformance.validate_messages([CAPS, *run], "generic").protocol_version == "1.1"


# -- the resume registry's memory ------------------------------------------------------------

def test_the_replay_buffer_keeps_the_latest_frames_by_seq():
    from agent_events.reference_agent.resume import ResumeState

    state = ResumeState("r1", None, None, None, 3, "pub", "sec")
    assert state.oldest_seq(0) == 0 and state.since(0) == []
    for seq in range(5):
        state.keep(seq, b"frame%d" % seq)
    assert state.oldest_seq(5) == 2  # three kept: 2, 3, 4
    assert state.since(0) == [(2, b"frame2"), (3, b"frame3"), (4, b"frame4")]
    assert state.since(4) == [(4, b"frame4")] and state.since(5) == []


def test_detached_runs_expire_in_order_with_one_timer_and_are_let_go():
    from agent_events.reference_agent.resume import ResumeRegistry

    class Handle:
        task = None
        resume = None

    async def main():
        registry = ResumeRegistry(window_s=0.15, buffer_events=4)
        states = []
        for n in range(3):
            handle = Handle()
            state = handle.resume = registry.issue(f"r{n}", handle, None, None)
            state.done = True
            state.keep(0, b"x")
            states.append(state)
        registry.detach(states[0])
        registry.detach(states[1])
        await asyncio.sleep(0.1)
        registry.detach(states[2])  # its window ends 0.1 s after the first two's
        timer = registry._sweeper
        await asyncio.sleep(0.1)  # past the first two's window, within the third's
        gone = [registry.find(s.run_id, s.token) is None for s in states]
        expired = [registry.expired(s.run_id, s.token) for s in states]
        first_two_let_go = states[0].handle is None and not states[0].buffer and states[2].handle is not None
        await asyncio.sleep(0.12)
        return timer, gone, expired, first_two_let_go, registry.find("r2", states[2].token), len(registry._detached)

    timer, gone, expired, let_go, third, left = asyncio.run(main())
    assert timer is not None
    assert gone == [True, True, False] and expired == [True, True, False]
    assert let_go  # a finished run no client can resume any more holds nothing
    assert third is None and left == 0


def test_tokens_are_fresh_random_halves_of_72_and_144_bits_across_pool_blocks():
    """Each run's token is 27 new bytes of the OS's CSPRNG, base64url: 12 characters (72 bits) that
    find the run and 24 (144 bits) that authorise it, never shared with another run's, also where
    one block of pooled randomness ends and the next begins (issue 26: tokens are slices of a block
    encoded once)."""
    import base64

    from agent_events.reference_agent.resume import POOL_TOKENS, ResumeRegistry

    registry = ResumeRegistry(window_s=30, buffer_events=4)
    states = [registry.issue(f"r{n}", None, None, None) for n in range(2 * POOL_TOKENS + 3)]
    assert [(len(s.public), len(s.secret)) for s in states] == [(12, 24)] * len(states)
    assert {(len(base64.urlsafe_b64decode(s.public)), len(base64.urlsafe_b64decode(s.secret))) for s in states} \
        == {(9, 18)}
    assert len({s.public for s in states}) == len({s.secret for s in states}) == len(states)
    halves = [s.public for s in states] + [s.secret for s in states]
    assert len({h[:8] for h in halves}) == len(halves)  # no two halves even overlap in their first 6 bytes
    assert all(registry.find(s.run_id, s.token) is s for s in states)


def test_a_public_half_already_in_use_is_drawn_again():
    from agent_events.reference_agent.resume import ResumeRegistry

    registry = ResumeRegistry(window_s=30, buffer_events=4)
    first = registry.issue("r0", None, None, None)
    taken = registry._pool[registry._pool_at:registry._pool_at + 12]  # the next token's public half
    registry._states[taken] = first
    second = registry.issue("r1", None, None, None)
    assert second.public != taken and second.public != first.public and len(second.public) == 12
    assert registry.find("r1", second.token) is second


def test_a_kept_frame_holds_its_own_size_not_the_serialiser_s_block():
    """The replay buffer keeps each frame at its own size: orjson's output holds a block of about
    4 KiB whatever the frame's size, which a run's buffer would keep for the whole resume window
    (issue 26: the bridge copies the frame as it buffers it)."""
    import tracemalloc

    from agent_events.reference_agent.resume import ResumeRegistry

    class Corked:  # the reference connection's corked write, as the bridge sees it
        paused = False

        def queue_text(self, data: bytes) -> bool:
            return True

    async def main() -> tuple[int, list[bytes]]:
        registry = ResumeRegistry(window_s=30, buffer_events=256)
        bridge = WebSocketBridgeAdapter(Corked())
        bridge.bind("r1", "Probe")
        bridge.resume = registry.issue("r1", None, bridge, None)
        payload = {"message": "a short event"}
        await bridge.emit("agent_thinking", payload)  # warm-up: the first allocations of the kind
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(200):
                await bridge.emit("agent_thinking", payload)
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        return grown, [frame for _, frame in bridge.resume.since(0)]

    grown, frames = asyncio.run(main())
    assert len(frames) == 201 and all(orjson.loads(f)["seq"] == n for n, f in enumerate(frames))
    assert grown / 200 < 2 * len(frames[-1]) + 256  # about the frame's size each, not 4 KiB
