"""Gating in the pytest plugin: the same flags (``--agent-events-`` prefixed) and config keys as the CLI.

The endpoint conforms except for one SHOULD rule (it selects no subprotocol),
so the ``transport.subprotocol`` item is a warning that each setting below
turns into a failure, or not, exactly as ``agent-events check`` would.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

import misbehaving_servers as m
from test_sarif import assert_valid


@pytest.fixture(scope="module")
def url():
    with m.running(m.NoSubprotocol()) as running_url:
        yield running_url


#: Generous latency budgets: these tests are about gating, and a shared, loaded
#: machine must not turn a latency rule into a failure (or void the claim).
RELAXED = ("--agent-events-first-event-ms", "5000", "--agent-events-delivery-ms", "5000",
           "--agent-events-tool-gap-ms", "5000")


def run(pytester: pytest.Pytester, url: str, *args: str, budgets: tuple[str, ...] = RELAXED) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "--agent-events-url", url, *budgets,
                              "--agent-events-scenario", "primary", "-k", "subprotocol", *args)


@pytest.mark.parametrize("flags, toml, fails", [
    ([], "strict = false", False),
    (["--agent-events-max-warnings", "0"], "max_warnings = 0", True),
    (["--agent-events-max-warnings", "5"], "max_warnings = 5", False),
    (["--agent-events-rule", "transport.subprotocol=error"], 'rules = { "transport.subprotocol" = "error" }', True),
    (["--agent-events-rule", "transport.subprotocol=info", "--agent-events-max-warnings", "0"],
     'max_warnings = 0\nrules = { "transport.subprotocol" = "info" }', False),
    (["--agent-events-fail-on", "none"], 'fail_on = "none"', False),
])
@pytest.mark.parametrize("where", ["flags", "config"])
def test_gating_options_and_config_keys_decide_the_item(pytester, url, flags, toml, fails, where):
    if where == "config":
        pytester.makefile(".toml", **{"agent-events": toml + "\n"})
    result = run(pytester, url, *(flags if where == "flags" else []))
    if fails:
        result.assert_outcomes(failed=1)
    else:
        result.assert_outcomes(passed=1, warnings=1)
    if "max_warnings = 0" in toml and fails:
        assert "warnings exceed --agent-events-max-warnings 0" in result.stdout.str()


@pytest.mark.parametrize("args, toml, needle", [
    (["--agent-events-rule", "transport.subprotocl=off"], None, "did you mean 'transport.subprotocol'"),
    ([], 'off = ["transport.subprotocl"]', "did you mean 'transport.subprotocol'"),
    (["--agent-events-off", "seq.contiguous"], None, "--allow-lowering-must"),
    ([], 'rules = { "seq.contiguous" = "warning" }', "--allow-lowering-must"),
])
def test_unknown_ids_and_lowered_must_rules_stop_the_session_as_usage_errors(pytester, url, args, toml, needle):
    if toml:
        pytester.makefile(".toml", **{"agent-events": toml + "\n"})
    result = run(pytester, url, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert needle in result.stderr.str()


def test_allow_lowering_must_badge_sarif_and_group(pytester, url):
    result = run(pytester, url, "--agent-events-off", "seq.contiguous", "--agent-events-allow-lowering-must",
                 "--agent-events-badge", "out/badge.svg", "--agent-events-report", "sarif=out/r.sarif",
                 "--agent-events-report", "text=out/r.txt", "--agent-events-group")
    result.assert_outcomes(passed=1, warnings=1)
    out = pytester.path / "out"
    assert ET.fromstring((out / "badge.svg").read_text()).get("aria-label").endswith(": no claim")
    log = json.loads((out / "r.sarif").read_text())
    assert_valid(log)
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["transport.subprotocol"]
    assert log["runs"][0]["results"][0]["level"] == "warning"
    text = (out / "r.txt").read_text()
    assert "not a conformance claim" in text and "== 1 section(s)" in text and "expected:" not in text


def test_badge_from_the_config_file_says_conformant(pytester, url):
    pytester.makefile(".toml", **{"agent-events": 'badge = "badge.svg"\n'})
    # The profile's own budgets: looser ones void the claim (the badge would say "no claim").
    run(pytester, url, budgets=()).assert_outcomes(passed=1, warnings=1)
    assert ET.fromstring((pytester.path / "badge.svg").read_text()).get("aria-label").endswith(": conformant")
