"""The verdict says whether every MUST rule held; the exit code says whether the team's gate passed.

``--fail-on none`` (or a lowered MUST rule) can pass the gate of a stream that
broke a MUST rule, and ``--strict`` can fail that of a conformant one: the
headline, the JSON report and SARIF must keep the two apart.
"""

from __future__ import annotations

import json

import jsonschema
import orjson
import pytest

from agent_events import schemas
from agent_events.conformance.cli import main
from agent_events.conformance.exitcodes import ExitCode
from agent_events.conformance.reporters.json import report_schema

VECTORS = dict(schemas.sequence_vectors())
MUST_ONLY = "invalid/pair.tool_matched.json"  # one pair.tool_matched (MUST) violation
SHOULD_ONLY = "invalid/latency.tool_gap.json"  # latency.tool_gap (SHOULD) violations only
VALID = "valid/primary.json"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def transcript(directory, name: str) -> str:
    path = directory / (name.replace("/", "_") + "l")
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in VECTORS[name]["frames"]))
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, dict]:
    """Exit code, the text headline (last line), and the JSON report of the same check."""
    code = main(["validate", *argv, "--report", "json=report.json"])
    headline = capsys.readouterr().out.rstrip().splitlines()[-1]
    with open("report.json", encoding="utf-8") as fh:
        data = json.load(fh)
    jsonschema.Draft202012Validator(report_schema()).validate(data)
    return code, headline, data


@pytest.mark.parametrize("name, flags, conformant, passed, note", [
    (MUST_ONLY, ["--fail-on", "none"], False, True, "gate passed with --fail-on none"),
    (MUST_ONLY, ["--off", "pair.tool_matched", "--allow-lowering-must"], False, True,
     "gate passed with pair.tool_matched lowered to off"),
    (SHOULD_ONLY, ["--strict"], True, False, "gate failed with --strict"),
    (SHOULD_ONLY, ["--fail-on", "warning"], True, False, "gate failed with --fail-on warning"),
    (SHOULD_ONLY, ["--rule", "latency.tool_gap=error"], True, False, "gate failed with latency.tool_gap raised to error"),
    (SHOULD_ONLY, ["--max-warnings", "0"], True, False, "gate failed with --max-warnings 0"),
])
def test_a_gate_that_disagrees_with_the_verdict_is_named_in_the_headline(name, flags, conformant, passed, note,
                                                                          workdir, capsys):
    code, headline, data = run(capsys, transcript(workdir, name), *flags)
    expected_code = ExitCode.OK if passed else ExitCode.NOT_CONFORMANT
    assert code == expected_code
    assert headline.startswith("CONFORMANT (" if conformant else "NOT CONFORMANT (")
    assert headline.endswith(f" - {note} - exit {int(expected_code)}"), headline
    assert data["conformant"] is conformant and data["passed_gate"] is passed
    assert data["exit_code"] == expected_code
    assert [s["conformant"] for s in data["sections"]] == [conformant]


def test_fail_on_none_with_a_must_failure_is_never_called_conformant(workdir, capsys):
    path = transcript(workdir, MUST_ONLY)
    code, headline, data = run(capsys, path, "--fail-on", "none")
    assert code == ExitCode.OK and "NOT CONFORMANT" in headline and data["conformant"] is False
    assert data["sections"][0]["passed_gate"] is True
    main(["validate", path, "--fail-on", "none", "--format", "sarif"])
    properties = json.loads(capsys.readouterr().out)["runs"][0]["properties"]
    assert properties["conformant"] is False and properties["passed_gate"] is True


@pytest.mark.parametrize("name, code, head", [(VALID, ExitCode.OK, "CONFORMANT ("),
                                              (MUST_ONLY, ExitCode.NOT_CONFORMANT, "NOT CONFORMANT (")])
def test_the_default_gate_agrees_with_the_verdict_and_adds_nothing(name, code, head, workdir, capsys):
    got, headline, data = run(capsys, transcript(workdir, name))
    assert got == code and headline.startswith(head) and "gate" not in headline
    assert data["conformant"] is data["passed_gate"] is (code == ExitCode.OK)
