"""The conformance claim: one line a team can paste into its release notes, and a README badge.

A claim is only worth pasting if it means the same for everyone, so it is
issued under these conditions only, whatever gate a team chose for its CI
(the first that fails is the reason given, and ``withheld_because`` names it):

* ``lowered_must``: no MUST rule was lowered (``--allow-lowering-must``);
* ``nothing_checked``: something was checked;
* ``must_failed``: every MUST rule held with the default severities
  (``--fail-on none`` passes a gate, it cannot create a claim);
* ``gate_failed``: the check also passed the team's own gate. Stricter
  gates (``--strict``, rules raised to ``error``) keep the claim when they
  pass; a SHOULD rule turned off does not void it (by default it never fails);
* ``no_runs``: at least one run completed in every section meant to have
  runs: every recording (a file of one ``time_sync`` reply shows nothing about
  runs) and every scenario that sent a ``start_run``. Rules that had nothing to
  judge pass vacuously; a claim needs evidence;
* ``inconclusive``: no rule is INCONCLUSIVE (a latency sample over budget that the
  harness's own stall explains was not judged, so it cannot support a claim);
* ``looser_budgets``: no latency budget is looser than the profile's default
  (a registered profile's, else the protocol's): a budget relaxed until the
  check passes proves nothing. Tighter budgets keep the claim, and the
  statement names each one that differs, since the claim is then stronger
  than the default one and a reader must not compare it with another as equal.

The badge is drawn here (flat shields style, text widths estimated from a
character table) rather than fetched from a badge service: checks run in CI
without network, and the badge must not depend on a third party.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from agent_events.conformance.core import profiles as _profiles
from agent_events.conformance.core.violations import NOT_APPLICABLE, PASS

_KIND_WORDS = {"scenario": "scenarios", "file": "recordings", "stream": "streams"}
#: How a budget is named in a statement or a reason, with its unit.
_BUDGET_WORDS = {"first_event_ms": ("first event", "ms"), "delivery_ms": ("delivery", "ms"),
                 "tool_gap_ms": ("tool gap", "ms"), "deadline_s": ("deadline", "s")}
assert set(_BUDGET_WORDS) == set(_profiles.BUDGETS)

#: The values of ``withheld_because``, in the order the conditions are tried.
WITHHELD_REASONS = ("lowered_must", "nothing_checked", "must_failed", "gate_failed", "no_runs", "inconclusive",
                    "looser_budgets", "foreign_dialect")


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
    #: which condition withheld the claim (one of ``WITHHELD_REASONS``), ``None`` for a claim
    withheld_because: str | None = None

    @property
    def eligible(self) -> bool:
        return self.statement is not None

    def to_dict(self) -> dict[str, Any]:
        return {"eligible": self.eligible, "status": self.status, "statement": self.statement, "reason": self.reason,
                "withheld_because": self.withheld_because,
                "protocol_version": self.protocol_version, "profile": self.profile,
                "scenarios": list(self.scenarios), "kit_version": self.kit_version, "date": self.date,
                "strict": self.strict}


CONFORMANT, NOT_CONFORMANT, NO_CLAIM = "conformant", "not conformant", "no claim"


def claim_for(report) -> Claim:
    """The claim ``report`` supports (see the module docstring for the conditions)."""
    policy = report.policy
    statuses = report.statuses()
    counts = {"passed": sum(1 for s in statuses.values() if s == PASS),
              "not_applicable": sum(1 for s in statuses.values() if s == NOT_APPLICABLE)}
    base = dict(protocol_version=report.protocol_version, profile=report.profile.name,
                scenarios=tuple(s.name for s in report.sections), kit_version=report.kit_version,
                date=(report.finished_at or "")[:10], strict=policy.gate == "warning")
    failed = report.must_failures
    status = NOT_CONFORMANT if failed else NO_CLAIM

    def withheld(because: str, reason: str) -> Claim:
        return Claim(status, None, reason, withheld_because=because, **base)

    if getattr(report, "foreign", False):  # another protocol's stream: never an agent-events claim
        judged = report.dialect_dict()["statement"]
        verdict = "not conformant to it: see the verdict" if failed else "every MUST rule of it held"
        return withheld("foreign_dialect", f"{judged}; {verdict}; no agent-events conformance claim is made for "
                                           f"a stream of another protocol")
    if policy.lowered_must:
        lowered = ", ".join(f"{r} to {s}" for r, s in sorted(policy.lowered_must_rules.items()))
        broken = f"; with the default severities, {', '.join(failed)} failed" if failed else ""
        return withheld("lowered_must", f"not a conformance claim: MUST rule(s) lowered with --allow-lowering-must "
                                        f"({lowered}){broken}")
    if not report.sections:
        return withheld("nothing_checked", "not a conformance claim: nothing was checked")
    if not counts["passed"] and not failed:
        return withheld("nothing_checked", "not a conformance claim: no rule was judged (every rule not "
                                           "applicable or not claimed)")
    if failed:
        if not report.passed_gate:
            return withheld("must_failed", "not conformant: see the verdict")
        return withheld("must_failed", f"not a conformance claim: with the default severities, MUST rule(s) "
                                       f"{', '.join(failed)} failed (the gate was fail-on {policy.gate})")
    if not report.passed_gate:
        return withheld("gate_failed", f"not a conformance claim: every MUST rule held, but the {report.gate_note()}")
    runless = [s for s in report.sections if _meant_to_have_runs(s) and not s.stats.get("runs_completed")]
    if runless:
        where = ("" if len(runless) == len(report.sections) and len(runless) == 1
                 else f" in {', '.join(_short(s.name) for s in runless)}")
        return withheld("no_runs", f"not a conformance claim: no run completed{where}, so nothing shows "
                                   f"that the agent's runs conform (rules with nothing to judge pass vacuously)")
    inconclusive = report.inconclusive_rules
    if inconclusive:
        return withheld("inconclusive", f"not a conformance claim: {', '.join(inconclusive)} inconclusive (every "
                                        f"sample over its budget is explained by the harness's own stall on a busy "
                                        f"machine); run the check again on a quieter one")
    defaults = _default_budgets(report.profile)
    budgets = report.profile.budgets()
    looser = [name for name in _profiles.BUDGETS if not budgets[name] <= defaults[name]]
    if looser:
        return withheld("looser_budgets", f"not a conformance claim: budget(s) looser than profile "
                                          f"{report.profile.name}'s defaults: {_budgets(looser, budgets, defaults)}")
    tighter = [name for name in _profiles.BUDGETS if budgets[name] != defaults[name]]
    return Claim(CONFORMANT, _statement(report, counts, base["strict"], _budgets(tighter, budgets, defaults)),
                 None, **base)


def _meant_to_have_runs(section) -> bool:
    """A recording or stream always is (it is the evidence); a live scenario when it started a run."""
    return section.kind != "scenario" or section.stats.get("starts_sent", 0) > 0


def _default_budgets(profile) -> dict[str, float]:
    registered = _profiles.PROFILES.get(profile.name)
    return (registered or _profiles.Profile(profile.name)).budgets()


def _budgets(names: list[str], budgets: dict[str, float], defaults: dict[str, float]) -> str:
    parts = []
    for name in names:
        word, unit = _BUDGET_WORDS[name]
        parts.append(f"{word} {budgets[name]:g} {unit} instead of {defaults[name]:g} {unit}")
    return ", ".join(parts)


def _statement(report, counts: dict[str, int], strict: bool, tighter: str) -> str:
    kinds = {s.kind for s in report.sections}
    word = _KIND_WORDS.get(kinds.pop(), "sections") if len(kinds) == 1 else "sections"
    names = ", ".join(_short(s.name) for s in report.sections)
    scope = "every MUST and SHOULD rule" if strict else "every MUST rule"
    budgets = f"; tighter budgets: {tighter}" if tighter else ""
    return (f"Conforms to agent-events protocol v{report.protocol_version} (profile {report.profile.name}{budgets}; "
            f"{word}: {names}): {scope} held, {counts['passed']} rules passed, "
            f"{counts['not_applicable']} not applicable{_features(report)}; checked with agent-events "
            f"{report.kit_version} on {(report.finished_at or '')[:10]}.")


def _claimed_features(report) -> list[str]:
    """1.1: the optional features the endpoint declared (its limits aside), sorted; [] for 1.0."""
    features = report.features or {}
    return sorted(name for name, value in features.items()
                  if value is not False and name not in ("max_runs_per_connection", "max_message_bytes"))


def _features(report) -> str:
    """1.1: what the endpoint claimed (each held to its rules, so claimed is proven here) and what not."""
    if report.features is None:
        return ""
    claimed = _claimed_features(report)
    optional = ("simulate_failure", "cancel", "time_sync", "resume")
    missing = [name for name in optional if name not in claimed]
    return (f"; features claimed and proven: {', '.join(claimed) or 'none'}"
            + (f"; not claimed: {', '.join(missing)}" if missing else ""))


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
    """A self-contained SVG badge: ``agent-events v1.1 | conformant: cancel+resume+...`` (green, with the
    features claimed and proven), ``not conformant`` (red) or ``no claim`` (grey); its tooltip is the
    claim statement or the reason."""
    claim = report.claim()
    if getattr(report, "foreign", False):
        return _svg(f"judged as {report.dialect.label}", f"{'not conformant' if claim.status == NOT_CONFORMANT else 'passed'}: "
                    f"{report.dialect_dict()['applicable']} of {report.dialect_dict()['rules']} rules applicable",
                    _COLORS[claim.status], claim.reason or "")
    label, message = f"agent-events v{claim.protocol_version}", claim.status
    claimed = _claimed_features(report)
    if claimed and claim.status == CONFORMANT:  # 1.1: what was claimed, and (the claim holds) proven
        message = f"{message}: {'+'.join(claimed)}"
    color = _COLORS[claim.status]
    title = claim.statement or f"agent-events v{claim.protocol_version}, profile {claim.profile}: {claim.reason}"
    return _svg(label, message, color, title)


def _svg(label: str, message: str, color: str, title: str) -> str:
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
