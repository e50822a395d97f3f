"""``agent-events demo``: the first command of the README works on a fresh install and says what it did."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from agent_events.conformance.cli import main
from agent_events.conformance.commands.demo import demo
from agent_events.conformance.core import rules
from agent_events.conformance.core.profiles import PROFILES
from agent_events.conformance.core.violations import FAIL, PASS
from misbehaving_servers import RELAXED, RELAXED_FLAGS


def test_demo_exits_0_prints_the_report_and_writes_the_html(tmp_path, capsys):
    html = tmp_path / "out" / "report.html"
    assert main(["demo", "--html", str(html), "--llm-delay-ms", "5", *RELAXED_FLAGS]) == 0
    out = capsys.readouterr().out
    assert "  PASS  primary (scenario)" in out and "  PASS  robustness (scenario)" in out
    assert "CONFORMANT" in out and "NOT CONFORMANT" not in out
    assert f"HTML report: {html.resolve()}" in out
    text = html.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html") and "seq.contiguous" in text


def test_demo_passes_every_must_rule_of_primary_and_fallback():
    report = asyncio.run(demo(PROFILES["actions-agent"].with_budgets(**RELAXED), llm_delay_ms=5))
    must = [r.id for r in rules.RULES if r.level is rules.Level.MUST]
    for name in ("primary", "fallback"):
        section = next(s for s in report.sections if s.name == name)
        statuses = section.statuses(report.policy)
        assert not [r for r in must if statuses[r] == FAIL], name
    fallback = next(s for s in report.sections if s.name == "fallback").statuses(report.policy)
    assert {fallback[r] for r in ("fallback.single", "fallback.flag", "fallback.continuity")} == {PASS}


def test_demo_from_a_fresh_process_writes_the_default_report_in_the_cwd(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "agent_events.conformance.cli", "demo", "--quiet", *RELAXED_FLAGS], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("CONFORMANT")
    assert (tmp_path / "agent-events-report.html").is_file()
    assert proc.stderr == ""


def test_demo_json_output_stays_parseable(tmp_path):
    """With --format json, stdout is the JSON report alone; the HTML pointer goes to stderr."""
    import json

    html = tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "agent_events.conformance.cli", "demo", "--format", "json", "--html", str(html),
                           *RELAXED_FLAGS], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    report = json.loads(proc.stdout)
    assert report["exit_code"] == proc.returncode
    assert f"HTML report: {html.resolve()}" in proc.stderr and html.is_file()
