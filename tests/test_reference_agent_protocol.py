"""Client message parsing: every input becomes a message or a documented error, never an exception."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings, strategies as st

from agent_events import schemas
from agent_events.reference_agent.protocol import (
    CancelRun, ProtocolError, StartRun, TimeSync, fast_valid_start_run, parse_client_message,
)

START_RUN = schemas.validator(schemas.CLIENT_TYPES["start_run"])
ERROR = schemas.validator("error")

json_scalars = st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)

start_runs = st.fixed_dictionaries(
    {"type": st.just("start_run")},
    optional={
        "input": st.text(max_size=20) | json_values,
        "run_id": st.text(max_size=130) | json_values,
        "options": st.fixed_dictionaries({}, optional={"simulate_failure": st.sampled_from(["primary", "secondary"]) | json_values,
                                                       "extra": json_values}) | json_values,
        "colour": json_values,
    },
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(start_runs)
def test_the_fast_path_only_accepts_what_the_schema_accepts(message):
    if fast_valid_start_run(message):
        assert START_RUN.is_valid(message)


@settings(max_examples=400)
@given(start_runs)
def test_parsing_agrees_with_the_schema(message):
    parsed = parse_client_message(json.dumps(message))
    if START_RUN.is_valid(message):
        assert isinstance(parsed, StartRun) and parsed.input == message["input"]
    else:
        assert isinstance(parsed, ProtocolError) and parsed.code == "invalid_message"


@settings(max_examples=300)
@given(st.text(max_size=40) | st.binary(max_size=20) | json_values.map(json.dumps))
def test_any_frame_becomes_a_message_or_a_documented_error(frame):
    parsed = parse_client_message(frame)
    if isinstance(parsed, ProtocolError):
        message = parsed.to_message()
        assert not list(ERROR.iter_errors(message)), message
        assert message["code"] in schemas.ERROR_CODES
    else:
        assert isinstance(parsed, (StartRun, CancelRun, TimeSync))


def test_the_common_start_run_takes_the_fast_path():
    assert fast_valid_start_run({"type": "start_run", "run_id": "r1", "input": "x", "options": {"simulate_failure": "primary"}})
    assert not fast_valid_start_run({"type": "start_run", "input": "x", "options": {"simulate_failure": ["primary"]}})
