"""Dialect files: every mistake named by file, line and key (exit 2), and the two worked examples.

The seed's shape (no call id, no seq, tools paired by name in order) is judged by our rules:
a tool left open fails ``pair.tool_matched``, and ``seq.contiguous`` is N/A with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent_events.conformance.api import validate_lines
from agent_events.dialects import resolve
from agent_events.dialects.toml_file import DialectFileError, loads

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "dialects"

GOOD = """\
name = "x"
version = "1"

[fields]
type = "/event"

[runs]
opens = ["start"]
finishes = ["end"]

[[families]]
name = "tool"
opens = ["call"]
closes = ["done"]
key = "/id"
"""


def _error(text: str) -> str:
    with pytest.raises(DialectFileError) as info:
        loads(text, "d.toml")
    return str(info.value)


def test_a_good_file_loads():
    dialect = loads(GOOD, "d.toml")
    assert dialect.name == "x" and dialect.families[0].key.text == "/id"
    assert "pair.unique_id" in dialect.rules and "seq.contiguous" in dialect.not_applicable


def test_unknown_key_names_line_key_and_the_nearest():
    message = _error(GOOD.replace('opens = ["call"]', 'opnes = ["call"]'))
    assert message.startswith("d.toml:13: families[0].opnes: unknown key (did you mean 'opens'?)"), message
    message = _error(GOOD.replace('version = "1"', 'version = "1"\nframming = "json"'))
    assert message.startswith("d.toml:3: framming: unknown key (did you mean 'framing'?)"), message


def test_bad_pointer_names_line_and_key():
    message = _error(GOOD.replace('type = "/event"', 'type = "event"'))
    assert message.startswith("d.toml:5: fields.type: 'event' is not a JSON pointer"), message
    message = _error(GOOD.replace('key = "/id"', 'key = "/a~2b"'))
    assert message.startswith("d.toml:15: families[0].key: '/a~2b' is not a JSON pointer: '~' must be followed by 0 or 1"), message


def test_a_type_both_opening_and_closing():
    message = _error(GOOD.replace('finishes = ["end"]', 'finishes = ["end", "start"]'))
    assert message.startswith("d.toml:8: runs.opens: type 'start' both opens and ends a run"), message
    message = _error(GOOD.replace('closes = ["done"]', 'closes = ["done", "call"]'))
    assert message.startswith("d.toml:14: families[0].closes: type 'call' both opens and closes family 'tool'"), message


def test_other_mistakes_are_named():
    assert "framing: must be one of" in _error(GOOD.replace('version = "1"', 'version = "1"\nframing = "xml"'))
    assert 'needs envelope' in _error(GOOD.replace('version = "1"', 'version = "1"\nframing = "envelope"'))
    assert "name_at" in _error(GOOD.replace('key = "/id"', 'pairing = "name-in-order"'))
    assert "not valid TOML" in _error("name = ")
    assert "version is required" in _error(GOOD.replace('version = "1"\n', ""))


def test_cli_exit_2_with_the_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('type = "/event"', 'type = "event"'))
    run = tmp_path / "run.jsonl"
    run.write_text('{"event": "start"}\n')
    proc = subprocess.run([sys.executable, "-m", "agent_events.conformance.cli", "validate", "--dialect", str(bad), str(run)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"{bad}:5: fields.type: 'event' is not a JSON pointer" in proc.stderr
    assert "Traceback" not in proc.stderr


def _validate(dialect: str, recording: str):
    dialect = resolve(str(EXAMPLES / dialect))
    with open(EXAMPLES / recording, "rb") as stream:
        return validate_lines(stream, recording, dialect=dialect)


def test_seed_shape_passes_with_seq_rules_na_and_said_why():
    section = _validate("seed.toml", "seed-run.jsonl")
    assert section.conformant
    seq = section.outcomes["seq.contiguous"]
    assert not seq.applicable and "has no seq field" in seq.reason
    assert "pairs by name, in order" in section.outcomes["pair.unique_id"].reason
    assert section.outcomes["pair.tool_matched"].checked == 1 and section.outcomes["pair.no_orphan"].checked == 3


def test_seed_shape_with_a_tool_left_open_fails_pairing():
    section = _validate("seed.toml", "seed-run-tool-left-open.jsonl")
    assert not section.conformant
    (violation,) = [v for v in section.violations if v.rule_id == "pair.tool_matched"]
    assert "'action_plan_processor' still open" in violation.observed
    assert violation.location == "seed-run-tool-left-open.jsonl:10"


def test_seed_shape_pairs_by_name_in_order():
    """A completion of a tool whose executing was for another name is an orphan, not a match."""
    dialect = resolve(str(EXAMPLES / "seed.toml"))
    lines = [json.dumps(e) for e in (
        {"event": "agent_started"}, {"event": "tool_executing", "data": {"tool_name": "a"}},
        {"event": "tool_completed", "data": {"tool_name": "b"}}, {"event": "agent_completed"})]
    section = validate_lines(lines, "mem", dialect=dialect)
    assert {v.rule_id for v in section.violations} == {"pair.no_orphan", "pair.tool_matched"}


def test_seed_shape_allows_one_fallback_restart_only():
    dialect = resolve(str(EXAMPLES / "seed.toml"))
    starts = [{"event": "agent_started"}] * 3 + [{"event": "agent_completed"}]
    section = validate_lines([json.dumps(e) for e in starts], "mem", dialect=dialect)
    assert [v.rule_id for v in section.violations] == ["fallback.single"]


def test_envelope_shape_judges_seq_and_delivery_from_its_pointers():
    section = _validate("envelope.toml", "envelope-run.jsonl")
    assert section.conformant
    assert section.outcomes["seq.contiguous"].checked == 5
    assert section.outcomes["latency.delivery"].checked == 5
    assert section.outcomes["latency.first_event"].checked == 1


def test_envelope_shape_seq_gap_and_missing_envelope_fail():
    dialect = resolve(str(EXAMPLES / "envelope.toml"))
    frames = [{"action": "agent_event", "payload": {"kind": "run.begin", "runId": "r", "n": 0}},
              {"action": "agent_event", "payload": {"kind": "run.end", "runId": "r", "n": 2}},
              {"action": "agent_event"}]
    section = validate_lines([json.dumps(f) for f in frames], "mem", dialect=dialect)
    rules = [v.rule_id for v in section.violations]
    assert rules == ["seq.contiguous", "frame.json"], rules
    assert "no event at the envelope pointer '/payload'" in section.violations[1].observed


def test_extending_ag_ui_with_a_timestamp_unit_judges_delivery():
    dialect = loads('extends = "ag-ui"\nname = "ag-ui-ms"\n[fields]\ntimestamp_unit = "ms"\n', "x.toml")
    assert "latency.delivery" in dialect.rules and "latency.delivery" not in dialect.not_applicable
    assert dialect.families == resolve("ag-ui").families and dialect.hooks == ("ag-ui.chunks",)
