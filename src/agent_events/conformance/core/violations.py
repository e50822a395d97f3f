"""Violations and rule outcomes: the checker's findings, as plain data.

A violation is a value, not an exception, so that one bad frame never stops a
check: the checker keeps going and reports everything a stream reveals. It is
frozen so that reports, reporters and the live probe can share it freely, and
it carries everything a reader needs to act on it without the stream at hand:
what was expected, what was observed, and a compact excerpt of the messages
that led to it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

#: Statuses of a rule in a report. FAIL and WARN depend on the severity the
#: report's policy gives the rule, not only on its level. INCONCLUSIVE: every sample over
#: a budget is explained by the harness's own lag (a live check on a busy machine), so the
#: rule was not judged: never a pass, never a fail.
PASS, FAIL, WARN, INFO, NOT_APPLICABLE, OFF = "PASS", "FAIL", "WARN", "INFO", "N/A", "OFF"
INCONCLUSIVE = "INCONCLUSIVE"
STATUSES = (PASS, FAIL, WARN, INFO, INCONCLUSIVE, NOT_APPLICABLE, OFF)

#: How much of a message an excerpt line may show: enough to recognise it,
#: short enough that a report of a thousand violations stays readable.
EXCERPT_TEXT_CHARS = 60
EXCERPT_RAW_CHARS = 120


@dataclass(frozen=True, slots=True)
class Violation:
    """One breach of one rule, found at one point of a stream."""

    rule_id: str
    level: str
    severity: str
    run_id: str | None
    conn: str
    #: Position of the offending frame among the frames received on ``conn``
    #: (0-based); ``None`` for findings made at the end of the stream.
    index: int | None
    expected: str
    observed: str
    #: The preceding messages and the offending one, one compact line each.
    excerpt: tuple[str, ...] = ()
    #: Receive time of the offending frame (client clock, epoch ms), if known.
    at: float | None = None
    #: Where the frame came from, e.g. ``"run.jsonl:42"`` when validating a file.
    location: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "level": self.level,
            "severity": self.severity,
            "run_id": self.run_id,
            "conn": self.conn,
            "index": self.index,
            "expected": self.expected,
            "observed": self.observed,
            "excerpt": list(self.excerpt),
            "at": self.at,
            "location": self.location,
        }


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What a check found about one rule: how often it was checked and broken.

    The status is not stored here: it depends on the severity a report's
    policy gives the rule (see :class:`agent_events.conformance.reporting.report.Policy`).
    """

    rule_id: str
    checked: int
    violations: int
    #: Why the rule was not applicable, when it was not checked at all.
    reason: str | None = None
    #: Samples over a budget that the harness's own lag explains (latency rules of a live check).
    inconclusive: int = 0
    #: The figures of the worst of them: latency_ms, budget_ms, harness_stall_ms, run_id, conn, at.
    inconclusive_worst: dict | None = None

    @property
    def applicable(self) -> bool:
        return self.violations > 0 or (self.checked > 0 and self.reason is None)

    def inconclusive_text(self) -> str:
        """One sentence with the figures, for every report format."""
        w = self.inconclusive_worst or {}
        return (f"inconclusive: {self.inconclusive} sample(s) over the {w.get('budget_ms', 0):g} ms budget, each "
                f"within what the harness's own stall explains (worst {w.get('latency_ms', 0):g} ms, of which the "
                f"harness was stalled {w.get('harness_stall_ms', 0):g} ms)")


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def summarise(message: Any) -> str:
    """A one-line description of a message, for excerpts.

    It never fails: the message may be anything a broken server sent.
    """
    if isinstance(message, (bytes, bytearray, memoryview)):
        raw = bytes(message)
        return f"<binary frame, {len(raw)} bytes: {clip(base64.b64encode(raw[:60]).decode(), 40)}>"
    if isinstance(message, str):
        return f"<text, not JSON: {clip(message, EXCERPT_RAW_CHARS)!r}>"
    if not isinstance(message, dict):
        return f"<JSON {type(message).__name__}, not an object: {clip(repr(message), EXCERPT_RAW_CHARS)}>"
    parts = [str(message.get("type", "<no type>"))]
    for key in ("run_id", "seq", "code"):
        if key in message:
            parts.append(f"{key}={message[key]!r}" if key != "seq" else f"seq={message[key]}")
    payload = message.get("payload")
    if isinstance(payload, dict):
        for key in ("attempt", "tool_name", "tool_call_id", "status"):
            if key in payload:
                parts.append(f"{key}={payload[key]!r}")
        result = payload.get("result")
        if message.get("type") == "agent_completed" and isinstance(result, dict):
            flags = ",".join(f"{k}={result[k]!r}" for k in ("success", "fallback_used", "cancelled") if k in result)
            parts.append(f"result({flags})")
        text = payload.get("message")
        if isinstance(text, str):
            parts.append(repr(clip(text, EXCERPT_TEXT_CHARS)))
    elif "payload" in message:
        parts.append(f"payload={clip(repr(payload), 40)}")
    extra = sorted(k for k in message if k not in ("type", "run_id", "seq", "code", "payload", "emitted_at", "agent_name", "message"))
    if extra:
        parts.append("+" + ",".join(map(str, extra)))
    return clip(" ".join(parts), 240)


def excerpt_line(index: int | None, at: float | None, message: Any, start: float | None = None) -> str:
    """``#index [+t ms] summary``: one line of an excerpt."""
    where = f"#{index}" if index is not None else "#-"
    if at is not None and start is not None:
        where += f" +{at - start:.1f}ms"
    return f"{where} {summarise(message)}"
