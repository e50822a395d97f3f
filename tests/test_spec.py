"""The normative spec agrees with the schemas and the rule registry it states in prose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import schemas
from conformance.rules import RULES, BY_ID

SPEC = (Path(__file__).parent.parent / "docs" / "spec.md").read_text(encoding="utf-8")
ANCHORS = set(re.findall(r"^#+ .*\{#([a-z0-9-]+)\}\s*$", SPEC, flags=re.M))
CITED = set(re.findall(r"\[`([a-z_]+(?:\.[a-z_]+)+)`\]", SPEC))


@pytest.mark.parametrize("rule", [r for r in RULES if not r.deprecated], ids=lambda r: r.id)
def test_every_rule_is_stated_in_its_section(rule):
    assert rule.section in ANCHORS, f"{rule.id}: no section #{rule.section} in docs/spec.md"
    assert rule.id in CITED, f"{rule.id} is never stated in docs/spec.md"


def test_the_spec_cites_only_registered_rules():
    assert CITED <= set(BY_ID), CITED - set(BY_ID)


def test_error_code_table_matches_the_schema():
    table = re.search(r"\| code \| sent when \|\n\|---\|---\|\n((?:\|.*\n)+)", SPEC)
    assert table, "error code table not found"
    codes = re.findall(r"^\| `([a-z_]+)` \|", table.group(1), flags=re.M)
    assert tuple(codes) == schemas.ERROR_CODES


def test_the_run_events_table_names_every_run_event_in_order():
    table = re.search(r"\| event \| payload \(REQUIRED in bold\) \|\n\|---\|---\|\n((?:\|.*\n)+)", SPEC)
    assert table
    assert tuple(re.findall(r"^\| `([a-z_]+)` \|", table.group(1), flags=re.M)) == schemas.RUN_EVENT_TYPES


@pytest.mark.parametrize("event", schemas.RUN_EVENT_TYPES)
def test_payload_fields_marked_required_are_required_by_the_schema(event):
    row = re.search(rf"^\| `{event}` \| (.*) \|$", SPEC, flags=re.M).group(1)
    bold = set(re.findall(r"\*\*`([a-z_]+)`\*\*", row))
    required = set(schemas.load(event)["$defs"]["payload"]["required"])
    assert bold == required


def test_result_payload_required_fields_match_the_schema():
    para = SPEC[SPEC.index("The **result payload**"):]
    para = para[: para.index("\n\n")]
    assert set(re.findall(r"\*\*`([a-z_]+)`\*\*", para)) == set(schemas.load("result")["required"])
