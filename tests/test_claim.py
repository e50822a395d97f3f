"""The conformance claim (JSON, HTML, text) and the self-made SVG badge."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import orjson
import pytest

from agent_events import schemas
from agent_events.conformance import __version__
from agent_events.conformance.api import validate_frames
from agent_events.conformance.cli import main
from agent_events.conformance.reporting.report import Policy, Report, Section
from agent_events.conformance.reporters import render
from agent_events.conformance.reporters.json import report_schema

VECTORS = dict(schemas.sequence_vectors())
SVG = "{http://www.w3.org/2000/svg}"


def judged(name: str, policy: Policy = Policy()) -> Report:
    vector = VECTORS[name]
    base = validate_frames(vector["frames"], vector["profile"], name=name)
    return Report(base.profile, base.sections, policy, target={"kind": "files", "files": [name]}, command="validate")


def claim_of(report: Report) -> dict:
    import jsonschema

    data = json.loads(render(report, "json"))
    jsonschema.Draft202012Validator(report_schema()).validate(data)
    return data["claim"]


def test_a_passing_check_claims_with_protocol_profile_scenarios_kit_and_date():
    report = judged("valid/fallback.json")
    claim = claim_of(report)
    assert claim["eligible"] is True and claim["status"] == "conformant" and claim["reason"] is None
    statement = claim["statement"]
    assert "\n" not in statement
    assert f"protocol v{schemas.PROTOCOL_VERSION}" in statement
    assert "profile actions-agent" in statement and "fallback.json" in statement
    assert f"agent-events {__version__}" in statement
    assert report.finished_at[:10] in statement and re.search(r"\d{4}-\d{2}-\d{2}", statement)
    assert "every MUST rule held" in statement
    html = render(report, "html")
    assert statement.replace("'", "&#x27;") in html and "Conformance claim" in html
    assert f"claim: {statement}" in render(report, "text")


def test_a_live_checks_claim_names_its_scenarios():
    base = judged("valid/primary.json")
    sections = [Section(name, "scenario", s.outcomes, s.violations, s.violation_counts)
                for name, s in zip(("primary", "fallback"), base.sections * 2)]
    report = Report(base.profile, sections, target={"kind": "url", "url": "ws://127.0.0.1:1/"}, command="check")
    claim = claim_of(report)
    assert "scenarios: primary, fallback" in claim["statement"]
    assert claim["scenarios"] == ["primary", "fallback"]


def test_strict_pass_claims_should_rules_too_and_a_should_rule_off_keeps_the_claim():
    assert "every MUST and SHOULD rule held" in claim_of(judged("valid/primary.json", Policy(strict=True)))["statement"]
    # a SHOULD violation never fails the default gate: the claim stands, and says only MUST
    relaxed = claim_of(judged("invalid/latency.tool_gap.json", Policy(severities={"latency.tool_gap": "off"})))
    assert relaxed["eligible"] is True and "every MUST rule held" in relaxed["statement"]


@pytest.mark.parametrize("name, policy, status, reason", [
    ("invalid/pair.tool_matched.json", Policy(), "not conformant", "not conformant"),
    # every MUST rule held (JSON conformant: true), so the badge must not say "not conformant"
    ("invalid/latency.tool_gap.json", Policy(strict=True), "no claim",
     "not a conformance claim: every MUST rule held, but the gate failed with --strict"),
    ("invalid/latency.tool_gap.json", Policy(max_warnings=1), "no claim",
     "not a conformance claim: every MUST rule held, but the gate failed with --max-warnings 1"),
    ("invalid/pair.tool_matched.json", Policy(fail_on="none"), "not conformant",
     "not a conformance claim: with the default severities, MUST rule(s) pair.tool_matched failed"),
    ("invalid/pair.tool_matched.json", Policy(severities={"pair.tool_matched": "off"}), "not conformant",
     "not a conformance claim: MUST rule(s) lowered with --allow-lowering-must (pair.tool_matched to off)"),
    ("valid/primary.json", Policy(severities={"seq.contiguous": "warning"}), "no claim",
     "not a conformance claim: MUST rule(s) lowered"),
])
def test_no_claim_without_a_pass_under_default_severities(name, policy, status, reason):
    report = judged(name, policy)
    claim = claim_of(report)
    assert claim["eligible"] is False and claim["statement"] is None
    assert claim["status"] == status and claim["reason"].startswith(reason)
    assert "Conformance claim" not in render(report, "html")
    assert not any(line.startswith("claim: ") for line in render(report, "text").splitlines())
    if policy.lowered_must or report.conformant:  # a passing gate must say why it is no claim
        assert claim["reason"] in render(report, "text")
        assert "not a conformance claim" in render(report, "html")


def test_lowered_must_via_the_cli_says_not_a_conformance_claim_in_every_report(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in VECTORS["valid/primary.json"]["frames"]))
    argv = ["validate", str(path), "--rule", "seq.contiguous=info", "--allow-lowering-must",
            "--report", "json=r.json", "--report", "html=r.html", "--badge", "b.svg"]
    assert main(argv) == 0
    assert "not a conformance claim" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["claim"]["reason"].startswith("not a conformance claim")
    assert json.loads((tmp_path / "r.json").read_text())["policy"]["lowered_must"] == ["seq.contiguous"]
    assert "not a conformance claim" in (tmp_path / "r.html").read_text()
    assert ET.fromstring((tmp_path / "b.svg").read_text()).get("aria-label").endswith("no claim")


@pytest.mark.parametrize("name, policy, message, color", [
    ("valid/primary.json", Policy(), "conformant", "#2ea44f"),
    ("invalid/pair.tool_matched.json", Policy(), "not conformant", "#cf222e"),
    ("valid/primary.json", Policy(severities={"frame.text": "off"}), "no claim", "#6e7781"),
])
def test_badge_is_self_contained_svg_showing_the_claim(name, policy, message, color):
    report = judged(name, policy)
    text = render(report, "badge")
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.get("aria-label") == f"agent-events v{report.protocol_version}: {message}"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert message in texts
    assert any(r.get("fill") == color for r in root.iter(f"{SVG}rect"))
    title = root.find(f"{SVG}title").text
    assert title == (report.claim().statement or title) and report.profile.name in title
    # nothing to fetch: no links, no external images or fonts, only local fragment references
    assert "href" not in text and not re.findall(r"url\((?!#)", text)
    width = int(root.get("width"))
    assert width == sum(int(r.get("width")) for r in list(root.iter(f"{SVG}rect"))[1:3])


# -- no claim without evidence, nor under relaxed budgets ---------------------------------

TIME_SYNC_ONLY = b'{"type": "time_sync", "client_time_ms": 1.0, "server_time_ms": 2.0}\n'


def _write(path, name):
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in VECTORS[name]["frames"]))
    return path


def test_a_recording_without_a_completed_run_makes_no_claim_and_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sync.jsonl").write_bytes(TIME_SYNC_ONLY)
    assert main(["validate", "sync.jsonl", "--report", "json=r.json", "--badge", "b.svg"]) == 0
    out = capsys.readouterr().out
    assert "Conforms to" not in out and not any(line.startswith("claim: ") for line in out.splitlines())
    assert "not a conformance claim: no run completed" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["claim"]["statement"] is None and data["claim"]["withheld_because"] == "no_runs"
    assert ET.fromstring((tmp_path / "b.svg").read_text()).get("aria-label").endswith("no claim")


def test_every_recording_needs_a_completed_run_and_the_reason_names_those_without(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sync.jsonl").write_bytes(TIME_SYNC_ONLY)
    _write(tmp_path / "good.jsonl", "valid/primary.json")
    assert main(["validate", "good.jsonl", "sync.jsonl", "--format", "json"]) == 0
    claim = json.loads(capsys.readouterr().out)["claim"]
    assert claim["withheld_because"] == "no_runs" and "no run completed in sync.jsonl" in claim["reason"]
    assert "good.jsonl" not in claim["reason"]


def test_a_scenario_that_started_no_run_is_not_required_to_complete_one():
    base = judged("valid/primary.json")
    with_runs = base.sections[0]
    probe_only = Section("robustness", "scenario", with_runs.outcomes, stats={"starts_sent": 0, "runs_completed": 0})
    started = Section("multiplex", "scenario", with_runs.outcomes, stats={"starts_sent": 3, "runs_completed": 0})
    primary = Section("primary", "scenario", with_runs.outcomes, stats=dict(with_runs.stats))
    assert primary.stats["runs_completed"] == 1
    ok = Report(base.profile, [primary, probe_only], command="check")
    assert claim_of(ok)["eligible"] is True
    withheld = claim_of(Report(base.profile, [primary, started], command="check"))
    assert withheld["withheld_because"] == "no_runs" and "in multiplex" in withheld["reason"]


@pytest.mark.parametrize("budgets, eligible, named", [
    ({}, True, None),
    ({"first_event_ms": 100, "deadline_s": 30}, True, None),  # the defaults, spelled out
    ({"first_event_ms": 50}, True, "tighter budgets: first event 50 ms instead of 100 ms"),
    ({"tool_gap_ms": 2, "deadline_s": 10}, True, "tool gap 2 ms instead of 5 ms, deadline 10 s instead of 30 s"),
    ({"delivery_ms": 250}, False, "looser than profile actions-agent's defaults: delivery 250 ms instead of 100 ms"),
    ({"first_event_ms": 50, "deadline_s": 60}, False, "deadline 60 s instead of 30 s"),
    ({"deadline_s": 1e9}, False, "deadline 1e+09 s instead of 30 s"),
])
def test_budgets_tighter_than_the_defaults_are_named_and_looser_ones_void_the_claim(budgets, eligible, named):
    base = judged("valid/primary.json")
    report = Report(base.profile.with_budgets(**budgets), base.sections, command="validate")
    assert report.conformant and report.passed_gate
    claim = claim_of(report)
    assert claim["eligible"] is eligible
    if eligible:
        assert claim["withheld_because"] is None
        assert (named in claim["statement"]) if named else ("budgets" not in claim["statement"])
    else:
        assert claim["withheld_because"] == "looser_budgets" and named in claim["reason"]
        assert claim["status"] == "no claim" and claim["reason"] in render(report, "text")


def test_looser_budgets_on_the_command_line_withhold_the_claim(tmp_path, capsys):
    path = _write(tmp_path / "t.jsonl", "valid/primary.json")
    assert main(["validate", str(path), "--first-event-ms", "500", "--format", "json"]) == 0
    claim = json.loads(capsys.readouterr().out)["claim"]
    assert claim["withheld_because"] == "looser_budgets" and "first event 500 ms" in claim["reason"]


def test_the_schema_lists_every_reason_a_claim_can_be_withheld():
    from agent_events.conformance.reporting.claim import WITHHELD_REASONS

    enum = report_schema()["$defs"]["claim"]["properties"]["withheld_because"]["enum"]
    assert enum == [*WITHHELD_REASONS, None]
