"""The conformance claim: one line a team can paste into its release notes, and a README badge.

A claim is only worth pasting if it means the same for everyone, so it is
issued under one condition, whatever gate a team chose for its CI: the
stream passed with the default severities (every MUST rule held) and the
run also passed the team's own policy. Stricter gates (``--strict``, rules
raised to ``error``) keep the claim; ``--fail-on none`` cannot create one;
a lowered MUST rule (``--allow-lowering-must``) voids it, and the report says
so. A SHOULD rule turned off does not: by default it never fails anyway.

The badge is drawn here (flat shields style, text widths estimated from a
character table) rather than fetched from a badge service: checks run in CI
without network, and the badge must not depend on a third party.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from conformance.violations import NOT_APPLICABLE, PASS

_KIND_WORDS = {"scenario": "scenarios", "file": "recordings", "stream": "streams"}


@dataclass(frozen=True)
class Claim:
    """What a report lets a team claim (``statement``), or why it lets it claim nothing (``reason``)."""

    #: ``conformant`` (a claim), ``not conformant``, or ``no claim`` (it passed, but not as a claim counts)
    status: str
    statement: str | None
    reason: str | None
    protocol_version: str
    profile: str
    scenarios: tuple[str, ...]
    kit_version: str
    date: str
    #: whether the team's gate was --strict / --fail-on warning (the claim then covers SHOULD rules too)
    strict: bool = False

    @property
    def eligible(self) -> bool:
        return self.statement is not None

    def to_dict(self) -> dict[str, Any]:
        return {"eligible": self.eligible, "status": self.status, "statement": self.statement, "reason": self.reason,
                "protocol_version": self.protocol_version, "profile": self.profile,
                "scenarios": list(self.scenarios), "kit_version": self.kit_version, "date": self.date,
                "strict": self.strict}


CONFORMANT, NOT_CONFORMANT, NO_CLAIM = "conformant", "not conformant", "no claim"


def claim_for(report) -> Claim:
    """The claim ``report`` supports (see the module docstring for the one condition)."""
    from conformance.report import DEFAULT_POLICY

    policy = report.policy
    statuses = report.statuses()
    counts = {"passed": sum(1 for s in statuses.values() if s == PASS),
              "not_applicable": sum(1 for s in statuses.values() if s == NOT_APPLICABLE)}
    base = dict(protocol_version=report.protocol_version, profile=report.profile.name,
                scenarios=tuple(s.name for s in report.sections), kit_version=report.kit_version,
                date=(report.finished_at or "")[:10], strict=policy.gate == "warning")
    failed = sorted({r for s in report.sections for r in s.failed_rules(DEFAULT_POLICY)})
    status = NOT_CONFORMANT if failed or not report.conformant else NO_CLAIM
    if policy.lowered_must:
        lowered = ", ".join(f"{r} to {s}" for r, s in sorted(policy.lowered_must_rules.items()))
        broken = f"; with the default severities, {', '.join(failed)} failed" if failed else ""
        return Claim(status, None, f"not a conformance claim: MUST rule(s) lowered with --allow-lowering-must "
                                   f"({lowered}){broken}", **base)
    if not report.sections:
        return Claim(NO_CLAIM, None, "not a conformance claim: nothing was checked", **base)
    if not report.conformant:
        return Claim(status, None, "not conformant: see the verdict", **base)
    if failed:
        return Claim(status, None, f"not a conformance claim: with the default severities, MUST rule(s) "
                                   f"{', '.join(failed)} failed (the gate was fail-on {policy.gate})", **base)
    return Claim(CONFORMANT, _statement(report, counts, base["strict"]), None, **base)


def _statement(report, counts: dict[str, int], strict: bool) -> str:
    kinds = {s.kind for s in report.sections}
    word = _KIND_WORDS.get(kinds.pop(), "sections") if len(kinds) == 1 else "sections"
    names = ", ".join(_short(s.name) for s in report.sections)
    scope = "every MUST and SHOULD rule" if strict else "every MUST rule"
    return (f"Conforms to agent-events protocol v{report.protocol_version} (profile {report.profile.name}; "
            f"{word}: {names}): {scope} held, {counts['passed']} rules passed, "
            f"{counts['not_applicable']} not applicable; checked with agent-events {report.kit_version} "
            f"on {(report.finished_at or '')[:10]}.")


def _short(name: str) -> str:
    """A file's base name (a CI runner's absolute path means nothing in release notes)."""
    return name.replace("\\", "/").rsplit("/", 1)[-1] or name


# -- the badge --------------------------------------------------------------------

_COLORS = {CONFORMANT: "#2ea44f", NOT_CONFORMANT: "#cf222e", NO_CLAIM: "#6e7781"}
_LABEL_COLOR = "#555"
#: Approximate advance widths (px) of Verdana 11px, the usual badge font, by character class.
_NARROW, _WIDE = set("fijlrtI.,:;|!'() -"), set("mwMW@%")


def _text_width(text: str) -> float:
    return sum(3.8 if c in _NARROW else 9.6 if c in _WIDE else 7.4 if c.isupper() else 6.6 for c in text)


def badge_svg(report) -> str:
    """A self-contained SVG badge: ``agent-events vN | conformant`` (green), ``not conformant`` (red)
    or ``no claim`` (grey); its tooltip is the claim statement or the reason."""
    claim = report.claim()
    major = claim.protocol_version.split(".", 1)[0]
    label, message = f"agent-events v{major}", claim.status
    color = _COLORS[claim.status]
    title = claim.statement or f"agent-events v{claim.protocol_version}, profile {claim.profile}: {claim.reason}"
    lw, mw = round(_text_width(label) + 10), round(_text_width(message) + 10)
    width = lw + mw
    lx, mx = lw / 2, lw + mw / 2
    text = escape(f"{label}: {message}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{text}">'
        f"<title>{escape(title)}</title>"
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="{_LABEL_COLOR}"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{color}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{lx:g}" y="15" fill="#010101" fill-opacity=".3">{escape(label)}</text>'
        f'<text x="{lx:g}" y="14">{escape(label)}</text>'
        f'<text x="{mx:g}" y="15" fill="#010101" fill-opacity=".3">{escape(message)}</text>'
        f'<text x="{mx:g}" y="14">{escape(message)}</text></g></svg>\n'
    )


__all__ = ["Claim", "claim_for", "badge_svg"]
