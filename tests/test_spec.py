"""The normative spec agrees with the schemas and the rule registry it states in prose."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent_events import schemas
from agent_events.conformance.core.rules import RULES, BY_ID

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "docs" / "hooks"))
import spec_tables  # noqa: E402

SPEC = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
#: The spec as written: without the committed generated tables (the rule table cites every rule).
PROSE = spec_tables.strip(SPEC)
ANCHORS = set(re.findall(r"^#+ .*\{#([a-z0-9-]+)\}\s*$", PROSE, flags=re.M))
CITED = set(re.findall(r"\[`([a-z_]+(?:\.[a-z_]+)+)`\]", PROSE))


@pytest.mark.parametrize("rule", [r for r in RULES if not r.deprecated], ids=lambda r: r.id)
def test_every_rule_is_stated_in_its_section(rule):
    assert rule.section in ANCHORS, f"{rule.id}: no section #{rule.section} in docs/spec.md"
    assert rule.id in CITED, f"{rule.id} is never stated in docs/spec.md"


def test_the_spec_cites_only_registered_rules():
    assert CITED <= set(BY_ID), CITED - set(BY_ID)


@pytest.mark.parametrize("placeholder", ["envelope", "event-payloads", "error-codes", "rules"])
def test_tables_that_restate_the_schemas_or_registry_are_generated_and_committed(placeholder):
    """The envelope, payload, error-code and rule tables are generated from the sources and
    committed between their markers, so the spec reads whole in the repository."""
    opening, closing = f"<!-- agent-events:{placeholder} -->\n", f"<!-- /agent-events:{placeholder} -->"
    assert SPEC.count(opening) == 1 and SPEC.count(closing) == 1
    body = SPEC.split(opening, 1)[1].split(closing, 1)[0]
    assert body.lstrip().startswith("|"), f"no table between the {placeholder} markers"
    assert "| code | sent when |" not in PROSE and "| event | payload" not in PROSE  # never written by hand


def test_the_committed_tables_match_the_schemas_and_the_registry():
    assert spec_tables.render(SPEC) == SPEC, (
        f"docs/spec.md's generated tables drifted from the schemas or the rule registry; "
        f"regenerate them with: {spec_tables.COMMAND}")


def test_the_drift_test_sees_a_stale_table():
    stale = SPEC.replace("| `invalid_json` |", "| `invalid_jsn` |", 1)
    assert stale != SPEC and spec_tables.render(stale) == SPEC


def test_the_regenerate_command_is_a_check_too():
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "hooks" / "spec_tables.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_every_error_code_says_when_it_is_sent():
    code = schemas.load("error")["properties"]["code"]
    assert list(code["x-enumDescriptions"]) == list(schemas.ERROR_CODES)
    assert all(text.strip() for text in code["x-enumDescriptions"].values())
