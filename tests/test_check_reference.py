"""The live check against the reference agent: the API, the CLI, transcripts and replay, progress."""

from __future__ import annotations

import asyncio
import io
import json

import orjson
import pytest

from agent_events import conformance
from agent_events import reference_agent
from misbehaving_servers import RELAXED, RELAXED_FLAGS
from agent_events.conformance.core import rules
from agent_events.conformance.api import validate_files
from agent_events.conformance.cli import main
from agent_events.conformance.live.cli_args import ProgressLine
from agent_events.conformance.live.scenarios import SCENARIOS
from agent_events.conformance.core.profiles import PROFILES
from agent_events.conformance.core.violations import FAIL, NOT_APPLICABLE, PASS, WARN

#: Slow enough that a cancel lands mid-run, fast enough for the test suite.
LLM_DELAY_MS = 20
#: The profile the recordings are judged against offline: the same relaxed budgets as live.
RELAXED_PROFILE = PROFILES["actions-agent"].with_budgets(**RELAXED)


@pytest.fixture(scope="module")
def agent_url():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=LLM_DELAY_MS) as server:
        yield server.url


@pytest.fixture(scope="module")
def full(agent_url, tmp_path_factory):
    """One full check (every scenario), recorded; shared by the tests that read it."""
    path = tmp_path_factory.mktemp("rec") / "check.jsonl"
    lines: list[str] = []
    report = conformance.check(agent_url, record=path, progress=lines.append, **RELAXED)
    return report, path, lines


def test_the_reference_agent_passes_every_must_rule_in_every_scenario(full):
    report, _, _ = full
    assert [s.name for s in report.sections] == list(SCENARIOS)
    for section in report.sections:
        failed = [r for r, status in section.statuses(report.policy).items() if status == FAIL]
        assert failed == [], (section.name, failed)
    assert report.exit_code() == 0


@pytest.mark.parametrize("scenario, rule_ids", [(name, s.focus) for name, s in SCENARIOS.items()],
                         ids=list(SCENARIOS))
def test_each_scenario_exercises_the_rules_it_is_for(full, scenario, rule_ids):
    report, _, _ = full
    section = next(s for s in report.sections if s.name == scenario)
    statuses = section.statuses(report.policy)
    profile_rules = {r.id for r in rules.RULES if r.profile is not None}
    # Profile rules do not apply to fallback or cancelled runs, by the spec.
    expected_na = profile_rules if scenario in ("fallback", "cancel") else set()
    exercised = {r for r in rule_ids if r not in expected_na}
    not_exercised = {r: section.outcomes[r].reason for r in exercised if statuses[r] == NOT_APPLICABLE}
    # A cancelled attempt is exempt from order.thinking, and the cancel may land before any tool starts.
    allowed = {"order.thinking", "pair.tool_matched"} if scenario == "cancel" else set()
    assert set(not_exercised) <= allowed, not_exercised


def test_the_latency_scenario_reports_percentiles_and_the_clock_offset(full):
    report, _, _ = full
    latency = next(s for s in report.sections if s.name == "latency")
    delivery = latency.latencies["delivery"]
    assert delivery["count"] >= 20 * 10  # 20 runs of about a dozen events
    assert delivery["p50"] <= delivery["p95"] <= delivery["p99"] <= delivery["max"]
    assert any("time_sync samples" in note for note in latency.notes)
    assert latency.statuses(report.policy)["time_sync.reply"] == PASS


def test_concurrency_opens_ten_connections_by_default(full):
    report, path, _ = full
    conns = {orjson.loads(line).get("conn") for line in path.read_bytes().splitlines()[1:]}
    assert len({c for c in conns if c.startswith("concurrency/")}) == 10
    section = next(s for s in report.sections if s.name == "concurrency")
    assert section.stats["runs_completed"] == 30
    assert section.statuses(report.policy)["isolation.run_scope"] == PASS


def test_the_cancel_scenario_sees_a_cancelled_completion(full):
    report, _, _ = full
    section = next(s for s in report.sections if s.name == "cancel")
    assert section.statuses(report.policy)["cancel.terminal"] == PASS
    assert section.statuses(report.policy)["cancel.before_first_event"] == PASS
    # mid-run, right after start_run, during a tool, and at least the first of the random cancels
    assert section.stats["cancels_sent"] >= 4


def test_the_transcript_replays_to_the_same_verdict(full):
    report, path, _ = full
    lines = path.read_bytes().splitlines()
    header = orjson.loads(lines[0])
    assert header["transcript"] == "agent-events/v1" and header["url"].startswith("ws://127.0.0.1:")
    records = [orjson.loads(line) for line in lines[1:]]
    assert {"send", "recv"} <= {f["dir"] for f in records} <= {"send", "recv", "close"}
    frames = [f for f in records if f["dir"] != "close"]
    assert all(isinstance(f["t"], float) and ("text" in f or "binary" in f) for f in frames)
    replay = validate_files([path], RELAXED_PROFILE)
    live = report.statuses()
    for rule in rules.RULES:
        if rule.scope != "live":
            assert replay.statuses()[rule.id] in (live[rule.id], NOT_APPLICABLE), rule.id
    assert replay.exit_code() == report.exit_code() == 0
    assert replay.stat("events") == report.stat("events")


def test_progress_lines_name_the_scenario(full):
    _, _, lines = full
    assert lines and all(line.startswith("[") for line in lines)
    assert any("primary" in line or "connecting" in line for line in lines)


def test_the_progress_line_is_only_drawn_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    plain, tty = ProgressLine(io.StringIO()), ProgressLine(Terminal())
    assert plain.sink() is None
    tty.sink()("[1/7 primary] 0/1 runs")
    tty.clear()
    assert tty.stream.getvalue().startswith("\r[1/7 primary]") and tty.stream.getvalue().endswith("\r")


def test_cli_check_prints_the_report_and_writes_reports(agent_url, tmp_path, capsys):
    junit, record = tmp_path / "junit.xml", tmp_path / "t.jsonl"
    code = main(["check", agent_url, "--scenario", "primary", "--scenario", "fallback", *RELAXED_FLAGS,
                 "--report", f"junit={junit}", "--record", str(record)])
    out, err = capsys.readouterr()
    assert code == 0
    assert "  PASS  primary (scenario)" in out and "  PASS  fallback (scenario)" in out and "CONFORMANT" in out
    assert "<testsuite" in junit.read_text()
    assert f"agent-events validate {record}" in err
    assert main(["validate", str(record), *RELAXED_FLAGS]) == 0


def test_cli_quiet_prints_only_the_verdict(agent_url, capsys):
    assert main(["check", agent_url, "--scenario", "primary", "--quiet", *RELAXED_FLAGS]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("CONFORMANT")


def test_cli_json_names_the_scenarios_and_exit_code(agent_url, capsys):
    # latency: a scenario whose runs are exactly --runs (multiplex adds its start_run probes)
    assert main(["check", agent_url, "--scenario", "latency", "--runs", "3", "--format", "json",
                 *RELAXED_FLAGS]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == 0 and data["target"]["scenarios"] == ["latency"]
    assert data["sections"][0]["stats"]["runs_completed"] == 3


def test_budgets_from_the_command_line_are_applied(agent_url, capsys):
    # a 1 ms run deadline is broken by every run, which waits LLM_DELAY_MS for its model
    assert main(["check", agent_url, "--scenario", "primary", "--deadline-s", "0.001", "--format", "json",
                 *RELAXED_FLAGS]) == 1
    data = json.loads(capsys.readouterr().out)
    failed = [r["id"] for r in data["rules"] if r["status"] == FAIL]
    assert failed == ["latency.run_deadline"]


def test_scenarios_and_runs_come_from_the_config_file(agent_url, tmp_path, monkeypatch, capsys):
    (tmp_path / "agent-events.toml").write_text('[check]\nscenarios = ["latency"]\nruns = 2\n')
    monkeypatch.chdir(tmp_path)
    assert main(["check", agent_url, "--format", "json", *RELAXED_FLAGS]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in data["sections"]] == ["latency"]
    assert data["sections"][0]["stats"]["runs_completed"] == 2


def test_record_writes_one_run_and_validates(agent_url, tmp_path, capsys):
    path = tmp_path / "one.jsonl"
    assert main(["record", agent_url, "-o", str(path), "--fallback"]) == 0
    assert "1/1 run(s) completed" in capsys.readouterr().err
    starts = [f for f in map(orjson.loads, path.read_bytes().splitlines()[1:])
              if f["dir"] == "send" and '"start_run"' in f["text"]]
    assert len(starts) == 1 and "simulate_failure" in starts[0]["text"]
    report = validate_files([path], RELAXED_PROFILE)
    assert report.statuses()["fallback.continuity"] == PASS
    assert report.exit_code() == 0


def test_record_of_an_unreachable_endpoint_is_exit_3_and_writes_no_file(tmp_path, capsys):
    import misbehaving_servers as m

    url = f"ws://127.0.0.1:{m.unused_port()}/"
    assert main(["record", url, "-o", str(tmp_path / "x.jsonl")]) == 3
    assert "cannot record" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()  # not a header-only transcript that validates as empty
    # nor does a check truncate the transcript of an earlier session
    earlier = tmp_path / "earlier.jsonl"
    earlier.write_text("kept\n")
    assert main(["check", url, "--scenario", "primary", "--record", str(earlier)]) == 3
    assert earlier.read_text() == "kept\n"


def test_check_runs_inside_a_running_event_loop(agent_url):
    async def from_async_code():
        return conformance.check(agent_url, scenarios=["primary"], **RELAXED)

    assert asyncio.run(from_async_code()).exit_code() == 0


def test_check_async_is_the_same_engine(agent_url):
    report = asyncio.run(conformance.check_async(agent_url, scenarios=["primary"], profile="generic", **RELAXED))
    assert report.profile.name == "generic"
    assert report.statuses()["profile.actions.tools"] == NOT_APPLICABLE
    assert WARN not in report.statuses().values()
