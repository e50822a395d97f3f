"""``--format markdown``: byte-for-byte goldens, and GitHub-Flavoured Markdown structure checked by a parser.

The goldens under ``tests/data/markdown/`` pin the layout a job summary and a PR comment show.
Regenerate them (only for an intended change) with
``AGENT_EVENTS_UPDATE_GOLDEN=1 python -m pytest tests/test_markdown_report.py``.

The structure tests parse the output with markdown-it-py (CommonMark plus the GFM table rule,
the rules GitHub renders with) and check what a reader sees: one table row per rule with one
cell per section, failing rules first, no raw HTML token anywhere, and hostile stream text
(``|``, ``<script>``, newlines, backticks) kept inside its cell as literal text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent_events import schemas
from agent_events.conformance.core import rules
from agent_events.conformance.api import validate_frames
from agent_events.conformance.reporting.baseline import Baseline
from agent_events.conformance.reporting.report import Policy, Report, Section
from agent_events.conformance.reporters import render
from agent_events.conformance.reporters import markdown as md
from agent_events.conformance.core.violations import RuleOutcome, Violation

markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py is in the test extra: pip install -e '.[test]'")

GOLDEN = Path(__file__).parent / "data" / "markdown"
UPDATE = os.environ.get("AGENT_EVENTS_UPDATE_GOLDEN") == "1"
FIXED_TIME = "2026-01-01T00:00:00.000Z"
FIXED_VERSION = "0+golden"
VECTORS = dict(schemas.sequence_vectors())
MIXED = ("valid/primary.json", "invalid/seq.contiguous.json", "invalid/schema.unknown_type.json")


def report_for(*names: str, policy: Policy = Policy()) -> Report:
    sections = []
    for name in names:
        vector = VECTORS[name]
        sections.extend(validate_frames(vector["frames"], vector["profile"], name=name).sections)
    return Report(validate_frames([]).profile, sections, policy, target={"kind": "files", "files": list(names)},
                  command="validate", started_at=FIXED_TIME, finished_at=FIXED_TIME, kit_version=FIXED_VERSION)


def parse(text: str):
    """The token stream GitHub's rules give: CommonMark with GFM tables (raw HTML left enabled, so that
    any HTML the reporter let through shows up as an ``html_block`` / ``html_inline`` token)."""
    return markdown_it.MarkdownIt("commonmark").enable("table").parse(text)


def tables(tokens) -> list[list[list[str]]]:
    """Every table as rows of cell texts (the header row first), from the parsed tokens."""
    out, rows, row, in_cell = [], None, None, False
    for tok in tokens:
        if tok.type == "table_open":
            rows = []
        elif tok.type == "table_close":
            out.append(rows)
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close":
            rows.append(row)
        elif tok.type in ("th_open", "td_open"):
            in_cell = True
            row.append("")
        elif tok.type in ("th_close", "td_close"):
            in_cell = False
        elif tok.type == "inline" and in_cell:
            row[-1] = "".join(child.content for child in tok.children
                              if child.type in ("text", "code_inline", "softbreak"))
    return out


def no_raw_html(tokens) -> None:
    kinds = {tok.type for tok in tokens} | {c.type for tok in tokens for c in (tok.children or [])}
    assert not kinds & {"html_block", "html_inline"}, "raw HTML in the Markdown report"


def _compare(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        return
    assert path.exists(), f"no golden {path} (record it with AGENT_EVENTS_UPDATE_GOLDEN=1)"
    assert text == path.read_bytes().decode("utf-8"), f"{name} differs from its golden"


def _baseline_report() -> Report:
    report = report_for(*MIXED)
    report.baseline = Baseline.from_dict({"agent_events_baseline": 1, "entries": [
        {"section": "invalid/seq.contiguous.json", "rule": "seq.contiguous"},
        {"section": "valid/primary.json", "rule": "order.thinking"}]}, path=Path("known.json"))
    return report


GOLDENS = {
    "mixed.md": lambda: report_for(*MIXED),
    "baseline.md": _baseline_report,
    "conformant.md": lambda: report_for("valid/primary.json", "valid/fallback.json"),
    "strict.md": lambda: report_for("invalid/schema.unknown_type.json", policy=Policy(strict=True)),
    "many-sections.md": lambda: report_for(*sorted(VECTORS)[:12]),
    "empty.md": lambda: Report(validate_frames([]).profile, [], target={"kind": "frames"}, started_at=FIXED_TIME,
                               finished_at=FIXED_TIME, kit_version=FIXED_VERSION),
}


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_markdown_report_matches_its_golden(name):
    _compare(name, render(GOLDENS[name](), "markdown"))


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_markdown_report_is_gfm_without_raw_html(name):
    no_raw_html(parse(render(GOLDENS[name](), "markdown")))


def test_matrix_has_a_row_per_rule_a_column_per_section_and_failures_first():
    report = report_for(*MIXED)
    (matrix, latency) = tables(parse(render(report, "markdown")))
    assert matrix[0] == ["rule", "level", *MIXED]
    body = matrix[1:]
    assert sorted(row[0] for row in body) == sorted(r.id for r in rules.RULES)
    assert all(len(row) == 2 + len(MIXED) for row in body)
    assert body[0][0] == "seq.contiguous" and body[0][3].endswith("FAIL") and body[0][2].endswith("PASS")
    first_pass = next(i for i, row in enumerate(body) if not any(c.endswith(("FAIL", "WARN")) for c in row[2:]))
    assert all(not any(c.endswith(("FAIL", "WARN")) for c in row[2:]) for row in body[first_pass:])
    assert latency[0][:3] == ["section", "measure", "count"] and len(latency) > 1


def test_many_sections_fold_into_one_worst_status_column():
    names = sorted(VECTORS)[:md.MAX_COLUMNS + 4]
    (matrix, *_) = tables(parse(render(report_for(*names), "markdown")))
    assert matrix[0] == ["rule", "level", f"all {len(names)} sections", "failing in"]
    assert all(len(row) == 4 for row in matrix)


def test_failures_show_expected_and_observed_and_the_claim_is_fenced():
    text = render(report_for(*MIXED), "markdown")
    assert "- expected: seq 2" in text and "- observed: seq 3: 1 event(s) missing" in text
    assert text.index("seq.contiguous` in invalid/seq.contiguous.json: FAIL") < text.index("profile.actions.thinking` in")
    passing = render(report_for("valid/primary.json"), "markdown")
    claim = report_for("valid/primary.json").claim()
    assert claim.eligible and f"```text\n{claim.statement}\n```" in passing
    assert "Failures and warnings" not in passing


def test_a_report_of_every_broken_vector_fits_a_pull_request_comment():
    report = report_for(*sorted(n for n in VECTORS if n.startswith("invalid/")))
    text = render(report, "markdown")
    assert len(text) <= 65536  # GitHub's limit on a comment body
    assert text.count("\n#### ") == md.MAX_BLOCKS and "more violation(s)" in text
    no_raw_html(parse(text))


def _hostile_report() -> Report:
    hostile = "a|b <script>alert(1)</script>\nsecond line ``` `tick` &amp; *bold* [x](http://e)"
    v = Violation("seq.contiguous", "MUST", "error", "run|1", "c0", 3, expected=hostile, observed=hostile,
                  excerpt=("```", "<b>frame</b> |x|"))
    outcomes = {rule.id: RuleOutcome(rule.id, 1, 0) for rule in rules.RULES}
    outcomes["seq.contiguous"] = RuleOutcome("seq.contiguous", 1, 1)
    section = Section(name="we|ird <name>\nx", kind="file", outcomes=outcomes, violations=[v],
                      violation_counts={"seq.contiguous": 1},
                      latencies={"delivery": {"count": 1, "p50": 1.0, "p95": 1.0, "p99": 1.0, "max": 1.0}})
    return Report(validate_frames([]).profile, [section], notes=["note with <i>html</i> | pipe"],
                  target={"kind": "files", "files": ["we|ird <name>"]}, started_at=FIXED_TIME,
                  finished_at=FIXED_TIME, kit_version=FIXED_VERSION)


def test_hostile_stream_text_stays_literal_inside_its_cell():
    text = render(_hostile_report(), "markdown")
    tokens = parse(text)
    no_raw_html(tokens)
    (matrix, latency) = tables(tokens)
    assert matrix[0] == ["rule", "level", "we|ird <name> x"]  # one column: the pipe did not split the cell
    assert all(len(row) == 3 for row in matrix)
    assert [row[0] for row in latency[1:]] == ["we|ird <name> x"]
    fences = [tok for tok in tokens if tok.type == "fence"]
    assert fences[-1].content == "```\n<b>frame</b> |x|\n"  # the excerpt verbatim, its fence not closed early
    links = [c for tok in tokens for c in (tok.children or []) if c.type == "link_open"]
    assert not links, "stream text made a link"


@pytest.mark.parametrize("text", ["a|b", "x`y", "``", "<p>", "a\nb", "`lead", "trail`"])
def test_code_spans_round_trip_through_the_parser(text):
    tokens = parse(f"| h |\n|---|\n| {md.code(text)} |\n")
    (rows,) = tables(tokens)
    assert rows[1] == [text.replace("\n", " ")]


def test_markdown_is_offered_by_the_command_line(tmp_path, capsys):
    from agent_events.conformance.cli import main

    frames = VECTORS["valid/primary.json"]["frames"]
    log = tmp_path / "run.jsonl"
    log.write_text("".join(json.dumps(f["msg"]) + "\n" for f in frames if f.get("dir") == "recv"))
    out = tmp_path / "reports" / "r.md"
    assert main(["validate", str(log), "--format", "markdown", "--report", f"markdown={out}"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("## agent-events conformance report") and "CONFORMANT" in printed
    no_raw_html(parse(out.read_text(encoding="utf-8")))
