"""Reports and their formats: the JSON matches its schema, JUnit parses, HTML stands alone."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from agent_events import schemas
from agent_events.conformance.core import rules
from agent_events.conformance.api import validate_frames
from agent_events.conformance.reporting.report import Policy, Report
from agent_events.conformance.reporters import REPORTERS, render, write_outputs
from agent_events.conformance.reporters.json import report_schema

VECTORS = dict(schemas.sequence_vectors())


def report_for(*names: str, policy: Policy = Policy()) -> Report:
    sections = []
    for name in names:
        vector = VECTORS[name]
        sections.extend(validate_frames(vector["frames"], vector["profile"], name=name).sections)
    return Report(validate_frames([]).profile, sections, policy, target={"kind": "files", "files": list(names)},
                  command="validate")


MIXED = ("valid/primary.json", "invalid/seq.contiguous.json", "invalid/schema.unknown_type.json")


def test_report_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(report_schema())


@pytest.mark.parametrize("names", [MIXED, ("valid/no-start-frames.json",), ("invalid/frame.text.json",)])
def test_json_report_validates_against_its_schema(names):
    data = json.loads(render(report_for(*names), "json"))
    jsonschema.Draft202012Validator(report_schema()).validate(data)
    assert data["report_version"].startswith("1.")
    assert len(data["rules"]) == len(rules.RULES)
    assert len(data["sections"]) == len(names)


def test_json_report_content():
    data = json.loads(render(report_for(*MIXED), "json"))
    assert data["conformant"] is False and data["exit_code"] == 1
    by_id = {r["id"]: r for r in data["rules"]}
    assert by_id["seq.contiguous"]["status"] == "FAIL"
    assert by_id["schema.unknown_type"]["status"] == "WARN"
    assert by_id["fallback.continuity"]["status"] == "N/A" and by_id["fallback.continuity"]["reason"]
    section = data["sections"][1]
    assert section["violations"][0]["rule"] == "seq.contiguous"
    assert section["violations"][0]["excerpt"]
    assert data["sections"][0]["timelines"][0]["events"][0]["type"] == "agent_started"


def test_junit_one_testcase_per_rule_per_section():
    report = report_for(*MIXED)
    root = ET.fromstring(render(report, "junit"))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == list(MIXED)
    for suite in suites:
        assert len(suite.findall("testcase")) == len(rules.RULES)
    failing = suites[1]
    failures = [c for c in failing.findall("testcase") if c.find("failure") is not None]
    assert [c.get("name").split()[0] for c in failures] == ["seq.contiguous"]
    assert "expected seq 2" in failures[0].find("failure").get("message")
    skipped = [c for c in failing.findall("testcase") if c.find("skipped") is not None]
    assert skipped and all(c.find("skipped").get("message") for c in skipped)
    assert int(root.get("failures")) == sum(int(s.get("failures")) for s in suites) == 2  # + unknown_type's seq gap


def test_junit_warning_is_a_failure_only_when_the_gate_says_so():
    names = ("invalid/schema.unknown_type.json",)
    lenient = ET.fromstring(render(report_for(*names), "junit"))
    strict = ET.fromstring(render(report_for(*names, policy=Policy(strict=True)), "junit"))
    assert lenient.get("failures") == "1"  # seq.contiguous only
    assert strict.get("failures") == "2"


def test_html_is_one_self_contained_file():
    page = render(report_for(*MIXED), "html")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "seq.contiguous" in page and "Run timelines" in page and "class=tl" in page


def test_text_colours_only_when_asked():
    report = report_for(*MIXED)
    assert "\x1b[" not in render(report, "text")
    assert "\x1b[1;31m" in render(report, "text", color=True)


def test_write_outputs_uses_colour_only_on_a_terminal(tmp_path):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    report = report_for("invalid/seq.contiguous.json")
    tty = Tty()
    write_outputs(report, "text", [("json", tmp_path / "r.json")], stdout=tty)
    assert "\x1b[" in tty.getvalue()
    assert "\x1b[" not in (tmp_path / "r.json").read_text()


def test_every_reporter_renders_an_empty_report():
    report = Report(validate_frames([]).profile, [], target={"kind": "frames"})
    for name in REPORTERS:
        assert render(report, name)


# -- the policy ----------------------------------------------------------------------


def test_policy_default_gate_strict_and_overrides():
    report = report_for("invalid/schema.unknown_type.json")  # seq.contiguous (MUST) + unknown_type (SHOULD)
    assert report.exit_code() == 1
    lowered = Policy(severities={"seq.contiguous": "warning"})
    assert lowered.lowered_must
    assert Report(report.profile, report.sections, lowered).exit_code() == 0
    strict = Policy(strict=True, severities={"seq.contiguous": "warning"})
    assert Report(report.profile, report.sections, strict).exit_code() == 1
    off = Policy(fail_on="warning", severities={"seq.contiguous": "off", "schema.unknown_type": "info"})
    judged = Report(report.profile, report.sections, off)
    assert judged.exit_code() == 0
    assert judged.statuses()["seq.contiguous"] == "OFF" and judged.statuses()["schema.unknown_type"] == "INFO"
    budget = Policy(severities={"seq.contiguous": "warning"}, max_warnings=1)
    assert Report(report.profile, report.sections, budget).exit_code() == 1  # 2 warnings > 1


@pytest.mark.parametrize("kwargs", [{"severities": {"nope": "error"}}, {"severities": {"frame.text": "loud"}},
                                    {"fail_on": "sometimes"}, {"max_warnings": -1}])
def test_policy_rejects_nonsense(kwargs):
    with pytest.raises((ValueError, KeyError)):
        Policy(**kwargs)


def test_html_links_matrix_rule_row_violation_card_and_timeline_mark_both_ways():
    page = render(report_for("valid/primary.json", "invalid/latency.delivery.json"), "html")
    id_list = re.findall(r"""\bid=['"]?([\w.\-]+)""", page)
    ids = set(id_list)
    assert len(ids) == len(id_list), "an id used twice"
    hrefs = set(re.findall(r"""href=['"]?#([\w.\-]+)""", page))
    assert hrefs <= ids, f"links to nothing: {sorted(hrefs - ids)}"
    # matrix cell -> rule row -> card -> mark in the timeline -> card again
    assert "href='#s1-r-latency.delivery'" in page and "id='s1-r-latency.delivery'" in page
    assert "href='#s1-v0'" in page and "id=s1-v0" in page
    assert "href='#s1-m0'" in page and "<a id=s1-m0 href='#s1-v0'>" in page
    # the passing section's rule table is folded away; the failing one shows its failed rule, the rest folded
    passing, failing = page[page.index("id=s0>"):page.index("id=s1>")], page[page.index("id=s1>"):]
    assert "<details><summary><b>Rules</b>" in passing and "<h3>Rules" not in passing
    assert failing.index("<h3>Rules") < failing.index("id='s1-r-latency.delivery'") < failing.index(
        f"<details><summary>the other {len(rules.RULES) - 1} rules") < failing.index("id='s1-r-frame.text'")


def test_html_timeline_spreads_same_millisecond_events_and_draws_tool_calls():
    from agent_events.conformance.reporters.html import _spread

    xs = _spread([100.0] * 10 + [500.0], 10.0, 0.0, 1000.0)
    assert all(b - a >= 10.0 - 1e-9 for a, b in zip(xs, xs[1:]))  # ten ties: ten marks, in order
    assert abs(sum(xs[:10]) / 10 - 100.0) < 1e-6 and xs[10] == 500.0  # centred on their true time
    page = render(report_for("valid/fallback.json"), "html")
    assert page.count("class='call") == 2 and "class='call error" in page  # prompt_builder, then the failed llm call
    assert "class=prim" in page and "class=fb" in page and "ms since start" in page
