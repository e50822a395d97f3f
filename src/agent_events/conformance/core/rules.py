"""The rule registry: every rule of protocol v1, once.

This table is the only place a rule is defined. The checker looks rules up
here by id, the reports take titles and levels from here, the docs' Rule
reference and the pytest plugin's items are generated from here. A rule id is
a public name: once released it is never renamed or reused (retire it with
``deprecated=True`` instead), because CI configs and ``--rule`` flags name it.

Levels follow RFC 2119. A MUST failure makes a stream non-conformant; a
SHOULD failure is a warning; MAY rules only ever inform.

``scope`` says what evidence a rule needs, so a report can say "not
applicable" honestly instead of "passed":

* ``frame``: each frame on its own;
* ``run``: the events of one run;
* ``stream``: which connection a run belongs to (needs client frames);
* ``timing``: receive times, and for some rules the client's send times;
* ``live``: only a live probe can exercise it (the endpoint's behaviour
  toward the client, not the stream it sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Level(str, Enum):
    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"

    @property
    def default_severity(self) -> str:
        return {"MUST": "error", "SHOULD": "warning", "MAY": "info"}[self.value]


@dataclass(frozen=True)
class Rule:
    id: str
    level: Level
    category: str
    title: str
    rationale: str
    #: Anchor of the section of docs/spec.md that states the rule.
    section: str
    scope: str = "run"
    #: The profile the rule belongs to; ``None`` for rules of the protocol itself.
    profile: str | None = None
    deprecated: bool = False
    #: The dialect whose streams the rule judges (:mod:`agent_events.dialects`); ours is ``agent-events``.
    dialect: str = "agent-events"
    #: For a foreign dialect's rule: the section of that protocol's own specification it states
    #: (e.g. AG-UI's ``/spec/1.1/events/lifecycle``), so a finding can be checked against the source.
    cite: str | None = None

    @property
    def severity(self) -> str:
        return self.level.default_severity


M, S, Y = Level.MUST, Level.SHOULD, Level.MAY

RULES: tuple[Rule, ...] = (
    # -- frames -----------------------------------------------------------
    Rule("frame.text", M, "frame", "Every message is a text frame",
         "Binary frames carry no declared encoding; browsers and most clients expect text for JSON.",
         "transport", scope="frame"),
    Rule("frame.json", M, "frame", "Every message is one UTF-8 JSON object",
         "A client must be able to parse each frame on its own, without buffering or guessing.",
         "transport", scope="frame"),
    # -- schemas ----------------------------------------------------------
    Rule("schema.envelope", M, "schema", "The envelope is valid",
         "Clients route on type, run_id and seq; a malformed envelope cannot be routed at all.",
         "envelope", scope="frame"),
    Rule("schema.payload", M, "schema", "The payload is valid for its type, including the result payload",
         "User interfaces render payload fields directly; a missing field is a broken screen.",
         "events", scope="frame"),
    Rule("schema.unknown_type", S, "schema", "No unknown message types",
         "Clients ignore types they do not know, so an unknown type is lost information, not an error.",
         "versioning", scope="frame"),
    # -- sequence ---------------------------------------------------------
    Rule("seq.contiguous", M, "sequence", "seq starts at 0 and rises by exactly 1: no drop, duplicate or reorder",
         "seq is how a client detects a lost, repeated or reordered event; without it, silence looks like success.",
         "envelope"),
    Rule("order.first_started", M, "order", "A run's first event is agent_started with attempt primary",
         "The user must know at once that work has begun; everything else is shown under that start.",
         "run-lifecycle"),
    Rule("order.completed_last", M, "order", "Exactly one agent_completed, and nothing of the run after it",
         "agent_completed is the client's signal to stop waiting; a missing one hangs the UI, a late event is lost.",
         "run-lifecycle"),
    Rule("order.thinking", S, "order", "At least one agent_thinking per attempt",
         "Reasoning visibility is the point of the stream; an attempt with no thinking looks frozen.",
         "run-lifecycle"),
    # -- tool pairing -----------------------------------------------------
    Rule("pair.tool_matched", M, "pairing", "Each tool_executing has exactly one matching tool_completed before its attempt ends",
         "An unmatched tool leaves a spinner running forever in the user's view.",
         "tool-pairing"),
    Rule("pair.no_orphan", M, "pairing", "No tool_completed without an open tool_executing of the same id and name",
         "A completion with no start cannot be placed in the timeline the user sees.",
         "tool-pairing"),
    Rule("pair.unique_id", M, "pairing", "tool_call_id is unique within a run",
         "Pairing is by tool_call_id; a reused id makes two calls indistinguishable.",
         "tool-pairing"),
    # -- fallback ---------------------------------------------------------
    Rule("fallback.single", M, "fallback", "At most one further agent_started, and only with attempt fallback",
         "A run has one primary and at most one fallback attempt; more starts mean the client cannot tell which result counts.",
         "fallback"),
    Rule("fallback.flag", M, "fallback", "result.fallback_used is true exactly when the fallback attempt ran",
         "Users are told when a degraded method produced their result.",
         "fallback"),
    Rule("fallback.continuity", M, "fallback", "The fallback attempt is started, then thinking, then completed, with no tool left open from the primary attempt",
         "Even when the primary path fails, the user's stream stays whole: every open tool is closed and the run still ends.",
         "fallback"),
    # -- isolation --------------------------------------------------------
    Rule("isolation.run_scope", M, "isolation", "A connection receives only events of runs it started",
         "Another user's events are a data leak, and they corrupt this user's view.",
         "multiplexing", scope="stream"),
    # -- latency ----------------------------------------------------------
    Rule("latency.first_event", M, "latency", "agent_started arrives within the first-event budget (100 ms) of start_run",
         "The first event is what tells a user the system did not fail; a late one feels like a hang.",
         "latency", scope="timing"),
    Rule("latency.delivery", M, "latency", "Each event is received within the delivery budget (100 ms) of its emitted_at, clock-corrected",
         "Real-time visibility means events are not held back or batched for long.",
         "latency", scope="timing"),
    Rule("latency.tool_gap", S, "latency", "Fast tools take under the tool-gap budget (5 ms) from executing to completed",
         "Local tools that are slow to report distort the timeline the user sees.",
         "latency", scope="timing"),
    Rule("latency.run_deadline", M, "latency", "The run completes within the deadline",
         "A run that never ends is a hang, however well-formed its events.",
         "latency", scope="timing"),
    # -- profile: actions-agent ------------------------------------------
    Rule("profile.actions.tools", M, "profile", "Three tool pairs in order prompt_builder, llm_processor, action_plan_processor on the primary path",
         "The ActionsAgent's users follow these three steps; a missing or reordered step is a different agent.",
         "profile-actions-agent", profile="actions-agent"),
    Rule("profile.actions.thinking", S, "profile", "2 to 3 agent_thinking on the primary path",
         "The seed's ActionsAgent shows its reasoning in two or three steps.",
         "profile-actions-agent", profile="actions-agent"),
)

# -- live-only rules (the live check, issue 6) ---------------------------------
# What only a probe that talks to the endpoint can observe: the handshake, how
# the endpoint answers the client, and frames the client had to refuse. The
# checker reports them N/A ("checked only by a live probe"); the live scenarios
# record them with ``Checker.external``.
RULES += (
    Rule("transport.subprotocol", S, "transport", "The server selects the agent-events.v1 subprotocol the client offers",
         "The subprotocol is how client and server agree on the protocol version before the first message.",
         "transport", scope="live"),
    Rule("transport.connections", S, "transport", "The endpoint accepts the harness's concurrent connections (10 by default)",
         "Several users of one agent connect at once; an endpoint that refuses the tenth cannot serve them.",
         "multiplexing", scope="live"),
    Rule("transport.connection_kept", M, "transport",
         "The endpoint keeps a well-behaved client's connection open until the client closes it",
         "A run can only be judged on a connection that lasts: an endpoint that drops its clients' connections "
         "serves no run, and a check that could start none must not read as a pass.",
         "transport", scope="live"),
    Rule("frame.size", M, "frame", "No message is larger than the client's frame limit (16 MiB by default)",
         "A client cannot buffer an unbounded frame; an event that large is a bug, and it would take the client down.",
         "transport", scope="live"),
    Rule("time_sync.reply", S, "time-sync", "time_sync is answered with a time_sync reply that echoes client_time_ms",
         "Without it a remote client cannot correct for clock offset, and delivery latency cannot be measured across machines.",
         "time-sync", scope="live"),
    Rule("cancel.terminal", M, "cancel", "After cancel_run, the run ends with agent_completed whose result says cancelled: true and success: false",
         "A user who cancels must see the run end, and must not mistake a cancelled run for a successful one.",
         "cancel-run", scope="live"),
    Rule("cancel.before_first_event", M, "cancel", "A run cancelled before its first event still sends agent_started and ends with agent_completed, never silence",
         "A cancel can reach a server before the run's task has started; the user must still see that run start and end "
         "(cancelled, as cancel.terminal judges), never a run that vanished.",
         "cancel-run", scope="live"),
    Rule("start.generated_run_id", M, "start", "A start_run without run_id gets a server-generated run_id unique on the connection",
         "The client learns its run's id from the first event; two runs under one id cannot be told apart.",
         "start-run", scope="live"),
    Rule("start.duplicate_run", S, "start", "A start_run reusing a run_id in flight is answered with duplicate_run and starts nothing",
         "A client that reused an id by mistake learns so, and the run already in flight goes on unharmed.",
         "start-run", scope="live"),
    Rule("start.too_many_runs", S, "start", "A start_run over the endpoint's bound on runs in flight is answered with too_many_runs, and the connection stays usable",
         "A client at the bound learns why its run did not start, and can start it once another run has ended.",
         "start-run", scope="live"),
    Rule("robustness.message_too_big", S, "robustness", "A client message over the endpoint's size bound is answered with message_too_big, or a close with code 1009",
         "A client that sent too much learns so, instead of losing its connection for an unexplained reason.",
         "transport", scope="live"),
    Rule("robustness.error_reply", S, "robustness", "Malformed client input is answered with an error message of the documented code",
         "A client that sent something wrong learns what, instead of waiting for an answer that never comes.",
         "robustness", scope="live"),
    Rule("robustness.stays_open", S, "robustness", "After malformed client input the connection stays open and usable",
         "One bad message from a client must not cost its user every run in flight on the connection.",
         "robustness", scope="live"),
)

# Protocol 1.1: rules that bind only a server that declares the optional feature in its
# capabilities message (a 1.0 server, which declares nothing, is judged against 1.0 rules).
RULES += (
    Rule("capabilities.first", M, "capabilities",
         "A capabilities message, when sent, is the connection's first server message, and comes once",
         "A client decides what to offer from it before it starts a run; a late or repeated declaration "
         "cannot be acted on.", "capabilities", scope="frame"),
    Rule("capabilities.honest", M, "capabilities",
         "Every feature a server declares works: simulate_failure takes the fallback path, cancel ends the run, "
         "time_sync is answered, resume resumes",
         "A declared feature is a promise a client builds on; advertising one that does not work is worse than "
         "not declaring it.", "capabilities", scope="live"),
    Rule("resume.replay", M, "resume",
         "After resume_run, every event after last_seq is replayed exactly once, in order, then the run continues",
         "A user who reconnects must see the whole run once: a lost event is a gap, a repeated one a double line.",
         "resume"),
    Rule("resume.secret", M, "resume",
         "A resume_run without the run's resume_token is refused with resume_denied, and nothing of the run is sent",
         "run_ids are guessable; only the secret issued to the client that started the run may take it over.",
         "resume", scope="live"),
)

# -- dialect ag-ui: AG-UI 1.1 (agent_events.dialects.ag_ui) ----------------------
# The AG-UI spec's own rules, judged on an AG-UI stream after chunk expansion. Each cites the section
# of the AG-UI 1.1 specification that states it (``cite``); where AG-UI's spec and its client verifier
# disagree the spec is followed and the rule stays at SHOULD. A foreign stream is never judged by the
# rules above except those its dialect declares applicable (frame, latency), see docs/spec.md#dialects.
_AG = dict(dialect="ag-ui", section="dialect-ag-ui")
_LIFECYCLE = "/spec/1.1/events/lifecycle"
_STREAMING = "/spec/1.1/basic/patterns/streaming"
AG_UI_RULES: tuple[Rule, ...] = (
    Rule("ag-ui.run.first", M, "ag-ui.lifecycle", "The first event is RUN_STARTED (or a RUN_ERROR)",
         "A client shows nothing of a run until it has begun; content before RUN_STARTED has no run to belong to.",
         cite=_LIFECYCLE, **_AG),
    Rule("ag-ui.run.nested", M, "ag-ui.lifecycle", "No RUN_STARTED while a run is still active",
         "Runs follow one another; a second start inside a run leaves the client unable to tell whose events follow.",
         cite=_LIFECYCLE, **_AG),
    Rule("ag-ui.run.after_finished", M, "ag-ui.lifecycle",
         "After RUN_FINISHED only a new RUN_STARTED or a late RUN_ERROR; after RUN_ERROR only a new RUN_STARTED",
         "A finished run is over for the client; an event after it belongs to no run and is lost.",
         cite=_LIFECYCLE, **_AG),
    Rule("ag-ui.run.finished_open", M, "ag-ui.lifecycle",
         "RUN_FINISHED only when every text message, reasoning message, tool call, step and subagent is closed",
         "Finishing a run with something still open leaves a spinner or a half message in the user's view for ever.",
         cite=_LIFECYCLE, **_AG),
    Rule("ag-ui.run.ended", M, "ag-ui.lifecycle", "A started run ends with RUN_FINISHED or RUN_ERROR before the stream ends",
         "RUN_FINISHED or RUN_ERROR is the client's signal to stop waiting; without one the client hangs.",
         cite=_LIFECYCLE, **_AG),
    Rule("ag-ui.run.cancelled", M, "ag-ui.lifecycle",
         "A cancelled run ends with RUN_FINISHED whose outcome is {type: cancelled}, not RUN_ERROR",
         "Cancellation is an outcome the user asked for, not a failure; reporting it as an error misleads them.",
         cite=_LIFECYCLE, scope="live", **_AG),
    Rule("ag-ui.message.paired", M, "ag-ui.messages",
         "TEXT_MESSAGE_CONTENT and TEXT_MESSAGE_END only for a message opened by TEXT_MESSAGE_START with the same messageId",
         "Content is appended to the message its id names; content for no open message cannot be placed.",
         cite="/spec/1.1/events/text-messages", **_AG),
    Rule("ag-ui.message.open_once", M, "ag-ui.messages",
         "No TEXT_MESSAGE_START for a messageId that is still open (a closed one may be reopened and appends)",
         "Two open streams under one id interleave into one message the user cannot read.",
         cite="/spec/1.1/events/text-messages", **_AG),
    Rule("ag-ui.reasoning.paired", M, "ag-ui.reasoning",
         "REASONING_MESSAGE_CONTENT/END only for an open REASONING_MESSAGE_START, REASONING_END only for an open REASONING_START, by messageId",
         "Reasoning is shown under the message or span it names; reasoning for nothing open cannot be placed.",
         cite="/spec/1.1/events/reasoning", **_AG),
    Rule("ag-ui.tool.paired", M, "ag-ui.tool-calls",
         "TOOL_CALL_ARGS and TOOL_CALL_END only for a call opened by TOOL_CALL_START with the same toolCallId (a TOOL_CALL_RESULT is never required)",
         "Arguments are assembled per toolCallId; arguments for no open call cannot be shown or executed.",
         cite="/spec/1.1/events/tool-calls", **_AG),
    Rule("ag-ui.tool.open_once", M, "ag-ui.tool-calls", "No TOOL_CALL_START for a toolCallId that is still open",
         "Two open calls under one id merge their arguments into one call nobody made.",
         cite="/spec/1.1/events/tool-calls", **_AG),
    Rule("ag-ui.step.paired", M, "ag-ui.steps", "STEP_FINISHED only for a step started by STEP_STARTED with the same stepName",
         "A step that finishes without starting cannot be shown in the run's outline.",
         cite=_LIFECYCLE, **_AG),
    Rule("ag-ui.subagent.paired", M, "ag-ui.subagents",
         "SUBAGENT_FINISHED and SUBAGENT_ERROR only for a subagent started by SUBAGENT_STARTED with the same subagentRunId",
         "A subagent that ends without starting cannot be placed under the run that delegated to it.",
         cite="/spec/1.1/events/subagents", **_AG),
    Rule("ag-ui.subagent.attribution", M, "ag-ui.subagents",
         "The events of one message or tool call that name a subagentRunId all name the same one",
         "Attribution tells the user which agent said or did something; a call that changes owner half way is attributed to no one.",
         cite="/spec/1.1/events/subagents", **_AG),
    Rule("ag-ui.chunk.first_id", M, "ag-ui.chunks",
         "The first chunk of a stream carries its id (messageId; toolCallId and toolCallName for a tool call)",
         "Chunks expand to START/CONTENT/END; a first chunk without its id opens a stream nobody can name.",
         cite=_STREAMING, **_AG),
    Rule("ag-ui.chunk.consistent", M, "ag-ui.chunks",
         "A chunk does not change its open stream's role or toolCallName",
         "A stream's role and tool name are fixed by its first chunk; a change would turn half a message into another's.",
         cite=_STREAMING, **_AG),
    Rule("ag-ui.schema.event", M, "ag-ui.schema",
         "Every event is valid for its type against the AG-UI 1.1 schema (unknown properties and unknown union members tolerated)",
         "Clients read the fields the schema defines; a known field with the wrong type breaks them.",
         cite="/spec/1.1/basic/processing", scope="frame", **_AG),
    Rule("ag-ui.schema.strict", S, "ag-ui.schema",
         "Every event is valid against the AG-UI 1.1 schema as published: no unknown property, outcome or content part",
         "Consumers strip what they do not know, so it is lost information, not an error.",
         cite="/spec/1.1/basic/processing", scope="frame", **_AG),
    Rule("ag-ui.transport.bad_input", S, "ag-ui.transport",
         "Input that is not a RunAgentInput is refused outside a run's stream: a RUN_ERROR or a close, never a run, never silence",
         "A client that sent something wrong must learn so instead of waiting; a run started on garbage does what nobody asked.",
         cite="/spec/1.1/basic/transports", scope="live", **_AG),
    Rule("ag-ui.unknown_type", Y, "ag-ui.schema", "Event types outside AG-UI 1.1 are reported, never fatal",
         "A consumer drops an event type it does not know and goes on; a newer producer must not break an older client.",
         cite="/spec/1.1/basic/processing", scope="frame", **_AG),
)

#: Every rule of every dialect: ours first (their order is the reports' order), then each dialect's.
ALL_RULES: tuple[Rule, ...] = RULES + AG_UI_RULES

BY_ID: dict[str, Rule] = {rule.id: rule for rule in ALL_RULES}
assert len(BY_ID) == len(ALL_RULES), "duplicate rule id in the registry"


def of_dialect(name: str) -> tuple[Rule, ...]:
    """The rules a dialect's own namespace holds (``agent-events``: :data:`RULES`)."""
    return RULES if name == "agent-events" else tuple(r for r in ALL_RULES if r.dialect == name)


def get(rule_id: str) -> Rule:
    try:
        return BY_ID[rule_id]
    except KeyError:
        raise KeyError(f"unknown rule id {rule_id!r}") from None
