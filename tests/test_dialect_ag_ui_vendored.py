"""The vendored AG-UI 1.1 material: unchanged (provenance sha256), licensed, and in step with the
``ag-ui-protocol`` models on PyPI (a drift test in both directions).

``ag-ui-protocol`` 1.0.0 says ``PROTOCOL_VERSION = "1.0"``, yet its models already carry every 1.1
event type (the reasoning and subagent events included): the schema and the models list the same
31 types. Their fields agree too, but for one the 1.1 schema added that the 1.0.0 models lack:
``REASONING_ENCRYPTED_VALUE.encryptedValueType``. That difference is asserted exactly, so a new
difference either way fails here.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "schemas" / "dialects" / "ag-ui-1.1"
SCHEMA = json.loads((ROOT / "schema.json").read_text())
#: Fields the 1.1 schema has and the installed models do not (type -> fields).
SCHEMA_ONLY = {"REASONING_ENCRYPTED_VALUE": {"encryptedValueType"}}


def test_files_are_unchanged_from_upstream():
    rows = [line.split("\t") for line in (ROOT / "PROVENANCE.tsv").read_text().splitlines() if line.strip()]
    assert len(rows) == 70  # schema, manifest, 68 streams
    for local, upstream, commit, size, digest in rows:
        data = (ROOT / local).read_bytes()
        # (the size column is upstream's own record; the sha256 of the bytes is what proves them unchanged)
        assert size.isdigit() and hashlib.sha256(data).hexdigest() == digest, local
        assert len(commit) == 40 and upstream.startswith(("docs/spec/1.1/", "spec/1.1/"))


def test_licence_notice_and_version_are_kept():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "Permission is hereby granted" in (ROOT / "LICENSE").read_text()
    assert SCHEMA["$id"] == "https://ag-ui.com/spec/1.1/schema.json"
    from agent_events.dialects import AG_UI

    assert AG_UI.version == "1.1" and AG_UI.schema == "ag-ui-1.1"


def _models():
    core = pytest.importorskip("ag_ui.core", reason="ag-ui-protocol (the test extra) is not installed")
    models = {}
    for name in dir(core):
        obj = getattr(core, name)
        if inspect.isclass(obj) and hasattr(obj, "model_fields") and "type" in obj.model_fields:
            default = obj.model_fields["type"].default
            if hasattr(default, "value") and isinstance(default.value, str) and name.endswith("Event"):
                models[default.value] = obj
    return core, models


def _schema_properties(name: str) -> set[str]:
    node = SCHEMA["$defs"][name]
    out = set(node.get("properties", {}))
    for part in node.get("allOf", []):
        out |= _schema_properties(part["$ref"].rsplit("/", 1)[1])
    return out


def test_every_event_type_of_the_schema_is_a_model_and_vice_versa():
    core, models = _models()
    enum = set(SCHEMA["$defs"]["EventType"]["enum"])
    assert enum == set(core.EventType.__members__)
    assert enum == set(models)
    from agent_events.dialects import AG_UI

    assert set(AG_UI.types) == enum


def test_fields_of_each_event_agree_but_for_the_known_1_1_additions():
    _, models = _models()
    from agent_events.dialects.schema import event_types

    differences = {}
    for type_, def_name in event_types("ag-ui-1.1").items():
        model_fields = {f.alias or k for k, f in models[type_].model_fields.items()}
        schema_fields = _schema_properties(def_name)
        assert model_fields <= schema_fields, (type_, model_fields - schema_fields)
        if schema_fields - model_fields:
            differences[type_] = schema_fields - model_fields
    assert differences == SCHEMA_ONLY


def test_events_the_models_serialise_are_valid_for_the_dialect():
    core, _ = _models()
    from agent_events.dialects import AG_UI
    from agent_events.dialects.judge import judge_events

    events = [core.RunStartedEvent(thread_id="t", run_id="r"),
              core.TextMessageStartEvent(message_id="m", role="assistant"),
              core.TextMessageContentEvent(message_id="m", delta="hi"),
              core.TextMessageEndEvent(message_id="m"),
              core.ToolCallStartEvent(tool_call_id="c", tool_call_name="search"),
              core.ToolCallArgsEvent(tool_call_id="c", delta="{}"),
              core.ToolCallEndEvent(tool_call_id="c"),
              core.RunFinishedEvent(thread_id="t", run_id="r")]
    judge = judge_events(AG_UI, [e.model_dump_json(by_alias=True, exclude_none=True) for e in events])
    assert not judge.violations, [(v.rule_id, v.observed) for v in judge.violations]
    assert judge.outcomes()["ag-ui.schema.event"].checked == len(events)
