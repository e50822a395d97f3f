"""The fast validation path gives the reference's verdict (jsonschema) on every message."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_events import schemas
from agent_events.conformance.core import schema_validation as sv
from agent_events.conformance.tooling.synth import RunSpec, run_frames

SAMPLES = [f["msg"] for spec in (RunSpec(), RunSpec(fallback=True), RunSpec(cancel_after=4))
           for f in run_frames(spec) if f["dir"] == "recv"]
SAMPLES += [{"type": "error", "code": "unknown_run", "message": "no such run", "run_id": "r"},
            {"type": "time_sync", "client_time_ms": 1.5, "server_time_ms": 2.5}]
SAMPLES += [t["data"] for _, group in schemas.message_vectors() for t in group["tests"]
            if isinstance(t["data"], dict) and t["data"].get("type") in schemas.SERVER_TYPES]

scalars = st.none() | st.booleans() | st.integers(-3, 2**40) | st.floats(-1e6, 1e16, allow_nan=False) | st.text(max_size=6)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                      max_leaves=8)


@st.composite
def mutated(draw):
    """A sample message with some fields (top level or payload, result) set, deleted or added."""
    message = copy.deepcopy(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(0, 3))):
        target = message
        payload = message.get("payload")
        if isinstance(payload, dict) and draw(st.booleans()):
            target = payload
            if isinstance(payload.get("result"), dict) and draw(st.booleans()):
                target = payload["result"]
        keys = sorted(target) + ["extra"]
        key = draw(st.sampled_from(keys))
        if key in target and draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(values)
    return message


def reference_verdict(message) -> bool:
    return schemas.validator(schemas.SERVER_TYPES[message["type"]]).is_valid(message)


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_fast_path_agrees_with_jsonschema(message):
    type_ = message.get("type")
    if type(type_) is not str or type_ not in schemas.SERVER_TYPES:
        return
    reference = reference_verdict(message)
    assert (sv.check(type_, message) == []) == reference
    if not _has_trailing_newline(message):  # the one known divergence, settled by the reference
        assert sv.fast_is_valid(type_, message) == reference


def _has_trailing_newline(value) -> bool:
    if isinstance(value, str):
        return value.endswith("\n")
    if isinstance(value, dict):
        return any(_has_trailing_newline(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_trailing_newline(v) for v in value)
    return False


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(SAMPLES), st.text(alphabet="ab\n ", min_size=1, max_size=4))
def test_engines_disagreeing_on_regex_newlines_still_give_the_reference_verdict(message, name):
    # ECMA-262 "$" does not match before a final newline; Python's re does: jsonschema decides.
    message = {**message, "agent_name": name} if "agent_name" in message else message
    assert (sv.check(message["type"], message) == []) == reference_verdict(message)


@pytest.mark.skipif(sv.jsonschema_rs is None, reason="jsonschema-rs (the [fast] extra) is not installed")
@pytest.mark.parametrize("name", ["ab\n", "ab\n\n", "a b", "", "x" * 129, "tool\nname"])
@pytest.mark.parametrize("field", ["agent_name", "tool_name"])
def test_the_fast_engine_refuses_a_name_with_a_final_newline_without_the_lookahead(field, name):
    # the fast engine gets defs.json's name pattern without its "(?!\n)" (a backtracking regex
    # cost 0.35 us a name); its "$" still ends the string, so both engines refuse these names
    message = next(copy.deepcopy(m) for m in SAMPLES if m.get("type") == "tool_completed")
    target = message if field == "agent_name" else message["payload"]
    target[field] = name
    assert not sv.fast_is_valid("tool_completed", message)
    assert not reference_verdict(message)
    target[field] = "ab"
    assert sv.fast_is_valid("tool_completed", message) and reference_verdict(message)


def test_only_a_final_unescaped_python_end_is_rewritten_for_the_fast_engine():
    assert sv.fast_pattern("^[a-z]{1,8}$(?!\\n)") == "^[a-z]{1,8}$"
    assert sv.fast_pattern("^a\\$(?!\\n)") == "^a\\$(?!\\n)"  # an escaped "$": a literal dollar
    assert sv.fast_pattern("^a\\\\$(?!\\n)") == "^a\\\\$"  # an escaped backslash, then the end
    assert sv.fast_pattern("^(?!x)a$") == "^(?!x)a$"
    shipped = schemas.load("defs")
    fast = sv.for_fast_engine(shipped)
    assert fast["$defs"]["name"]["pattern"] == "^[A-Za-z0-9_.:-]{1,128}$"
    assert shipped["$defs"]["name"]["pattern"].endswith("$(?!\\n)")  # the reference keeps it


@pytest.mark.parametrize("message", SAMPLES[:12])
def test_valid_samples_pass_both_engines(message):
    assert sv.fast_is_valid(message["type"], message)
    assert reference_verdict(message)


def test_the_fast_engine_is_reported():
    assert sv.ENGINE in ("jsonschema-rs", "jsonschema")


def test_client_messages_are_validated_for_run_bookkeeping():
    assert sv.is_valid_client({"type": "start_run", "input": "x"})
    assert not sv.is_valid_client({"type": "start_run"})
    assert not sv.is_valid_client({"type": "nope"})
    assert not sv.is_valid_client(["start_run"])


def test_without_the_fast_engine_jsonschema_does_both_jobs():
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['jsonschema_rs'] = None\n"
        "from agent_events import schemas\n"
        "from agent_events.conformance import schema_validation as sv\n"
        "from agent_events.conformance.api import validate_frames\n"
        "assert sv.ENGINE == 'jsonschema', sv.ENGINE\n"
        "vectors = dict(schemas.sequence_vectors())\n"
        "assert validate_frames(vectors['valid/primary.json']['frames']).conformant\n"
        "bad = validate_frames(vectors['invalid/schema.payload.json']['frames'])\n"
        "assert 'schema.payload' in bad.sections[0].violation_counts\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
