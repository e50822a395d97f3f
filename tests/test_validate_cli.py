"""``agent-events validate``: inputs, outputs, config, exit codes 0/1/2/4, flat memory."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tracemalloc

import orjson
import pytest

from agent_events import schemas
from agent_events.conformance.core import checker as checker_mod
from agent_events.conformance.core import latencies
from agent_events.conformance.tooling import synth
from agent_events.conformance.api import validate_files, validate_frames, validate_lines, validate_messages
from agent_events.conformance.cli import main
from agent_events.conformance.exitcodes import ExitCode


def write_vector(path, name):
    vector = dict(schemas.sequence_vectors())[name]
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in vector["frames"]))
    return path


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.jsonl"
    path.write_bytes(b"".join(synth.transcript_lines(3, conns=2, fallback_every=2)))
    return path


@pytest.fixture
def bad(tmp_path):
    return write_vector(tmp_path / "bad.jsonl", "invalid/pair.tool_matched.json")


def test_conformant_transcript_exits_0(good, capsys):
    assert main(["validate", str(good)]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"  PASS  {good} (file)" in out and "CONFORMANT" in out and "seq.contiguous" not in out
    assert main(["validate", "-v", str(good)]) == ExitCode.OK  # -v: the rule matrix
    assert "PASS  MUST    seq.contiguous" in capsys.readouterr().out
    assert "\x1b[" not in out  # not a terminal: no colour


def test_violation_exits_1_and_shows_expected_observed_and_excerpt(bad, capsys):
    assert main(["validate", str(bad)]) == ExitCode.NOT_CONFORMANT
    out = capsys.readouterr().out
    assert "FAIL pair.tool_matched [MUST]" in out and "FAIL  MUST    pair.tool_matched" not in out
    assert "expected: a tool_completed for 'run-1-t3'" in out
    assert "observed: the run completed with tool 'run-1-t3'" in out
    assert f"{bad}:11" in out  # file:line of the offending frame
    assert "NOT CONFORMANT" in out


def test_should_violation_fails_only_with_strict(tmp_path, capsys):
    path = write_vector(tmp_path / "thinking.jsonl", "invalid/profile.actions.thinking.json")
    assert main(["validate", str(path)]) == ExitCode.OK
    assert "WARN profile.actions.thinking [SHOULD]" in capsys.readouterr().out
    assert main(["validate", "--strict", str(path)]) == ExitCode.NOT_CONFORMANT


def test_budget_flags_override_the_profile(tmp_path):
    path = write_vector(tmp_path / "late.jsonl", "invalid/latency.first_event.json")
    assert main(["validate", str(path), "--format", "json"]) == 1
    assert main(["validate", str(path), "--first-event-ms", "200", "--format", "json"]) == 0


def test_plain_jsonl_reports_latency_not_applicable(tmp_path, capsys):
    path = tmp_path / "plain.jsonl"
    path.write_bytes(b"".join(synth.transcript_lines(2, plain=True)))
    assert main(["validate", str(path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rules_ = {r["id"]: r for r in report["rules"]}
    for rule_id in ("latency.first_event", "latency.delivery", "latency.run_deadline", "isolation.run_scope"):
        assert rules_[rule_id]["status"] == "N/A" and rules_[rule_id]["reason"]
    assert rules_["seq.contiguous"]["status"] == "PASS"


def test_line_that_is_not_json_is_frame_json_at_file_and_line(tmp_path, capsys):
    lines = list(synth.transcript_lines(1, plain=True))
    lines.insert(3, b"this is not json\n")
    path = tmp_path / "broken.jsonl"
    path.write_bytes(b"".join(lines))
    assert main(["validate", str(path), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    (violation,) = [v for v in report["sections"][0]["violations"] if v["rule"] == "frame.json"]
    assert violation["location"] == f"{path}:4"


def test_stdin_and_gzip_inputs(good, tmp_path):
    packed = tmp_path / "good.jsonl.gz"
    packed.write_bytes(gzip.compress(good.read_bytes()))
    assert main(["validate", str(packed)]) == 0
    proc = subprocess.run([sys.executable, "-m", "agent_events.conformance.cli", "validate", "-", "--format", "json"],
                          input=good.read_bytes(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["target"]["files"] == ["<stdin>"]


def test_several_files_one_section_each_and_worst_exit(good, bad, capsys):
    assert main(["validate", str(good), str(bad), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [s["conformant"] for s in report["sections"]] == [True, False]


def test_reports_written_in_several_formats(bad, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["validate", str(bad), "--format", "json", "--report", f"junit={out}/r.xml",
                 "--report", f"html={out}/r.html", "--report", f"text={out}/r.txt"])
    assert code == 1
    assert json.loads(capsys.readouterr().out)["exit_code"] == 1
    assert (out / "r.xml").read_text().startswith("<?xml")
    assert "<html" in (out / "r.html").read_text()
    assert "pair.tool_matched" in (out / "r.txt").read_text()


@pytest.mark.parametrize("argv,message", [
    (["validate", "/nonexistent/x.jsonl"], "no such file"),
    (["validate", "--report", "nope=x", "f"], None),
    (["validate", "--first-event-ms", "-3", "f"], None),
    (["validate", "--profile", "nope", "f"], None),
])
def test_usage_errors_exit_2(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == ExitCode.USAGE
    if message:
        assert message in capsys.readouterr().err


def test_directory_empty_file_binary_file_and_bad_transcript_frame_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n")
    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    frame = tmp_path / "frame.jsonl"
    frame.write_bytes(b'{"dir": "sideways", "text": "{}"}\n')
    for path, message in ((tmp_path, "is a directory"), (empty, "no messages"), (binary, "binary content"),
                          (frame, f"{frame}:1: not a valid transcript frame")):
        assert main(["validate", str(path)]) == ExitCode.USAGE
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_internal_error_exits_4_with_how_to_report(good, monkeypatch, capsys):
    import agent_events.conformance.commands.validate as command

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(command, "validate_lines", broken)
    assert main(["validate", str(good)]) == ExitCode.INTERNAL
    err = capsys.readouterr().err
    assert "internal error" in err and "simulated bug" in err and "report it" in err


# -- config ---------------------------------------------------------------------------


def test_config_file_in_cwd_sets_profile_budgets_and_reports(tmp_path, monkeypatch, capsys):
    path = write_vector(tmp_path / "late.jsonl", "invalid/latency.first_event.json")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "agent-events.toml").write_text('first_event_ms = 500\nreports = {json = "r/out.json"}\n')
    assert main(["validate", str(path)]) == 0
    assert json.loads((tmp_path / "r" / "out.json").read_text())["profile"]["first_event_ms"] == 500
    # a flag beats the file, a command sub-table beats the top level
    assert main(["validate", str(path), "--first-event-ms", "100"]) == 1
    (tmp_path / "agent-events.toml").write_text('first_event_ms = 500\n[validate]\nfirst_event_ms = 50\n')
    assert main(["validate", str(path)]) == 1
    capsys.readouterr()


def test_pyproject_tool_table_is_read(tmp_path, monkeypatch):
    path = write_vector(tmp_path / "thinking.jsonl", "invalid/profile.actions.thinking.json")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.agent-events]\nstrict = true\n')
    assert main(["validate", str(path), "--format", "json"]) == 1
    (tmp_path / "pyproject.toml").write_text('[tool.agent-events]\nprofile = "generic"\nstrict = true\n')
    assert main(["validate", str(path), "--format", "json"]) == 0


@pytest.mark.parametrize("content,message", [
    ("profile = 3\n", "profile must be one of"),
    ("first_event_ms = -1\n", "first_event_ms must be a positive finite number"),
    ("fist_event_ms = 10\n", "did you mean 'first_event_ms'"),
    ("format = 'pdf'\n", "format must be one of"),
    ("this is not toml", "not valid TOML"),
    ("[profile]\n", "profile must be one of actions-agent, generic, not an empty table"),
    ("profile = []\n", "profile must be one of actions-agent, generic, not an empty array"),
    ("format = ['x']\n", "format must be one of"),
    ("[validate]\nformat = { a = 1 }\n", "[validate]: format must be one of"),
    ("color = ['auto']\n", 'color must be "auto", "always" or "never"'),
    ("fail_on = { none = true }\n", "fail_on must be"),
    ("first_event_ms = inf\n", "first_event_ms must be a positive finite number, not inf"),
    ("strict = 1979-05-27T07:32:00Z\n", "strict must be true or false, not the date-time 1979-05-27T07:32:00+00:00"),
    ("validate = 3\n", "validate must be a table of settings for the validate command"),
])
def test_bad_config_exits_2_with_a_clear_message(tmp_path, good, content, message, capsys):
    config = tmp_path / "custom.toml"
    config.write_text(content)
    assert main(["validate", str(good), "--config", str(config)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err and str(config) in err


def test_missing_explicit_config_exits_2(good, tmp_path, capsys):
    assert main(["validate", str(good), "--config", str(tmp_path / "none.toml")]) == ExitCode.USAGE
    assert "does not exist" in capsys.readouterr().err


# -- Python API ------------------------------------------------------------------------


def test_validate_messages_api():
    frames = synth.run_frames(synth.RunSpec())
    msgs = [f["msg"] for f in frames if f["dir"] == "recv"]
    report = validate_messages(msgs, profile="actions-agent")
    assert report.conformant and report.exit_code() == 0
    assert report.statuses()["latency.delivery"] == "N/A"
    report = validate_messages(msgs[:-1] + [json.dumps(msgs[-1])[:-2]], profile="generic")
    assert not report.conformant
    assert {"frame.json", "order.completed_last"} <= set(report.sections[0].violation_counts)


def test_validate_frames_and_files_api(good, bad):
    vector = dict(schemas.sequence_vectors())["valid/fallback.json"]
    assert validate_frames(vector["frames"]).conformant
    report = validate_files([good, bad])
    assert [s.conformant for s in report.sections] == [True, False]


# -- memory -----------------------------------------------------------------------------


def test_memory_stays_flat_on_long_streams(monkeypatch):
    # Small caps make every bounded structure saturate early: after that, any
    # growth is a leak. A leak of even 32 bytes per event would add ~1.4 MB here.
    monkeypatch.setattr(checker_mod, "COMPLETED_MEMORY", 200)
    monkeypatch.setattr(latencies, "EXACT_CAP", 100)

    def peak(runs: int) -> tuple[int, int]:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            section = validate_lines(synth.transcript_lines(runs, conns=3, fallback_every=7), "x")
            return section.stats["events"], tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()

    small_events, small = peak(400)
    large_events, large = peak(4400)
    assert large_events > 10 * small_events
    assert large - small < 256 * 1024, (small, large)
