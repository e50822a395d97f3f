"""The reporter interface, and formatting helpers every format shares."""

from __future__ import annotations

from agent_events.conformance.core.violations import FAIL, INCONCLUSIVE, STATUSES, WARN

#: How many violations of one rule a human-oriented format shows per section.
SHOWN_PER_RULE = 5


class Reporter:
    """Renders a :class:`agent_events.conformance.reporting.report.Report` as text in one format."""

    name = ""
    #: file extension for ``--report FORMAT=PATH`` defaults and for docs
    extension = ".txt"
    media_type = "text/plain"

    def __init__(self, *, color: bool = False, group: bool = False, verbosity: int = 0) -> None:
        self.color = color
        #: one line per rule with a count instead of each violation (formats for people only)
        self.group = group
        #: -1 ``-q``, 0 default, 1 ``-v`` (formats for people only)
        self.verbosity = verbosity

    def render(self, report) -> str:  # pragma: no cover - interface
        raise NotImplementedError


def target_text(report) -> str:
    """What was checked, in a few words: the URL, the files, or the kind of input."""
    target = report.target
    return target.get("url") or ", ".join(target.get("files", [])) or target.get("kind", "")


def where_parts(v) -> list[str]:
    """Where a violation was found: its run, connection, frame and location, those that are known."""
    return [x for x in (f"run {v.run_id}" if v.run_id else "", f"conn {v.conn}",
                        f"frame #{v.index}" if v.index is not None else "", v.location or "") if x]


def budgets_line(profile) -> str:
    return (f"first event {profile.first_event_ms:g} ms, delivery {profile.delivery_ms:g} ms, "
            f"tool gap {profile.tool_gap_ms:g} ms, deadline {profile.deadline_s:g} s")


def verdict_line(report) -> str:
    """``CONFORMANT`` when every MUST rule held, whatever the gate; when the gate decided otherwise
    (``--fail-on none``, a lowered MUST rule, ``--strict``), the line says so, since the exit code
    that follows it is the gate's."""
    statuses = report.statuses()
    failed = [r for r, s in statuses.items() if s == FAIL]
    warned = [r for r, s in statuses.items() if s == WARN]
    inconclusive = [r for r, s in statuses.items() if s == INCONCLUSIVE]
    head = "CONFORMANT" if report.conformant else "NOT CONFORMANT"
    if getattr(report, "foreign", False):  # to the dialect's rules, never a claim of ours
        head += f" to {report.dialect.label}"
    if report.conformant and inconclusive:
        head = "INCONCLUSIVE"  # every MUST rule judged held, but some were not judged: never a plain pass
    parts = []
    if inconclusive:
        parts.append(f"{len(inconclusive)} rule(s) inconclusive, the harness's own lag explaining every sample "
                     f"over budget: {', '.join(inconclusive)} (no conformance claim; the gate does not fail on it)")
    if failed:
        parts.append(f"{len(failed)} rule(s) failed: {', '.join(failed)}")
    if warned:
        parts.append(f"{len(warned)} warning rule(s): {', '.join(warned)}")
    if report.policy.max_warnings is not None and report.warnings > report.policy.max_warnings:
        parts.append(f"{report.warnings} warnings exceed --max-warnings {report.policy.max_warnings}")
    counts = {s: sum(1 for v in statuses.values() if v == s) for s in STATUSES}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    note = report.gate_note()
    return f"{head} ({tally})" + (f": {'; '.join(parts)}" if parts else "") + (f" - {note}" if note else "")


def verdict_ok(report) -> bool:
    """Whether the verdict is shown in the colour of success: conformant, through the gate, all judged."""
    return report.conformant and report.passed_gate and not report.inconclusive_rules


def latency_rows(latencies: dict) -> list[tuple[str, dict]]:
    return [(kind, summary) for kind, summary in latencies.items() if summary.get("count")]


def fmt_ms(value) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def claim_line(report) -> str | None:
    """The claim to paste into release notes, or why a passing check makes none; ``None`` for a failing one
    (its verdict already says all)."""
    claim = report.claim()
    if claim.eligible:
        return f"claim: {claim.statement}"
    if report.conformant or report.policy.lowered_must:
        return claim.reason
    return None


def policy_line(policy) -> str | None:
    """How the report was gated, when not by the defaults (``None`` then): the reader of a
    passing report must see that a rule was turned off."""
    parts = []
    if policy.gate != "error":
        parts.append("strict (fail-on warning)" if policy.strict else f"fail-on {policy.gate}")
    if policy.max_warnings is not None:
        parts.append(f"max-warnings {policy.max_warnings}")
    if policy.severities:
        parts.append("rules " + ", ".join(f"{r}={s}" for r, s in policy.severities.items()))
    return "gating: " + "; ".join(parts) if parts else None
