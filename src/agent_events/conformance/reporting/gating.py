"""Gating: per-rule severities, the failure threshold and the warnings budget, from any source.

The command line (``--rule``, ``--off``, ``--fail-on``, ``--max-warnings``,
``--strict``, ``--allow-lowering-must``), the config file and the pytest
plugin spell these settings differently, but a CI gate must mean the same
thing whichever one a team uses, and refuse the same mistakes with the same
words. So each source only collects its *layers* (config top level, the
command's sub-table, flags: later layers win) and this module alone turns
them into a :class:`Policy` (which lives here, beside the settings that build it; a report
only applies it, so ``report`` imports ``gating`` and never the other way round).

Two refusals live here, not in ``Policy``: an unknown rule id (most likely a
typo, which would otherwise silently gate nothing; the message suggests the
nearest id) and lowering a MUST rule without ``--allow-lowering-must``
(a team must say out loud that its result is then no conformance claim).
``Policy`` itself stays permissive so a Python caller can judge anything.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from agent_events.conformance.core import rules as _rules
from agent_events.conformance.core.violations import FAIL, INCONCLUSIVE, INFO, NOT_APPLICABLE, OFF, PASS, WARN, RuleOutcome

SEVERITIES = ("error", "warning", "info", "off")
FAIL_ON = ("error", "warning", "none")

class GatingError(ValueError):
    """A gating setting that cannot be honoured; every entry point turns it into a usage error (exit 2)."""


def nearest_rule(rule_id: str) -> str | None:
    """The registry id closest to a mistyped one, if any is close enough to be a plausible typo."""
    ids = [r.id for r in _rules.ALL_RULES]
    close = difflib.get_close_matches(rule_id, ids, n=1, cutoff=0.6)
    if not close:  # a bare last component ("thinking") is a common shorthand
        close = [i for i in ids if i.rsplit(".", 1)[-1] == rule_id.rsplit(".", 1)[-1]][:1]
    return close[0] if close else None


def check_rule_id(rule_id: Any) -> str:
    """``rule_id`` if the registry has it, else a :class:`GatingError` that suggests the nearest id."""
    if isinstance(rule_id, str) and rule_id in _rules.BY_ID:
        return rule_id
    near = nearest_rule(rule_id) if isinstance(rule_id, str) else None
    hint = f"; did you mean {near!r}?" if near else f"; known ids: {', '.join(r.id for r in _rules.ALL_RULES)}"
    raise GatingError(f"unknown rule id {rule_id!r}{hint}")


def check_severity(severity: Any, rule_id: str | None = None) -> str:
    if severity not in SEVERITIES:
        what = f" for {rule_id}" if rule_id else ""
        raise GatingError(f"severity{what} must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    return severity


def parse_rule_spec(text: str) -> tuple[str, str]:
    """``"ID=SEVERITY"`` (the value of ``--rule``) -> ``(id, severity)``."""
    rule_id, sep, severity = text.partition("=")
    if not sep:
        raise GatingError(f"expected ID=SEVERITY (severity one of {', '.join(SEVERITIES)}), got {text!r}")
    rule_id = check_rule_id(rule_id.strip())
    return rule_id, check_severity(severity.strip().lower(), rule_id)


@dataclass
class Layer:
    """What one source said about gating; ``None`` means "not said here"."""

    #: (rule id, severity) in the order given: a later pair for the same id wins
    severities: Sequence[tuple[str, str]] = field(default_factory=list)
    strict: bool | None = None
    fail_on: str | None = None
    max_warnings: int | None = None
    allow_lowering_must: bool | None = None
    #: how to name this source in a message ("the command line", "pyproject.toml [check]")
    name: str = "the command line"

    @classmethod
    def from_config(cls, values: Mapping[str, Any], name: str) -> "Layer":
        """A layer from one config table (already checked by :mod:`agent_events.conformance.config`):
        ``rules`` first, then ``off``, so an id in both ends up off."""
        pairs = list((values.get("rules") or {}).items()) + [(r, "off") for r in values.get("off") or ()]
        return cls(pairs, values.get("strict"), values.get("fail_on"), values.get("max_warnings"),
                   values.get("allow_lowering_must"), name)


@dataclass(frozen=True)
class Policy:
    """How findings turn into a verdict.

    Default: any violation of a rule at severity ``error`` (every MUST rule)
    fails. ``strict`` fails on ``warning`` (SHOULD) too. ``severities``
    overrides a rule's severity (``error``, ``warning``, ``info`` or ``off``),
    ``fail_on`` picks the lowest failing severity explicitly, and
    ``max_warnings`` fails a stream with more warning-severity violations
    than that.
    """

    strict: bool = False
    severities: Mapping[str, str] = field(default_factory=dict)
    fail_on: str | None = None
    max_warnings: int | None = None

    def __post_init__(self) -> None:
        for rule_id, severity in self.severities.items():
            check_rule_id(rule_id)
            if severity not in SEVERITIES:
                raise ValueError(f"severity of {rule_id} must be one of {', '.join(SEVERITIES)}, not {severity!r}")
        if self.fail_on is not None and self.fail_on not in FAIL_ON:
            raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON)}, not {self.fail_on!r}")
        if self.max_warnings is not None and self.max_warnings < 0:
            raise ValueError("max_warnings must be >= 0")

    @property
    def gate(self) -> str:
        """The lowest severity that fails: ``error``, ``warning`` or ``none``."""
        if self.fail_on is not None:
            return self.fail_on
        return "warning" if self.strict else "error"

    @property
    def lowered_must(self) -> bool:
        """Whether a MUST rule counts below ``error`` (then a pass is no conformance claim)."""
        return bool(self.lowered_must_rules)

    @property
    def lowered_must_rules(self) -> dict[str, str]:
        """The MUST rules counted below ``error``, with the severity they count at."""
        return {r: s for r, s in self.severities.items() if _rules.get(r).level is _rules.Level.MUST and s != "error"}

    def severity(self, rule_id: str) -> str:
        return self.severities.get(rule_id) or _rules.get(rule_id).severity

    def status(self, outcome: RuleOutcome) -> str:
        severity = self.severity(outcome.rule_id)
        if severity == "off":
            return OFF
        if outcome.violations:
            return {"error": FAIL, "warning": WARN, "info": INFO}[severity]
        if outcome.inconclusive:
            return INCONCLUSIVE
        return PASS if outcome.applicable else NOT_APPLICABLE

    def fails(self, severity: str) -> bool:
        gate = self.gate
        if gate == "none" or severity in ("info", "off"):
            return False
        return severity == "error" or gate == "warning"

    def to_dict(self) -> dict[str, Any]:
        return {"strict": self.strict, "gate": self.gate, "fail_on": self.fail_on,
                "max_warnings": self.max_warnings, "severities": dict(self.severities),
                "lowered_must": sorted(self.lowered_must_rules)}


DEFAULT_POLICY = Policy()


def _gate_of(layer: Layer) -> tuple[bool, str | None] | None:
    """``(strict, fail_on)`` this layer decides, or ``None`` if it is silent on the gate.

    ``--strict`` is the shorthand of ``--fail-on warning``, so the two are one
    setting: a layer that names either overrides both of a lower layer (a CI
    line's ``--strict`` beats the file's ``fail_on = "error"``). Within one
    layer, ``strict`` with a different ``fail_on`` is a contradiction.
    """
    if layer.fail_on is not None:
        if layer.fail_on not in FAIL_ON:
            raise GatingError(f"fail-on must be one of {', '.join(FAIL_ON)}, not {layer.fail_on!r}")
        if layer.strict and layer.fail_on != "warning":
            raise GatingError(f"{layer.name}: strict (--strict) is the shorthand of fail-on warning; "
                              f"it contradicts fail-on {layer.fail_on}")
        return False, layer.fail_on
    if layer.strict is not None:
        return bool(layer.strict), None
    return None


def policy_from_layers(layers: Iterable[Layer]):
    """Merge layers, lowest precedence first, into a Policy; :class:`GatingError` for what cannot be honoured."""
    severities: dict[str, str] = {}
    strict, fail_on = False, None
    max_warnings: int | None = None
    allow = False
    for layer in layers:
        for rule_id, severity in layer.severities:
            severities[check_rule_id(rule_id)] = check_severity(severity, rule_id)
        gate = _gate_of(layer)
        if gate is not None:
            strict, fail_on = gate
        if layer.max_warnings is not None:
            if isinstance(layer.max_warnings, bool) or not isinstance(layer.max_warnings, int) \
                    or layer.max_warnings < 0:
                raise GatingError(f"max-warnings must be an integer >= 0, not {layer.max_warnings!r}")
            max_warnings = layer.max_warnings
        if layer.allow_lowering_must is not None:
            allow = bool(layer.allow_lowering_must)
    # Restating a rule's default is no override: keep the policy (and the report) minimal.
    severities = {r: s for r, s in severities.items() if s != _rules.get(r).severity}
    policy = Policy(strict=strict, severities=severities, fail_on=fail_on, max_warnings=max_warnings)
    if policy.lowered_must and not allow:
        listed = ", ".join(f"{r} to {s}" for r, s in policy.lowered_must_rules.items())
        raise GatingError(f"lowering a MUST rule ({listed}) needs --allow-lowering-must "
                          f"(allow_lowering_must = true in the config file); the report then says "
                          f"the result is not a conformance claim")
    return policy


__all__ = ["DEFAULT_POLICY", "Policy", "GatingError", "Layer", "policy_from_layers", "parse_rule_spec", "check_rule_id", "nearest_rule"]
