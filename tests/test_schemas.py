"""Protocol v1's schemas: well-formed, self-consistent, and agreeing with every message vector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from agent_events import schemas

VECTOR_CASES = [
    pytest.param(group["schema"], test["data"], test["valid"], id=f"{file}::{test['description']}")
    for file, group in schemas.message_vectors()
    for test in group["tests"]
]


@pytest.mark.parametrize("name", schemas.schema_names())
def test_schema_is_valid_against_the_draft_2020_12_metaschema(name):
    Draft202012Validator.check_schema(schemas.load(name))


@pytest.mark.parametrize("name", schemas.schema_names())
def test_id_is_absolute_versioned_and_matches_the_file(name):
    schema = schemas.load(name)
    assert schema["$id"] == f"{schemas.BASE_URI}{name}.json"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(("schema", "data", "valid"), VECTOR_CASES)
def test_message_vector(schema, data, valid):
    errors = list(schemas.validator(schema).iter_errors(data))
    assert (not errors) == valid, [e.message for e in errors]


def test_there_are_enough_vectors_and_both_verdicts_for_every_message_schema():
    assert len(VECTOR_CASES) >= 40
    for _, group in schemas.message_vectors():
        verdicts = {t["valid"] for t in group["tests"]}
        assert verdicts == {True, False}, group["schema"]


def test_every_message_schema_has_vectors():
    covered = {group["schema"] for _, group in schemas.message_vectors()}
    messages = set(schemas.SERVER_TYPES.values()) | set(schemas.CLIENT_TYPES.values())
    assert messages <= covered


def test_dispatch_tables_are_derived_from_the_schemas():
    assert schemas.RUN_EVENT_TYPES == (
        "agent_started", "agent_thinking", "tool_executing", "tool_completed", "progress", "agent_completed",
    )
    assert set(schemas.RUN_EVENT_TYPES) < set(schemas.SERVER_TYPES)
    assert schemas.SERVER_TYPES["time_sync"] == "time_sync_reply"
    assert schemas.CLIENT_TYPES["time_sync"] == "time_sync"
    assert "invalid_json" in schemas.ERROR_CODES


def test_an_error_names_the_one_branch_that_applies():
    """if/then dispatch: a bad agent_started reports agent_started's problem, not eight branches'."""
    bad = {"type": "agent_started", "run_id": "r", "seq": 0, "emitted_at": 1.0, "agent_name": "A",
           "payload": {"message": "hi", "attempt": "second"}}
    errors = list(schemas.validator(schemas.SERVER_MESSAGE).iter_errors(bad))
    assert len(errors) == 1
    leaf = min(errors[0].context or [errors[0]], key=lambda e: len(e.path)) if errors[0].context else errors[0]
    assert "second" in str(leaf.message) or any("second" in c.message for c in errors[0].context)


def test_envelope_is_closed_and_payloads_are_open():
    ok = {"type": "progress", "run_id": "r", "seq": 1, "emitted_at": 1.0, "agent_name": "A",
          "payload": {"message": "half", "percent": 50, "eta_s": 3}}
    assert schemas.validator("progress").is_valid(ok)
    assert not schemas.validator("progress").is_valid({**ok, "extra": 1})


def test_registry_never_touches_the_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("schema resolution tried to open a socket")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    schemas.validator.cache_clear()
    try:
        for name in schemas.schema_names():
            schemas.validator(name).is_valid({})  # forces every $ref to resolve
    finally:
        schemas.validator.cache_clear()


def test_exported_schemas_validate_with_plain_jsonschema(tmp_path):
    """The README's snippet, on the files `agent-events schema --out` writes."""
    from agent_events.conformance.cli import main
    from referencing import Registry, Resource

    assert main(["schema", "--out", str(tmp_path)]) == 0
    docs = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert len(docs) == len(schemas.schema_names())
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs)
    by_name = {d["$id"].rsplit("/", 1)[1]: d for d in docs}
    validator = Draft202012Validator(by_name["agent_completed.json"], registry=registry)
    sample = {
        "type": "agent_completed", "run_id": "r1", "seq": 9, "emitted_at": 1764064800000.0,
        "agent_name": "ActionsAgent",
        "payload": {"message": "Action plan ready with 5 steps", "result": {
            "success": True, "steps_generated": 5, "execution_time_ms": 2847,
            "has_partial_extraction": False, "fallback_used": False}},
    }
    validator.validate(sample)
    del sample["payload"]["result"]["fallback_used"]
    assert not validator.is_valid(sample)


def test_readme_snippet_is_the_tested_one():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "Registry().with_resources((d[\"$id\"], Resource.from_contents(d)) for d in docs)" in readme
