"""The error code that answers each invalid client message is decided once, in the message vectors
(``error_code``), and the spec, the schemas and the reference agent agree with it."""

from __future__ import annotations

import orjson
import pytest

from agent_events import schemas
from agent_events.reference_agent.protocol import ProtocolError, parse_client_message

CLIENT_SCHEMAS = {*schemas.CLIENT_TYPES.values(), "client_message"}
CLIENT_VECTORS = [(group["schema"], test) for _, group in schemas.message_vectors()
                  if group["schema"] in CLIENT_SCHEMAS for test in group["tests"]]
INVALID = [(s, t) for s, t in CLIENT_VECTORS if not t["valid"]]
VALID = [(s, t) for s, t in CLIENT_VECTORS if t["valid"]]


def _id(case) -> str:
    return f"{case[0]}: {case[1]['description']}"


@pytest.mark.parametrize("case", INVALID, ids=_id)
def test_every_invalid_client_vector_names_the_code_that_answers_it(case):
    _, test = case
    assert test.get("error_code") in schemas.ERROR_CODES


@pytest.mark.parametrize("case", INVALID, ids=_id)
def test_the_reference_agent_answers_with_the_vector_code(case):
    _, test = case
    answer = parse_client_message(orjson.dumps(test["data"]).decode())
    assert isinstance(answer, ProtocolError) and answer.code == test["error_code"], answer


@pytest.mark.parametrize("case", VALID, ids=_id)
def test_the_reference_agent_accepts_every_valid_client_vector(case):
    _, test = case
    assert not isinstance(parse_client_message(orjson.dumps(test["data"]).decode()), ProtocolError)


def test_the_decided_cases_have_vectors():
    """No type, a non-string type, extra top-level fields of each client message, unknown options."""
    def codes(predicate) -> set:
        return {t.get("error_code") for _, t in CLIENT_VECTORS if predicate(t["data"])}

    assert codes(lambda d: isinstance(d, dict) and "type" not in d) == {"invalid_message"}
    assert codes(lambda d: isinstance(d, dict) and "type" in d and not isinstance(d["type"], str)) == {"unknown_type"}
    for type_ in schemas.CLIENT_TYPES:
        allowed = set(schemas.load(schemas.CLIENT_TYPES[type_])["properties"])
        assert codes(lambda d: isinstance(d, dict) and d.get("type") == type_ and set(d) - allowed) == {"invalid_message"}
    known = set(schemas.load("start_run")["properties"]["options"]["properties"])
    assert codes(lambda d: isinstance(d, dict) and set(d.get("options") or {}) - known) == {None}  # valid: ignored


def test_the_spec_states_each_decision():
    from pathlib import Path

    spec = (Path(__file__).parent.parent / "docs" / "spec.md").read_text(encoding="utf-8")
    assert "a message with no `type` at all" in spec and "(`invalid_message`" in spec
    assert "Client messages are **closed** at the top level" in spec
    assert "`progress` MAY appear in it, as in any attempt" in spec
    assert "The result payload's REQUIRED fields are the protocol's, not a profile's" in spec
