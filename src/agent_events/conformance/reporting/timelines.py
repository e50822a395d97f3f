"""Run timelines: what the HTML report draws of a run, built on the report side.

The checker keeps, for the first ``timeline_runs`` runs of a stream, the raw entries of each run
(frame index, receive time, message; at most :data:`TIMELINE_EVENTS`) and, when the run ends, a
:class:`TimelineRecord` of it. Turning that into presentation data (times relative to the run's
start, delivery latencies, a one-line label per event, the payload fields a reader needs to draw
attempts and tool calls) is the report's business, not the judge's: :func:`build` does it, when a
:class:`~agent_events.conformance.reporting.report.Section` is frozen. The dict it returns is the JSON
report's ``timelines`` entry (report schema 1.3+).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from agent_events.conformance.core.violations import clip, summarise

#: Runs whose timeline (every event with its times) is kept for the HTML report.
TIMELINE_RUNS = 20
#: Events kept per timeline; a longer run's timeline says it was truncated.
TIMELINE_EVENTS = 500
_NUMBER = (int, float)


class TimelineRecord(NamedTuple):
    """A finished run as the checker leaves it: its identity, how it ended and its raw entries."""

    run_id: str | None
    conn: str
    start_at: float | None
    state: str
    fallback: bool
    cancelled: bool
    violations: tuple[str, ...]
    entries: tuple
    #: the connection's clock offset (server minus client, ms) when the run ended
    offset: float


def record(run: Any, offset: float) -> TimelineRecord:
    """Freeze ``run`` (a checker's run, just ended) into a record."""
    return TimelineRecord(run.run_id, run.conn, run.origin(), run.state, run.fallback_ran, run.cancelled,
                          tuple(sorted(run.failed or ())), tuple(run.timeline or ()), offset)


def build(rec: TimelineRecord) -> dict:
    """The report's timeline of one run."""
    start = rec.start_at
    offset = rec.offset
    events = []
    for index, at, message in rec.entries:
        emitted = message.get("emitted_at")
        delivery = (at - emitted + offset) if at is not None and type(emitted) in _NUMBER else None
        events.append({
            "index": index,
            "seq": message.get("seq") if type(message.get("seq")) is int else None,
            "type": str(message.get("type")),
            "t_ms": round(at - start, 3) if at is not None and start is not None else None,
            "delivery_ms": round(delivery, 3) if delivery is not None else None,
            "label": summarise(message),
            **_details(message),
        })
    return {
        "run_id": rec.run_id,
        "conn": rec.conn,
        "start_at": start,
        "state": rec.state,
        "fallback": rec.fallback,
        "cancelled": rec.cancelled,
        "violations": list(rec.violations),
        "events": events,
        "truncated": len(rec.entries) >= TIMELINE_EVENTS,
    }


#: Payload fields a timeline keeps (when they are strings) so that a reader can draw attempts and tool calls.
DETAILS = ("attempt", "tool_call_id", "tool_name", "status")


def _details(message: dict) -> dict:
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return {}
    return {key: clip(value, 80) for key in DETAILS if type(value := payload.get(key)) is str}
