"""``--format markdown``: for a GitHub job summary and a pull-request comment.

GitHub renders both with GitHub-Flavoured Markdown, so the report keeps to what
GFM renders everywhere: headings, lists, pipe tables and fenced code, and **no
raw HTML** (a comment's sanitiser strips most of it, and a ``<details>`` that
renders in one place breaks in another). What a reviewer needs first comes first:

* the verdict line (the text report's, with the exit code) and the claim;
* the **rule matrix**: one row per rule, one column per section (scenario or
  file), the rules that need attention first (FAIL, WARN, INFO, INCONCLUSIVE,
  then the rest in registry order). With more sections than fit a PR comment
  (``MAX_COLUMNS``), one column shows the worst status over all of them;
* each **failure**, with its expected and observed values and the excerpt
  (``SHOWN_PER_RULE`` per rule and section, ``MAX_BLOCKS`` in all, the rest counted:
  a pull-request comment holds 65,536 characters, a job summary 1 MiB);
* the **latency table** of every section that measured any.

Every text that comes from the checked stream goes through :func:`cell` or
:func:`inline`, which backslash-escape the characters that would make markup
(``|`` would split a table cell, ``<`` could open raw HTML) and fold newlines,
so a hostile frame cannot change the layout; excerpts go in a fence longer than
any run of backticks they contain.
"""

from __future__ import annotations

import re

from agent_events.conformance.core import rules as _rules
from agent_events.conformance.core.latencies import DESCRIPTIONS
from agent_events.conformance.reporters.base import (
    SHOWN_PER_RULE, Reporter, budgets_line, fmt_ms, latency_rows, policy_line, target_text, verdict_line,
    verdict_ok, where_parts,
)
from agent_events.conformance.core.violations import FAIL, INCONCLUSIVE, INFO, NOT_APPLICABLE, OFF, PASS, WARN

#: Sections shown as their own matrix column; past it, one "all sections" column.
MAX_COLUMNS = 10
#: Failure blocks shown in all (the rest are counted), so that a report fits a PR comment (65,536 characters).
MAX_BLOCKS = 20

#: Worst first, as reports merge statuses.
_RANK = {FAIL: 0, WARN: 1, INFO: 2, INCONCLUSIVE: 3, PASS: 4, NOT_APPLICABLE: 5, OFF: 6}
#: A cell: a symbol a reader scans for, and the status word a screen reader and a search find.
_CELL = {FAIL: "\u274c FAIL", WARN: "\u26a0\ufe0f WARN", INFO: "\u2139\ufe0f INFO", INCONCLUSIVE: "\u2753 INCONCLUSIVE",
         PASS: "\u2705 PASS", NOT_APPLICABLE: "N/A", OFF: "off"}

# ASCII punctuation that can start or end inline markup (CommonMark lets any of it be backslash-escaped).
_SPECIAL = re.compile(r"([\\`*_\[\]<|&~!#])")
_NEWLINES = re.compile(r"\s*[\r\n]+\s*")


def inline(text: object) -> str:
    """``text`` as literal inline Markdown: markup characters escaped, line breaks folded to a space."""
    return _SPECIAL.sub(r"\\\1", _NEWLINES.sub(" ", str(text)))


def cell(text: object) -> str:
    """A table cell's content: :func:`inline`, never empty (an empty cell reads as a layout slip)."""
    return inline(text) or "-"


def code(text: object) -> str:
    """``text`` as an inline code span: a delimiter longer than any backtick run in it; ``|`` escaped
    (GFM splits table cells before it parses code spans) and line breaks folded."""
    text = _NEWLINES.sub(" ", str(text)).replace("|", "\\|")
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fence(lines: list[str], info: str = "text") -> list[str]:
    """A fenced code block holding ``lines`` verbatim, its fence longer than any backtick run in them."""
    longest = max((len(m) for line in lines for m in re.findall(r"`{3,}", line)), default=0)
    ticks = "`" * max(3, longest + 1)
    return [f"{ticks}{info}", *lines, ticks]


def table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    """A GFM pipe table; cells must already be escaped (:func:`cell`)."""
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    align = align or ["l"] * len(header)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    out.extend("| " + " | ".join(row) + " |" for row in rows)
    return out


class MarkdownReporter(Reporter):
    name = "markdown"
    extension = ".md"
    media_type = "text/markdown"

    def render(self, report) -> str:
        out = self._head(report)
        if report.sections:
            out += ["", *self._matrix(report)]
        out += self._baseline(report)
        out += self._failures(report)
        out += self._latencies(report)
        notes = list(dict.fromkeys([*(n for s in report.sections for n in s.notes), *report.notes]))
        if notes:
            out += ["", "### Notes", "", *(f"- {inline(note)}" for note in notes)]
        return "\n".join(out) + "\n"

    # -- the verdict -------------------------------------------------------------------

    def _head(self, report) -> list[str]:
        mark = "\u2705" if verdict_ok(report) else "\u274c" if not report.passed_gate else "\u26a0\ufe0f"
        out = ["## agent-events conformance report", "",
               f"{mark} **{inline(verdict_line(report))}** (exit {report.exit_code()})", "",
               f"- checked: {inline(report.command or 'check')} {inline(target_text(report))}".rstrip(),
               f"- profile {code(report.profile.name)}, protocol {inline(report.protocol_version)}, "
               f"kit {inline(report.kit_version)}",
               f"- budgets: {inline(budgets_line(report.profile))}"]
        gating = policy_line(report.policy)
        if gating:
            out.append(f"- {inline(gating)}")
        claim = report.claim()
        if claim.eligible:
            out += ["", "**Conformance claim** (paste into release notes):", "", *fence([claim.statement])]
        elif report.conformant or report.policy.lowered_must:
            out += ["", inline(claim.reason)]
        return out

    # -- the matrix --------------------------------------------------------------------

    def _matrix(self, report) -> list[str]:
        policy = report.policy
        sections = report.sections
        per_section = [s.statuses(policy) for s in sections]
        worst = report.statuses()
        order = {rule.id: i for i, rule in enumerate(_rules.RULES)}
        rule_ids = sorted(worst, key=lambda r: (_RANK.get(worst[r], len(_RANK)), order.get(r, len(order))))
        split = len(sections) <= MAX_COLUMNS
        if split:
            header = ["rule", "level", *(cell(s.name) for s in sections)]
        else:
            header = ["rule", "level", f"all {len(sections)} sections", "failing in"]
        rows = []
        for rule_id in rule_ids:
            rule = _rules.get(rule_id)
            first = [code(rule_id), rule.level.value]
            if split:
                rows.append(first + [_CELL.get(st.get(rule_id), "-") if rule_id in st else "-" for st in per_section])
            else:
                bad = [s.name for s, st in zip(sections, per_section) if st.get(rule_id) in (FAIL, WARN, INFO)]
                shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
                rows.append(first + [_CELL.get(worst[rule_id], "-"), cell(shown)])
        counts = {s: sum(1 for v in worst.values() if v == s) for s in _RANK}
        tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        return ["### Rules", "", f"{len(rule_ids)} rules over {len(sections)} section(s) "
                f"({inline(tally)}); the rules that need attention first.", "",
                *table(header, rows, ["l", "l", *["c"] * (len(header) - 2)])]

    # -- baseline, failures, latency ---------------------------------------------------

    def _baseline(self, report) -> list[str]:
        comparison = report.baseline_comparison()
        if comparison is None:
            return []
        out = ["", "### Baseline", "", inline(comparison.summary())]
        if comparison.stale:
            out.append("")
            out.extend(f"- \u274c stale: {code(entry)}: listed in the baseline, judged, and no longer fails "
                       f"(remove the entry, or run with --update-baseline)" for entry in comparison.stale)
        return out

    def _failures(self, report) -> list[str]:
        policy = report.policy
        comparison = report.baseline_comparison()
        known = set(comparison.known) if comparison is not None else set()
        blocks: list[list[str]] = []
        hidden = 0
        for section in report.sections:
            shown: dict[str, int] = {}
            for v in section.violations:
                if policy.severity(v.rule_id) == "off":
                    continue
                shown[v.rule_id] = shown.get(v.rule_id, 0) + 1
                if shown[v.rule_id] > SHOWN_PER_RULE or len(blocks) >= MAX_BLOCKS:
                    hidden += 1
                    continue
                blocks.append(self._block(report, section, v, (section.name, v.rule_id) in known))
            for rule_id, n in section.violation_counts.items():
                if policy.severity(rule_id) != "off":
                    hidden += max(0, n - shown.get(rule_id, 0))
        # failing (gate) blocks before warnings: the order a reviewer fixes them in
        blocks.sort(key=lambda b: 0 if b[0].startswith("#### \u274c") else 1)
        if not blocks:
            return []
        out = ["", "### Failures and warnings"]
        for block in blocks:
            out += ["", *block]
        if hidden:
            out += ["", f"... and {hidden} more violation(s): see the JSON or HTML report."]
        return out

    def _block(self, report, section, v, known: bool) -> list[str]:
        status = report.policy.status(section.outcomes[v.rule_id]) if v.rule_id in section.outcomes else FAIL
        rule = _rules.BY_ID.get(v.rule_id)
        mark = "\u274c" if status == FAIL and not known else "\u26a0\ufe0f" if status in (FAIL, WARN) else "\u2139\ufe0f"
        head = f"#### {mark} {code(v.rule_id)} in {inline(section.name)}: {status}" + (" (known: in the baseline)" if known else "")
        out = [head, ""]
        if rule is not None:
            out += [f"{inline(rule.title)} ({rule.level.value}, spec {inline(rule.section)})", ""]
        where = where_parts(v)
        if where:
            out.append(f"- where: {inline(', '.join(where))}")
        out += [f"- expected: {inline(v.expected)}", f"- observed: {inline(v.observed)}"]
        if v.excerpt:
            out += ["", *fence([str(line) for line in v.excerpt], "text")]
        return out

    def _latencies(self, report) -> list[str]:
        rows = []
        for section in report.sections:
            for kind, s in latency_rows(section.latencies):
                rows.append([cell(section.name), code(kind), str(s["count"]), fmt_ms(s["p50"]), fmt_ms(s["p95"]),
                             fmt_ms(s["p99"]), fmt_ms(s["max"]), cell(DESCRIPTIONS.get(kind, ""))])
        if not rows:
            return []
        return ["", "### Latency (ms)", "",
                *table(["section", "measure", "count", "p50", "p95", "p99", "max", "what"], rows,
                       ["l", "l", "r", "r", "r", "r", "r", "l"])]
