"""What a person sees in the terminal: short when all passes, every failure in full, -q and -v, colour, progress.

Real commands against a real reference agent (and real misbehaving servers) on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

import misbehaving_servers as m
from agent_events import reference_agent, schemas
from agent_events.conformance.cli import main
from agent_events.conformance.reporters import use_color, write_outputs
from agent_events.conformance.api import validate_frames

RELAXED_FLAGS = m.RELAXED_FLAGS
VECTORS = dict(schemas.sequence_vectors())
MAX_LINES = 40


@pytest.fixture(scope="module")
def agent_url():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        yield server.url


def write_vector(path: Path, name: str) -> Path:
    path.write_text("".join(json.dumps(f) + "\n" for f in VECTORS[name]["frames"]), encoding="utf-8")
    return path


# -- all pass: a screenful ------------------------------------------------------------------

def test_an_all_pass_check_prints_at_most_40_lines_one_per_scenario(agent_url, capsys):
    assert main(["check", agent_url, *RELAXED_FLAGS]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) <= MAX_LINES, out
    from agent_events.conformance.live.scenarios import SCENARIOS

    for scenario in SCENARIOS:  # one line per scenario, with its counts
        [line] = [x for x in lines if x.startswith(f"  PASS  {scenario} (scenario)")]
        assert " passed" in line and " events" in line
    assert "PASS  MUST" not in out and "expected:" not in out  # no rule matrix, no failure
    assert lines[-1].startswith("CONFORMANT") and lines[0].startswith("agent-events ")


def test_an_all_pass_demo_prints_at_most_40_lines(tmp_path, capsys):
    assert main(["demo", "--html", str(tmp_path / "r.html"), "--llm-delay-ms", "0", *RELAXED_FLAGS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= MAX_LINES, "\n".join(lines)
    assert any(line.startswith("CONFORMANT") for line in lines) and lines[-1].startswith("HTML report: ")


def test_verbose_adds_the_rule_matrix_and_quiet_keeps_only_the_verdict(agent_url, capsys):
    assert main(["check", agent_url, "--scenario", "primary", "-v", *RELAXED_FLAGS]) == 0
    verbose = capsys.readouterr().out
    assert "PASS  MUST    seq.contiguous" in verbose and "latency (ms)" in verbose
    assert main(["check", agent_url, "--scenario", "primary", "-q", *RELAXED_FLAGS]) == 0
    quiet = capsys.readouterr().out
    assert quiet.splitlines() == [quiet.strip()] and quiet.startswith("CONFORMANT")


# -- failing: every failure in full, without -v ---------------------------------------------

def test_a_failing_check_shows_rule_expected_observed_and_frames_by_default(capsys):
    with m.running(m.IgnoresCancel()) as url:
        code = main(["check", url, "--scenario", "primary", "--scenario", "cancel", "--deadline-s", "1",
                     "--race-tries", "1", *RELAXED_FLAGS])  # one try of each race (their odds: test_races.py)
    out = capsys.readouterr().out
    assert code == 1
    assert "  FAIL  cancel (scenario)" in out and "  PASS  primary (scenario)" in out
    block = out[out.index("FAIL cancel.terminal [MUST]"):]
    assert "expected: " in block and "observed: " in block and "cancelled=None" in block
    assert "<-" in block or "#" in block  # the frames that led to it
    assert "PASS  MUST    seq.contiguous" not in out  # still no rule matrix
    assert out.rstrip().endswith("exit 1") and "NOT CONFORMANT" in out


def test_quiet_keeps_the_failures_and_the_verdict(tmp_path, capsys):
    bad = write_vector(tmp_path / "bad.jsonl", "invalid/pair.tool_matched.json")
    assert main(["validate", "-q", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL pair.tool_matched [MUST]")
    assert "expected: a tool_completed for 'run-1-t3'" in out and "observed: the run completed" in out
    assert "agent-events 0.1" not in out and "(file)" not in out  # no header, no section lines
    assert out.rstrip().splitlines()[-1].startswith("NOT CONFORMANT")


def test_quiet_leaves_out_warnings_that_do_not_fail_the_gate(tmp_path, capsys):
    path = write_vector(tmp_path / "thinking.jsonl", "invalid/profile.actions.thinking.json")
    assert main(["validate", str(path)]) == 0
    assert "WARN profile.actions.thinking [SHOULD]" in capsys.readouterr().out  # default: warnings in full
    assert main(["validate", "-q", str(path)]) == 0
    assert capsys.readouterr().out.startswith("CONFORMANT")
    assert main(["validate", "-q", "--strict", str(path)]) == 1
    assert "WARN profile.actions.thinking [SHOULD]" in capsys.readouterr().out


def test_the_latency_table_shows_only_where_a_latency_rule_failed(tmp_path, capsys):
    late = write_vector(tmp_path / "late.jsonl", "invalid/latency.delivery.json")
    fine = write_vector(tmp_path / "fine.jsonl", "valid/primary.json")
    assert main(["validate", str(late), str(fine)]) == 1
    out = capsys.readouterr().out
    assert f"latency of {late}:" in out and f"latency of {fine}:" not in out


def test_quiet_and_verbose_are_exclusive(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["validate", "-q", "-v", "x.jsonl"])
    assert exc.value.code == 2


def test_load_takes_quiet_and_verbose(agent_url, capsys):
    args = ["load", agent_url, "--runs", "2", "--connections", "1", "--no-warmup", *RELAXED_FLAGS]
    assert main([*args, "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CONFORMANT") and len(out.splitlines()) == 1
    assert main([*args, "-v"]) == 0
    out = capsys.readouterr().out
    assert "events/s" in out and "PASS  MUST    seq.contiguous" in out


# -- colour ---------------------------------------------------------------------------------

class Tty:
    def isatty(self):
        return True


class Pipe:
    def isatty(self):
        return False


@pytest.mark.parametrize("env,flag,stream,expected", [
    ({}, None, Pipe(), False),
    ({}, None, Tty(), True),
    ({"FORCE_COLOR": "1"}, None, Pipe(), True),
    ({"FORCE_COLOR": "0"}, None, Tty(), False),
    ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, None, Pipe(), False),   # NO_COLOR beats FORCE_COLOR
    ({"FORCE_COLOR": "1"}, False, Pipe(), False),                   # --color never beats both
    ({"NO_COLOR": "1"}, True, Pipe(), True),                        # --color always too
    ({"NO_COLOR": ""}, None, Tty(), True),                          # empty means unset
])
def test_colour_precedence(monkeypatch, env, flag, stream, expected):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert use_color(stream, flag) is expected


def test_force_color_colours_the_report_on_a_pipe(tmp_path):
    bad = write_vector(tmp_path / "bad.jsonl", "invalid/seq.contiguous.json")
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    run = lambda **extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "agent_events.conformance.cli", "validate", str(bad)],
        capture_output=True, text=True, env={**env, **extra}, timeout=60)
    assert "\x1b[" not in run().stdout
    assert "\x1b[1;31m" in run(FORCE_COLOR="1").stdout
    assert "\x1b[" not in run(FORCE_COLOR="1", NO_COLOR="1").stdout


# -- progress of validate on a terminal -----------------------------------------------------

def test_validate_shows_progress_on_a_terminal_stderr_and_clears_it(tmp_path):
    good = write_vector(tmp_path / "good.jsonl", "valid/primary.json")
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "agent_events.conformance.cli", "validate", str(good), str(good)],
                              stdout=subprocess.PIPE, stderr=slave, text=True, timeout=60)
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed and drained
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if slave != -1:
            os.close(slave)
        os.close(master)
    err = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert "\rvalidate: 0/2 file(s) done" in err and "\rvalidate: 1/2 file(s) done" in err
    assert err.endswith("\r")  # cleared at the end
    assert "validate:" not in proc.stdout


def test_validate_shows_no_progress_when_stderr_is_not_a_terminal(tmp_path, capsys):
    good = write_vector(tmp_path / "good.jsonl", "valid/primary.json")
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().err == ""


# -- files written keep every detail -------------------------------------------------------

def test_a_text_report_written_to_a_file_has_the_full_matrix(tmp_path):
    report = validate_frames(VECTORS["valid/primary.json"]["frames"])
    path = tmp_path / "r.txt"

    class Out:
        text = ""

        def write(self, s):
            Out.text += s

        def flush(self):
            pass

    write_outputs(report, "text", [("text", path)], stdout=Out())
    assert "PASS  MUST    seq.contiguous" in path.read_text() and "PASS  MUST    seq.contiguous" not in Out.text
