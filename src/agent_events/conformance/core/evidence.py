"""Evidence counting: how often the checker could have seen each rule broken, and why not.

A verdict never passes what was not judged: a rule with no violation is PASS only when the stream
gave it a chance to fail (a tool rule needs a tool call, a latency rule receive times), else it is
N/A with the reason. The checker counts that evidence as it judges (plain integer attributes of the
checker, bumped inline on the hot path: a counter object would cost an attribute lookup per
frame); this module names the counters, maps each rule to its counter and its "not applicable"
reason, and folds in what was judged outside the state machine (:meth:`EvidenceCounting.external`,
:meth:`EvidenceCounting.not_applicable`) into one :class:`RuleOutcome` per registry rule.

:class:`EvidenceCounting` is a mixin of :class:`agent_events.conformance.core.checker.Checker`; it
needs the checker's ``profile``, ``violation_counts``, ``inconclusive``/``inconclusive_worst``,
``_fast_tools``, ``_conns`` and ``_flag``.
"""

from __future__ import annotations

from agent_events._native import trait
from agent_events.conformance.core.checker_fields import CheckerFields
from agent_events.conformance.core import rules as _rules
from agent_events.conformance.core.violations import RuleOutcome, Violation

#: The evidence counters, each "how many times ... could have been judged" (all start at 0).
COUNTERS = (
    "frames",               # frames received
    "parsed",               # frames with content to parse
    "objects",              # JSON objects received
    "typed",                # objects with a known server type
    "run_events",           # events routed to a run
    "isolation_checked",
    "runs",                 # runs seen (started by the client or by their first event)
    "runs_with_events",
    "runs_ended",           # completed or closed
    "runs_completed",
    "attempts_ended",
    "fallback_attempts",
    "started_events",
    "tool_calls",
    "tool_completions",
    "flags_checked",
    "profile_checked",
    "first_event_checked",
    "delivery_checked",
    "gaps_checked",
    "deadlines_checked",
    "starts_sent",
    "cancels_sent",
    "runs_refused",
    "connections_forgotten",
    "frames_unread",        # frames over the frame limit, counted but not read
    "capabilities_checked",
    "resumed_events",
)


@trait
class EvidenceCounting(CheckerFields):
    """The checker's evidence counters and the per-rule outcomes built from them."""

    def _init_evidence(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)
        self._not_applicable: dict[str, str] = {}
        self._external_checked: dict[str, int] = {}

    # -- checks made elsewhere -----------------------------------------------------------

    def not_applicable(self, rule_id: str, reason: str) -> None:
        """Declare a rule not exercised (e.g. the endpoint ignored simulate_failure).

        It is reported N/A with ``reason`` unless it was actually violated.
        """
        _rules.get(rule_id)
        self._not_applicable[rule_id] = reason

    def external(self, rule_id: str, passed: bool, *, expected: str = "", observed: str = "",
                 conn: str = "c0", run_id: str | None = None, at: float | None = None,
                 location: str | None = None, checks: int = 1) -> Violation | None:
        """Record the result of a check made outside the state machine (a live probe's own checks,
        such as the endpoint answering malformed input with an ``error``); ``checks`` passed
        checks can be recorded at once."""
        _rules.get(rule_id)
        self._external_checked[rule_id] = self._external_checked.get(rule_id, 0) + checks
        if passed:
            return None
        c = self._conns.get(conn)
        return self._flag(rule_id, conn, run_id, None, at, location, expected, observed, c.recent if c else (), None)

    # -- results ---------------------------------------------------------------------------

    @property
    def declared_not_applicable(self) -> dict[str, str]:
        """Rules declared N/A with :meth:`not_applicable`, and why."""
        return dict(self._not_applicable)

    def outcomes(self) -> dict[str, RuleOutcome]:
        """Every registry rule: how often it was checked and violated, or why it was not applicable."""
        result = {}
        table = self._evidence_table()
        for rule in _rules.RULES:
            count = self.violation_counts.get(rule.id, 0)
            checked, reason = self._evidence(rule, table)
            checked += self._external_checked.get(rule.id, 0)
            if rule.id in self._not_applicable and not count:
                checked, reason = 0, self._not_applicable[rule.id]
            elif count or checked:
                reason = None
            inconclusive = self.inconclusive.get(rule.id, 0)
            result[rule.id] = RuleOutcome(rule.id, max(checked, count), count, reason, inconclusive=inconclusive,
                                          inconclusive_worst=self.inconclusive_worst.get(rule.id))
        return result

    def _evidence_table(self) -> dict[str, tuple[int, str]]:
        """Rule id -> (how often the checker could have seen it broken, why it could not)."""
        no_timing = "no receive times in the input (plain messages, or frames without \"t\")"
        no_runs = "no run event was received"
        return {
            "frame.text": (self.frames - self.frames_unread, "no frame was received"),
            "frame.json": (self.parsed, "no frame was received"),
            "schema.envelope": (self.typed, "no message of a known type was received"),
            "schema.payload": (self.typed, "no message of a known type was received"),
            "schema.unknown_type": (self.objects, "no JSON object was received"),
            "seq.contiguous": (self.run_events, no_runs),
            "order.first_started": (self.runs_with_events, no_runs),
            "order.completed_last": (self.runs_ended, "no run was started or seen"),
            "order.thinking": (self.attempts_ended, "no attempt ended (other than by cancellation)"),
            "pair.tool_matched": (self.tool_calls, "no tool call was made"),
            "pair.no_orphan": (self.tool_completions, "no tool_completed was received"),
            "pair.unique_id": (self.tool_calls, "no tool call was made"),
            "fallback.single": (self.started_events, "no agent_started was received"),
            "fallback.flag": (self.flags_checked, "no run completed with a readable result"),
            "fallback.continuity": (self.fallback_attempts, "no fallback attempt ran"),
            "isolation.run_scope": (self.isolation_checked,
                                    "no client frames: which connection started a run is unknown"),
            "latency.first_event": (self.first_event_checked,
                                    no_timing if not self.delivery_checked else "no start_run with a send time was answered"),
            "latency.delivery": (self.delivery_checked, no_timing),
            "latency.tool_gap": (self.gaps_checked,
                                 f"profile {self.profile.name} names no fast tools" if not self._fast_tools
                                 else "no fast tool completed"),
            "latency.run_deadline": (self.deadlines_checked, no_timing),
            "capabilities.first": (self.capabilities_checked,
                                   "no capabilities message was received (a 1.0 server declares none): not claimed"),
            "resume.replay": (self.resumed_events, "no run was resumed (resume_run): not claimed or not exercised"),
        }

    def _evidence(self, rule: "_rules.Rule", table: dict[str, tuple[int, str]]) -> tuple[int, str | None]:
        if rule.profile is not None and rule.id not in self.profile.rule_ids:
            return 0, f"not a rule of profile {self.profile.name}"
        if rule.id == self.profile.tools_rule or rule.id == self.profile.thinking_rule:
            return self.profile_checked, "no run completed its primary attempt without fallback or cancellation"
        if rule.id in table:
            return table[rule.id]
        return 0, "checked only by a live probe" if rule.scope == "live" else "not checked by the sequence checker"
