"""agent_events.conformance.tooling.testing: assertions over a recorded stream or a live endpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import misbehaving_servers as m
from agent_events import reference_agent, schemas
from agent_events.conformance.api import validate_frames
from agent_events.conformance.tooling.testing import (
    assert_conformant, assert_endpoint_conformant, assert_stream_conformant, failure_message,
)

ROOT = Path(__file__).resolve().parent.parent
VECTORS = dict(schemas.sequence_vectors())


def received(name: str) -> list:
    return [f["msg"] for f in VECTORS[name]["frames"] if f["dir"] == "recv" and "msg" in f]


def failure_of(call) -> str:
    with pytest.raises(AssertionError) as exc:
        call()
    return str(exc.value)


def test_a_conformant_stream_returns_its_report():
    report = assert_stream_conformant(received("valid/primary.json"))
    assert report.conformant and report.target == {"kind": "messages"}


def test_a_broken_stream_names_the_rule_expected_observed_and_the_frames():
    message = failure_of(lambda: assert_stream_conformant(received("invalid/seq.contiguous.json")))
    first, blank, block, expected, observed, *frames = message.splitlines()
    assert first == "stream of 10 message(s) is not conformant: 1 rule(s) failed (seq.contiguous)" and blank == ""
    assert block.startswith("seq.contiguous [MUST] run 'run-1', frame #2: seq starts at 0")
    assert expected == "  expected: seq 2" and observed.startswith("  observed: seq 3")
    assert frames[-1].endswith("<-") and "seq=3" in frames[-1]


def test_every_failed_rule_gets_its_own_block_and_shoulds_only_when_strict():
    frames = VECTORS["invalid/seq.contiguous.json"]["frames"]  # also one agent_thinking too few (SHOULD)
    lenient = failure_of(lambda: assert_stream_conformant(frames))
    assert "profile.actions.thinking" not in lenient and "stream of 11 frame(s)" in lenient
    strict = failure_of(lambda: assert_stream_conformant(frames, strict=True))
    assert "2 rule(s) failed (seq.contiguous, profile.actions.thinking)" in strict
    blocks = [b for b in strict.split("\n\n")[1:]]
    assert [b.split()[0] for b in blocks] == ["seq.contiguous", "profile.actions.thinking"]
    assert all("  expected: " in b and "  observed: " in b for b in blocks)


def test_a_file_path_is_validated_and_named(tmp_path):
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    for path, name in ((good, "valid/primary.json"), (bad, "invalid/pair.tool_matched.json")):
        path.write_text("".join(json.dumps(f) + "\n" for f in VECTORS[name]["frames"]))
    assert assert_stream_conformant(good).conformant
    assert assert_stream_conformant(str(good)).conformant
    message = failure_of(lambda: assert_stream_conformant(bad))
    assert message.startswith(f"{bad} is not conformant: 1 rule(s) failed (pair.tool_matched)")
    assert f"{bad}:11" in message  # file:line of the offending frame
    with pytest.raises(FileNotFoundError):
        assert_stream_conformant(tmp_path / "missing.jsonl")


def test_many_violations_of_one_rule_are_counted_not_all_shown():
    stream = received("valid/primary.json")
    stream = stream + [dict(stream[-1], seq=stream[-1]["seq"] + 1 + i) for i in range(6)]  # events after the end
    message = failure_of(lambda: assert_stream_conformant(stream))
    assert message.count("order.completed_last [MUST]") == 3
    assert "... and 3 more order.completed_last violation(s)" in message


def test_assert_conformant_follows_the_report_policy():
    from agent_events.conformance.reporting.report import Policy

    frames = VECTORS["invalid/profile.actions.thinking.json"]["frames"]
    assert failure_message(validate_frames(frames)) == ""
    assert assert_conformant(validate_frames(frames)).conformant
    message = failure_of(lambda: assert_conformant(validate_frames(frames, policy=Policy(max_warnings=0))))
    assert "warnings exceed max_warnings 0" in message


def test_a_live_endpoint_conformant_and_not():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        report = assert_endpoint_conformant(server.url, scenarios=["primary"], **m.RELAXED)
    assert report.conformant and [s.name for s in report.sections] == ["primary"]
    with m.running(m.IgnoresCancel()) as url:
        message = failure_of(lambda: assert_endpoint_conformant(url, scenarios=["cancel"], deadline_s=1.0,
                                                                race_tries=1, **m.RELAXED))  # the races: test_races
    assert message.startswith(f"{url} is not conformant: 1 rule(s) failed (cancel.terminal)")
    assert "cancel.terminal [MUST]" in message and "  observed: " in message


def test_pytest_shows_the_blocks_and_hides_the_helper_frame(pytester):
    pytester.makepyfile(test_stream="""
        from agent_events import schemas
        from agent_events.conformance.tooling.testing import assert_stream_conformant

        def test_it():
            frames = dict(schemas.sequence_vectors())["invalid/pair.tool_matched.json"]["frames"]
            assert_stream_conformant(frames)
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert re.search(r"^E\s+AssertionError: stream of 11 frame\(s\) is not conformant: 1 rule\(s\) failed "
                     r"\(pair.tool_matched\)$", out, re.M)
    assert re.search(r"^E\s+expected: a tool_completed for 'run-1-t3'", out, re.M)
    assert "raise AssertionError(message)" not in out  # __tracebackhide__: the user's line is the last shown


def test_a_report_repr_is_its_verdict_not_its_fields():
    report = validate_frames(VECTORS["invalid/seq.contiguous.json"]["frames"])
    assert repr(report) == "<Report api: not conformant, failed the gate; failed: seq.contiguous>"


def test_the_message_shown_in_the_docs_is_the_real_one():
    page = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    shown = re.search(r"pytest would print:\n\n```text\n(.*?)^```", page, re.M | re.S)[1]
    shown = "\n".join(re.sub(r"^E(   |$)", "", line, count=1) for line in shown.splitlines())
    shown = shown.replace("AssertionError: ", "", 1)
    started = {"type": "agent_started", "run_id": "r-1", "seq": 0, "emitted_at": 1.0, "agent_name": "A",
               "payload": {"message": "Starting", "attempt": "primary"}}
    thinking = {"type": "agent_thinking", "run_id": "r-1", "seq": 1, "emitted_at": 2.0, "agent_name": "A",
                "payload": {"message": "Thinking"}}
    assert failure_of(lambda: assert_stream_conformant([started, thinking], profile="generic")) == shown
