"""``agent-events load``: short, bounded runs against real servers on 127.0.0.1.

Behaviour only, never timing: budgets are relaxed so that a loaded CI
machine cannot turn a slow moment into a violation, and no figure is
compared with a speed.
"""

from __future__ import annotations

import json
import os
import socket

import pytest

import broken_agents as b
import misbehaving_servers as m
from agent_events import reference_agent
from agent_events.conformance.cli import main
from agent_events.conformance.exitcodes import ExitCode
from misbehaving_servers import RELAXED_FLAGS


def load_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["load", *argv, "--format", "json", *RELAXED_FLAGS])
    return code, json.loads(capsys.readouterr().out)


def test_a_bounded_closed_loop_run_checks_every_event_and_finds_nothing(capsys):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        code, report = load_json(capsys, server.url, "--connections", "4", "--runs-per-connection", "3",
                                 "--runs", "40", "--pid", str(os.getpid()))
    load = report["load"]
    assert code == ExitCode.OK and report["conformant"] is True
    assert report["summary"]["violations"] == 0
    assert load["runs_started"] == load["runs_completed"] == 40
    assert load["runs_unfinished"] == load["runs_refused"] == 0
    assert load["warmup_runs"] == 4
    # every event of the measured runs was timed, and the checker saw those plus the warm-up's
    assert load["events"] == load["events_completed"] == load["latency_ms"]["delivery"]["count"] > 40
    assert load["latency_ms"]["first_event"]["count"] == 40
    assert report["summary"]["runs"] == 44 and report["summary"]["events"] > load["events"]
    delivery = load["latency_ms"]["delivery"]
    assert delivery["p50"] <= delivery["p99"] <= delivery["p99.9"] <= delivery["max"]
    # the server ran in this process: its CPU and memory were read
    assert load["server"]["pid"] == os.getpid() and load["server"]["cpu_seconds"] >= 0
    assert load["server"]["in_flight_peak"] <= 12


def test_the_text_table_reports_runs_rates_latency_and_the_verdict(capsys):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        code = main(["load", server.url, "--connections", "2", "--runs", "6", *RELAXED_FLAGS])
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    assert "6 completed of 6 started" in out
    for label in ("events/s", "delivery", "first event", "p99.9", "violations   none"):
        assert label in out
    assert out.rstrip().endswith("exit 0")


def test_an_open_loop_run_stops_by_itself_at_its_duration(capsys):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        code, report = load_json(capsys, server.url, "--connections", "3", "--rate", "300", "--duration", "0.5")
    load = report["load"]
    assert code == ExitCode.OK and report["summary"]["violations"] == 0
    assert load["pacing"] == "open" and load["target_rate"] == 300
    assert load["runs_started"] >= 1 and load["runs_completed"] + load["runs_refused"] == load["runs_started"]


def test_bursts_beyond_the_servers_write_cork_arrive_complete_and_in_order(capsys):
    # 16 runs emitted at once on a connection are more bytes than the cork holds, and more than a
    # 1 KiB send buffer: the corked writer must flush early and wait, never drop or reorder.
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0, send_queue=1024,
                                       max_runs_per_connection=16) as server:
        code, report = load_json(capsys, server.url, "--connections", "2", "--runs-per-connection", "16",
                                 "--runs", "64")
    assert code == ExitCode.OK and report["summary"]["violations"] == 0
    assert report["load"]["runs_completed"] == 64


def test_a_dropped_event_under_load_is_a_violation_not_a_lower_count(capsys):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0,
                                       bridge_factory=b.bridge(b.DropsProgress)) as server:
        code, report = load_json(capsys, server.url, "--connections", "3", "--runs-per-connection", "2", "--runs", "12")
    assert code == ExitCode.NOT_CONFORMANT and report["conformant"] is False
    assert set(report["load"]["violations"]) == {"seq.contiguous"}
    # one dropped progress per run, warm-up included: every run, not a sample
    assert report["load"]["violations"]["seq.contiguous"] == 12 + 3


def test_gating_flags_apply_to_load(capsys):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0,
                                       bridge_factory=b.bridge(b.DropsProgress)) as server:
        code, report = load_json(capsys, server.url, "--connections", "1", "--runs", "2", "--fail-on", "none")
    assert code == ExitCode.OK
    assert report["summary"]["violations"] > 0


@pytest.mark.slow
def test_spawn_starts_a_reference_agent_and_reports_its_cpu_and_memory(capsys):
    code, report = load_json(capsys, "--spawn", "--connections", "2", "--runs-per-connection", "2", "--runs", "10")
    load = report["load"]
    assert code == ExitCode.OK and report["summary"]["violations"] == 0
    assert load["url"].startswith("ws://127.0.0.1:")
    assert load["runs_completed"] == 10
    server = load["server"]
    assert server["pid"] != os.getpid() and not server["exited"]
    assert server["rss_peak_bytes"] >= server["rss_start_bytes"] > 0


def test_a_closed_port_is_exit_3(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = main(["load", f"ws://127.0.0.1:{port}/", "--runs", "1", "--connect-timeout", "2"])
    assert code == ExitCode.CONNECT
    assert "cannot load" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    ([], "give the endpoint's URL, or --spawn"),
    (["ws://127.0.0.1:1/", "--spawn"], "give the endpoint's URL, or --spawn"),
    (["--spawn", "--pid", "1"], "--pid watches a server you started"),
    (["http://127.0.0.1:1/"], "not a ws:// or wss:// URL"),
])
def test_bad_arguments_are_usage_errors(argv, message, capsys):
    assert main(["load", *argv, "--runs", "1"]) == ExitCode.USAGE
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag, value, message", [
    ("--connections", "0", "must be at least 1"),
    ("--connections", "10001", "must be at most 10000"),
    ("--runs", "100001", "must be at most 100000"),
    ("--runs-per-connection", "100001", "must be at most 100000"),
    ("--duration", "inf", "must be a finite number"),
    ("--duration", "1e400", "must be a finite number"),  # inf once parsed as a float
    ("--rate", "nan", "must be a finite number"),
    ("--deadline-s", "inf", "must be a finite number"),
])
def test_bad_numbers_are_rejected_by_the_parser(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["load", "ws://127.0.0.1:1/", flag, value])
    assert exit_info.value.code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"argument {flag}: {message}" in err and "Traceback" not in err


@pytest.mark.parametrize("rate", ["1e8", "1e12"])
def test_a_rate_far_beyond_the_endpoint_still_stops_at_the_duration(rate):
    # Every connection is full at every due start: the generator must wait for a slot, not spin.
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        code, report = m.cli_json("load", server.url, "--connections", "2", "--rate", rate, "--duration", "0.5")
    load = report["load"]
    assert code == ExitCode.OK and report["summary"]["violations"] == 0
    assert load["pacing"] == "open" and load["runs_started"] >= 1 and load["starts_missed"] > 0
    assert load["runs_completed"] + load["runs_refused"] == load["runs_started"]


@pytest.mark.parametrize("pacing", [[], ["--rate", "1000"]], ids=["closed", "open"])
def test_a_load_whose_runs_never_end_stops_by_itself(pacing):
    # --runs without --duration: only the run deadline can end the wait for a free slot.
    with m.running(m.Silent()) as url:
        code, report = m.cli_json("load", url, "--connections", "2", "--runs", "5", "--no-warmup", "--deadline-s", "0.5",
                                     *pacing)
    assert code == ExitCode.NOT_CONFORMANT
    assert report["load"]["runs_started"] == 2  # one in flight per connection, and none ever ended
    assert "latency.run_deadline" in report["load"]["violations"]
    notes = report["sections"][0]["notes"]
    assert any("stopped starting runs: none of their runs ended within the run deadline" in n for n in notes)


def test_a_frame_that_is_json_but_not_an_object_is_frame_json_under_load_as_in_check():
    """The load generator parses each frame once for speed; it must still judge it as the checker does."""
    with m.running(m.WrapsProgressInAString()) as url:
        load_code, load_report = m.cli_json("load", url, "--connections", "1", "--runs", "3", "--no-warmup",
                                            *RELAXED_FLAGS)
        check_code, check_report = m.cli_json("check", url, "--scenario", "primary", *RELAXED_FLAGS)
    assert load_code == check_code == ExitCode.NOT_CONFORMANT
    assert load_report["load"]["violations"].get("frame.json") == 3
    failed = {r["id"] for s in check_report["sections"] for r in s["rules"] if r["status"] == "FAIL"}
    assert "frame.json" in failed
