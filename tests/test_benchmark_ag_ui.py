"""Benchmark 10's recording is what it claims: AG-UI 1.1 events that neither validator faults.

Measurement 10 times ``validate --dialect ag-ui`` against ``ag-ui-validate`` on a generated
recording and asserts 0 findings from both; these tests check the generator itself on a short
recording (every event valid against the vendored schema as published, no finding from our
judge nor from ag-ui-validate's engine), and that the same check catches a broken one.
No timing is asserted here: speed is the benchmark's.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from jsonschema import Draft202012Validator

from agent_events.dialects import AG_UI
from agent_events.dialects.judge import judge_events
from agent_events.dialects.schema import load
from benchmarks import ag_ui, ag_ui_recording

ag_ui_validate = pytest.importorskip("ag_ui_validate", reason="ag-ui-validate (the test extra) is not installed")


def _theirs(events: list[dict]):
    from ag_ui_validate.transport import TransportOptions, validate_body

    async def body():
        yield b"".join(json.dumps(e).encode() + b"\n" for e in events)

    result = asyncio.run(validate_body(body(), None, TransportOptions(recorded=True)))
    return result.report


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return list(ag_ui_recording.events(2_000))


def test_the_recording_has_whole_runs_of_every_kind_of_event_the_benchmark_names(events):
    types = Counter(e["type"] for e in events)
    assert len(events) >= 2_000
    assert types["RUN_STARTED"] == types["RUN_FINISHED"] > 40  # many sequential runs
    assert events[0]["type"] == "RUN_STARTED" and events[-1]["type"] == "RUN_FINISHED"
    for kind in ("TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END", "TOOL_CALL_START",
                 "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT", "STEP_STARTED", "STEP_FINISHED",
                 "REASONING_START", "REASONING_MESSAGE_START", "REASONING_MESSAGE_CONTENT", "REASONING_MESSAGE_END",
                 "REASONING_END"):
        assert types[kind], kind
    assert list(ag_ui_recording.events(2_000)) == events  # the same recording on every run


def test_every_event_is_valid_against_the_vendored_schema_as_published(events):
    """Every event by jsonschema-rs; one event of each shape (type and keys) by the reference
    ``jsonschema`` too, which is about 4 ms an event on this schema (8 s for all of them)."""
    import jsonschema_rs

    schema = load(AG_UI.schema)
    event_schema = {"$schema": schema["$schema"], "$ref": "#/$defs/Event", "$defs": schema["$defs"]}
    fast, reference = jsonschema_rs.Draft202012Validator(event_schema), Draft202012Validator(event_schema)
    shapes = {(e["type"], tuple(sorted(e))): i for i, e in reversed(list(enumerate(events)))}
    assert len(shapes) >= 15  # every kind of event the recording has, not a handful
    bad = [(i, e["type"]) for i, e in enumerate(events) if not fast.is_valid(e)]
    bad += [(i, events[i]["type"], next(reference.iter_errors(events[i])).message) for i in sorted(shapes.values())
            if not reference.is_valid(events[i])]
    assert bad == []


def test_neither_validator_finds_anything(events):
    judge = judge_events(AG_UI, events)
    assert judge.violation_counts == {}
    assert judge.runs_completed == sum(e["type"] == "RUN_FINISHED" for e in events)
    report = _theirs(events)
    assert report.event_count == len(events)
    assert [d.rule for d in report.diagnostics] == [] and report.internal_errors == []


def test_a_tool_call_left_open_is_found_by_both(events):
    """The check above could fail: drop one TOOL_CALL_END and both tools object."""
    i = next(i for i, e in enumerate(events) if e["type"] == "TOOL_CALL_END")
    broken = events[:i] + events[i + 1:]
    assert judge_events(AG_UI, broken).violation_counts.get("ag-ui.run.finished_open") == 1
    assert {d.rule for d in _theirs(broken).diagnostics if d.severity == "error"}


def test_measure_runs_both_commands_on_the_same_file_and_counts_the_same_events():
    data = ag_ui.measure(600, 150, repeats=1)
    (ours,), (theirs,) = data["ours"], data["theirs"]
    assert ours["events"] == theirs["events"] == data["events"] >= 600
    assert ours["findings"] == theirs["findings"] == 0
    assert data["quarter_events"] >= 150 and data["ours_quarter"][0]["events"] == data["quarter_events"]
    for sample in (ours, theirs):
        assert sample["exit_code"] == 0 and sample["seconds"] > 0 and sample["peak_rss_mib"] > 5


def test_validate_of_a_foreign_dialect_does_not_load_our_checker(tmp_path):
    """Start-up is part of every ``validate`` (and of benchmark 10's figure): judging AG-UI needs
    neither our protocol's checker nor its compiled schema tables."""
    import subprocess
    import sys

    path = tmp_path / "r.ndjson"
    ag_ui_recording.write_ndjson(path, 40)
    code = ("import sys; from agent_events.conformance.cli import main\n"
            "print('exit', main(['validate', '--dialect', 'ag-ui', sys.argv[1], '-q']))\n"
            "print(sorted(m for m in ('agent_events.conformance.core.checker', 'agent_events.conformance.core.schema_validation')"
            " if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-2:] == ["exit 0", "[]"], proc.stdout + proc.stderr
