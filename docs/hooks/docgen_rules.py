"""The Rule reference and the spec's rule list, generated from the rule registry.

``agent_events.conformance.core.rules.RULES`` is the only place a rule is defined; the docs
show it, they never restate it. Each rule's heading anchor is its id, so
reports, SARIF help links and the spec can link to ``rules.md#<id>``.
"""

from __future__ import annotations

import re
from typing import Iterable

from agent_events import schemas
from agent_events.conformance.core import rules as registry
from docgen_markdown import cell, code, table

PROTOCOL = "protocol"


def spec_sections(spec_text: str) -> dict[str, str]:
    """Anchor -> heading text of every ``## Heading {#anchor}`` of the spec."""
    return {m[2]: m[1].strip() for m in re.finditer(r"^#+ (.*?)\s*\{#([A-Za-z0-9_.-]+)\}\s*$", spec_text, re.M)}


def scope_legend() -> dict[str, str]:
    """Scope -> meaning, read from the registry's own docstring (where the scopes are defined)."""
    doc = registry.__doc__ or ""
    return {m[1]: " ".join(m[2].split()).rstrip(";.") for m in re.finditer(r"^\* ``(\w+)``: (.*?)(?=^\*|^\s*$)", doc, re.M | re.S)}


def vectors_by_rule() -> dict[str, list[tuple[str, str]]]:
    """Rule id -> the invalid sequence vectors named after it (path, description)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path, vector in schemas.sequence_vectors():
        if vector.get("violates"):
            found.setdefault(vector["violates"], []).append((path, vector.get("description", "")))
    return found


def level_badge(rule) -> str:
    return f"**{rule.level.value}**" + (" (deprecated)" if rule.deprecated else "")


def categories(rules: Iterable) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for rule in rules:
        grouped.setdefault(rule.category, []).append(rule)
    return grouped


def rule_list(sections: dict[str, str], rules_page: str = "rules.md") -> str:
    """The compact table that ends the spec: one row per rule, linking to its reference entry and section."""
    return table(
        ["rule", "level", "applies to", "title", "section"],
        ((f"[{code(r.id)}]({rules_page}#{r.id})", level_badge(r), r.profile or PROTOCOL, r.title,
          f"[{sections.get(r.section, r.section)}](#{r.section})")
         for r in registry.RULES),
    )


def rule_reference(sections: dict[str, str], spec_page: str = "spec.md") -> str:
    """One entry per rule, grouped by category, with everything a team needs to act on a failure."""
    legend = scope_legend()
    vectors = vectors_by_rule()
    counts = {level.value: sum(r.level is level for r in registry.RULES) for level in registry.Level}
    out = [
        "## All rules {#all-rules}\n",
        f"{len(registry.RULES)} rules: " + ", ".join(f"{n} {lvl}" for lvl, n in counts.items() if n) + ".\n",
        table(["rule", "level", "category", "title"],
              ((f"[{code(r.id)}](#{r.id})", level_badge(r), r.category, r.title) for r in registry.RULES)),
    ]
    if legend:
        out += ["**Scopes** say what evidence a rule needs, so that a report can say *not applicable* "
                "instead of *passed* when the evidence is missing:\n",
                table(["scope", "needs"], ((code(k), v) for k, v in legend.items()))]
    for category, members in categories(registry.RULES).items():
        out.append(f"## {category.capitalize()} {{#category-{category}}}\n")
        for rule in members:
            section_title = sections.get(rule.section, rule.section)
            lines = [
                f"### {code(rule.id)} {{#{rule.id}}}\n",
                f"{level_badge(rule)} · {cell(rule.title)}\n",
                f"*Why:* {rule.rationale}\n",
                f"- **Default severity:** {rule.severity}",
                f"- **Category:** {rule.category}",
                f"- **Scope:** {code(rule.scope)}" + (f": {legend[rule.scope]}" if rule.scope in legend else ""),
                "- **Applies to:** " + (f"profile {code(rule.profile)}" if rule.profile else "every stream (protocol rule)"),
                f"- **Specification:** [{section_title}]({spec_page}#{rule.section})",
            ]
            for path, description in vectors.get(rule.id, ()):
                lines.append(f"- **Test vector** {code('sequences/' + path)}: {description}")
            out.append("\n".join(lines) + "\n")
    out.append(dialect_rule_reference(sections, spec_page, legend))
    return "\n".join(out)


#: Where a foreign dialect's own specification is published (its rules cite a path of it).
DIALECT_SPECS = {"ag-ui": ("AG-UI", "https://docs.ag-ui.com")}


def dialect_rule_reference(sections: dict[str, str], spec_page: str = "spec.md", legend: dict | None = None) -> str:
    """The rules of the foreign dialects' namespaces (``ag-ui.*``), each citing its own spec's section."""
    legend = legend if legend is not None else scope_legend()
    foreign = [r for r in registry.ALL_RULES if r.dialect != "agent-events"]
    out = ["## Dialect rules {#dialect-rules}\n",
           f"{len(foreign)} rules judge streams of another protocol (`--dialect`, see the "
           f"[dialects section]({spec_page}#dialects) of the specification). Each cites the section of that "
           "protocol's own specification that states it.\n",
           table(["rule", "level", "category", "title"],
                 ((f"[{code(r.id)}](#{r.id})", level_badge(r), r.category, r.title) for r in foreign))]
    for category, members in categories(foreign).items():
        out.append(f"## {category} {{#category-{category.replace('.', '-')}}}\n")
        for rule in members:
            name, site = DIALECT_SPECS.get(rule.dialect, (rule.dialect, ""))
            cite = f"[{name} {rule.cite}]({site}{rule.cite})" if site and rule.cite else (rule.cite or "")
            lines = [
                f"### {code(rule.id)} {{#{rule.id}}}\n",
                f"{level_badge(rule)} · {cell(rule.title)}\n",
                f"*Why:* {rule.rationale}\n",
                f"- **Default severity:** {rule.severity}",
                f"- **Dialect:** {code(rule.dialect)}",
                f"- **Scope:** {code(rule.scope)}" + (f": {legend[rule.scope]}" if rule.scope in legend else ""),
                f"- **Cites:** {cite}",
                f"- **Specification:** [{sections.get(rule.section, rule.section)}]({spec_page}#{rule.section})",
            ]
            out.append("\n".join(lines) + "\n")
    return "\n".join(out)
