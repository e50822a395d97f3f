"""Gating (issue 9): every flag on the command line and in the config file, and its refusals.

Each case runs ``agent-events validate`` on a shipped sequence vector twice,
once with flags and once with the same setting in a config file, and
expects the same exit code and the same policy in the JSON report: the two
spellings must mean one thing.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import orjson
import pytest

from agent_events import schemas
from agent_events.conformance.cli import build_parser, main
from agent_events.conformance.exitcodes import ExitCode

VECTORS = dict(schemas.sequence_vectors())
SHOULD_ONLY = "invalid/latency.tool_gap.json"  # two latency.tool_gap (SHOULD) violations, nothing else
MUST_ONLY = "invalid/pair.tool_matched.json"  # one pair.tool_matched (MUST) violation, nothing else
VALID = "valid/primary.json"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A scratch current directory (config discovery and relative report paths happen there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def transcript(directory, name: str):
    path = directory / (name.replace("/", "_") + "l")
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in VECTORS[name]["frames"]))
    return path.name


def cli(*argv: str) -> int:
    """``agent-events ARGV`` in-process; argparse's own usage errors exit 2 through SystemExit."""
    try:
        return main(list(argv))
    except SystemExit as exc:
        return exc.code


def json_report(capsys, *argv: str) -> tuple[int, dict]:
    code = cli(*argv, "--format", "json")
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_vectors_hold_what_the_cases_assume(workdir, capsys):
    """The cases below rely on these vectors' findings; say so if a vector changes."""
    for name, expected in ((SHOULD_ONLY, {"latency.tool_gap": 2}), (MUST_ONLY, {"pair.tool_matched": 1})):
        code, data = json_report(capsys, "validate", transcript(workdir, name))
        found = {r["id"]: r["violations"] for r in data["rules"] if r["violations"]}
        assert found == expected
    assert cli("validate", transcript(workdir, SHOULD_ONLY)) == ExitCode.OK
    assert cli("validate", transcript(workdir, MUST_ONLY)) == ExitCode.NOT_CONFORMANT


# (vector, flags, the same in agent-events.toml, expected exit code)
CASES = {
    "strict": (SHOULD_ONLY, ["--strict"], "strict = true", 1),
    "fail-on-warning": (SHOULD_ONLY, ["--fail-on", "warning"], 'fail_on = "warning"', 1),
    "fail-on-error": (SHOULD_ONLY, ["--fail-on", "error"], 'fail_on = "error"', 0),
    "fail-on-none": (MUST_ONLY, ["--fail-on", "none"], 'fail_on = "none"', 0),
    "max-warnings-exceeded": (SHOULD_ONLY, ["--max-warnings", "1"], "max_warnings = 1", 1),
    "max-warnings-within": (SHOULD_ONLY, ["--max-warnings", "2"], "max_warnings = 2", 0),
    "max-warnings-with-fail-on-none": (SHOULD_ONLY, ["--fail-on", "none", "--max-warnings", "0"],
                                       'fail_on = "none"\nmax_warnings = 0', 1),
    "rule-raised": (SHOULD_ONLY, ["--rule", "latency.tool_gap=error"], 'rules = { "latency.tool_gap" = "error" }', 1),
    "rule-info-is-no-warning": (SHOULD_ONLY, ["--rule", "latency.tool_gap=info", "--max-warnings", "0"],
                                'max_warnings = 0\nrules = { "latency.tool_gap" = "info" }', 0),
    "off": (SHOULD_ONLY, ["--off", "latency.tool_gap", "--strict"], 'strict = true\noff = ["latency.tool_gap"]', 0),
    "rule-off": (SHOULD_ONLY, ["--rule", "latency.tool_gap=off", "--strict"],
                 'strict = true\nrules = { "latency.tool_gap" = "off" }', 0),
    "lowered-must": (MUST_ONLY, ["--rule", "pair.tool_matched=warning", "--allow-lowering-must"],
                     'allow_lowering_must = true\nrules = { "pair.tool_matched" = "warning" }', 0),
    "lowered-must-counts-as-warning": (MUST_ONLY, ["--off", "schema.unknown_type", "--rule",
                                                   "pair.tool_matched=warning", "--allow-lowering-must", "--strict"],
                                       'strict = true\nallow_lowering_must = true\noff = ["schema.unknown_type"]\n'
                                       'rules = { "pair.tool_matched" = "warning" }', 1),
}


@pytest.mark.parametrize("case", CASES)
def test_each_flag_means_the_same_on_the_command_line_and_in_the_config_file(case, workdir, capsys):
    vector, flags, toml, expected = CASES[case]
    path = transcript(workdir, vector)
    code, by_flags = json_report(capsys, "validate", path, *flags)
    assert code == expected == by_flags["exit_code"]
    (workdir / "agent-events.toml").write_text(toml + "\n")
    code, by_config = json_report(capsys, "validate", path)
    assert code == expected
    assert by_config["policy"] == by_flags["policy"]
    assert by_config["rules"] == by_flags["rules"]


def test_pyproject_table_and_command_sub_table(workdir, capsys):
    path = transcript(workdir, SHOULD_ONLY)
    (workdir / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.agent-events]\nmax_warnings = 5\n\n'
        '[tool.agent-events.validate]\nrules = { "latency.tool_gap" = "error" }\n')
    code, data = json_report(capsys, "validate", path)
    assert code == 1
    assert data["policy"]["severities"] == {"latency.tool_gap": "error"} and data["policy"]["max_warnings"] == 5


def test_per_rule_severities_merge_across_layers_and_a_flag_can_restore_the_default(workdir, capsys):
    path = transcript(workdir, "invalid/order.thinking.json")  # order.thinking + profile.actions.thinking (SHOULD)
    (workdir / "agent-events.toml").write_text(
        'rules = { "order.thinking" = "error", "profile.actions.thinking" = "error" }\n'
        '[validate]\noff = ["latency.tool_gap"]\n')
    code, data = json_report(capsys, "validate", path)
    assert code == 1
    assert data["policy"]["severities"] == {"order.thinking": "error", "profile.actions.thinking": "error",
                                            "latency.tool_gap": "off"}
    # the last word on a rule wins, and restating its default removes the override
    code, data = json_report(capsys, "validate", path, "--rule", "order.thinking=warning",
                             "--off", "profile.actions.thinking")
    assert code == 0
    assert data["policy"]["severities"] == {"profile.actions.thinking": "off", "latency.tool_gap": "off"}
    code, data = json_report(capsys, "validate", path, "--off", "order.thinking", "--rule", "order.thinking=error")
    assert data["policy"]["severities"]["order.thinking"] == "error" and code == 1


def test_unquoted_dotted_rule_ids_in_toml_are_rejoined(workdir, capsys):
    path = transcript(workdir, SHOULD_ONLY)
    (workdir / "agent-events.toml").write_text('[rules]\nlatency.tool_gap = "error"\n')
    code, data = json_report(capsys, "validate", path)
    assert code == 1 and data["policy"]["severities"] == {"latency.tool_gap": "error"}


def test_strict_and_fail_on_are_one_setting_and_the_flag_wins(workdir, capsys):
    path = transcript(workdir, SHOULD_ONLY)
    (workdir / "agent-events.toml").write_text('fail_on = "error"\n')
    code, data = json_report(capsys, "validate", path, "--strict")
    assert code == 1 and data["policy"]["gate"] == "warning"
    (workdir / "agent-events.toml").write_text("strict = true\n")
    code, data = json_report(capsys, "validate", path, "--fail-on", "error")
    assert code == 0 and data["policy"]["gate"] == "error"
    (workdir / "agent-events.toml").write_text('strict = true\n[validate]\nstrict = false\n')
    assert cli("validate", path) == 0


# -- refusals: exit 2 with a message that says what to do ---------------------------------

@pytest.mark.parametrize("flags, toml, needle", [
    (["--rule", "order.thinkin=error"], 'rules = { "order.thinkin" = "error" }', "did you mean 'order.thinking'"),
    (["--off", "latency.toolgap"], 'off = ["latency.toolgap"]', "did you mean 'latency.tool_gap'"),
    (["--off", "thinking"], 'off = "thinking"', "did you mean 'order.thinking'"),
    (["--off", "no.such.rule.at.all"], 'off = ["no.such.rule.at.all"]', "known ids: frame.text"),
])
def test_an_unknown_rule_id_is_a_usage_error_that_suggests_the_nearest(flags, toml, needle, workdir, capsys):
    path = transcript(workdir, VALID)
    assert cli("validate", path, *flags) == ExitCode.USAGE
    assert needle in capsys.readouterr().err
    (workdir / "agent-events.toml").write_text(toml + "\n")
    assert cli("validate", path) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert needle in err and "agent-events.toml" in err


@pytest.mark.parametrize("flags, toml", [
    (["--rule", "seq.contiguous=warning"], 'rules = { "seq.contiguous" = "warning" }'),
    (["--off", "pair.tool_matched"], 'off = ["pair.tool_matched"]'),
    (["--rule", "frame.json=info"], '[validate]\nrules = { "frame.json" = "info" }'),
])
def test_lowering_a_must_rule_needs_allow_lowering_must(flags, toml, workdir, capsys):
    path = transcript(workdir, VALID)
    assert cli("validate", path, *flags) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "--allow-lowering-must" in err and "not a conformance claim" in err
    (workdir / "agent-events.toml").write_text(toml + "\n")
    assert cli("validate", path) == ExitCode.USAGE
    assert "allow_lowering_must" in capsys.readouterr().err
    assert cli("validate", path, "--allow-lowering-must") == ExitCode.OK


def test_raising_a_should_rule_or_restating_a_must_needs_no_permission(workdir):
    path = transcript(workdir, VALID)
    assert cli("validate", path, "--rule", "order.thinking=error", "--rule", "seq.contiguous=error") == ExitCode.OK


@pytest.mark.parametrize("argv", [
    ["--rule", "order.thinking"], ["--rule", "order.thinking=loud"], ["--max-warnings", "-1"],
    ["--max-warnings", "many"], ["--fail-on", "sometimes"], ["--strict", "--fail-on", "none"],
])
def test_malformed_gating_flags_are_usage_errors(argv, workdir, capsys):
    assert cli("validate", transcript(workdir, VALID), *argv) == ExitCode.USAGE
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("toml, needle", [
    ('rules = { "order.thinking" = "loud" }', "severity for order.thinking must be one of"),
    ('rules = ["order.thinking"]', "rules must be a table"),
    ("off = 3", "off must be a list of rule ids"),
    ('fail_on = "sometimes"', "fail_on must be"),
    ("max_warnings = -1", "max_warnings must be an integer >= 0"),
    ("max_warnings = true", "max_warnings must be an integer >= 0"),
    ('allow_lowering_must = "yes"', "allow_lowering_must must be true or false"),
    ('group = "yes"', "group must be true or false"),
    ("badge = 1", "badge must be a file path"),
    ('strict = true\nfail_on = "none"', "contradicts fail-on none"),
])
def test_malformed_gating_config_is_a_usage_error_naming_the_key(toml, needle, workdir, capsys):
    (workdir / "agent-events.toml").write_text(toml + "\n")
    assert cli("validate", transcript(workdir, VALID)) == ExitCode.USAGE
    assert needle in capsys.readouterr().err


# -- output flags: --group, --badge, --format/--report sarif -----------------------------

def test_group_prints_one_line_per_rule_with_counts_over_all_files(workdir, capsys):
    a, b = transcript(workdir, SHOULD_ONLY), transcript(workdir, "invalid/seq.contiguous-reorder.json")
    assert cli("validate", a, b) == 1
    detailed = capsys.readouterr().out
    assert "expected:" in detailed and f"  WARN  {a} (file)" in detailed
    for argv in (["--group"], []):
        if not argv:
            (workdir / "agent-events.toml").write_text("group = true\n")
        assert cli("validate", a, b, *argv) == 1
        out = capsys.readouterr().out
        assert "expected:" not in out and "Violations:" not in out
        assert "== 2 section(s)" in out
        lines = {line.split()[2]: line for line in out.splitlines() if line.startswith("  ") and len(line.split()) > 2}
        assert set(lines) >= {r for r in ("frame.text", "seq.contiguous", "latency.tool_gap", "pair.unique_id")}
        assert "(2 violations" in lines["seq.contiguous"] and "first at " + b + ":" in lines["seq.contiguous"]
        assert "(2 violations" in lines["latency.tool_gap"] and "first at " + a + ":" in lines["latency.tool_gap"]
        assert out.rstrip().endswith("exit 1")


def test_group_applies_to_a_text_report_file_too(workdir, capsys):
    path = transcript(workdir, MUST_ONLY)
    assert cli("validate", path, "--group", "--format", "json", "--report", "text=out.txt") == 1
    assert "first at" in (workdir / "out.txt").read_text() and json.loads(capsys.readouterr().out)


OUTPUTS = {  # format -> (flags, the same in the config file, the file written)
    "badge-flag": (["--badge", "b/out"], 'badge = "b/out"'),
    "badge-report": (["--report", "badge=b/out"], 'reports = { badge = "b/out" }'),
    "sarif-report": (["--report", "sarif=b/out"], 'reports = { sarif = "b/out" }'),
    "sarif-format": (["--format", "sarif"], 'format = "sarif"'),
}


@pytest.mark.parametrize("how", OUTPUTS)
@pytest.mark.parametrize("where", ["flags", "config"])
def test_badge_and_sarif_by_flag_or_config(how, where, workdir, capsys):
    path = transcript(workdir, VALID if how.startswith("badge") else MUST_ONLY)
    flags, toml = OUTPUTS[how]
    if where == "config":
        (workdir / "agent-events.toml").write_text(toml + "\n")
    assert cli("validate", path, *(flags if where == "flags" else [])) == (0 if how.startswith("badge") else 1)
    out = capsys.readouterr().out
    written = out if how.endswith("format") else (workdir / "b" / "out").read_text()
    if how.startswith("badge"):
        svg = ET.fromstring(written)
        assert svg.tag == "{http://www.w3.org/2000/svg}svg" and svg.get("aria-label").endswith(": conformant")
    else:
        log = json.loads(written)
        assert log["version"] == "2.1.0"
        assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["pair.tool_matched"]


# -- every checking command declares the same flags ------------------------------------

GATING_FLAGS = ("--rule", "--off", "--allow-lowering-must", "--fail-on", "--max-warnings", "--strict",
                "--group", "--badge", "--format", "--report")


def test_every_checking_command_has_the_gating_flags():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    checking = [name for name in ("check", "validate", "load") if name in sub.choices]
    assert "validate" in checking and "check" in checking
    for name in checking:
        flags = {o for action in sub.choices[name]._actions for o in action.option_strings}
        assert set(GATING_FLAGS) <= flags, name
        assert "sarif" in sub.choices[name]._option_string_actions["--format"].choices


def test_help_documents_the_gate_beside_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for needle in ("exit code 1", "--fail-on", "--max-warnings", "the same as --strict", "--allow-lowering-must",
                   "not a conformance claim", "exit code 2"):
        assert needle in out
