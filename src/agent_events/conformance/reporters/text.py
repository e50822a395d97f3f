"""``--format text``: for a person at a terminal, in the manner of pytest and ruff.

Three levels of detail (``verbosity``):

* ``0``, the default: a header, one line per section (scenario or file) with its
  counts, every failure and warning in full (rule, expected, observed, the
  messages that led to it), the latency table of a section whose latency
  rules did not all pass, and the verdict. An all-pass check is a screenful.
* ``1`` (``-v``, and every text report written to a file): also the full rule
  matrix of every section, its latency table and the error codes received.
* ``-1`` (``-q``): only the failures that fail the gate, and the verdict.

Colour only when asked (the CLI asks when stdout is a terminal), so logs and
files stay plain.
"""

from __future__ import annotations

from agent_events.conformance.core import rules as _rules
from agent_events.conformance.core.latencies import DESCRIPTIONS
from agent_events.conformance.reporters.base import (
    SHOWN_PER_RULE, Reporter, budgets_line, claim_line, fmt_ms, latency_rows, policy_line, target_text,
    verdict_line, verdict_ok,
)
from agent_events.conformance.core.violations import FAIL, INCONCLUSIVE, INFO, NOT_APPLICABLE, OFF, PASS, WARN

_COLORS = {PASS: "32", FAIL: "1;31", WARN: "33", INFO: "36", INCONCLUSIVE: "35", NOT_APPLICABLE: "2", OFF: "2"}


QUIET, DEFAULT, VERBOSE = -1, 0, 1


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class TextReporter(Reporter):
    name = "text"
    extension = ".txt"

    def _c(self, text: str, status: str) -> str:
        return f"\x1b[{_COLORS[status]}m{text}\x1b[0m" if self.color else text

    def _rule_line(self, status: str, rule_id: str, width: int, outcome, tail: str = "") -> str:
        rule = _rules.get(rule_id)
        if status == NOT_APPLICABLE:
            detail = f"- {outcome.reason}"
        elif status == INCONCLUSIVE:
            detail = f"- {outcome.inconclusive_text()}"
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
        if self.group or self.verbosity >= VERBOSE:
            return self._render_full(report)
        return self._render_compact(report)

    # -- default and quiet -------------------------------------------------------------

    def _header(self, report) -> list[str]:
        judged = (f"judged as dialect {report.dialect.label}" if getattr(report, "foreign", False)
                  else f"protocol {report.protocol_version}")
        out = [f"agent-events {report.kit_version} - {judged} - "
               f"profile {report.profile.name} - {report.command or 'check'} {target_text(report)}".rstrip(),
               f"budgets: {budgets_line(report.profile)}" + (" - strict" if report.policy.gate == "warning" else "")]
        gating = policy_line(report.policy)
        if gating:
            out.append(gating)
        return out

    def section_line(self, report, section, width: int) -> str:
        """``PASS  primary (scenario)  1 run, 11 events, 11 frames  25 passed, 4 n/a``."""
        statuses = section.statuses(report.policy)
        counts = {s: sum(1 for v in statuses.values() if v == s)
                  for s in (FAIL, WARN, INFO, INCONCLUSIVE, PASS, NOT_APPLICABLE, OFF)}
        words = {FAIL: "failed", WARN: "warned", INFO: "info", INCONCLUSIVE: "inconclusive", PASS: "passed",
                 NOT_APPLICABLE: "n/a", OFF: "off"}
        tally = ", ".join(f"{n} {words[s]}" for s, n in counts.items() if n)
        worst = (FAIL if counts[FAIL] else WARN if counts[WARN] else INFO if counts[INFO]
                 else INCONCLUSIVE if counts[INCONCLUSIVE] else PASS)
        if not counts[PASS] and worst == PASS:
            worst = NOT_APPLICABLE
        stats = section.stats
        what = (f"{_plural(stats.get('runs', 0), 'run')}, {_plural(stats.get('events', 0), 'event')}, "
                f"{_plural(stats.get('frames', 0), 'frame')}")
        name = f"{section.name} ({section.kind})"
        return f"  {self._c(f'{worst:<4}', worst)}  {name:<{width}}  {what:<34}  {tally}"

    def _violation_block(self, report, section, v) -> list[str]:
        where = _where(v)
        where.insert(0, v.location or section.name)
        rule = _rules.BY_ID.get(v.rule_id)
        return self._violation_lines(report, section, v, where, rule.title if rule is not None else None)

    def _violation_lines(self, report, section, v, where: list[str], title: str | None) -> list[str]:
        """One violation: status, rule and where; the rule's title (when given); expected, observed,
        and the excerpt with the offending frame marked. Callers indent it as their layout needs."""
        status = report.policy.status(section.outcomes[v.rule_id]) if v.rule_id in section.outcomes else FAIL
        out = [f"{self._c(status, status)} {v.rule_id} [{v.level}] {', '.join(where)}"]
        if title is not None:
            out.append(f"    {title}")
        out.append(f"    expected: {v.expected}")
        out.append(f"    observed: {v.observed}")
        for i, line in enumerate(v.excerpt):
            marker = "  <-" if i == len(v.excerpt) - 1 and v.index is not None else ""
            out.append(f"      {line}{marker}")
        return out

    def failure_blocks(self, report, *, gate_only: bool = False) -> list[str]:
        """Every violation shown in full (up to ``SHOWN_PER_RULE`` per rule and section), one block each;
        ``gate_only``: only those whose severity fails the gate (``-q``)."""
        policy = report.policy
        comparison = report.baseline_comparison()
        known = set(comparison.known) if comparison is not None else set()
        out: list[str] = []
        for section in report.sections:
            shown: dict[str, int] = {}

            def wanted(rule_id: str) -> bool:
                severity = policy.severity(rule_id)
                if gate_only and (section.name, rule_id) in known:  # the baseline lets it through
                    return False
                return severity != "off" and (policy.fails(severity) or not gate_only)

            for v in section.violations:
                if not wanted(v.rule_id):
                    continue
                shown[v.rule_id] = shown.get(v.rule_id, 0) + 1
                if shown[v.rule_id] > SHOWN_PER_RULE:
                    continue
                out.append("")
                block = self._violation_block(report, section, v)
                if (section.name, v.rule_id) in known:
                    block[0] += " (known: in the baseline)"
                out.extend(block)
            for rule_id, n in section.violation_counts.items():
                hidden = n - min(shown.get(rule_id, 0), SHOWN_PER_RULE)
                if hidden > 0 and wanted(rule_id):
                    out.append(f"  ... and {hidden} more {rule_id} violation(s) in {section.name} (see --format json)")
        return out

    def baseline_lines(self, report, *, quiet: bool = False) -> list[str]:
        """The ``--baseline`` summary (not with ``quiet``) and each stale entry, which fails the gate."""
        comparison = report.baseline_comparison()
        if comparison is None:
            return []
        out = [] if quiet else [comparison.summary()]
        for entry in comparison.stale:
            out.append(f"{self._c('STALE', FAIL)} {entry}: listed in the baseline, judged, and no longer fails "
                       f"(remove the entry, or --update-baseline)")
        if not quiet:
            out.extend(f"  not judged: {entry} (not run, or nothing exercised it)" for entry in comparison.unjudged)
        return out

    def _latency_table(self, latencies: dict) -> list[str]:
        rows = latency_rows(latencies)
        if not rows:
            return []
        out = ["  latency (ms)      count      p50      p95      p99      max"]
        for kind, s in rows:
            out.append(f"  {kind:<14} {s['count']:>8} {fmt_ms(s['p50']):>8} {fmt_ms(s['p95']):>8} "
                       f"{fmt_ms(s['p99']):>8} {fmt_ms(s['max']):>8}   {DESCRIPTIONS.get(kind, '')}")
        return out

    def _latency_matters(self, report, section) -> bool:
        return any(rule_id.startswith("latency.") and report.policy.status(o) in (FAIL, WARN, INFO)
                   for rule_id, o in section.outcomes.items())

    def _verdict(self, report) -> list[str]:
        out = []
        claim = claim_line(report)
        if claim and self.verbosity > QUIET:
            out.append(claim)
        verdict = verdict_line(report)
        out.append(self._c(verdict, PASS if verdict_ok(report) else FAIL) + f" - exit {report.exit_code()}")
        return out

    def _render_compact(self, report) -> str:
        quiet = self.verbosity <= QUIET
        out: list[str] = [] if quiet else self._header(report)
        if not quiet and report.sections:
            out.append("")
            width = min(40, max(len(f"{s.name} ({s.kind})") for s in report.sections))
            for section in report.sections:
                out.append(self.section_line(report, section, width))
                out.extend(f"        note: {note}" for note in section.notes)
        baseline = self.baseline_lines(report, quiet=quiet)
        if baseline and not quiet:
            out.append("")
        out.extend(baseline)
        failures = self.failure_blocks(report, gate_only=quiet)
        if failures and quiet and baseline:
            failures.insert(0, "")  # kept by the [1:] below: a blank line after the stale entries
        if failures:
            if not quiet:
                out.append("")
                out.append(self._c("Failures and warnings", FAIL if not report.passed_gate else WARN) + ":")
            out.extend(failures[1:] if quiet else failures)
        if not quiet:
            for section in report.sections:
                if self._latency_matters(report, section):
                    out.append("")
                    out.append(f"latency of {section.name}:")
                    out.extend(self._latency_table(section.latencies))
            seen = {note for section in report.sections for note in section.notes}
            out.extend(f"note: {note}" for note in report.notes if note not in seen)
        if out:
            out.append("")
        out.extend(self._verdict(report))
        return "\n".join(out) + "\n"

    # -- verbose (-v) and --group: the full rule matrix --------------------------------

    def _render_full(self, report) -> str:
        out = self._header(report) + self.full_body(report)
        baseline = self.baseline_lines(report)
        if baseline:
            out += ["", *baseline]
        for note in report.notes:
            out.append(f"note: {note}")
        out.append("")
        claim = claim_line(report)
        if claim:
            out.append(claim)
        verdict = verdict_line(report)
        out.append(self._c(verdict, PASS if verdict_ok(report) else FAIL) + f" - exit {report.exit_code()}")
        return "\n".join(out) + "\n"

    def full_body(self, report) -> list[str]:
        """Per section: its rule matrix, its violations, its latency table and the error codes it received
        (``--group``: the merged matrix instead)."""
        out: list[str] = []
        width = max(len(r.id) for r in report.rules)
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
                where = _where(v)
                if v.location:
                    where.append(v.location)
                out.extend(f"  {line}" for line in self._violation_lines(report, section, v, where, None))
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
        return out


def _where(v) -> list[str]:
    """``run 'r1', conn c0, frame #4``: where a violation happened, as parts."""
    where = [f"conn {v.conn}"]
    if v.run_id is not None:
        where.insert(0, f"run {v.run_id!r}")
    if v.index is not None:
        where.append(f"frame #{v.index}")
    return where
