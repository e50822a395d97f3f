"""Every first-party AG-UI 1.1 conformance stream in scope, judged with AG-UI's expected outcome.

A stream expected to fail must fail (a MUST finding) with a finding of the rule that stands for
AG-UI's expected error (``expected_rules`` in ``agent_events/dialects/ag_ui_scope.toml``); one
expected to complete must raise no MUST finding (warnings allowed: AG-UI's "completed with
warnings"). Out-of-scope areas are listed there with the reason; a new area fails here until it
is placed.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from agent_events.dialects import AG_UI
from agent_events.dialects.judge import judge_events

ROOT = Path(__file__).resolve().parents[1]
STREAMS = ROOT / "schemas" / "dialects" / "ag-ui-1.1" / "streams"
SCOPE = tomllib.loads((ROOT / "src" / "agent_events" / "dialects" / "ag_ui_scope.toml").read_text())
IN_SCOPE = set(SCOPE["areas"]["in_scope"])
OUT_OF_SCOPE = SCOPE["areas"]["out_of_scope"]
EXPECTED_RULES = SCOPE["expected_rules"]


def _fixtures():
    return [json.loads(p.read_text()) for p in sorted(STREAMS.glob("*.json"))]


FIXTURES = _fixtures()
JUDGED = [f for f in FIXTURES if f["area"] in IN_SCOPE]


def test_every_stream_is_placed():
    assert len(FIXTURES) == 68
    manifest = [line for line in (STREAMS / "MANIFEST.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert manifest == sorted(p.name for p in STREAMS.glob("*.json"))
    unplaced = {f["area"] for f in FIXTURES} - IN_SCOPE - set(OUT_OF_SCOPE)
    assert not unplaced, f"areas neither judged nor listed out of scope: {unplaced}"
    assert not IN_SCOPE & set(OUT_OF_SCOPE)
    assert len(JUDGED) == 46 and len(FIXTURES) - len(JUDGED) == 22


@pytest.mark.parametrize("fixture", JUDGED, ids=[f["name"] for f in JUDGED])
def test_stream_is_judged_with_ag_ui_expected_outcome(fixture):
    judge = judge_events(AG_UI, fixture["stream"])
    must = [v for v in judge.violations if v.level == "MUST"]
    expect = fixture["expect"]
    if expect["outcome"] == "completed":
        assert not must, [(v.rule_id, v.observed) for v in must]
    else:
        assert expect["outcome"] == "failed"
        rule = EXPECTED_RULES[expect["errorContains"]]
        assert rule in {v.rule_id for v in must}, (rule, [(v.rule_id, v.observed) for v in judge.violations])


@pytest.mark.parametrize("fixture", [f for f in FIXTURES if f["area"] not in IN_SCOPE],
                         ids=[f["name"] for f in FIXTURES if f["area"] not in IN_SCOPE])
def test_out_of_scope_stream_is_not_failed_falsely(fixture):
    """Not judged for what it tests (consumer state), but its lifecycle and schema are: every one of
    them is expected to complete, so none may fail a MUST rule of the kit."""
    assert fixture["expect"]["outcome"] == "completed"
    judge = judge_events(AG_UI, fixture["stream"])
    assert not [v for v in judge.violations if v.level == "MUST"]


def test_every_expected_error_maps_to_a_registered_ag_ui_rule():
    from agent_events.conformance.core import rules

    failed = {f["expect"]["errorContains"] for f in JUDGED if f["expect"]["outcome"] == "failed"}
    assert failed == set(EXPECTED_RULES)
    assert all(rules.get(r).dialect == "ag-ui" for r in EXPECTED_RULES.values())
