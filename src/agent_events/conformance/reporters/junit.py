"""``--format junit``: JUnit XML, so every CI system shows the rules natively.

One ``testsuite`` per section (file or scenario), one ``testcase`` per rule:
a failing rule is a ``failure`` with expected vs observed and the excerpt; a
rule that was not applicable is ``skipped`` with the reason; a warning is a
``failure`` only when the policy fails on warnings, else it passes with the
details in ``system-out``. With a ``--baseline``, a known failure is ``skipped``
(the details in ``system-out``) and a stale entry's rule is a ``failure``, as the
gate counts them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from agent_events.conformance.core import rules as _rules
from agent_events.conformance.reporters.base import SHOWN_PER_RULE, Reporter, where_parts
from agent_events.conformance.core.violations import FAIL, INCONCLUSIVE, INFO, NOT_APPLICABLE, OFF, WARN

# XML 1.0 cannot carry these characters at all, even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(text: object) -> str:
    return _XML_INVALID.sub("\ufffd", str(text))


class JUnitReporter(Reporter):
    name = "junit"
    extension = ".xml"
    media_type = "application/xml"

    def render(self, report) -> str:
        policy = report.policy
        comparison = report.baseline_comparison()
        known = set(comparison.known) if comparison is not None else set()
        stale = comparison.stale if comparison is not None else []
        root = ET.Element("testsuites", name="agent-events")
        totals = {"tests": 0, "failures": 0, "skipped": 0}
        for section in report.sections:
            suite = ET.SubElement(root, "testsuite", name=_x(section.name))
            counts = {"tests": 0, "failures": 0, "skipped": 0}
            for rule_id, outcome in section.outcomes.items():
                rule = _rules.get(rule_id)
                status = policy.status(outcome)
                case = ET.SubElement(suite, "testcase", classname=_x(f"agent-events.{section.name}"),
                                     name=_x(f"{rule_id} [{rule.level.value}] {rule.title}"))
                counts["tests"] += 1
                details = self._details(section, rule_id)
                failing = status == FAIL or (status == WARN and policy.fails("warning"))
                stale_entry = next((e for e in stale if e.matches(section.name, rule_id)), None)
                if failing and (section.name, rule_id) in known:
                    counts["skipped"] += 1
                    ET.SubElement(case, "skipped", message=_x(f"known failure, in baseline {report.baseline.name}"))
                    out = ET.SubElement(case, "system-out")
                    out.text = _x(f"{status}: {outcome.violations} violation(s)\n{details}")
                elif stale_entry is not None and status not in (NOT_APPLICABLE, OFF):
                    counts["failures"] += 1
                    ET.SubElement(case, "failure", type="baseline", message=_x(
                        f"stale baseline entry: {stale_entry} is listed in {report.baseline.name} but no longer fails"))
                elif failing:
                    counts["failures"] += 1
                    first = next((v for v in section.violations if v.rule_id == rule_id), None)
                    message = (f"{outcome.violations} violation(s); expected {first.expected}; observed {first.observed}"
                               if first else f"{outcome.violations} violation(s)")
                    failure = ET.SubElement(case, "failure", message=_x(message), type=rule.level.value)
                    failure.text = _x(details)
                elif status in (NOT_APPLICABLE, OFF):
                    counts["skipped"] += 1
                    ET.SubElement(case, "skipped", message=_x(outcome.reason or "rule turned off"))
                elif status == INCONCLUSIVE:  # not judged: neither a pass nor a failure
                    counts["skipped"] += 1
                    ET.SubElement(case, "skipped", type="inconclusive", message=_x(outcome.inconclusive_text()))
                elif status in (WARN, INFO):
                    out = ET.SubElement(case, "system-out")
                    out.text = _x(f"{status}: {outcome.violations} violation(s)\n{details}")
            for key, value in counts.items():
                suite.set(key, str(value))
                totals[key] += value
            suite.set("errors", "0")
        for key, value in totals.items():
            root.set(key, str(value))
        root.set("errors", "0")
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    @staticmethod
    def _details(section, rule_id: str) -> str:
        lines = []
        for v in [v for v in section.violations if v.rule_id == rule_id][:SHOWN_PER_RULE]:
            where = ", ".join(where_parts(v))
            lines.append(f"{where}\n  expected: {v.expected}\n  observed: {v.observed}")
            lines.extend(f"    {line}" for line in v.excerpt)
        return "\n".join(lines)
