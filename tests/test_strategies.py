"""The hypothesis strategies: valid runs pass, each mutation is caught by the rule it names."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from agent_events.conformance.core import rules
from agent_events.conformance.tooling import strategies as aes
from agent_events.conformance.core.checker import Checker
from agent_events.conformance.offline.transcript import feed, frames_from_vector

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def check(frames, profile) -> Checker:
    checker = Checker(profile)
    feed(checker, frames_from_vector(frames))
    checker.close()
    return checker


@pytest.mark.parametrize("profile", ["actions-agent", "generic"])
@FAST
@given(data=aes.st.data())
def test_every_valid_run_passes(profile, data):
    frames = data.draw(aes.runs(profile, cancel=None, timing=None, client_frames=None))
    checker = check(frames, profile)
    assert checker.violations == [], [(v.rule_id, v.observed) for v in checker.violations]
    assert checker.runs_completed == 1


@pytest.mark.parametrize("profile", ["actions-agent", "generic"])
@FAST
@given(data=aes.st.data())
def test_multiplexed_runs_on_several_connections_pass(profile, data):
    frames = data.draw(aes.multiplexed_runs(profile, conns=2))
    checker = check(frames, profile)
    assert checker.violations == []
    assert checker.runs_completed == checker.runs >= 4


CASES = [(p, r) for p in ("actions-agent", "generic") for r in aes.mutation_rules(p)]


@pytest.mark.parametrize("profile,rule", CASES, ids=[f"{p}:{r}" for p, r in CASES])
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=aes.st.data())
def test_each_mutation_is_caught_by_its_rule_and_only_what_it_implies(profile, rule, data):
    mutation = data.draw(aes.mutations(rule, profile))
    found = set(check(mutation.frames, profile).violation_counts)
    assert rule in found, mutation.description
    assert found <= {rule} | mutation.may_also, (mutation.description, found)


def test_mutations_cover_every_rule_the_checker_can_see():
    checkable = {r.id for r in rules.RULES if r.scope != "live"}
    assert set(aes.MUTATIONS) == checkable


@FAST
@given(frames=aes.runs(cancel=None))
def test_messages_extracts_what_the_client_received(frames):
    msgs = aes.messages(frames)
    assert msgs and all(m["type"] != "start_run" for m in msgs)
    assert msgs[-1]["type"] == "agent_completed"
