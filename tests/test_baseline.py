"""--baseline FILE: the gate fails only on failures the file does not list, and on stale entries.

Real files through the real CLI (validate, check, demo, load) and the pytest plugin, against real
servers on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import misbehaving_servers as m
from agent_events import reference_agent, schemas
from agent_events.conformance.reporting.baseline import Baseline, BaselineError, Entry
from agent_events.conformance.cli import main
from agent_events.conformance.reporters.json import report_schema

VECTORS = dict(schemas.sequence_vectors())
RELAXED_FLAGS = m.RELAXED_FLAGS


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def vector_file(name: str) -> str:
    """The vector as a transcript in the current directory; its name is the section's."""
    path = Path(name.replace("/", "_") + "l")
    path.write_text("".join(json.dumps(f) + "\n" for f in VECTORS[name]["frames"]), encoding="utf-8")
    return str(path)


def write_baseline(path: str, *entries: dict, **extra) -> str:
    Path(path).write_text(json.dumps({"agent_events_baseline": 1, "entries": list(entries), **extra}), encoding="utf-8")
    return path


def json_report(capsys) -> dict:
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, report_schema())
    return data


SEQ = "invalid/seq.contiguous-reorder.json"      # fails seq.contiguous (MUST)
TOOL = "invalid/pair.tool_matched.json"          # fails pair.tool_matched (MUST)
GOOD = "valid/primary.json"


# -- validate ----------------------------------------------------------------------------

def test_known_failures_pass_the_gate_but_not_the_verdict(workdir, capsys):
    seq, tool = vector_file(SEQ), vector_file(TOOL)
    known = write_baseline("known.json", {"section": seq, "rule": "seq.contiguous"},
                           {"section": tool, "rule": "pair.tool_matched", "comment": "AG-12"})
    assert main(["validate", seq, tool]) == 1
    capsys.readouterr()
    assert main(["validate", seq, tool, "--baseline", known]) == 0
    out = capsys.readouterr().out
    assert "NOT CONFORMANT" in out and "gate passed with baseline known.json (2 known failure(s))" in out
    assert "baseline known.json: 2 known failure(s), 0 new, 0 stale" in out
    assert "(known: in the baseline)" in out and "expected: " in out  # still shown in full by default
    assert "claim: Conforms" not in out
    assert main(["validate", seq, tool, "--baseline", known, "--format", "json"]) == 0
    data = json_report(capsys)
    assert data["conformant"] is False and data["passed_gate"] is True and data["claim"]["eligible"] is False
    assert data["baseline"]["known"] == [{"section": seq, "rule": "seq.contiguous"},
                                         {"section": tool, "rule": "pair.tool_matched"}]
    assert data["baseline"]["new"] == data["baseline"]["stale"] == []


def test_a_failure_not_listed_fails_and_quiet_shows_only_it(workdir, capsys):
    seq, tool = vector_file(SEQ), vector_file(TOOL)
    known = write_baseline("known.json", {"section": seq, "rule": "seq.contiguous"})
    assert main(["validate", seq, tool, "--baseline", known, "-q"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL pair.tool_matched [MUST]") and "FAIL seq.contiguous" not in out
    assert "gate failed with 1 failure(s) not in baseline known.json" in out
    assert main(["validate", seq, tool, "--baseline", known, "--format", "json"]) == 1
    assert json_report(capsys)["baseline"]["new"] == [{"section": tool, "rule": "pair.tool_matched"}]


def test_an_entry_that_no_longer_fails_is_stale_and_fails_the_gate(workdir, capsys):
    good = vector_file(GOOD)
    known = write_baseline("known.json", {"section": good, "rule": "seq.contiguous", "comment": "fixed since"})
    assert main(["validate", good, "--baseline", known]) == 1
    out = capsys.readouterr().out
    assert f"STALE seq.contiguous in {good}: listed in the baseline, judged, and no longer fails" in out
    assert out.rstrip().splitlines()[-1].startswith("CONFORMANT") and "gate failed with 1 stale baseline entry" in out
    assert main(["validate", good, "--baseline", known, "-q"]) == 1
    assert capsys.readouterr().out.startswith(f"STALE seq.contiguous in {good}")
    assert main(["validate", good, "--baseline", known, "--format", "json"]) == 1
    assert json_report(capsys)["baseline"]["stale"] == [{"section": good, "rule": "seq.contiguous",
                                                         "comment": "fixed since"}]


def test_entries_not_judged_are_neither_known_nor_stale(workdir, capsys):
    good = vector_file(GOOD)
    plain = Path("plain.jsonl")  # server messages only: the latency rules are N/A
    plain.write_text("".join(json.dumps(f["msg"]) + "\n" for f in VECTORS[GOOD]["frames"] if f["dir"] == "recv"))
    known = write_baseline("known.json", {"section": "other.jsonl", "rule": "seq.contiguous"},
                           {"section": str(plain), "rule": "latency.delivery"})
    assert main(["validate", good, str(plain), "--baseline", known, "--format", "json"]) == 0
    result = json_report(capsys)["baseline"]
    assert [e["section"] for e in result["not_judged"]] == ["other.jsonl", str(plain)]
    assert result["stale"] == [] and result["known"] == []


def test_a_wildcard_section_matches_every_section(workdir, capsys):
    one, two = vector_file(SEQ), vector_file("invalid/seq.contiguous.json")
    known = write_baseline("known.json", {"section": "*", "rule": "seq.contiguous"})
    assert main(["validate", one, two, "--baseline", known, "--format", "json"]) == 0
    assert len(json_report(capsys)["baseline"]["known"]) == 2
    good = vector_file(GOOD)
    assert main(["validate", good, "--baseline", known]) == 1  # judged and held everywhere: stale
    assert "STALE seq.contiguous in every section" in capsys.readouterr().out


def test_strict_makes_a_should_failure_baselineable(workdir, capsys):
    thinking = vector_file("invalid/profile.actions.thinking.json")
    known = write_baseline("known.json", {"section": thinking, "rule": "profile.actions.thinking"})
    assert main(["validate", thinking, "--strict"]) == 1
    assert main(["validate", thinking, "--strict", "--baseline", known]) == 0
    # without --strict the SHOULD rule does not fail the gate, so its entry matches no failure: stale
    assert main(["validate", thinking, "--baseline", known]) == 1
    assert "STALE profile.actions.thinking" in capsys.readouterr().out


# -- --update-baseline -------------------------------------------------------------------

def test_update_writes_the_failures_keeps_comments_and_unjudged_and_drops_stale(workdir, capsys):
    seq, tool, good = vector_file(SEQ), vector_file(TOOL), vector_file(GOOD)
    write_baseline("known.json", {"section": seq, "rule": "seq.contiguous", "comment": "AG-1"},
                   {"section": good, "rule": "pair.tool_matched", "comment": "fixed"},
                   {"section": "not-run.jsonl", "rule": "frame.json", "comment": "kept"}, comment="ours")
    assert main(["validate", seq, tool, good, "--baseline", "known.json", "--update-baseline", "-q"]) == 0
    captured = capsys.readouterr()
    assert "wrote baseline known.json: 3 entries (1 added, 1 removed)" in captured.err
    text = Path("known.json").read_text()
    data = json.loads(text)
    assert data["comment"] == "ours"
    assert data["entries"] == [
        {"section": "invalid_pair.tool_matched.jsonl", "rule": "pair.tool_matched"},
        {"section": "invalid_seq.contiguous-reorder.jsonl", "rule": "seq.contiguous", "comment": "AG-1"},
        {"section": "not-run.jsonl", "rule": "frame.json", "comment": "kept"},
    ]
    assert text.count("\n    {") == 3  # one entry per line: reviewable diffs
    assert main(["validate", seq, tool, good, "--baseline", "known.json"]) == 0
    # updating again changes nothing: the file is stable
    assert main(["validate", seq, tool, good, "--baseline", "known.json", "--update-baseline", "-q"]) == 0
    assert Path("known.json").read_text() == text


def test_update_creates_a_missing_file_and_needs_a_path(workdir, capsys):
    seq = vector_file(SEQ)
    assert main(["validate", seq, "--baseline", "new/known.json", "--update-baseline", "-q"]) == 0
    assert Baseline.load("new/known.json").entries == [Entry(seq, "seq.contiguous")]
    assert main(["validate", seq, "--update-baseline"]) == 2
    assert "--update-baseline needs --baseline FILE" in capsys.readouterr().err


# -- bad files are usage errors ----------------------------------------------------------

@pytest.mark.parametrize("content, needle", [
    (None, "does not exist (it must be written first: --update-baseline)"),
    ("not json", "is not valid JSON"),
    ('{"entries": []}', "not an agent-events baseline"),
    ('{"agent_events_baseline": 2, "entries": []}', "not an agent-events baseline"),
    ('{"agent_events_baseline": 1, "entries": [], "extra": 1}', "unknown key(s) 'extra'"),
    ('{"agent_events_baseline": 1, "entries": [{"section": "a", "rule": "seq.contiguos"}]}',
     "entry 1: unknown rule id 'seq.contiguos'; did you mean 'seq.contiguous'?"),
    ('{"agent_events_baseline": 1, "entries": [{"section": "", "rule": "seq.contiguous"}]}', "entry 1: section"),
    ('{"agent_events_baseline": 1, "entries": [{"section": "a", "rule": "seq.contiguous", "why": "x"}]}', "entry 1 must"),
    ('{"agent_events_baseline": 1, "entries": {}}', "entries must be a list"),
])
def test_a_bad_baseline_is_exit_2_naming_the_file(workdir, capsys, content, needle):
    good = vector_file(GOOD)
    if content is not None:
        Path("known.json").write_text(content)
    assert main(["validate", good, "--baseline", "known.json"]) == 2
    err = capsys.readouterr().err
    assert "known.json" in err and needle in err and "Traceback" not in err


def test_from_dict_refuses_what_load_refuses():
    with pytest.raises(BaselineError):
        Baseline.from_dict({"agent_events_baseline": 1, "entries": [{"section": "a"}]})


# -- the config file -----------------------------------------------------------------------

def test_the_config_file_baseline_key(workdir, capsys):
    seq = vector_file(SEQ)
    write_baseline("known.json", {"section": seq, "rule": "seq.contiguous"})
    Path("agent-events.toml").write_text('[validate]\nbaseline = "known.json"\n')
    assert main(["validate", seq]) == 0
    Path("agent-events.toml").write_text('baseline = 42\n')
    assert main(["validate", seq]) == 2
    assert "baseline must be a file path, not 42" in capsys.readouterr().err


# -- live: check, demo, load ---------------------------------------------------------------------

#: One try of each race the cancel scenario provokes, not 44: the races' odds are tests/test_races.py's;
#: here a cancel.terminal failure (every cancelled run of an endpoint that ignores cancel_run) and its
#: pass (the reference agent's) are what the baseline gates, and one try shows both (7 s -> 2.5 s a check).
ONE_RACE_TRY = ["--race-tries", "1"]


def test_check_gates_on_the_baseline_per_scenario(workdir, capsys):
    known = write_baseline("known.json", {"section": "cancel", "rule": "cancel.terminal", "comment": "AG-7"})
    with m.running(m.IgnoresCancel()) as url:
        args = ["check", url, "--deadline-s", "1", *ONE_RACE_TRY, *RELAXED_FLAGS]
        assert main([*args, "--scenario", "cancel"]) == 1
        assert main([*args, "--scenario", "cancel", "--baseline", known]) == 0
        assert main([*args, "--scenario", "primary", "--baseline", known, "--format", "json"]) == 0
    capsys.readouterr()
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=100) as server:
        # the reference agent honours cancel_run (a run slow enough to cancel): the entry is stale
        assert main(["check", server.url, "--scenario", "cancel", "--baseline", known, *ONE_RACE_TRY,
                     *RELAXED_FLAGS]) == 1
    assert "STALE cancel.terminal in cancel" in capsys.readouterr().out


def test_demo_and_load_take_the_baseline(workdir, capsys, tmp_path):
    known = write_baseline("known.json", {"section": "cancel", "rule": "cancel.terminal"})
    assert main(["demo", "--html", str(tmp_path / "r.html"), "--llm-delay-ms", "100", "--baseline", known,
                 *RELAXED_FLAGS]) == 1
    assert "STALE cancel.terminal in cancel" in capsys.readouterr().out
    load_known = write_baseline("load.json", {"section": "load", "rule": "seq.contiguous"})
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        args = ["load", server.url, "--runs", "2", "--connections", "1", "--no-warmup", *RELAXED_FLAGS]
        assert main([*args, "--baseline", load_known, "-q"]) == 1
        assert "STALE seq.contiguous in load" in capsys.readouterr().out
        assert main([*args, "--baseline", load_known, "--update-baseline", "-q"]) == 0
    assert Baseline.load("load.json").entries == []


# -- the pytest plugin -----------------------------------------------------------------------

PLUGIN_RELAXED = ("--agent-events-first-event-ms", "5000", "--agent-events-delivery-ms", "5000",
                  "--agent-events-tool-gap-ms", "5000", "--agent-events-deadline-s", "1")


def test_the_plugin_reports_known_failures_as_xfail_and_stale_entries_as_failures(pytester):
    write_baseline(str(pytester.path / "known.json"), {"section": "cancel", "rule": "cancel.terminal",
                                                       "comment": "AG-7"})
    (pytester.path / "agent-events.toml").write_text("race_tries = 1\n")  # the plugin's race tries: see ONE_RACE_TRY
    with m.running(m.IgnoresCancel()) as url:
        args = ("-p", "no:cacheprovider", "-rx", "--agent-events-url", url, *PLUGIN_RELAXED,
                "--agent-events-scenario", "cancel", "-k", "cancel.terminal")
        pytester.runpytest(*args).assert_outcomes(failed=1)
        result = pytester.runpytest(*args, "--agent-events-baseline", "known.json")
        result.assert_outcomes(xfailed=1)
        assert "known failure, in baseline known.json: AG-7" in result.stdout.str()
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=100) as server:
        result = pytester.runpytest("-p", "no:cacheprovider", "--agent-events-url", server.url, *PLUGIN_RELAXED,
                                    "--agent-events-scenario", "cancel", "-k", "cancel.terminal",
                                    "--agent-events-baseline", "known.json")
    result.assert_outcomes(failed=1)
    assert "stale baseline entry: cancel.terminal in cancel is listed in known.json" in result.stdout.str()


def test_junit_skips_known_failures_and_fails_stale_entries(workdir, capsys):
    import xml.etree.ElementTree as ET

    seq, good = vector_file(SEQ), vector_file(GOOD)
    known = write_baseline("known.json", {"section": seq, "rule": "seq.contiguous"},
                           {"section": good, "rule": "pair.unique_id"})
    assert main(["validate", seq, good, "--baseline", known, "--format", "junit"]) == 1
    root = ET.fromstring(capsys.readouterr().out)
    case = lambda suite, rule: next(c for s in root if s.get("name") == suite  # noqa: E731
                                    for c in s if c.get("name").startswith(rule + " "))
    assert case(seq, "seq.contiguous").find("skipped").get("message") == "known failure, in baseline known.json"
    failure = case(good, "pair.unique_id").find("failure")
    assert failure.get("type") == "baseline" and "stale baseline entry" in failure.get("message")
    assert root.get("failures") == "1"
