"""The checker never raises: any frame, however broken, becomes violations (or none)."""

from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent_events import schemas
from agent_events.conformance.core.checker import Checker
from agent_events.conformance.core.profiles import PROFILES
from agent_events.conformance.tooling.synth import RunSpec, run_frames
from agent_events.conformance.core.violations import Violation

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)
#: JSON objects that look like protocol messages, so the deep paths are reached too.
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from([*schemas.SERVER_TYPES, "agent_dreaming"]) | json_values},
    optional={
        "run_id": st.sampled_from(["r1", "r2"]) | json_values,
        "seq": st.integers(-2, 5) | json_values,
        "emitted_at": st.floats(allow_nan=False) | json_values,
        "agent_name": st.text(max_size=5),
        "code": st.sampled_from(schemas.ERROR_CODES) | json_values,
        "payload": st.fixed_dictionaries({}, optional={
            "attempt": st.sampled_from(["primary", "fallback"]) | json_values,
            "tool_call_id": st.sampled_from(["t1", "t2"]) | json_values,
            "tool_name": st.sampled_from(["prompt_builder", "x"]) | json_values,
            "message": st.text(max_size=5),
            "result": st.fixed_dictionaries({}, optional={
                "fallback_used": st.booleans() | json_values, "cancelled": st.booleans() | json_values}) | json_values,
        }) | json_values,
    },
)
frames = st.one_of(
    json_values,
    message_like,
    st.binary(max_size=64),
    st.text(max_size=64),
    message_like.map(json.dumps),
    message_like.map(lambda m: json.dumps(m).encode()),
)
client_frames = st.fixed_dictionaries({"type": st.sampled_from(["start_run", "cancel_run", "time_sync"]) | json_values},
                                      optional={"run_id": st.sampled_from(["r1", "r2"]) | json_values,
                                                "input": st.text(max_size=3)}) | json_values | st.text(max_size=8)
steps = st.lists(st.tuples(st.sampled_from(["recv", "recv", "recv", "send"]), st.sampled_from(["c0", "c1"]),
                           st.none() | st.floats(0, 1e13, allow_nan=False), frames | client_frames), max_size=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.none() | st.floats(0, 1e13, allow_nan=False))
def test_any_input_gives_violations_never_an_exception(script, close_at):
    checker = Checker()
    for direction, conn, at, frame in script:
        result = checker.receive(frame, at, conn) if direction == "recv" else checker.send(frame, at, conn)
        assert isinstance(result, list) and all(isinstance(v, Violation) for v in result)
    assert all(isinstance(v, Violation) for v in checker.close(close_at))
    for outcome in checker.outcomes().values():
        assert outcome.checked >= outcome.violations >= 0
    for violation in checker.violations:
        assert isinstance(violation.to_dict(), dict)


valid = [f for f in run_frames(RunSpec(fallback=True)) if f["dir"] == "recv"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(valid) - 1), st.sampled_from(["type", "run_id", "seq", "emitted_at", "payload"]),
                          json_values), max_size=4))
@example(corruptions=[(0, "emitted_at", 1764064799901.0)])  # moved, but still within the delivery budget
def test_corrupting_fields_of_a_valid_run_never_raises(corruptions):
    run = copy.deepcopy(valid)
    for index, key, value in corruptions:
        run[index]["msg"][key] = value
    checker = Checker()
    for frame in run:
        checker.receive(frame["msg"], frame["t"])
    checker.close(frame["t"] + 1.0)
    if corruptions:
        assert checker.violations or all(_harmless(run[i], valid[i], k) for i, k, _ in corruptions)


def _harmless(frame: dict, original: dict, key: str) -> bool:
    """A corruption no rule can see: the value did not change, or emitted_at moved to another
    valid time from which the event is still received within the delivery budget (an event
    received "before" its emitted_at is a clock matter, not a violation: see the spec)."""
    value = frame["msg"][key]
    if value == original["msg"][key]:
        return True
    budget = PROFILES["actions-agent"].delivery_ms
    return (key == "emitted_at" and type(value) in (int, float) and value >= 0
            and frame["t"] - value <= budget)
