"""Evidence of the paired-family judge: which rules a row of the table checks, and why a rule
with nothing to judge is N/A (the reason every report shows). Kept apart so the judge stays the
state machine."""

from __future__ import annotations

from agent_events.conformance.core import rules as _rules
from agent_events.conformance.core.violations import RuleOutcome
from agent_events.dialects.hooks import HOOKS
from agent_events.dialects.lifecycle import IDLE, RUN_ERROR, RUN_FINISH, RUN_OPEN


def _row_checks(table, roles) -> dict[tuple[str, str], tuple[str, ...]]:
    """(state, kind) -> the lifecycle rules a row that breaks none is a check of: a run's open could have
    been before any run or nested; its end is the end it owed; an error first or late could have been
    out of place."""
    first, nested, after, ended = roles.get("first"), roles.get("nested"), roles.get("after_end"), roles.get("ended")
    out = {}
    for (state, kind), (_, rule) in table.transitions.items():
        if rule is not None:
            continue
        if kind == RUN_OPEN:
            checks = (first, nested)
        elif kind in (RUN_FINISH, RUN_ERROR):
            checks = (ended,) if state in table.attempt_states else (first,) if state == IDLE else (after,)
        else:
            continue
        out[state, kind] = tuple(r for r in checks if r)
    return out


def _no_evidence(rule_id: str, judge) -> str:
    """Why a rule the dialect judges had nothing to judge in this stream."""
    if _rules.get(rule_id).scope == "live":
        return "checked only by a live probe (agent-events check --dialect NAME URL)"
    no_timing = "no receive times in the input (plain events, or frames without \"t\")"
    if rule_id.startswith("latency."):
        if rule_id == "latency.first_event":
            return "no client start message with a send time was answered" if judge.delivery_checked or judge.starts_sent \
                else no_timing + ", or no client start message"
        if rule_id == "latency.tool_gap":
            return (f"profile {judge.profile.name} names no fast tools" if not judge._fast_tools
                    else "no fast tool call ended")
        return no_timing
    if not judge.frames:
        return "no frame was received"
    if rule_id == "frame.text":
        return "the input holds decoded events, not raw frames: whether each was a text frame is not recorded"
    return "nothing in the stream exercised it"




def derived_checks(self) -> dict[str, int]:
    """The per-frame and per-event rules' check counts, from the counters ``receive`` keeps."""
    roles = self._roles
    checks: dict[str, int] = {}

    def add(rule_id, n):
        if rule_id and n:
            checks[rule_id] = checks.get(rule_id, 0) + n

    add("frame.text", self.text_frames)
    for rule_id in {row.breaches.unclosed for row in self.run_rules.families}:
        add(rule_id, self.closings)
    add("frame.json", self.frames - self.frames_unread)
    add(roles.get("type"), self.objects)
    if self._known:
        add(roles.get("unknown_type"), self.objects)
    if self._validate is not None:
        if roles.get("schema") != roles.get("type"):
            add(roles.get("schema"), self.typed)
        add(roles.get("schema_strict"), self.typed)
    if self.dialect.hooks:
        for name in self.dialect.hooks:
            for rule_id in getattr(HOOKS[name], "RULES", ()):
                add(rule_id, self.typed)
    return checks


def rule_ids(self) -> list[str]:
    """The rules this judgement reports: the dialect's, then those it declares N/A, in registry order."""
    wanted = set(self.dialect.rules) | set(self.dialect.not_applicable) | set(self._not_applicable)
    return [r.id for r in _rules.ALL_RULES if r.id in wanted]

def outcomes(self) -> dict[str, RuleOutcome]:
    result = {}
    declared = dict(self.dialect.not_applicable)
    declared.update(self._not_applicable)
    derived = self._derived_checks()
    for rule_id in rule_ids(self):
        count = self.violation_counts.get(rule_id, 0)
        checked = self._checked.get(rule_id, 0) + derived.get(rule_id, 0)
        reason = None
        if rule_id in declared and not count:
            checked, reason = 0, declared[rule_id]
        elif not (count or checked):
            reason = _no_evidence(rule_id, self)
        result[rule_id] = RuleOutcome(rule_id, max(checked, count), count, reason,
                                      inconclusive=self.inconclusive.get(rule_id, 0),
                                      inconclusive_worst=self.inconclusive_worst.get(rule_id))
    return result

