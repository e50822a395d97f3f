"""Against the real reference server with one deliberate bug, ``check`` exits 1 and names exactly that rule.

A bug the wire can show (a dropped or a reordered event) is made by ``agent-events proxy`` in
front of the unmodified reference agent; a bug inside the agent (a tool left open, an event
sent to another connection) by a test-only subclass plugged into the server's hooks.
"""

from __future__ import annotations

import json

import pytest

import broken_agents as b
from agent_events import proxy, reference_agent
from misbehaving_servers import RELAXED_FLAGS
from agent_events.conformance.cli import main
from agent_events.conformance.core.violations import FAIL, WARN

#: (name, reference agent hooks, proxy faults, scenario, the one rule that must fail)
CASES = [
    ("drops an event", {}, ["drop:9"], "primary", "seq.contiguous"),        # the progress event
    ("reorders two events", {}, ["swap:1"], "primary", "seq.contiguous"),   # first agent_thinking after the second
    ("leaves a tool open", dict(agent_factory=b.agent(b.LeavesToolOpen)), [], "primary", "pair.tool_matched"),
    ("leaks into another connection", dict(bridge_factory=b.bridge(b.LeaksStart)), [], "concurrency",
     "isolation.run_scope"),
]


@pytest.mark.parametrize("hooks, faults, scenario, rule_id", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_names_exactly_the_broken_rule(hooks, faults, scenario, rule_id, capsys):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0, **hooks) as server, \
            proxy.run_in_thread(server.url, faults) as endpoint:
        code = main(["check", endpoint.url, "--scenario", scenario, "--format", "json", *RELAXED_FLAGS])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    flagged = [r["id"] for r in data["rules"] if r["status"] in (FAIL, WARN)]
    assert flagged == [rule_id]
    violation = next(v for s in data["sections"] for v in s["violations"] if v["rule"] == rule_id)
    assert violation["expected"] and violation["observed"] and violation["excerpt"]


def test_the_text_report_shows_expected_observed_and_the_excerpt(capsys):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server, \
            proxy.run_in_thread(server.url, ["drop:9"]) as endpoint:
        assert main(["check", endpoint.url, "--scenario", "primary", *RELAXED_FLAGS]) == 1
    out = capsys.readouterr().out
    assert "FAIL seq.contiguous" in out
    assert "expected: seq" in out and "observed: seq" in out and "missing" in out
    assert "NOT CONFORMANT" in out
