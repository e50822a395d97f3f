"""``--format text``: for a person at a terminal.

One line per rule (PASS / FAIL / WARN / N/A), then each failure with what was
expected, what was observed and the messages that led to it, then the
verdict. Colour only when asked (the CLI asks when stdout is a terminal), so
logs and files stay plain.
"""

from __future__ import annotations

from agent_events.conformance import rules as _rules
from agent_events.conformance.latencies import DESCRIPTIONS
from agent_events.conformance.reporters.base import (
    SHOWN_PER_RULE, Reporter, budgets_line, claim_line, fmt_ms, latency_rows, policy_line, target_text,
    verdict_line, verdict_ok,
)
from agent_events.conformance.violations import FAIL, INFO, NOT_APPLICABLE, OFF, PASS, WARN

_COLORS = {PASS: "32", FAIL: "1;31", WARN: "33", INFO: "36", NOT_APPLICABLE: "2", OFF: "2"}


class TextReporter(Reporter):
    name = "text"
    extension = ".txt"

    def _c(self, text: str, status: str) -> str:
        return f"\x1b[{_COLORS[status]}m{text}\x1b[0m" if self.color else text

    def _rule_line(self, status: str, rule_id: str, width: int, outcome, tail: str = "") -> str:
        rule = _rules.get(rule_id)
        if status == NOT_APPLICABLE:
            detail = f"- {outcome.reason}"
        elif outcome.violations:
            detail = f"({outcome.violations} violation{'s' if outcome.violations != 1 else ''} / {outcome.checked} checked)"
        elif status == OFF:
            detail = "(off)"
        else:
            detail = f"({outcome.checked} checked)"
        return f"  {self._c(f'{status:<4}', status)}  {rule.level.value:<6}  {rule_id:<{width}}  {rule.title} {detail}{tail}"

    def _grouped(self, report, width: int) -> list[str]:
        """``--group``: every section merged, one line per rule with its count and where it first broke."""
        first: dict[str, str] = {}
        for section in report.sections:
            for v in section.violations:
                if v.rule_id not in first:
                    first[v.rule_id] = v.location or (f"{section.name}, run {v.run_id!r}" if v.run_id is not None
                                                      else f"{section.name}, conn {v.conn}")
        stats = {name: report.stat(name) for name in ("runs", "events", "frames")}
        out = ["", f"== {len(report.sections)} section(s): {stats['runs']} runs, {stats['events']} events, "
                   f"{stats['frames']} frames"]
        notes = dict.fromkeys(note for section in report.sections for note in section.notes)
        out.extend(f"   note: {note}" for note in notes)
        statuses = report.statuses()
        for rule_id, outcome in report.rule_outcomes().items():
            status = statuses[rule_id]
            tail = f", first at {first[rule_id]}" if outcome.violations and rule_id in first and status != OFF else ""
            out.append(self._rule_line(status, rule_id, width, outcome, tail))
        return out

    def render(self, report) -> str:
        out: list[str] = []
        what = target_text(report)
        out.append(f"agent-events {report.kit_version} - protocol {report.protocol_version} - "
                   f"profile {report.profile.name} - {report.command or 'check'} {what}".rstrip())
        out.append(f"budgets: {budgets_line(report.profile)}"
                   + (" - strict" if report.policy.gate == "warning" else ""))
        gating = policy_line(report.policy)
        if gating:
            out.append(gating)
        width = max(len(r.id) for r in _rules.RULES)
        policy = report.policy
        if self.group:
            out.extend(self._grouped(report, width))
        for section in ([] if self.group else report.sections):
            stats = section.stats
            out.append("")
            out.append(f"== {section.name} ({section.kind}): {stats.get('runs', 0)} runs, "
                       f"{stats.get('events', 0)} events, {stats.get('frames', 0)} frames")
            for note in section.notes:
                out.append(f"   note: {note}")
            for rule_id, outcome in section.outcomes.items():
                out.append(self._rule_line(policy.status(outcome), rule_id, width, outcome))
            shown: dict[str, int] = {}
            failures = [v for v in section.violations if policy.severity(v.rule_id) != "off"]
            if failures:
                out.append("")
                out.append("  Violations:")
            for v in failures:
                shown[v.rule_id] = shown.get(v.rule_id, 0) + 1
                if shown[v.rule_id] > SHOWN_PER_RULE:
                    continue
                status = policy.status(section.outcomes[v.rule_id]) if v.rule_id in section.outcomes else FAIL
                where = [f"conn {v.conn}"]
                if v.run_id is not None:
                    where.insert(0, f"run {v.run_id!r}")
                if v.index is not None:
                    where.append(f"frame #{v.index}")
                if v.location:
                    where.append(v.location)
                out.append(f"  {self._c(status, status)} {v.rule_id} [{v.level}] {', '.join(where)}")
                out.append(f"      expected: {v.expected}")
                out.append(f"      observed: {v.observed}")
                for i, line in enumerate(v.excerpt):
                    marker = "  <-" if i == len(v.excerpt) - 1 and v.index is not None else ""
                    out.append(f"        {line}{marker}")
            for rule_id, n in section.violation_counts.items():
                hidden = n - min(shown.get(rule_id, 0), SHOWN_PER_RULE)
                if hidden > 0 and policy.severity(rule_id) != "off":
                    out.append(f"  ... and {hidden} more {rule_id} violation(s) (see --format json)")
            rows = latency_rows(section.latencies)
            if rows:
                out.append("")
                out.append("  latency (ms)      count      p50      p95      p99      max")
                for kind, s in rows:
                    out.append(f"  {kind:<14} {s['count']:>8} {fmt_ms(s['p50']):>8} {fmt_ms(s['p95']):>8} "
                               f"{fmt_ms(s['p99']):>8} {fmt_ms(s['max']):>8}   {DESCRIPTIONS.get(kind, '')}")
            if section.errors_received:
                codes = ", ".join(f"{code} x{n}" for code, n in sorted(section.errors_received.items()))
                out.append(f"  error messages received: {codes}")
        for note in report.notes:
            out.append(f"note: {note}")
        out.append("")
        claim = claim_line(report)
        if claim:
            out.append(claim)
        verdict = verdict_line(report)
        out.append(self._c(verdict, PASS if verdict_ok(report) else FAIL) + f" - exit {report.exit_code()}")
        return "\n".join(out) + "\n"
