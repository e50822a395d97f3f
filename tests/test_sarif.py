"""``--format sarif``: SARIF 2.1.0, validated against the shipped schema (tests/data, no network)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema
import orjson
import pytest

from agent_events import schemas
from agent_events.conformance.core import rules
from agent_events.conformance.api import validate_files, validate_frames, validate_messages
from agent_events.conformance.cli import main
from agent_events.conformance.reporting.report import Policy, Report
from agent_events.conformance.reporters import render
from agent_events.conformance.reporters.sarif import SarifReporter

SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
VECTORS = dict(schemas.sequence_vectors())


@cache
def validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def assert_valid(log: dict) -> None:
    errors = sorted(validator().iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def transcript(directory: Path, name: str) -> Path:
    path = directory / (name.replace("/", "_") + "l")
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in VECTORS[name]["frames"]))
    return path


def sarif(report: Report) -> dict:
    return json.loads(render(report, "sarif"))


def test_the_shipped_schema_rejects_what_is_not_sarif():
    """The validation below means something: the schema file catches a broken log."""
    good = sarif(validate_messages([]))
    assert_valid(good)
    for breakage in ({"version": "2.0.0"}, {"runs": "none"}):
        with pytest.raises(jsonschema.ValidationError):
            validator().validate({**good, **breakage})
    bad_level = json.loads(json.dumps(good))
    bad_level["runs"][0]["tool"]["driver"]["rules"][0]["defaultConfiguration"]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(bad_level)


@pytest.mark.parametrize("names", [
    ("invalid/pair.tool_matched.json",),
    ("valid/primary.json", "invalid/seq.contiguous-reorder.json", "invalid/latency.tool_gap.json"),
    ("invalid/frame.text.json", "invalid/frame.json.json", "invalid/isolation.run_scope.json"),
])
def test_validate_writes_sarif_that_validates_with_one_result_per_violation_at_file_and_line(names, workdir):
    paths = [transcript(workdir, name) for name in names]
    assert main(["validate", *map(str, paths), "--format", "json", "--report", "sarif=out.sarif"]) in (0, 1)
    log = json.loads((workdir / "out.sarif").read_text())
    assert_valid(log)
    report = validate_files(paths)
    kept = [v for s in report.sections for v in s.violations]
    results = log["runs"][0]["results"]
    assert len(results) == len(kept) == report.violation_total
    for result, v in zip(results, kept):
        assert result["ruleId"] == v.rule_id
        assert log["runs"][0]["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == v.rule_id
        physical = result["locations"][0]["physicalLocation"]
        file, line = v.location.rsplit(":", 1)
        assert physical["artifactLocation"]["uri"] == Path(file).name  # relative to the checkout
        assert physical["region"]["startLine"] == int(line)
        # the line really is the offending frame: its excerpt's last entry summarises that line's message
        frame = orjson.loads((workdir / file).read_bytes().splitlines()[int(line) - 1])
        if "msg" in frame and isinstance(frame["msg"], dict) and "type" in frame["msg"] and v.index is not None:
            assert frame["msg"]["type"] in v.excerpt[-1]


def test_every_registry_rule_is_a_sarif_rule_with_help_and_spec_url():
    log = sarif(validate_messages([]))
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "agent-events"
    assert [r["id"] for r in driver["rules"]] == [r.id for r in rules.RULES]
    for descriptor, rule in zip(driver["rules"], rules.RULES):
        url = f"https://agent-events.dev/spec/#{rule.section}"
        assert descriptor["helpUri"] == url
        assert url in descriptor["help"]["text"] and url in descriptor["help"]["markdown"]
        assert rule.rationale in descriptor["help"]["text"]
        assert descriptor["shortDescription"]["text"] == rule.title
        assert descriptor["defaultConfiguration"]["level"] == {"MUST": "error", "SHOULD": "warning",
                                                               "MAY": "note"}[rule.level.value]
    assert log["runs"][0]["results"] == []


def test_levels_follow_the_effective_severity_and_off_rules_have_no_results():
    frames = VECTORS["invalid/order.thinking.json"]["frames"]  # order.thinking + profile.actions.thinking
    base = validate_frames(frames)
    policy = Policy(severities={"order.thinking": "error", "profile.actions.thinking": "info",
                                "latency.tool_gap": "off"})
    log = sarif(Report(base.profile, base.sections, policy))
    assert_valid(log)
    levels = {r["ruleId"]: r["level"] for r in log["runs"][0]["results"]}
    assert levels == {"order.thinking": "error", "profile.actions.thinking": "note"}
    overrides = {o["descriptor"]["id"]: o["configuration"]
                 for o in log["runs"][0]["invocations"][0]["ruleConfigurationOverrides"]}
    assert overrides["latency.tool_gap"] == {"level": "none", "enabled": False}
    assert overrides["order.thinking"] == {"level": "error", "enabled": True}
    silenced = Report(base.profile, base.sections, Policy(severities={"order.thinking": "off"}))
    assert [r["ruleId"] for r in sarif(silenced)["runs"][0]["results"]] == ["profile.actions.thinking"]
    assert log["runs"][0]["invocations"][0]["exitCode"] == 1


def test_results_without_a_file_use_logical_locations_or_the_url():
    messages = [m["msg"] for m in VECTORS["invalid/pair.tool_matched.json"]["frames"] if m["dir"] == "recv"]
    report = validate_messages(messages)
    log = sarif(report)
    assert_valid(log)
    (result,) = log["runs"][0]["results"]
    assert "physicalLocation" not in result["locations"][0]
    assert result["locations"][0]["logicalLocations"][0]["name"] == "run-1"
    live = Report(report.profile, report.sections, target={"kind": "url", "url": "ws://127.0.0.1:9/agent"},
                  command="check")
    log = sarif(live)
    assert_valid(log)
    assert log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] \
        == "ws://127.0.0.1:9/agent"
    assert log["runs"][0]["automationDetails"]["id"] == "agent-events/check/"


def test_violations_beyond_the_kept_ones_are_announced_not_lost(workdir):
    path = workdir / "garbage.jsonl"
    path.write_text("not json\n" * 150)  # 150 frame.json violations; the checker keeps the first ones
    report = validate_files([path])
    log = sarif(report)
    assert_valid(log)
    results = log["runs"][0]["results"]
    assert 0 < len(results) < 150
    notes = log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert f"{150 - len(results)} more frame.json" in notes[0]["message"]["text"]
    assert notes[0]["associatedRule"]["id"] == "frame.json"


def test_sarif_of_stdin_and_absolute_paths_validates(workdir, tmp_path_factory, monkeypatch, capsys):
    outside = transcript(tmp_path_factory.mktemp("elsewhere"), "invalid/pair.unique_id.json")
    log = SarifReporter().log(validate_files([outside]))
    assert_valid(log)
    uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == outside.resolve().as_uri()
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(outside.read_bytes())))
    assert main(["validate", "-", "--format", "sarif"]) == 1
    log = json.loads(capsys.readouterr().out)
    assert_valid(log)
    assert "physicalLocation" not in log["runs"][0]["results"][0]["locations"][0]


def test_sarif_carries_the_verdict_policy_and_claim():
    frames = VECTORS["valid/primary.json"]["frames"]
    report = validate_frames(frames)
    props = sarif(report)["runs"][0]["properties"]
    assert props["conformant"] is True and props["claim"]["eligible"] is True
    assert props["policy"]["gate"] == "error" and props["profile"]["name"] == "actions-agent"
