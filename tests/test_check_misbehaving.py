"""The live check survives any endpoint: each misbehaviour is one specific finding (or exit 3).

Every endpoint here is a real server on 127.0.0.1 (tests/misbehaving_servers.py)
that breaks one thing; the budgets are short so that the bounded waits end fast.
"""

from __future__ import annotations

import json
import tracemalloc

import pytest

from agent_events import conformance
import misbehaving_servers as m
from agent_events import reference_agent
from agent_events.conformance.cli import main
from agent_events.conformance.core.violations import FAIL, NOT_APPLICABLE, PASS, WARN

# 4 tries of each race the cancel, multiplex and reconnect scenarios provoke, not 44: these endpoints'
# faults are not races (tests/test_races.py provokes those: 20 checks at once, 9 tries of each race in each)
FAST = {"race_tries": 4, "deadline_s": 1.0, **m.RELAXED}


def statuses(report, *wanted: str) -> dict[str, str]:
    """Rules with one of the ``wanted`` statuses (worst over sections)."""
    return {rule: status for rule, status in report.statuses().items() if status in wanted}


def violations(report, rule_id: str):
    return [v for s in report.sections for v in s.violations if v.rule_id == rule_id]


# -- cannot check at all: exit 3 ----------------------------------------------------------

def test_nothing_listening_is_exit_3_with_the_reason(capsys):
    assert main(["check", f"ws://127.0.0.1:{m.unused_port()}/", "--scenario", "primary"]) == 3
    err = capsys.readouterr().err
    assert "cannot check" in err and "refused" in err
    assert "Traceback" not in err


def test_http_500_at_the_handshake_is_exit_3(capsys):
    with m.running(m.Http500()) as url:
        assert main(["check", url, "--scenario", "primary"]) == 3
    err = capsys.readouterr().err
    assert "HTTP 500" in err and "boom" in err


def test_a_handshake_never_answered_is_exit_3_within_the_connect_timeout(capsys):
    with m.mute_listener() as url:
        assert main(["check", url, "--connect-timeout", "0.3", "--scenario", "primary"]) == 3
    assert "timed out" in capsys.readouterr().err


def test_the_api_raises_connect_error():
    with m.running(m.Http500()) as url, pytest.raises(conformance.ConnectError, match="HTTP 500"):
        conformance.check(url, scenarios=["primary"])


# -- frames the client must refuse or flag ---------------------------------------------------

def test_binary_frames_fail_frame_text_only():
    with m.running(m.SendsBinary()) as url:
        report = conformance.check(url, scenarios=["primary", "multiplex"], **FAST)
    assert statuses(report, FAIL, WARN) == {"frame.text": FAIL}
    assert report.exit_code() == 1
    assert "binary frame" in violations(report, "frame.text")[0].observed


def test_invalid_utf8_fails_frame_json_only_and_says_why():
    with m.running(m.SendsInvalidUtf8()) as url:
        report = conformance.check(url, scenarios=["primary"], **FAST)
    assert statuses(report, FAIL, WARN) == {"frame.json": FAIL}
    assert any("not UTF-8" in note for s in report.sections for note in s.notes)
    # the offending bytes stay visible in the excerpt
    assert "\\xff" in "\n".join(violations(report, "frame.json")[0].excerpt)


def test_a_100_mb_frame_fails_frame_size_without_being_read():
    with m.running(m.SendsHugeFrame()) as url:
        tracemalloc.start()
        try:
            report = conformance.check(url, scenarios=["primary"], max_frame_bytes=2**20, **FAST)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    failed = statuses(report, FAIL, WARN)
    assert failed["frame.size"] == FAIL
    assert set(failed) <= {"frame.size", "order.completed_last"}  # the run it cut short never ends
    assert "1009" in violations(report, "frame.size")[0].observed
    assert peak < 32 * 2**20, f"the client buffered {peak / 2**20:.0f} MiB"


# -- endpoints that stop, stall or flood ----------------------------------------------------------

def test_a_silent_endpoint_fails_first_event_and_the_deadline_then_stops():
    with m.running(m.Silent()) as url:
        report = conformance.check(url, deadline_s=0.5)
    failed = statuses(report, FAIL)
    assert {"latency.first_event", "order.completed_last", "latency.run_deadline"} <= set(failed)
    assert statuses(report, WARN) == {"time_sync.reply": WARN}
    # one deadline, not one per scenario: the later scenarios say why they were skipped
    assert any("skipped" in note for s in report.sections[1:] for note in s.notes)


def test_closing_mid_run_fails_completed_last_and_connection_kept():
    with m.running(m.ClosesMidRun()) as url:
        report = conformance.check(url, scenarios=["primary"], **FAST)
    assert statuses(report, FAIL, WARN) == {"order.completed_last": FAIL, "transport.connection_kept": FAIL}
    assert "without agent_completed" in violations(report, "order.completed_last")[0].observed
    assert "with 1 run(s) in flight" in violations(report, "transport.connection_kept")[0].observed


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_an_endpoint_that_closes_after_the_handshake_never_passes_check_or_load(delay):
    """Issue 13: the upgrade completes, then the endpoint closes (at once, or a moment later).
    Whether or not start_run got out first, nothing was judged: never a pass, never a claim."""
    import asyncio

    from websockets.asyncio.server import serve

    from agent_events.conformance.live.wire import Endpoint
    from agent_events.conformance.loadgen.engine import LoadOptions, run_load
    from agent_events.conformance.core.profiles import get as profile

    async def handler(ws):
        if delay:
            await asyncio.sleep(delay)
        await ws.close()

    async def both():
        async with serve(handler, "127.0.0.1", 0, subprotocols=["agent-events.v1"]) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            checks = [await conformance.check_async(url, scenarios=["primary", "multiplex"], **FAST)
                      for _ in range(4)]
            load = await run_load(LoadOptions(endpoint=Endpoint(url), profile=profile("actions-agent"),
                                              connections=2, duration=1.0, warmup=False))
            return checks, load

    checks, load = asyncio.run(both())
    for report in checks:
        assert not report.conformant and report.exit_code() == 1
        assert report.statuses()["transport.connection_kept"] == FAIL
        assert not report.claim().eligible and report.claim().status != "conformant"
    assert load.checker.violation_counts.get("transport.connection_kept", 0) >= 1


def test_a_flooded_run_that_never_ends_fails_the_deadline():
    with m.running(m.Floods()) as url:
        report = conformance.check(url, scenarios=["primary"], deadline_s=0.3, **m.RELAXED)
    failed = statuses(report, FAIL, WARN)
    assert failed.get("latency.run_deadline") == FAIL
    assert set(failed) <= {"latency.run_deadline", "order.completed_last"}


def test_a_flood_past_the_message_cap_is_cut_off(capsys):
    with m.running(m.Floods()) as url:
        code = main(["check", url, "--scenario", "primary", "--deadline-s", "5", "--max-messages", "3000",
                     "--format", "json", *m.RELAXED_FLAGS])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [r["id"] for r in data["rules"] if r["status"] in (FAIL, WARN)] == ["order.completed_last"]
    section = data["sections"][0]
    assert section["stats"]["frames"] == 3000
    assert any("stopped reading" in note for note in section["notes"])


def test_refusing_concurrent_connections_warns_transport_connections():
    with m.running(m.LimitsConnections()) as url:
        report = conformance.check(url, scenarios=["concurrency"], concurrency=5, **FAST)
    assert statuses(report, FAIL, WARN) == {"transport.connections": WARN}
    assert "HTTP 503" in violations(report, "transport.connections")[0].observed


def test_a_concurrency_scenario_that_opens_no_connection_is_exit_3_not_a_pass(capsys):
    with m.running(m.AcceptsOnlyTheFirst()) as url:
        assert main(["check", url, "--scenario", "concurrency", "--concurrency", "3", *m.RELAXED_FLAGS]) == 3
    err = capsys.readouterr().err
    assert "could not open any of its 3 connection(s)" in err and "HTTP 503" in err


def test_connections_the_harness_itself_cannot_open_are_a_note_not_the_endpoints_fault():
    # 200 sockets under a limit of 64 descriptors: the client runs out, the endpoint never sees the attempts.
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        code, report = m.cli_json("check", server.url, "--scenario", "concurrency", "--concurrency", "200",
                                  max_open_files=64)
    section = report["sections"][0]
    rule = next(r for r in section["rules"] if r["id"] == "transport.connections")
    assert rule["status"] == NOT_APPLICABLE and "too many open files" in rule["reason"]
    assert any("too many open files" in n and "ulimit" in n for n in section["notes"])
    assert any(" of 200 connection(s) opened" in n for n in section["notes"])
    assert code == 0 and section["stats"]["runs_completed"] > 0


def test_multiplex_stops_starting_runs_the_endpoint_refuses_with_too_many_runs():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=200,
                                       max_runs_per_connection=2) as server:
        code, report = m.cli_json("check", server.url, "--scenario", "multiplex", "--runs", "100000",
                                  "--deadline-s", "5")
    section = report["sections"][0]
    stats = section["stats"]
    # 2 at a time; the start_run probes that follow (duplicate, without run_id, the bound) run a few more
    assert code == 0 and stats["runs_completed"] >= 2
    assert 1 <= stats["runs_refused"] and stats["starts_sent"] < 10_000
    assert any("too_many_runs" in n and "no more runs were started" in n for n in section["notes"])


def test_latency_starts_no_run_after_the_run_deadline_whatever_runs_asks():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=20) as server:
        code, report = m.cli_json("check", server.url, "--scenario", "latency", "--runs", "100000",
                                  "--deadline-s", "2")
    section = report["sections"][0]
    stats = section["stats"]
    assert code == 0 and 1 <= stats["runs_completed"] == stats["starts_sent"] < 100_000
    assert any("stopped starting runs after 2 s" in n for n in section["notes"])


# -- SHOULD-level deviations: warnings, exit 0 unless --strict ---------------------------------------

def test_no_subprotocol_is_a_warning_and_strict_makes_it_fail(capsys):
    with m.running(m.NoSubprotocol()) as url:
        assert main(["check", url, "--scenario", "primary", "--format", "json", *m.RELAXED_FLAGS]) == 0
        data = json.loads(capsys.readouterr().out)
        assert main(["check", url, "--scenario", "primary", "--strict", "--quiet", *m.RELAXED_FLAGS]) == 1
    rules = {r["id"]: r["status"] for r in data["rules"]}
    assert rules["transport.subprotocol"] == WARN
    assert [r for r, s in rules.items() if s in (FAIL, WARN)] == ["transport.subprotocol"]


def test_no_time_sync_reply_assumes_one_clock_and_says_so():
    with m.running(m.NoTimeSync()) as url:
        report = conformance.check(url, scenarios=["latency"], runs=2, **FAST)
    assert statuses(report, FAIL, WARN) == {"time_sync.reply": WARN}
    assert any("clocks assumed equal" in note for note in report.notes)
    assert report.statuses()["latency.delivery"] == PASS  # still judged, on the assumed clock


def test_an_error_instead_of_a_time_sync_reply_is_reported_at_once():
    with m.running(m.RejectsTimeSync()) as url:
        report = conformance.check(url, scenarios=["latency"], runs=1, deadline_s=30, **m.RELAXED)
    assert statuses(report, FAIL, WARN) == {"time_sync.reply": WARN}
    assert "unknown_type" in violations(report, "time_sync.reply")[0].observed


def test_an_endpoint_without_error_replies_warns_robustness():
    with m.running(m.NoErrors()) as url:
        report = conformance.check(url, scenarios=["robustness"], deadline_s=0.2, **m.RELAXED)
    assert statuses(report, FAIL, WARN) == {"robustness.error_reply": WARN}
    assert "no error message" in violations(report, "robustness.error_reply")[0].observed
    assert report.statuses()["robustness.stays_open"] == PASS


def test_an_endpoint_that_ignores_cancel_fails_cancel_terminal():
    with m.running(m.IgnoresCancel()) as url:
        report = conformance.check(url, scenarios=["cancel"], **FAST)
    assert statuses(report, FAIL) == {"cancel.terminal": FAIL}
    assert "cancelled=None" in violations(report, "cancel.terminal")[0].observed


def test_a_cancel_honoured_passes_cancel_terminal():
    agent = m.ScriptedAgent()
    agent.step_delay = 0.02
    with m.running(agent) as url:
        report = conformance.check(url, scenarios=["cancel"], **FAST)
    assert report.statuses()["cancel.terminal"] == PASS
    assert statuses(report, FAIL) == {}


def test_a_run_that_completes_before_the_cancel_lands_is_na_not_a_failure():
    with m.running(m.FinishesBeforeCancel()) as url:
        report = conformance.check(url, scenarios=["cancel"], **FAST)
    assert report.statuses()["cancel.terminal"] == NOT_APPLICABLE
    assert "answered unknown_run" in report.sections[0].outcomes["cancel.terminal"].reason
    assert statuses(report, FAIL, WARN) == {}


def test_an_endpoint_without_fallback_gets_na_with_the_reason_not_a_failure():
    with m.running(m.NoFallback()) as url:
        report = conformance.check(url, scenarios=["fallback"], **FAST)
    outcomes = report.sections[0].outcomes
    for rule_id in ("fallback.single", "fallback.flag", "fallback.continuity"):
        assert report.statuses()[rule_id] == NOT_APPLICABLE
        assert "simulate_failure" in outcomes[rule_id].reason
    assert report.exit_code() == 0


def test_the_scripted_agent_is_conformant_so_each_case_above_isolates_its_cause():
    with m.running(m.ScriptedAgent()) as url:
        report = conformance.check(url, **FAST)
    assert statuses(report, FAIL, WARN) == {}


def test_load_fails_frame_size_as_check_does():
    """Issue 13: a 100 MB frame passed ``load`` while ``check`` failed it; both judge it in the client core."""
    import asyncio

    from agent_events.conformance.live.wire import Endpoint
    from agent_events.conformance.loadgen.engine import LoadOptions, run_load
    from agent_events.conformance.core.profiles import get as profile

    with m.running(m.SendsHugeFrame()) as url:
        check = conformance.check(url, scenarios=["primary"], max_frame_bytes=2**20, **FAST)
        load = asyncio.run(run_load(LoadOptions(endpoint=Endpoint(url, max_size=2**20), profile=profile("actions-agent"),
                                                connections=1, runs=1, warmup=False)))
    assert check.statuses()["frame.size"] == FAIL
    assert load.checker.violation_counts.get("frame.size", 0) >= 1
