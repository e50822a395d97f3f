"""A baseline of known failures, so that CI fails on what is new, as MCP's conformance suite does
with its expected-failures file.

A team adopting the kit on an agent that does not conform yet writes the failures of today
into a baseline (``--update-baseline``), commits it, and gates on it (``--baseline FILE``):
the gate then fails only on

* a **new** failure: a rule that fails in a section (scenario or file) with no entry; and
* a **stale** entry: a rule listed for a section that was judged and no longer fails (so the
  file shrinks as the agent is fixed, and a fixed rule cannot silently break again).

An entry whose section was not run, or whose rule nothing exercised there, is **not judged**:
neither matched nor stale, and kept by ``--update-baseline``. A baseline never changes what
a report says about conformance (``conformant`` is still every MUST rule held, so no claim is
made while an entry remains); it only changes the gate (``passed_gate``, the exit code).

The file is JSON, small and stable (sorted, one entry per line when written here)::

    {
      "agent_events_baseline": 1,
      "comment": "Known failures of our agent (ticket AG-12); remove entries as they are fixed.",
      "entries": [
        {"section": "cancel", "rule": "cancel.terminal", "comment": "cancel_run not implemented yet"},
        {"section": "*", "rule": "latency.tool_gap"}
      ]
    }

``section`` is a scenario name (``check``, ``demo``, the pytest plugin), a file as given to
``validate``, ``load`` for ``load``, or ``*`` for every section; ``rule`` is a rule id;
``comment`` is optional and kept by ``--update-baseline``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_events.conformance.core import rules as _rules

#: The ``agent_events_baseline`` value of the format this module reads and writes.
FORMAT_VERSION = 1
#: The ``section`` of an entry that matches every section.
ANY_SECTION = "*"
DEFAULT_COMMENT = ("Known failures: the gate fails only on failures not listed here, and on entries that no "
                   "longer fail. Regenerate with --update-baseline; say why in each entry's comment.")


class BaselineError(ValueError):
    """A baseline file that cannot be used; every entry point turns it into a usage error (exit 2)."""


@dataclass(frozen=True)
class Entry:
    section: str
    rule: str
    comment: str = ""

    def matches(self, section: str, rule: str) -> bool:
        return self.rule == rule and self.section in (section, ANY_SECTION)

    def to_dict(self) -> dict[str, str]:
        data = {"section": self.section, "rule": self.rule}
        if self.comment:
            data["comment"] = self.comment
        return data

    def __str__(self) -> str:
        return f"{self.rule} in {'every section' if self.section == ANY_SECTION else self.section}"


@dataclass
class Baseline:
    entries: list[Entry] = field(default_factory=list)
    comment: str = DEFAULT_COMMENT
    #: the file it was read from or is written to
    path: Path | None = None

    # -- the file --------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str) -> "Baseline":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BaselineError(f"baseline {path} does not exist (it must be written first: "
                                f"--update-baseline)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BaselineError(f"cannot read baseline {path}: {exc}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BaselineError(f"baseline {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data, str(path), path)

    @classmethod
    def from_dict(cls, data: Any, where: str = "baseline", path: Path | None = None) -> "Baseline":
        from agent_events.conformance.reporting.gating import GatingError, check_rule_id

        if not isinstance(data, dict) or data.get("agent_events_baseline") != FORMAT_VERSION:
            raise BaselineError(f"{where}: not an agent-events baseline (expected a JSON object with "
                                f"\"agent_events_baseline\": {FORMAT_VERSION} and \"entries\")")
        unknown = sorted(set(data) - {"agent_events_baseline", "comment", "entries"})
        if unknown:
            raise BaselineError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                                f"known: agent_events_baseline, comment, entries")
        comment = data.get("comment", "")
        if not isinstance(comment, str):
            raise BaselineError(f"{where}: comment must be a string")
        items = data.get("entries", [])
        if not isinstance(items, list):
            raise BaselineError(f"{where}: entries must be a list of {{\"section\", \"rule\", \"comment\"}} objects")
        entries = []
        for number, item in enumerate(items, 1):
            what = f"{where}: entry {number}"
            if not isinstance(item, dict) or set(item) - {"section", "rule", "comment"}:
                raise BaselineError(f"{what} must be an object with section, rule and an optional comment, "
                                    f"not {json.dumps(item)[:80]}")
            section, rule, note = item.get("section"), item.get("rule"), item.get("comment", "")
            if not isinstance(section, str) or not section:
                raise BaselineError(f"{what}: section must be a scenario, a file or \"*\"")
            if not isinstance(note, str):
                raise BaselineError(f"{what}: comment must be a string")
            try:
                check_rule_id(rule)
            except GatingError as exc:
                raise BaselineError(f"{what}: {exc}") from None
            entries.append(Entry(section, rule, note))
        return cls(entries, comment, path)

    def dumps(self) -> str:
        """The file's text: stable (entries sorted by section, then rule order), one entry per line."""
        order = {r.id: i for i, r in enumerate(_rules.ALL_RULES)}
        entries = sorted(set(self.entries), key=lambda e: (e.section, order.get(e.rule, len(order)), e.rule))
        lines = [json.dumps(e.to_dict(), ensure_ascii=False) for e in entries]
        body = ",\n    ".join(lines)
        return ("{\n"
                f'  "agent_events_baseline": {FORMAT_VERSION},\n'
                f'  "comment": {json.dumps(self.comment, ensure_ascii=False)},\n'
                f'  "entries": [' + (f"\n    {body}\n  " if lines else "") + "]\n}\n")

    def write(self, path: Path | str | None = None) -> Path:
        path = Path(path) if path is not None else self.path
        if path is None:
            raise ValueError("no path to write the baseline to")
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.dumps(), encoding="utf-8")
        self.path = path
        return path

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "baseline"

    # -- judging a report against it ---------------------------------------------------------

    def compare(self, report) -> "Comparison":
        """What the report's failures are to this baseline: known, new, stale, not judged."""
        from agent_events.conformance.core.violations import NOT_APPLICABLE, OFF

        policy = report.policy
        known: list[tuple[str, str]] = []
        new: list[tuple[str, str]] = []
        used: set[Entry] = set()
        for section in report.sections:
            for rule_id in section.failed_rules(policy):
                entry = next((e for e in self.entries if e.matches(section.name, rule_id)), None)
                if entry is None:
                    new.append((section.name, rule_id))
                else:
                    known.append((section.name, rule_id))
                    used.add(entry)
        stale: list[Entry] = []
        unjudged: list[Entry] = []
        for entry in self.entries:
            if entry in used:
                continue
            judged = [s for s in report.sections if entry.section in (s.name, ANY_SECTION)
                      and entry.rule in s.outcomes and policy.status(s.outcomes[entry.rule]) not in (NOT_APPLICABLE, OFF)]
            (stale if judged else unjudged).append(entry)
        return Comparison(self, known, new, stale, unjudged)

    def updated(self, report) -> "Baseline":
        """The baseline that matches ``report``: its failures (comments kept), and the entries it did not judge."""
        comparison = self.compare(report)
        keep = [e for e in self.entries if e not in comparison.stale]
        covered = {(s, r) for s, r in comparison.known}
        added = [Entry(s, r) for s, r in comparison.new if (s, r) not in covered]
        return Baseline(keep + added, self.comment, self.path)


@dataclass
class Comparison:
    baseline: Baseline
    #: (section, rule) failing and listed
    known: list[tuple[str, str]]
    #: (section, rule) failing and not listed: the gate fails
    new: list[tuple[str, str]]
    #: entries judged and no longer failing: the gate fails
    stale: list[Entry]
    #: entries whose section was not run, or whose rule nothing exercised there
    unjudged: list[Entry]

    @property
    def passed(self) -> bool:
        return not self.new and not self.stale

    def summary(self) -> str:
        parts = [f"{len(self.known)} known failure(s)", f"{len(self.new)} new", f"{len(self.stale)} stale"]
        if self.unjudged:
            parts.append(f"{len(self.unjudged)} not judged")
        return f"baseline {self.baseline.name}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        pair = lambda items: [{"section": s, "rule": r} for s, r in items]  # noqa: E731
        return {"file": self.baseline.name, "passed": self.passed, "known": pair(self.known), "new": pair(self.new),
                "stale": [e.to_dict() for e in self.stale], "not_judged": [e.to_dict() for e in self.unjudged]}


def settle(report, settings, *, stream=None) -> Any:
    """Attach the settings' baseline to ``report`` (``--baseline``), or first rewrite it from the report
    (``--update-baseline``, saying so on ``stream``, stderr by default); return the report."""
    import sys

    baseline = getattr(settings, "baseline", None)
    if baseline is None:
        return report
    if getattr(settings, "update_baseline", False):
        before = set(baseline.entries)
        baseline = baseline.updated(report)
        try:
            baseline.write()
        except OSError as exc:
            from agent_events.conformance.cli import UsageError

            raise UsageError(f"cannot write baseline {baseline.name}: {exc.strerror or exc}") from None
        after = set(baseline.entries)
        print(f"agent-events: wrote baseline {baseline.name}: {len(after)} entr{'y' if len(after) == 1 else 'ies'} "
              f"({len(after - before)} added, {len(before - after)} removed)", file=stream or sys.stderr)
    report.baseline = baseline
    return report
