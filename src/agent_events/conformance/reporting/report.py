"""Reports: what a check found, and what that means for the exit code.

A report is data with no opinion about presentation (the reporters in
``agent_events.conformance.reporters`` render it) and the judgement is a separate,
small :class:`Policy`: which severity each rule counts at and which
severities fail the gate. Keeping the judgement out of the checker means one
recorded check can be re-judged (``--strict``, per-rule severities, a
warnings budget) without checking again.

A report has one section per unit that was checked on its own: a file for
``validate``, a scenario for ``check``. Each section keeps the checker's
outcomes per rule, its (capped) violations, latency summaries and a few run
timelines.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from agent_events import schemas
from agent_events.conformance import __version__
from agent_events.conformance.core import rules as _rules
from agent_events.conformance.reporting import timelines as _timelines
from agent_events.conformance.exitcodes import ExitCode
# Policy lives in gating (the judgement beside the settings that build it); re-exported here, where
# it was first documented, with FAIL_ON and SEVERITIES
from agent_events.conformance.reporting.gating import (  # noqa: F401
    DEFAULT_POLICY, FAIL_ON, SEVERITIES, Policy, check_rule_id,
)
from agent_events.conformance.core.profiles import Profile
from agent_events.conformance.core.violations import (
    FAIL, INCONCLUSIVE, INFO, NOT_APPLICABLE, OFF, PASS, STATUSES, WARN, RuleOutcome, Violation,
)

#: Version of the JSON report's structure (``report_schema.json``). A minor
#: bump adds fields; a major bump changes or removes them. 1.2 added ``passed_gate`` (and the
#: sections' too) and ``claim.withheld_because``; ``conformant`` is every MUST rule held, whatever the gate.
#: 1.3 added the timeline events' ``attempt``, ``tool_call_id``, ``tool_name`` and ``status``.
#: 1.4 added ``baseline`` (``--baseline``: known, new and stale failures).
REPORT_VERSION = "1.5"
REPORT_SCHEMA_ID = "https://agent-events.dev/schemas/report/v1/report.json"

#: Worst first: how statuses merge across sections.
_STATUS_RANK = {FAIL: 0, WARN: 1, INFO: 2, INCONCLUSIVE: 3, PASS: 4, NOT_APPLICABLE: 5, OFF: 6}




@dataclass
class Section:
    """What one checker found about one unit (a file, a scenario)."""

    name: str
    kind: str  # "file" | "scenario" | "stream"
    outcomes: dict[str, RuleOutcome]
    violations: list[Violation] = field(default_factory=list)
    violation_counts: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, dict] = field(default_factory=dict)
    timelines: list[dict] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    errors_received: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: for a file: the transcript header's fields, if it had one
    header: dict[str, Any] | None = None
    #: the protocol version the stream showed (its capabilities' declaration; "1.0" without one)
    protocol_version: str = "1.0"

    @classmethod
    def from_checker(cls, name: str, checker, kind: str = "stream", notes: Iterable[str] = (),
                     header: Mapping[str, Any] | None = None) -> "Section":
        """Freeze what ``checker`` found (call ``checker.close()`` first)."""
        stats = {
            "frames": checker.frames,
            "messages": checker.objects,
            "events": checker.run_events,
            "runs": checker.runs,
            "runs_completed": checker.runs_completed,
            "fallback_runs": checker.fallback_attempts,
            "starts_sent": checker.starts_sent,
            "cancels_sent": checker.cancels_sent,
            "runs_refused": checker.runs_refused,
        }
        return cls(
            name=name, kind=kind, outcomes=checker.outcomes(), violations=list(checker.violations),
            violation_counts=dict(checker.violation_counts), latencies=checker.latencies.summary(),
            timelines=[_timelines.build(rec) for rec in checker.timeline_records], stats=stats, errors_received=dict(checker.errors_received),
            notes=list(notes), header=dict(header) if header else None,
            protocol_version=checker.protocol_version(),
        )

    def statuses(self, policy: Policy) -> dict[str, str]:
        return {rule_id: policy.status(outcome) for rule_id, outcome in self.outcomes.items()}

    def warnings(self, policy: Policy) -> int:
        return sum(n for rule_id, n in self.violation_counts.items() if policy.severity(rule_id) == "warning")

    def failed_rules(self, policy: Policy) -> list[str]:
        return [r for r, n in self.violation_counts.items() if n and policy.fails(policy.severity(r))]

    @property
    def conformant(self) -> bool:
        """Every MUST rule held in this section (the gate does not enter into it)."""
        return not self.failed_rules(DEFAULT_POLICY)

    def passed_gate(self, policy: Policy) -> bool:
        return not self.failed_rules(policy)


@dataclass
class Report:
    """The result of one ``check``, ``validate`` or API call."""

    profile: Profile
    sections: list[Section]
    policy: Policy = DEFAULT_POLICY
    #: what was checked: {"kind": "url"|"files"|"messages", "url": ..., "files": [...]}
    target: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    started_at: str = field(default_factory=lambda: _now())
    finished_at: str = field(default_factory=lambda: _now())
    kit_version: str = __version__
    protocol_version: str = schemas.PROTOCOL_VERSION
    notes: list[str] = field(default_factory=list)
    #: 1.1: the optional features the endpoint declared (``None``: it declared none, a 1.0 endpoint)
    features: dict | None = None
    #: known failures (``--baseline``, :class:`agent_events.conformance.reporting.baseline.Baseline`): the gate then
    #: fails only on failures it does not list and on entries that no longer fail
    baseline: Any = None
    #: the dialect the stream was judged as (:mod:`agent_events.dialects`); ``None``: ours. A foreign
    #: dialect's report carries no agent-events claim or badge (see :mod:`agent_events.conformance.reporting.claim`)
    dialect: Any = None

    @property
    def foreign(self) -> bool:
        """Whether the stream was judged as another protocol than ours (AG-UI, a dialect file)."""
        return self.dialect is not None and not self.dialect.is_ours

    @property
    def rules(self) -> tuple:
        """The rules this report judges, in report order: ours, or those its dialect's sections report."""
        if not self.foreign:
            return _rules.RULES
        wanted = {r for s in self.sections for r in s.outcomes}
        return tuple(r for r in _rules.ALL_RULES if r.id in wanted)

    def __repr__(self) -> str:
        """Short, so that ``assert report.conformant`` in a test shows the verdict, not every field
        (``agent_events.conformance.tooling.testing.assert_conformant`` shows each failure in full)."""
        failed = sorted({r for s in self.sections for r in s.failed_rules(self.policy)})
        verdict = "conformant" if self.conformant else "not conformant"
        gate = "passed the gate" if self.passed_gate else "failed the gate"
        tail = f"; failed: {', '.join(failed)}" if failed else ""
        return f"<Report {self.command or 'check'}: {verdict}, {gate}{tail}>"

    # -- verdict ---------------------------------------------------------------

    def rule_outcomes(self) -> dict[str, RuleOutcome]:
        """Per rule, the sum over sections (reason: the first section's, if none applied)."""
        merged: dict[str, RuleOutcome] = {}
        for rule in self.rules:
            parts = [s.outcomes[rule.id] for s in self.sections if rule.id in s.outcomes]
            checked = sum(p.checked for p in parts)
            violations = sum(p.violations for p in parts)
            applicable = any(p.applicable for p in parts)
            reason = None if applicable else next((p.reason for p in parts if p.reason), "nothing was checked")
            inconclusive = sum(p.inconclusive for p in parts)
            worst = max((p.inconclusive_worst for p in parts if p.inconclusive_worst),
                        key=lambda w: w["latency_ms"], default=None)
            merged[rule.id] = RuleOutcome(rule.id, checked if applicable else 0, violations, reason,
                                          inconclusive=inconclusive, inconclusive_worst=worst)
        return merged

    @property
    def inconclusive_rules(self) -> list[str]:
        """Rules no section failed whose over-budget samples the harness's own lag explains: not
        judged. The gate does not fail on them (a busy CI runner must not fail green code), but
        the report makes no conformance claim while any remain (see the spec's latency section)."""
        return [rule_id for rule_id, status in self.statuses().items() if status == INCONCLUSIVE]

    def statuses(self) -> dict[str, str]:
        """Per rule, the worst status over sections."""
        result = {}
        for rule_id, outcome in self.rule_outcomes().items():
            per_section = [self.policy.status(s.outcomes[rule_id]) for s in self.sections if rule_id in s.outcomes]
            result[rule_id] = min(per_section, key=_STATUS_RANK.__getitem__) if per_section else self.policy.status(outcome)
        return result

    @property
    def warnings(self) -> int:
        return sum(s.warnings(self.policy) for s in self.sections)

    @property
    def violation_total(self) -> int:
        return sum(sum(s.violation_counts.values()) for s in self.sections)

    @property
    def must_failures(self) -> list[str]:
        """The MUST rules violated in any section, whatever severity the policy counts them at."""
        return sorted({r for s in self.sections for r in s.failed_rules(DEFAULT_POLICY)})

    @property
    def conformant(self) -> bool:
        """Whether every MUST rule held. This is what "conformant" means to a reader, so no gate
        changes it: ``--fail-on none`` or a lowered MUST rule can pass the gate of a
        non-conformant stream, ``--strict`` can fail that of a conformant one (see :attr:`passed_gate`)."""
        return not self.must_failures

    @property
    def passed_gate(self) -> bool:
        """Whether the stream passes the policy's gate (by default: every MUST rule held): the exit code."""
        if self.baseline is not None:
            if not self.baseline_comparison().passed:
                return False
        elif not all(s.passed_gate(self.policy) for s in self.sections):
            return False
        if self.policy.max_warnings is not None and self.warnings > self.policy.max_warnings:
            return False
        return True

    def exit_code(self) -> int:
        return int(ExitCode.OK if self.passed_gate else ExitCode.NOT_CONFORMANT)

    def baseline_comparison(self):
        """The failures against :attr:`baseline` (known, new, stale, not judged), or ``None`` without one."""
        return self.baseline.compare(self) if self.baseline is not None else None

    def gate_note(self) -> str | None:
        """Why the gate's outcome differs from the conformance verdict (``None`` when they agree), so a
        green exit code is never read as "conformant" when a team's gate let MUST failures through."""
        policy = self.policy
        if self.passed_gate and not self.conformant:
            reasons = ["--fail-on none"] if policy.gate == "none" else []
            lowered = policy.lowered_must_rules
            reasons += [f"{r} lowered to {lowered[r]}" for r in self.must_failures if r in lowered]
            comparison = self.baseline_comparison()
            if comparison is not None and comparison.known:
                reasons.append(f"baseline {self.baseline.name} ({len(comparison.known)} known failure(s))")
            return "gate passed with " + ", ".join(reasons)
        if self.conformant and not self.passed_gate:
            comparison = self.baseline_comparison()
            if comparison is not None:
                failing = sorted({r for _, r in comparison.new})
            else:
                failing = sorted({r for s in self.sections for r in s.failed_rules(policy)})
            raised = [r for r in failing if policy.severity(r) == "error"]
            reasons = [f"{', '.join(raised)} raised to error"] if raised else []
            if len(raised) < len(failing):  # SHOULD rules at warning, failing because the gate is warning
                reasons.append("--strict" if policy.strict and policy.fail_on is None else "--fail-on warning")
            if policy.max_warnings is not None and self.warnings > policy.max_warnings:
                reasons.append(f"--max-warnings {policy.max_warnings}")
            if comparison is not None and comparison.stale:
                reasons.append(f"{len(comparison.stale)} stale baseline entr{'y' if len(comparison.stale) == 1 else 'ies'}")
            return "gate failed with " + ", ".join(reasons)
        comparison = self.baseline_comparison()
        if comparison is not None and not self.passed_gate:  # both say no: say what the baseline did not cover
            parts = [f"{len(comparison.new)} failure(s) not in baseline {self.baseline.name}"] if comparison.new else []
            if comparison.stale:
                parts.append(f"{len(comparison.stale)} stale baseline entr{'y' if len(comparison.stale) == 1 else 'ies'}")
            return "gate failed with " + ", ".join(parts) if parts else None
        return None

    def stat(self, name: str) -> int:
        return sum(s.stats.get(name, 0) for s in self.sections)

    # -- the JSON form (see report_schema.json) ---------------------------------------

    def to_dict(self) -> dict[str, Any]:
        statuses = self.statuses()
        counts = {status: 0 for status in STATUSES}
        for status in statuses.values():
            counts[status] += 1
        return {
            "$schema": REPORT_SCHEMA_ID,
            "report_version": REPORT_VERSION,
            "kit_version": self.kit_version,
            "protocol_version": self.protocol_version,
            "features": self.features,
            "command": self.command,
            "target": self.target,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "profile": self.profile.to_dict(),
            "policy": self.policy.to_dict(),
            "conformant": self.conformant,
            "passed_gate": self.passed_gate,
            "exit_code": self.exit_code(),
            "summary": {
                "rules": counts,
                "violations": self.violation_total,
                "warnings": self.warnings,
                "sections": len(self.sections),
                "runs": self.stat("runs"),
                "events": self.stat("events"),
                "frames": self.stat("frames"),
            },
            "rules": [self._rule_dict(rule_id, outcome, statuses[rule_id])
                      for rule_id, outcome in self.rule_outcomes().items()],
            "sections": [self._section_dict(s) for s in self.sections],
            "notes": list(self.notes),
            "claim": self.claim().to_dict(),
            "baseline": self.baseline_comparison().to_dict() if self.baseline is not None else None,
            **({"dialect": self.dialect_dict()} if self.foreign else {}),
        }

    def dialect_dict(self) -> dict[str, Any]:
        """What a foreign dialect's report says it judged: the dialect, and k of n rules applicable."""
        outcomes = self.rule_outcomes()
        applicable = sum(1 for o in outcomes.values() if o.applicable)
        d = self.dialect
        return {"name": d.name, "version": d.version, "title": d.title, "source": d.source,
                "rules": len(outcomes), "applicable": applicable,
                "statement": f"judged as dialect {d.label}: {applicable} of {len(outcomes)} rules applicable"}

    def claim(self):
        """The conformance claim this report supports, or why it supports none (:mod:`agent_events.conformance.reporting.claim`)."""
        from agent_events.conformance.reporting.claim import claim_for

        return claim_for(self)

    def _rule_dict(self, rule_id: str, outcome: RuleOutcome, status: str) -> dict[str, Any]:
        rule = _rules.get(rule_id)
        return {
            "id": rule.id, "level": rule.level.value, "severity": self.policy.severity(rule_id),
            "category": rule.category, "title": rule.title, "section": rule.section, "profile": rule.profile,
            "status": status, "checked": outcome.checked, "violations": outcome.violations, "reason": outcome.reason,
            "inconclusive": outcome.inconclusive,
            "inconclusive_worst": outcome.inconclusive_worst,
        }

    def _section_dict(self, section: Section) -> dict[str, Any]:
        statuses = section.statuses(self.policy)
        kept = len(section.violations)
        return {
            "name": section.name,
            "kind": section.kind,
            "conformant": section.conformant,
            "passed_gate": section.passed_gate(self.policy),
            "stats": dict(section.stats),
            "rules": [self._rule_dict(r, o, statuses[r]) for r, o in section.outcomes.items()],
            "violations": [self._violation_dict(v) for v in section.violations],
            "violations_omitted": sum(section.violation_counts.values()) - kept,
            "latencies": section.latencies,
            "timelines": section.timelines,
            "errors_received": dict(section.errors_received),
            "header": section.header,
            "notes": list(section.notes),
        }

    def _violation_dict(self, violation: Violation) -> dict[str, Any]:
        data = violation.to_dict()
        data["severity"] = self.policy.severity(violation.rule_id)
        return data


def recorded_version(sections: Iterable[Section]) -> str:
    """The protocol version recorded streams showed, for an offline report's claim: the oldest their
    capabilities declared ("1.0" for a stream without any), never the kit's latest by default."""
    return schemas.lowest_version(section.protocol_version for section in sections)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
