"""The pytest plugin with a foreign dialect: ``pytest --agent-events-url ws://... --agent-events-dialect ag-ui``
collects one item per AG-UI live scenario and rule, against the AG-UI endpoints of tests/ag_ui_endpoints.py
(built from the ``ag-ui-protocol`` models, on 127.0.0.1), run with pytester."""

from __future__ import annotations

import pytest

pytest.importorskip("ag_ui.core", reason="ag-ui-protocol (the test extra) is not installed")

from ag_ui_endpoints import AgUiEndpoint  # noqa: E402

SCRATCH_TEST = "def test_something_of_the_team():\n    assert 1 + 1 == 2\n"


@pytest.fixture(scope="module")
def endpoint():
    server = AgUiEndpoint().start()
    yield server.url
    server.stop()


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_a_conformant_ag_ui_endpoint_passes_one_item_per_scenario_and_rule(pytester, endpoint):
    pytester.makepyfile(SCRATCH_TEST)
    result = run(pytester, "--agent-events-url", f"{endpoint}/conformant/sse", "--agent-events-dialect", "ag-ui",
                 "-v", "-rs")
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*test_something_of_the_team PASSED*",
                                 "*agent-events::run::ag-ui.run.first PASSED*",
                                 "*agent-events::tool::ag-ui.tool.paired PASSED*",
                                 "*agent-events::bad_input::ag-ui.transport.bad_input PASSED*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes["passed"] > 20, outcomes
    # none of our protocol's own scenarios' items, and the bad-input probe only in its own scenario
    assert "fallback.continuity" not in out and "agent-events::run::ag-ui.transport.bad_input" not in out
    # a rule AG-UI cannot evidence is skipped with the reason, never passed
    result.stdout.fnmatch_lines(["*agent-events::run::seq.contiguous SKIPPED*",
                                 "SKIPPED*seq.contiguous: AG-UI events carry no sequence number*"])


@pytest.mark.parametrize("variant,rule", [("nested_run", "ag-ui.run.nested"),
                                          ("tool_never_ended", "ag-ui.run.finished_open")])
def test_a_broken_ag_ui_endpoint_fails_the_rule_with_expected_and_observed(pytester, endpoint, variant, rule):
    result = run(pytester, "--agent-events-url", f"{endpoint}/{variant}/json", "--agent-events-dialect", "ag-ui",
                 "--agent-events-scenario", "run")
    out = result.stdout.str()
    assert f"FAILED agent-events::run::{rule}" in out, out
    result.stdout.fnmatch_lines([f"*{rule}*", "*expected: *", "*observed: *"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_the_dialect_comes_from_the_config_file_too(pytester, endpoint):
    pytester.makefile(".toml", **{"agent-events": 'dialect = "ag-ui"\n'})
    result = run(pytester, "--agent-events-url", f"{endpoint}/conformant/json", "--collect-only", "-q")
    out = result.stdout.str()
    assert "agent-events::drop::ag-ui.run.first" in out and "fallback.continuity" not in out, out


@pytest.mark.parametrize("args,message", [
    (("--agent-events-dialect", "no-such-dialect"), "*--agent-events-dialect*no-such-dialect*"),
    (("--agent-events-dialect", "ag-ui", "--agent-events-scenario", "primary"), "*primary*run, concurrency*"),
])
def test_a_bad_dialect_setting_is_one_usage_error(pytester, endpoint, args, message):
    result = run(pytester, "--agent-events-url", f"{endpoint}/conformant/json", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_an_unreachable_ag_ui_url_is_one_error_naming_the_url(pytester):
    url = "ws://127.0.0.1:9/none"
    result = run(pytester, "--agent-events-url", url, "--agent-events-dialect", "ag-ui")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert f"cannot connect to {url}" in result.stdout.str() + result.stderr.str()
