"""Profiles and latency budgets, generated from ``agent_events.conformance.core.profiles``.

A budget's default lives in the profile definition and its meaning in the
``#:`` comment beside it; the Conformance guide shows both from there, so a
changed default cannot leave the docs behind.
"""

from __future__ import annotations

import argparse

from agent_events.conformance.core import profiles as registry
from agent_events.conformance.core import rules
from docgen_code import member_comments
from docgen_markdown import code, table


def _budget_rule(budget: str) -> str | None:
    """The latency rule a budget feeds: ``deadline_s`` -> ``latency.run_deadline``."""
    stem = budget.rsplit("_", 1)[0]
    matches = [r.id for r in rules.RULES if r.category == "latency" and r.id.endswith(stem)]
    return matches[0] if len(matches) == 1 else None


def _budget_flags(parser: argparse.ArgumentParser | None) -> dict[str, str]:
    """Budget -> the command-line option that overrides it, when some subcommand has one."""
    if parser is None:
        return {}
    options: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                options.update(o for a in sub._actions for o in a.option_strings)
    return {b: f"--{b.replace('_', '-')}" for b in registry.BUDGETS if f"--{b.replace('_', '-')}" in options}


def budgets_table(parser: argparse.ArgumentParser | None = None, rules_page: str = "rules.md") -> str:
    meanings = member_comments(registry.Profile)
    flags = _budget_flags(parser)
    names = list(registry.PROFILES)
    rows = []
    for budget in registry.BUDGETS:
        rule = _budget_rule(budget)
        rows.append([
            code(budget),
            meanings.get(budget, ""),
            *(f"{getattr(registry.PROFILES[n], budget):g}" for n in names),
            code(flags[budget]) if budget in flags else "",
            f"[{code(rule)}]({rules_page}#{rule})" if rule else "",
        ])
    return table(["budget", "meaning", *(f"default ({code(n)})" for n in names), "option", "rule"], rows)


def profiles_section(rules_page: str = "rules.md") -> str:
    out = []
    for name, profile in registry.PROFILES.items():
        default = " (the default)" if name == registry.DEFAULT_PROFILE else ""
        out.append(f"### `{name}`{default} {{#profile-{name}}}\n")
        if profile.description:
            out.append(profile.description + "\n")
        bullets = []
        if profile.expected_tools is not None:
            bullets.append("- **Tools on a primary attempt that completes without fallback**, in order: "
                           + ", ".join(code(t) for t in profile.expected_tools))
        if profile.thinking is not None:
            lo, hi = profile.thinking
            bullets.append(f"- **agent_thinking on that attempt:** {lo} to {hi}")
        if profile.fast_tools:
            bullets.append("- **Fast tools** (judged by the tool-gap budget): " + ", ".join(code(t) for t in profile.fast_tools))
        if profile.rule_ids:
            bullets.append("- **Profile rules:** " + ", ".join(f"[{code(r)}]({rules_page}#{r})" for r in profile.rule_ids))
        else:
            bullets.append("- **Profile rules:** none; only the protocol's rules apply")
        out.append("\n".join(bullets) + "\n")
    return "\n".join(out)
