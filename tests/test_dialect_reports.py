"""Honest reports of a foreign stream: what was judged, k of n rules, never an agent-events claim.

Run through the real CLI (``agent-events validate --dialect ...``) on an SSE capture and NDJSON,
and through the one settings table (``dialect`` in ``agent-events.toml``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

STREAMS = Path(__file__).resolve().parents[1] / "schemas" / "dialects" / "ag-ui-1.1" / "streams"


def _events(name: str) -> list[dict]:
    return json.loads((STREAMS / f"{name}.json").read_text())["stream"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent_events.conformance.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


@pytest.fixture
def captures(tmp_path):
    ok = tmp_path / "ok.sse"
    ok.write_text("".join(f"data: {json.dumps(e)}\n\n" for e in _events("tool-call-triad-assembles")))
    bad = tmp_path / "bad.ndjson"
    bad.write_text("".join(json.dumps(e) + "\n" for e in _events("nested-run-started-fatal")))
    return ok, bad


def test_sse_capture_passes_as_ag_ui_with_no_agent_events_claim(captures, tmp_path):
    ok, _ = captures
    proc = _cli("validate", "--dialect", "ag-ui", str(ok), "--format", "json", "--badge", "b.svg", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    dialect = report["dialect"]
    assert dialect["name"] == "ag-ui" and dialect["version"] == "1.1"
    assert dialect["statement"] == f"judged as dialect ag-ui 1.1: {dialect['applicable']} of {dialect['rules']} rules applicable"
    assert 0 < dialect["applicable"] < dialect["rules"] == len(report["rules"])
    claim = report["claim"]
    assert claim["eligible"] is False and claim["statement"] is None
    assert claim["withheld_because"] == "foreign_dialect" and claim["reason"].startswith(dialect["statement"])
    assert {r["id"] for r in report["rules"]} >= {"ag-ui.run.first", "ag-ui.tool.paired", "frame.json"}
    assert not {r["id"] for r in report["rules"]} & {"order.thinking", "profile.actions.tools"}
    na = {r["id"]: r["reason"] for r in report["rules"] if r["status"] == "N/A"}
    assert "no sequence number" in na["seq.contiguous"] and "no cancel message" in na["ag-ui.run.cancelled"]
    badge = (tmp_path / "b.svg").read_text()
    assert "judged as ag-ui 1.1" in badge and "agent-events v" not in badge and ">conformant<" not in badge
    from jsonschema import Draft202012Validator

    schema = json.loads((Path(__file__).resolve().parents[1] / "src" / "agent_events" / "conformance"
                         / "report_schema.json").read_text())
    Draft202012Validator(schema).validate(report)


def test_ndjson_failing_ag_ui_rule_text_report(captures, tmp_path):
    _, bad = captures
    proc = _cli("validate", "--dialect", "ag-ui", str(bad), cwd=tmp_path)
    assert proc.returncode == 1
    assert "judged as dialect ag-ui 1.1" in proc.stdout.splitlines()[0]
    assert "FAIL ag-ui.run.nested [MUST]" in proc.stdout
    assert "NOT CONFORMANT to ag-ui 1.1" in proc.stdout
    assert "Conforms to agent-events" not in proc.stdout


def test_dialect_from_the_config_file_and_ag_ui_rule_ids_gate(captures, tmp_path):
    _, bad = captures
    (tmp_path / "agent-events.toml").write_text('dialect = "ag-ui"\noff = ["ag-ui.run.nested", "ag-ui.run.ended"]\n'
                                                'allow_lowering_must = true\n')
    proc = _cli("validate", str(bad), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "judged as dialect ag-ui 1.1" in proc.stdout
    (tmp_path / "agent-events.toml").write_text('dialect = "ag-uii"\n')
    proc = _cli("validate", str(bad), cwd=tmp_path)
    assert proc.returncode == 2 and "dialect must be a built-in dialect name (agent-events, ag-ui)" in proc.stderr


def test_without_a_dialect_the_stream_is_judged_as_ours(captures, tmp_path):
    ok, _ = captures
    proc = _cli("validate", str(ok), "--format", "json", cwd=tmp_path)
    report = json.loads(proc.stdout)
    assert "dialect" not in report and proc.returncode == 1  # SSE is not our framing: frame.json fails
