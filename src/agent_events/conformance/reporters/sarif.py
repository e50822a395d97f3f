"""``--format sarif``: a SARIF 2.1.0 log, so code-scanning interfaces show violations inline.

One ``run`` per report. Its tool driver lists every rule of the registry
(help text, rationale and the spec section it comes from, so a reader of an
alert needs nothing else); each kept violation is one ``result`` at the level
the report's policy gives its rule, located at the transcript's ``FILE:LINE``
when a file was validated (at the endpoint's URL for a live check). The
policy's per-rule overrides are recorded as ``ruleConfigurationOverrides``,
so the log says by which rules it was judged, and the verdict, the policy
and the conformance claim travel in the run's ``properties``.

Paths are made relative to the working directory when they lie under it:
code-scanning services resolve relative URIs against the checkout, which is
where CI runs the command.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import orjson

from agent_events.conformance.core import rules as _rules
from agent_events.conformance.reporters.base import Reporter

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SITE = "https://agent-events.dev/"
#: Where a rule's section of the specification is published.
SPEC_URL = SITE + "spec/#{section}"
#: severity -> SARIF level (``off`` rules produce no result at all).
LEVELS = {"error": "error", "warning": "warning", "info": "note", "off": "none"}
#: severity -> GitHub code scanning's ``problem.severity`` rule property.
_PROBLEM_SEVERITY = {"error": "error", "warning": "warning", "info": "recommendation", "off": "recommendation"}
_STDIN = "<stdin>"


def spec_url(rule: _rules.Rule) -> str:
    return SPEC_URL.format(section=rule.section)


def _rule_name(rule_id: str) -> str:
    """``pair.tool_matched`` -> ``PairToolMatched`` (SARIF's conventional rule name form)."""
    return "".join(part[:1].upper() + part[1:] for part in rule_id.replace("_", ".").split("."))


def rule_descriptor(rule: _rules.Rule) -> dict:
    url = spec_url(rule)
    scope = f" Profile: {rule.profile}." if rule.profile else ""
    text = (f"{rule.level.value}: {rule.title}. {rule.rationale}{scope} "
            f"Default severity: {rule.severity}. Specification: {url}")
    markdown = (f"**{rule.level.value}** `{rule.id}`: {rule.title}.\n\n{rule.rationale}{scope}\n\n"
                f"Default severity: *{rule.severity}*. See the [specification]({url}).")
    return {
        "id": rule.id,
        "name": _rule_name(rule.id),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.rationale},
        "help": {"text": text, "markdown": markdown},
        "helpUri": url,
        "defaultConfiguration": {"level": LEVELS[rule.severity], "enabled": True},
        "properties": {"tags": [rule.category, rule.level.value], "level": rule.level.value,
                       "category": rule.category, "scope": rule.scope, "profile": rule.profile,
                       "deprecated": rule.deprecated, "problem.severity": _PROBLEM_SEVERITY[rule.severity]},
    }


def _uri(path_text: str) -> str:
    path = Path(path_text)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(Path.cwd().resolve())
        except (ValueError, OSError):
            return path.as_uri()
    return quote(path.as_posix(), safe="/:@-._~!$&'()*+,;=")


def _physical(location: str | None, url: str | None) -> dict | None:
    """A ``physicalLocation`` from a violation's ``FILE:LINE``, else the file or URL checked."""
    if location:
        path, sep, line = location.rpartition(":")
        if sep and line.isdigit() and path and path != _STDIN:
            return {"artifactLocation": {"uri": _uri(path)}, "region": {"startLine": max(1, int(line))}}
        if location != _STDIN and not sep:
            return {"artifactLocation": {"uri": _uri(location)}}
    if url:
        return {"artifactLocation": {"uri": url}}
    return None


class SarifReporter(Reporter):
    name = "sarif"
    extension = ".sarif"
    media_type = "application/sarif+json"

    def render(self, report) -> str:
        return orjson.dumps(self.log(report), option=orjson.OPT_INDENT_2).decode() + "\n"

    def log(self, report) -> dict:
        """The SARIF log as a dict (what :meth:`render` serialises)."""
        policy = report.policy
        index = {rule.id: i for i, rule in enumerate(report.rules)}
        url = report.target.get("url")
        results, notifications = [], []
        for section in report.sections:
            for v in section.violations:
                severity = policy.severity(v.rule_id)
                if severity != "off":
                    results.append(self._result(v, severity, section.name, index, url))
            kept = Counter(v.rule_id for v in section.violations)
            for rule_id, count in section.violation_counts.items():
                omitted = count - kept[rule_id]
                if omitted > 0 and policy.severity(rule_id) != "off":
                    notifications.append({
                        "level": "note",
                        "message": {"text": f"{section.name}: {omitted} more {rule_id} violation(s) were counted "
                                            f"but not kept as results (each rule keeps its first ones; "
                                            f"the JSON report has the counts)."},
                        "associatedRule": {"id": rule_id, "index": index[rule_id]},
                    })
            for rule_id, outcome in section.outcomes.items():
                if outcome.inconclusive and not outcome.violations and policy.severity(rule_id) != "off":
                    notifications.append({  # not a result: nothing was found, and nothing was cleared either
                        "level": "note",
                        "message": {"text": f"{section.name}: {rule_id} {outcome.inconclusive_text()}"},
                        "associatedRule": {"id": rule_id, "index": index[rule_id]},
                    })
        overrides = [{"descriptor": {"id": rule_id, "index": index[rule_id]},
                      "configuration": {"level": LEVELS[severity], "enabled": severity != "off"}}
                     for rule_id, severity in policy.severities.items()]
        invocation = {"executionSuccessful": True, "exitCode": report.exit_code(),
                      "startTimeUtc": report.started_at, "endTimeUtc": report.finished_at}
        if overrides:
            invocation["ruleConfigurationOverrides"] = overrides
        if notifications:
            invocation["toolExecutionNotifications"] = notifications
        return {
            "$schema": SARIF_SCHEMA,
            "version": SARIF_VERSION,
            "runs": [{
                "tool": {"driver": {
                    "name": "agent-events",
                    "version": report.kit_version,
                    "informationUri": SITE,
                    "rules": [rule_descriptor(rule) for rule in report.rules],
                }},
                "automationDetails": {"id": f"agent-events/{report.command or 'check'}/"},
                "invocations": [invocation],
                "results": results,
                "properties": {
                    "protocol_version": report.protocol_version,
                    "profile": report.profile.to_dict(),
                    "target": report.target,
                    "conformant": report.conformant,
                    "passed_gate": report.passed_gate,
                    "policy": policy.to_dict(),
                    "claim": report.claim().to_dict(),
                },
            }],
        }

    @staticmethod
    def _result(v, severity: str, section: str, index: dict[str, int], url: str | None) -> dict:
        rule = _rules.get(v.rule_id)
        where = f" in run {v.run_id!r}" if v.run_id is not None else ""
        logical = {"name": str(v.run_id) if v.run_id is not None else v.conn,
                   "fullyQualifiedName": "/".join(str(x) for x in (section, v.conn, v.run_id) if x is not None),
                   "kind": "object"}
        location: dict = {"logicalLocations": [logical]}
        physical = _physical(v.location, url)
        if physical is not None:
            location["physicalLocation"] = physical
        identity = "|".join(str(x) for x in (v.rule_id, section, v.conn, v.run_id, v.index, v.location))
        return {
            "ruleId": v.rule_id,
            "ruleIndex": index[v.rule_id],
            "level": LEVELS[severity],
            "message": {"text": f"{rule.title}{where}: expected {v.expected}; observed {v.observed}."},
            "locations": [location],
            "partialFingerprints": {"agentEventsViolation/v1": hashlib.sha256(identity.encode()).hexdigest()[:32]},
            "properties": {"section": section, "run_id": v.run_id, "conn": v.conn, "frame_index": v.index,
                           "level": v.level, "severity": severity, "expected": v.expected,
                           "observed": v.observed, "excerpt": list(v.excerpt)},
        }
