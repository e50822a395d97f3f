"""Assertion helpers for a team's own tests: a recorded stream or a live endpoint, conformant or not.

::

    from agent_events.conformance.tooling.testing import assert_stream_conformant

    def test_my_agent_emits_a_conformant_stream():
        messages = run_my_agent_and_collect_what_it_sent()
        assert_stream_conformant(messages)

Each helper returns the :class:`agent_events.conformance.reporting.report.Report` when the
stream passes, and raises ``AssertionError`` when it does not, with a message
in the manner of pytest's own assertion rewriting: one line saying what
failed, then one short block per failure (rule, where, expected, observed,
the frames that led to it). The gate is the report's policy: by default every
MUST rule must hold; ``strict=True`` (or a ``policy``) fails on SHOULD rules too.

Nothing here imports pytest: the helpers work under any test runner.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from agent_events.conformance.core import profiles as _profiles
from agent_events.conformance.core import rules as _rules
from agent_events.conformance.core.profiles import Profile
from agent_events.conformance.reporting.report import DEFAULT_POLICY, Policy, Report

#: Violations shown per failed rule; the rest are counted.
SHOWN_PER_RULE = 3
#: Frames of an excerpt shown per violation (the last ones: the offending frame and those just before it).
EXCERPT_LINES = 4


def failure_message(report: Report, what: str = "stream") -> str:
    """Why ``report`` fails its gate, as an assertion message; ``""`` when it passes."""
    if report.passed_gate:
        return ""
    policy = report.policy
    failed = sorted({r for s in report.sections for r in s.failed_rules(policy)},
                    key=[r.id for r in _rules.RULES].index)
    lines = [f"{what} is not conformant: "
             + (f"{len(failed)} rule(s) failed ({', '.join(failed)})" if failed else "the gate failed")]
    note = report.gate_note()
    if policy.max_warnings is not None and report.warnings > policy.max_warnings:
        lines.append(f"{report.warnings} warnings exceed max_warnings {policy.max_warnings}")
    elif note and not failed:
        lines.append(note)
    several = len(report.sections) > 1
    for section in report.sections:
        for rule_id in section.failed_rules(policy):
            rule = _rules.get(rule_id)
            found = [v for v in section.violations if v.rule_id == rule_id]
            for v in found[:SHOWN_PER_RULE]:
                where = [x for x in (section.name if several else "", v.location or "",
                                     f"run {v.run_id!r}" if v.run_id is not None else "",
                                     f"frame #{v.index}" if v.index is not None else "") if x]
                lines.append("")
                lines.append(f"{rule_id} [{rule.level.value}] {', '.join(where)}".rstrip() + f": {rule.title}")
                lines.append(f"  expected: {v.expected}")
                lines.append(f"  observed: {v.observed}")
                excerpt = list(v.excerpt)[-EXCERPT_LINES:]
                for i, line in enumerate(excerpt):
                    marker = "  <-" if i == len(excerpt) - 1 and v.index is not None else ""
                    lines.append(f"    {line}{marker}")
            hidden = section.violation_counts.get(rule_id, 0) - min(len(found), SHOWN_PER_RULE)
            if hidden > 0:
                lines.append(f"  ... and {hidden} more {rule_id} violation(s)"
                             + (f" in {section.name}" if several else ""))
    return "\n".join(lines)


def assert_conformant(report: Report, what: str | None = None) -> Report:
    """Assert that ``report`` passes its gate (by default: every MUST rule held); return it."""
    __tracebackhide__ = True
    if what is None:
        what = report.target.get("url") or ", ".join(report.target.get("files", [])) or "stream"
    message = failure_message(report, what)
    if message:
        raise AssertionError(message)
    return report


def _policy(policy: Policy | None, strict: bool) -> Policy:
    if policy is not None:
        return policy
    return Policy(strict=True) if strict else DEFAULT_POLICY


def _is_frames(items: Sequence[Any]) -> bool:
    """Transcript frames (``{"dir", "msg"|"text"|"binary", ...}``), not server messages."""
    return bool(items) and all(isinstance(i, dict) and "dir" in i and ("msg" in i or "text" in i or "binary" in i)
                               for i in items)


def assert_stream_conformant(stream: "Iterable[Any] | str | os.PathLike", profile: "str | Profile" =
                             _profiles.DEFAULT_PROFILE, *, strict: bool = False, policy: Policy | None = None) -> Report:
    """Assert that a recorded stream is conformant; return its report.

    ``stream`` is a path (a JSONL transcript from ``agent-events record`` or ``check --record``,
    or plain JSONL of server messages; ``.gz`` too), or the server messages themselves as decoded
    JSON values (``str`` / ``bytes`` items are raw frames), or transcript frames as dicts.
    """
    __tracebackhide__ = True
    from agent_events.conformance.api import validate_files, validate_frames, validate_messages

    policy = _policy(policy, strict)
    if isinstance(stream, (str, os.PathLike)):
        path = Path(stream)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (assert_stream_conformant takes a path or the messages)")
        report = validate_files([path], profile, policy=policy)
        return assert_conformant(report, str(path))
    items = list(stream)
    if _is_frames(items):
        report = validate_frames(items, profile, policy=policy)
        return assert_conformant(report, f"stream of {len(items)} frame(s)")
    report = validate_messages(items, profile, policy=policy)
    return assert_conformant(report, f"stream of {len(items)} message(s)")


def assert_endpoint_conformant(url: str, scenarios: Sequence[str] | None = None, *,
                               profile: "str | Profile" = _profiles.DEFAULT_PROFILE, strict: bool = False,
                               policy: Policy | None = None, **check_kwargs: Any) -> Report:
    """Assert that a live endpoint is conformant in ``scenarios`` (default all); return the report.

    ``check_kwargs`` are those of :func:`agent_events.conformance.check` (``token``, ``headers``,
    budgets such as ``delivery_ms``, ``runs``, ...). An endpoint that cannot be reached raises
    :class:`agent_events.conformance.ConnectError`, not ``AssertionError``: that is no verdict.
    """
    __tracebackhide__ = True
    from agent_events.conformance.live.api import check

    report = check(url, scenarios=scenarios, profile=profile, policy=_policy(policy, strict), **check_kwargs)
    return assert_conformant(report, url)


__all__ = ["assert_conformant", "assert_stream_conformant", "assert_endpoint_conformant", "failure_message"]
