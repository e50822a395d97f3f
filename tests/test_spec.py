"""The normative spec agrees with the schemas and the rule registry it states in prose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent_events import schemas
from agent_events.conformance.rules import RULES, BY_ID

SPEC = (Path(__file__).parent.parent / "docs" / "spec.md").read_text(encoding="utf-8")
ANCHORS = set(re.findall(r"^#+ .*\{#([a-z0-9-]+)\}\s*$", SPEC, flags=re.M))
CITED = set(re.findall(r"\[`([a-z_]+(?:\.[a-z_]+)+)`\]", SPEC))


@pytest.mark.parametrize("rule", [r for r in RULES if not r.deprecated], ids=lambda r: r.id)
def test_every_rule_is_stated_in_its_section(rule):
    assert rule.section in ANCHORS, f"{rule.id}: no section #{rule.section} in docs/spec.md"
    assert rule.id in CITED, f"{rule.id} is never stated in docs/spec.md"


def test_the_spec_cites_only_registered_rules():
    assert CITED <= set(BY_ID), CITED - set(BY_ID)


@pytest.mark.parametrize("placeholder", ["envelope", "event-payloads", "error-codes", "rules"])
def test_tables_that_restate_the_schemas_or_registry_are_generated_not_written(placeholder):
    """The envelope, payload, error-code and rule tables are filled in from the source at build time."""
    assert f"<!-- agent-events:{placeholder} -->" in SPEC
    assert "| code | sent when |" not in SPEC and "| event | payload" not in SPEC


def test_every_error_code_says_when_it_is_sent():
    code = schemas.load("error")["properties"]["code"]
    assert list(code["x-enumDescriptions"]) == list(schemas.ERROR_CODES)
    assert all(text.strip() for text in code["x-enumDescriptions"].values())
