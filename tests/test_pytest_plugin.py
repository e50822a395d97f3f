"""The pytest plugin, run from scratch directories with pytester: passing, failing, and silent."""

from __future__ import annotations

import pytest

import broken_agents as b
import misbehaving_servers as m
from agent_events import reference_agent
from agent_events.conformance.tooling.pytest_plugin import option_names

SCRATCH_TEST = "def test_something_of_the_team():\n    assert 1 + 1 == 2\n"


@pytest.fixture(scope="module")
def good_url():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        yield server.url


@pytest.fixture(scope="module")
def broken_url():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0,
                                       bridge_factory=b.bridge(b.DropsProgress)) as server:
        yield server.url


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_without_a_url_it_adds_nothing_and_changes_nothing(pytester):
    pytester.makepyfile(SCRATCH_TEST)
    result = run(pytester, "-v")
    result.assert_outcomes(passed=1)
    assert "agent-events::" not in result.stdout.str()
    collected = run(pytester, "--collect-only", "-q")
    assert collected.stdout.lines[0].endswith("test_something_of_the_team")
    assert "1 test collected" in collected.stdout.str()


def test_the_options_have_their_own_group(pytester):
    result = run(pytester, "--help")
    result.stdout.fnmatch_lines(["agent-events conformance*", "*--agent-events-url=URL*",
                                 "*--agent-events-profile=NAME*", "*--agent-events-scenario=NAME*"])
    text = result.stdout.str()
    assert all(name in text for name in option_names())  # what the docs read is what pytest offers


def test_a_conformant_endpoint_collects_one_passing_item_per_scenario_and_rule(pytester, good_url):
    pytester.makepyfile(SCRATCH_TEST)
    result = run(pytester, "--agent-events-url", good_url, "--agent-events-scenario", "primary",
                 "--agent-events-scenario", "fallback", "-v", *m.PLUGIN_RELAXED_FLAGS)
    result.stdout.fnmatch_lines(["*test_something_of_the_team PASSED*",
                                 "*agent-events::primary::seq.contiguous PASSED*",
                                 "*agent-events::fallback::fallback.continuity PASSED*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes["passed"] > 30
    # the cancel rule belongs to another scenario, so it is no item here
    assert "cancel.terminal" not in result.stdout.str()


def test_a_broken_endpoint_fails_the_rule_with_expected_observed_and_excerpt(pytester, broken_url):
    result = run(pytester, "--agent-events-url", broken_url, "--agent-events-scenario", "primary",
                 *m.PLUGIN_RELAXED_FLAGS)
    result.assert_outcomes(failed=1, passed=result.parseoutcomes()["passed"],
                           skipped=result.parseoutcomes().get("skipped", 0))
    out = result.stdout.str()
    assert "FAILED agent-events::primary::seq.contiguous" in out
    result.stdout.fnmatch_lines(["*MUST seq.contiguous*", "*expected: seq*", "*observed: seq*missing*",
                                 "*#* agent_completed*"])


@pytest.mark.parametrize("where", ["flag", "config"])
def test_the_items_follow_the_profile_from_the_flag_or_the_config_file(pytester, good_url, where):
    if where == "config":
        pytester.makefile(".toml", **{"agent-events": 'profile = "generic"\n'})
    flags = ["--agent-events-profile", "generic"] if where == "flag" else []
    result = run(pytester, "--agent-events-url", good_url, "--agent-events-scenario", "primary", "--collect-only",
                 "-q", *flags, *m.PLUGIN_RELAXED_FLAGS)
    out = result.stdout.str()
    assert "agent-events::primary::seq.contiguous" in out
    assert "profile.actions.tools" not in out  # the actions-agent profile's rules are not generic's


def test_k_selects_among_the_generated_items(pytester, good_url):
    result = run(pytester, "--agent-events-url", good_url, "--agent-events-scenario", "primary",
                 "-k", "pair", "-v", *m.PLUGIN_RELAXED_FLAGS)
    result.assert_outcomes(passed=3)


def test_an_unreachable_url_is_one_error_naming_the_url_not_a_failure_per_item(pytester):
    url = f"ws://127.0.0.1:{m.unused_port()}/"
    result = run(pytester, "--agent-events-url", url)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str()
    assert out.count(f"cannot connect to {url}") == 1, out
    assert "refused" in out
    assert "failed" not in out and "Traceback" not in out


@pytest.mark.parametrize("args, message", [
    (["--agent-events-profile", "nosuch"], "--agent-events-profile: profile must be one of actions-agent, generic"),
    (["--agent-events-report", "nosuch=x.out"], "--agent-events-report: reports: "),
    (["--agent-events-report", "nosuch"], "--agent-events-report"),
    (["--agent-events-scenario", "nosuch"], "--agent-events-scenario"),
])
def test_a_bad_setting_is_one_usage_error_before_anything_connects(pytester, args, message):
    # the URL answers nothing: a usage error must come before any connection is tried
    url = f"ws://127.0.0.1:{m.unused_port()}/"
    pytester.makepyfile(SCRATCH_TEST)
    result = run(pytester, "--agent-events-url", url, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    err = result.stderr.str()
    assert message in err, err
    assert "INTERNALERROR" not in result.stdout.str() + err and "KeyError" not in err
    assert "cannot connect" not in result.stdout.str()


def test_config_file_live_keys_reach_the_plugin(pytester, good_url):
    """``[tool.agent-events.check] scenarios = [...]`` works in pytest as with ``agent-events check``."""
    pytester.makefile(".toml", pyproject='[tool.agent-events.check]\nscenarios = ["primary"]\nruns = 1\n')
    result = run(pytester, "--agent-events-url", good_url, "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    collected = [line for line in result.stdout.lines if line.startswith("agent-events::")]
    assert collected and all(line.startswith("agent-events::primary::") for line in collected), collected


@pytest.mark.parametrize("args, message", [
    (["--agent-events-url", "notaurl"], "--agent-events-url: not a ws:// or wss:// URL: 'notaurl'"),
    (["--agent-events-url", "ws://127.0.0.1:1/", "--agent-events-runs", "100001"], "must be at most 100000"),
])
def test_a_bad_url_or_count_is_one_usage_error_not_a_failure_per_item(pytester, args, message):
    pytester.makepyfile(SCRATCH_TEST)
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "ValueError" not in result.stdout.str() + result.stderr.str()
    assert "failed" not in result.stdout.str()


@pytest.mark.parametrize("how", ["--agent-events-strict", "--agent-events-fail-on=warning", "config file"])
def test_a_should_failure_warns_and_fails_only_when_the_gate_says_so(pytester, how):
    strict_flags = [how] if how.startswith("--") else []
    with m.running(m.NoSubprotocol()) as url:
        base = ["--agent-events-url", url, "--agent-events-scenario", "primary", "-k", "subprotocol"]
        lenient = run(pytester, *base)
        if not strict_flags:
            pytester.makefile(".toml", **{"agent-events": "strict = true\n"})
        strict = run(pytester, *base, *strict_flags)
    lenient.assert_outcomes(passed=1, warnings=1)
    assert "AgentEventsWarning" in lenient.stdout.str()
    strict.assert_outcomes(failed=1)


def test_a_rule_turned_off_is_skipped(pytester):
    with m.running(m.NoSubprotocol()) as url:
        result = run(pytester, "--agent-events-url", url, "--agent-events-scenario", "primary",
                     "-k", "subprotocol", "--agent-events-off", "transport.subprotocol", "-rs")
    result.assert_outcomes(skipped=1)


def test_the_fixtures_check_the_reference_agent_from_a_test(pytester):
    pytester.makepyfile("""
        def test_reference_agent_is_conformant(agent_events_check, reference_agent):
            assert reference_agent.startswith("ws://127.0.0.1:")
            report = agent_events_check(scenarios=["primary"], first_event_ms=10_000, delivery_ms=10_000,
                                        tool_gap_ms=10_000)
            assert report.conformant
            assert report.target["url"] == reference_agent
    """)
    run(pytester).assert_outcomes(passed=1)


def test_the_fixtures_are_layered_so_a_conftest_can_override_them(pytester, broken_url):
    pytester.makeconftest(f"""
        import pytest

        @pytest.fixture
        def agent_events_url():
            return {broken_url!r}

        @pytest.fixture
        def agent_events_options():
            return {{"scenarios": ["primary"], "deadline_s": 5, **{m.RELAXED!r}}}
    """)
    pytester.makepyfile("""
        def test_the_overrides_reach_the_check(agent_events_check):
            report = agent_events_check()
            assert [s.name for s in report.sections] == ["primary"]
            assert report.statuses()["seq.contiguous"] == "FAIL"
    """)
    run(pytester).assert_outcomes(passed=1)
