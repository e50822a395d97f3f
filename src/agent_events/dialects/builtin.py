"""The built-in dialects: ``agent-events`` (ours, the default) and ``ag-ui`` (AG-UI 1.1).

Both are plain :class:`~agent_events.dialects.model.Dialect` values. Ours is judged by the
checker whose transition table the schemas build (its fields here describe it, for the docs
and for a dialect file that ``extends`` it); AG-UI's by the paired-family judge, its rows
below: the four families AG-UI pairs by id (text messages, reasoning messages and spans,
tool calls, steps) and subagents, positional runs, chunk expansion as a named hook, and its
vendored schema (``schemas/dialects/ag-ui-1.1/``).
"""

from __future__ import annotations

from agent_events import schemas
from agent_events.conformance.core import rules as _rules
from agent_events.dialects.model import Dialect, Family, Runs
from agent_events.dialects.pointer import Pointer

P = Pointer

AGENT_EVENTS = Dialect(
    name="agent-events", version=schemas.PROTOCOL_VERSION, title="agent-events protocol v1 (ours)",
    framing="json", type=P("/type"), run_id=P("/run_id"), seq=P("/seq"), timestamp=P("/emitted_at"),
    timestamp_unit="ms",
    runs=Runs(opens=("agent_started",), finishes=("agent_completed",), scope="keyed", may_follow=True, restarts=1),
    families=(Family("tool_call", opens=("tool_executing",), closes=("tool_completed",),
                     key=P("/payload/tool_call_id"), name_pointer=P("/payload/tool_name"), tool=True),),
    types=tuple(schemas.SERVER_TYPES),
    start={"type": "start_run", "run_id": "{run_id}", "input": "{input}"},
    rules=tuple(r.id for r in _rules.RULES),
)

_SUB = P("/subagentRunId")
_FINISHED_OPEN = "ag-ui.run.finished_open"
#: AG-UI 1.1's rules, and ours that it has the evidence for.
_AG_UI_RULES = tuple(r.id for r in _rules.of_dialect("ag-ui") if r.id != "ag-ui.run.cancelled") + (
    "frame.text", "frame.json", "frame.size", "latency.first_event", "latency.tool_gap", "latency.run_deadline")

AG_UI_VERSION = "1.1"
AG_UI = Dialect(
    name="ag-ui", version=AG_UI_VERSION, title="AG-UI 1.1 (Agent-User Interaction protocol)",
    framing="auto", type=P("/type"), run_id=P("/runId"), timestamp=P("/timestamp"), timestamp_unit=None,
    runs=Runs(opens=("RUN_STARTED",), finishes=("RUN_FINISHED",), errors=("RUN_ERROR",), errors_first=True,
              late_error=True, scope="positional", may_follow=True),
    families=(
        Family("text_message", opens=("TEXT_MESSAGE_START",), content=("TEXT_MESSAGE_CONTENT",),
               closes=("TEXT_MESSAGE_END",), key=P("/messageId"), paired_rule="ag-ui.message.paired",
               open_once_rule="ag-ui.message.open_once", unclosed_rule=_FINISHED_OPEN,
               attribution=_SUB, attribution_rule="ag-ui.subagent.attribution"),
        Family("reasoning_message", opens=("REASONING_MESSAGE_START",), content=("REASONING_MESSAGE_CONTENT",),
               closes=("REASONING_MESSAGE_END",), key=P("/messageId"), paired_rule="ag-ui.reasoning.paired",
               open_once_rule=None, unclosed_rule=_FINISHED_OPEN,
               attribution=_SUB, attribution_rule="ag-ui.subagent.attribution"),
        Family("reasoning", opens=("REASONING_START",), closes=("REASONING_END",), key=P("/messageId"),
               paired_rule="ag-ui.reasoning.paired", open_once_rule=None, unclosed_rule=_FINISHED_OPEN),
        Family("tool_call", opens=("TOOL_CALL_START",), content=("TOOL_CALL_ARGS",), closes=("TOOL_CALL_END",),
               key=P("/toolCallId"), name_pointer=P("/toolCallName"), paired_rule="ag-ui.tool.paired",
               open_once_rule="ag-ui.tool.open_once", unclosed_rule=_FINISHED_OPEN,
               attribution=_SUB, attribution_rule="ag-ui.subagent.attribution", tool=True),
        Family("step", opens=("STEP_STARTED",), closes=("STEP_FINISHED",), key=P("/stepName"),
               paired_rule="ag-ui.step.paired", open_once_rule=None, unclosed_rule=_FINISHED_OPEN),
        Family("subagent", opens=("SUBAGENT_STARTED",), closes=("SUBAGENT_FINISHED", "SUBAGENT_ERROR"),
               key=P("/subagentRunId"), paired_rule="ag-ui.subagent.paired", open_once_rule=None,
               unclosed_rule=_FINISHED_OPEN),
    ),
    types=(),  # filled from the vendored schema below
    start={"threadId": "{thread_id}", "runId": "{run_id}", "state": {}, "tools": [], "context": [],
           "forwardedProps": {}, "messages": [{"id": "{message_id}", "role": "user", "content": "{input}"}]},
    rules=_AG_UI_RULES,
    not_applicable={
        "seq.contiguous": "AG-UI events carry no sequence number: a drop or a reorder can only show as a "
                          "pairing or lifecycle breach",
        "isolation.run_scope": "AG-UI runs are positional on their connection (not every event names its run), "
                               "so an event leaked from another connection's run cannot be told apart",
        "latency.delivery": "AG-UI fixes no unit for timestamp; judged only when a dialect file extending ag-ui "
                            "declares timestamp_unit",
        "ag-ui.run.cancelled": "AG-UI over WebSocket has no cancel message: a client stops a run by closing the "
                               "connection, after which AG-UI promises nothing, so no cancellation is observable",
    },
    lifecycle={"type": "ag-ui.schema.event", "first": "ag-ui.run.first", "nested": "ag-ui.run.nested",
               "after_end": "ag-ui.run.after_finished", "ended": "ag-ui.run.ended",
               "unknown_type": "ag-ui.unknown_type", "schema": "ag-ui.schema.event",
               "schema_strict": "ag-ui.schema.strict"},
    schema="ag-ui-1.1",
    hooks=("ag-ui.chunks",),
)


def _with_schema_types(dialect: Dialect) -> Dialect:
    from dataclasses import replace

    from agent_events.dialects.schema import event_types

    return replace(dialect, types=tuple(event_types(dialect.schema)))


AG_UI = _with_schema_types(AG_UI)

#: The default lifecycle roles of a dialect file: our own rules.
OUR_LIFECYCLE = {"type": "schema.envelope", "first": "order.first_started", "nested": "fallback.single",
                 "after_end": "order.completed_last", "ended": "order.completed_last",
                 "unknown_type": "schema.unknown_type"}

BUILTIN: dict[str, Dialect] = {d.name: d for d in (AGENT_EVENTS, AG_UI)}
DEFAULT = AGENT_EVENTS.name
