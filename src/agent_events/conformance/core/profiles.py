"""Profiles: what a particular kind of agent promises beyond the protocol.

The protocol rules hold for every agent; a profile adds the expectations of
one agent family (its tools, how much it thinks) and carries the latency
budgets a check uses. Budgets live here, not in the checker, so that a team
can tighten or relax them from the command line or a config file without
touching a rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from agent_events.conformance.core import rules


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    #: agent_started within this many ms of start_run (client clock).
    first_event_ms: float = 100.0
    #: every event received within this many ms of its emitted_at (clock-corrected).
    delivery_ms: float = 100.0
    #: fast tools take at most this many ms from tool_executing to tool_completed (receive times).
    tool_gap_ms: float = 5.0
    #: a run completes within this many seconds of start_run.
    deadline_s: float = 30.0
    #: tools the latency.tool_gap rule applies to.
    fast_tools: tuple[str, ...] = ()
    #: tool names, in order, of a primary attempt that completes without fallback;
    #: ``None`` when the profile does not constrain tools.
    expected_tools: tuple[str, ...] | None = None
    #: inclusive range of agent_thinking count on such a primary attempt, or ``None``.
    thinking: tuple[int, int] | None = None
    #: the rule ids the two expectations above are reported under.
    tools_rule: str | None = None
    thinking_rule: str | None = None
    #: free-form extra settings, kept for forward compatibility of config files.
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The profile rules this profile adds to the protocol's rules."""
        return tuple(r for r in (self.tools_rule, self.thinking_rule) if r)

    def with_budgets(self, **budgets: float | None) -> "Profile":
        """A copy with the given budgets replaced (``None`` values are ignored)."""
        given = {k: float(v) for k, v in budgets.items() if v is not None}
        unknown = set(given) - set(BUDGETS)
        if unknown:
            raise ValueError(f"unknown budget(s): {', '.join(sorted(unknown))}")
        return replace(self, **given)

    def budgets(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in BUDGETS}

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            **self.budgets(),
            "fast_tools": list(self.fast_tools),
            "expected_tools": list(self.expected_tools) if self.expected_tools is not None else None,
            "thinking": list(self.thinking) if self.thinking is not None else None,
            "rules": list(self.rule_ids),
        }


#: The budget fields, each overridable by a flag and a config key of the same name.
BUDGETS = ("first_event_ms", "delivery_ms", "tool_gap_ms", "deadline_s")


def _profile_rules(name: str) -> dict[str, str]:
    """Profile rule ids by their last component, read from the registry."""
    return {r.id.rsplit(".", 1)[1]: r.id for r in rules.RULES if r.profile == name}


_actions = _profile_rules("actions-agent")

PROFILES: dict[str, Profile] = {
    "actions-agent": Profile(
        name="actions-agent",
        description="The seed's ActionsAgent: 2-3 thinking steps, then prompt_builder, llm_processor, "
        "action_plan_processor, optional progress, then agent_completed.",
        fast_tools=("prompt_builder", "action_plan_processor"),
        expected_tools=("prompt_builder", "llm_processor", "action_plan_processor"),
        thinking=(2, 3),
        tools_rule=_actions["tools"],
        thinking_rule=_actions["thinking"],
    ),
    "generic": Profile(
        name="generic",
        description="Any agent: the protocol's rules and budgets only.",
    ),
}

DEFAULT_PROFILE = "actions-agent"


def get(name_or_profile: "str | Profile") -> Profile:
    """A profile by name (or the profile itself), with a clear error for an unknown name."""
    if isinstance(name_or_profile, Profile):
        return name_or_profile
    try:
        return PROFILES[name_or_profile]
    except KeyError:
        raise KeyError(f"unknown profile {name_or_profile!r}; known: {', '.join(PROFILES)}") from None
