"""The GitHub Action (``action.yml``) and its logic, ``agent-events ci``, in a simulated GitHub environment.

GitHub's side is simulated the way the runner provides it: ``GITHUB_ACTIONS=true``,
``GITHUB_STEP_SUMMARY`` and ``GITHUB_OUTPUT`` as files in a temporary directory, read back
here as the runner reads them (the ``name<<DELIMITER`` form of the output file, workflow
commands on stdout). The agents are real: the reference agent on port 0, the same agent
behind the fault proxy dropping an event, a port nothing listens on, a command that dies.
The action's own check step is run too: its bash script, with its ``env:`` mapping filled
from the inputs as the runner fills it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent_events import ci, proxy, reference_agent
from misbehaving_servers import RELAXED_FLAGS, unused_port

ROOT = Path(__file__).resolve().parents[1]
SERVE = f"{shlex.quote(sys.executable)} -m agent_events.conformance.cli serve --port 0 --llm-delay-ms 0"


def parse_github_output(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` as the runner reads it: ``name=value`` lines and ``name<<DELIM`` blocks."""
    outputs, lines, i = {}, text.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)  # ValueError: an unterminated block, as the runner refuses it
            outputs[name] = "\n".join(lines[i + 1:end])
            i = end + 1
        elif line:
            name, value = line.split("=", 1)
            outputs[name] = value
            i += 1
        else:
            i += 1
    return outputs


class GitHub:
    """A runner's environment files in ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.summary = tmp_path / "step_summary"
        self.output = tmp_path / "output"
        self.summary.write_text("")
        self.output.write_text("")
        self.env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(self.summary),
                    "GITHUB_OUTPUT": str(self.output)}
        self.env.pop("AGENT_EVENTS_TOKEN", None)

    def outputs(self) -> dict[str, str]:
        return parse_github_output(self.output.read_text(encoding="utf-8"))


def run_ci(github: GitHub, *argv: str, capsys=None) -> tuple[int, str]:
    args = ci.build_parser().parse_args([*argv, "--report-dir", str(github.dir / "reports"),
                                         "--check-args", shlex.join(RELAXED_FLAGS)])
    code = ci.run(args, env=github.env)
    return code, capsys.readouterr().out if capsys is not None else ""


def summary_matrix(summary: str) -> list[list[str]]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(summary)
    rows, row = [], None
    for tok in tokens:
        if tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close":
            rows.append(row)
        elif tok.type == "inline" and row is not None and tok.level >= 4:
            row.append(tok.content)
        elif tok.type == "table_close":
            break
    return rows


def test_a_conformant_agent_passes_with_summary_outputs_and_reports(tmp_path, capsys):
    github = GitHub(tmp_path)
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        code, out = run_ci(github, "--url", server.url, "--scenarios", "primary, fallback", capsys=capsys)
    assert code == 0
    outputs = github.outputs()
    assert outputs["verdict"] == "conformant" and outputs["exit-code"] == "0" and outputs["passed"] == "true"
    for fmt in ("markdown", "json", "junit", "sarif", "html"):
        assert Path(outputs[f"{fmt}-report"]).is_file(), fmt
    assert outputs["reports"].splitlines()[0] == f"markdown={outputs['markdown-report']}"
    summary = github.summary.read_text(encoding="utf-8")
    assert summary.startswith("## agent-events conformance report") and "CONFORMANT" in summary
    matrix = summary_matrix(summary)
    assert matrix[0][2:] == ["primary", "fallback"]
    assert {row[0].strip("`") for row in matrix[1:]} >= {"seq.contiguous", "fallback.flag"}
    assert "::group::agent-events check" in out and "::error" not in out
    data = json.loads(Path(outputs["json-report"]).read_text())
    assert [s["name"] for s in data["sections"]] == ["primary", "fallback"]


def test_a_broken_agent_fails_the_step_with_annotations(tmp_path, capsys):
    github = GitHub(tmp_path)
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server, \
            proxy.run_in_thread(server.url, ["drop:9"]) as endpoint:
        code, out = run_ci(github, "--url", endpoint.url, "--scenarios", "primary", "--reports", "markdown,sarif",
                           capsys=capsys)
    assert code == 1
    outputs = github.outputs()
    assert outputs["verdict"] == "not-conformant" and outputs["exit-code"] == "1" and outputs["passed"] == "false"
    assert "junit-report" not in outputs and Path(outputs["sarif-report"]).is_file()
    matrix = summary_matrix(github.summary.read_text(encoding="utf-8"))
    assert matrix[1][0] == "`seq.contiguous`" and "FAIL" in matrix[1][2]  # failures first
    errors = [line for line in out.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and errors[0].startswith("::error title=agent-events seq.contiguous [MUST]::primary")
    assert "%0Aexpected: seq" in errors[0]


def test_fail_on_none_passes_the_step_and_says_the_stream_is_not_conformant(tmp_path, capsys):
    github = GitHub(tmp_path)
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server, \
            proxy.run_in_thread(server.url, ["drop:9"]) as endpoint:
        code, _ = run_ci(github, "--url", endpoint.url, "--scenarios", "primary", "--fail-on", "none", capsys=capsys)
    assert code == 0
    assert github.outputs()["verdict"] == "passed-gate"


def test_start_finds_the_url_the_agent_prints_and_stops_the_agent(tmp_path, capsys):
    github = GitHub(tmp_path)
    pid_file = tmp_path / "agent.pid"
    command = f"echo $$ > {shlex.quote(str(pid_file))}; exec {SERVE}"
    code, out = run_ci(github, "--start", command, "--scenarios", "primary", capsys=capsys)
    assert code == 0, out
    assert github.outputs()["verdict"] == "conformant"
    log = (tmp_path / "reports" / "agent.log").read_text()
    assert "listening on ws://127.0.0.1:" in log
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped, and reaped


def test_an_unreachable_agent_is_exit_3_with_a_summary_saying_why(tmp_path, capsys):
    github = GitHub(tmp_path)
    code, out = run_ci(github, "--url", f"ws://127.0.0.1:{unused_port()}/", "--ready-timeout", "0.5", capsys=capsys)
    assert code == 3
    outputs = github.outputs()
    assert outputs["verdict"] == "unreachable" and outputs["exit-code"] == "3" and "markdown-report" not in outputs
    summary = github.summary.read_text()
    assert "unreachable" in summary and "was not ready within 0.5 s" in summary
    assert re.search(r"^::error title=agent-events%3A unreachable::", out, re.M)


def test_an_agent_command_that_dies_is_exit_3_with_its_output(tmp_path, capsys):
    github = GitHub(tmp_path)
    code, _ = run_ci(github, "--start", "echo cannot bind >&2; exit 7", capsys=capsys)
    assert code == 3
    assert "exited with code 7" in github.summary.read_text() and "cannot bind" in github.summary.read_text()


def test_check_usage_errors_pass_through_as_exit_2(tmp_path, capsys):
    github = GitHub(tmp_path)
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        code, _ = run_ci(github, "--url", server.url, "--scenarios", "no-such-scenario", capsys=capsys)
    assert code == 2 and github.outputs()["verdict"] == "usage-error"


def test_without_github_the_script_writes_no_workflow_commands(tmp_path, capsys):
    github = GitHub(tmp_path)
    github.env = {k: v for k, v in github.env.items() if not k.startswith("GITHUB_")}
    code, out = run_ci(github, "--url", f"ws://127.0.0.1:{unused_port()}/", "--ready-timeout", "0.2", capsys=capsys)
    assert code == 3 and "::" not in out and github.output.read_text() == ""


def test_dialect_is_passed_only_when_given(tmp_path):
    base = ["--url", "ws://x/"]
    reports = ci.report_paths([], tmp_path)
    without = ci.check_command(ci.build_parser().parse_args(base), "ws://x/", reports)
    with_ = ci.check_command(ci.build_parser().parse_args([*base, "--dialect", "ag-ui"]), "ws://x/", reports)
    assert "--dialect" not in without
    assert with_[with_.index("--dialect") + 1] == "ag-ui"


def test_output_blocks_survive_values_that_look_like_their_syntax():
    tricky = "a\nEOF\nname<<EOF\nb=c\n"
    block = ci.output_block("x", tricky) + ci.output_block("y", "")
    assert parse_github_output(block) == {"x": tricky, "y": ""}


def test_workflow_command_escaping():
    assert ci.annotation("error", "50% a\r\nb", "t: a, b") == "::error title=t%3A a%2C b::50%25 a%0D%0Ab"


def test_a_summary_too_big_for_github_is_cut_with_its_fences_closed(tmp_path):
    env = {"GITHUB_STEP_SUMMARY": str(tmp_path / "s")}
    big = "## r\n\n```text\n" + "x" * 100 + "\n" * 0 + ("line\n" * (ci.SUMMARY_LIMIT // 5 + 10))
    ci.write_summary(big, env)
    text = (tmp_path / "s").read_text()
    assert len(text.encode()) <= 1024 * 1024 and text.count("```") % 2 == 0 and "cut to fit" in text


# -- action.yml ---------------------------------------------------------------------------

ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
_INPUT_EXPR = re.compile(r"^\$\{\{\s*inputs\.([\w-]+)\s*\}\}$")


def test_action_is_composite_and_wires_every_input():
    assert ACTION["runs"]["using"] == "composite"
    text = (ROOT / "action.yml").read_text(encoding="utf-8")
    for name in ACTION["inputs"]:
        assert f"inputs.{name}" in text, f"input {name} is declared and never used"
    steps = {step.get("id") or step["name"]: step for step in ACTION["runs"]["steps"]}
    install = next(s for s in steps.values() if "pip install" in s.get("run", ""))
    assert '"${{ github.action_path }}"' in install["run"]  # the kit of the action's own version
    check = steps["check"]
    assert "${{" not in check["run"], "inputs go through env, never pasted into the script"
    assert check["env"]["AGENT_EVENTS_TOKEN"] == "${{ inputs.token }}"
    sarif = next(s for s in steps.values() if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    assert "always()" in sarif["if"] and "inputs.upload-sarif" in sarif["if"] and sarif["continue-on-error"]
    for name, spec in ACTION["outputs"].items():
        assert spec["value"] == f"${{{{ steps.check.outputs.{name} }}}}"


def _run_check_step(github: GitHub, inputs: dict[str, str]) -> subprocess.CompletedProcess:
    """The action's check step as the runner runs it: ``env`` from the inputs, then its bash script."""
    step = next(s for s in ACTION["runs"]["steps"] if s.get("id") == "check")
    env = dict(github.env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # python3: the kit's python
    for name, value in step["env"].items():
        match = _INPUT_EXPR.match(value)
        assert match, f"{name}: {value}"
        key = match.group(1)
        env[name] = inputs.get(key, ACTION["inputs"][key].get("default", ""))
    return subprocess.run(["bash", "-e", "-c", step["run"]], env=env, cwd=github.dir, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("broken", [False, True], ids=["conformant", "broken"])
def test_the_action_check_step_fails_exactly_when_the_check_fails(tmp_path, broken):
    github = GitHub(tmp_path)
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server, \
            proxy.run_in_thread(server.url, ["drop:9"] if broken else []) as endpoint:
        done = _run_check_step(github, {"url": endpoint.url, "scenarios": "primary", "reports": "markdown,sarif",
                                        "check-args": shlex.join(RELAXED_FLAGS)})
    assert done.returncode == (1 if broken else 0), done.stdout + done.stderr
    outputs = github.outputs()
    assert outputs["verdict"] == ("not-conformant" if broken else "conformant")
    assert outputs["exit-code"] == str(done.returncode)
    assert (tmp_path / outputs["sarif-report"]).is_file()
    assert "| `seq.contiguous` |" in github.summary.read_text()


def test_the_action_check_step_keeps_a_hostile_input_out_of_the_shell(tmp_path):
    github = GitHub(tmp_path)
    marker = tmp_path / "pwned"
    done = _run_check_step(github, {"url": f"ws://127.0.0.1:{unused_port()}/$(touch {marker})",
                                    "ready-timeout": "0.2", "scenarios": f"primary; touch {marker}"})
    assert done.returncode in (2, 3) and not marker.exists()
