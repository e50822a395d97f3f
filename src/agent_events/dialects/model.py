"""A dialect as data: how a foreign stream's frames become the events the kit judges.

A dialect says how a frame decodes (:data:`FRAMINGS`), where each field the
rules need lives (RFC 6901 pointers), which event types open and close a run
and each family of paired events (tool calls, messages, steps...), what a
client sends to start a run, and which rules of the one registry
(:mod:`agent_events.conformance.core.rules`) apply, every other one being N/A with
a reason. What data cannot say is a small named hook (AG-UI's chunk expansion),
looked up by name in :data:`agent_events.dialects.hooks.HOOKS`.

Our own protocol is the built-in ``agent-events`` dialect, described with the
same fields; its judge is the checker whose transition table the schemas
build (:mod:`agent_events.conformance.core.checker`), the others' is the generic
paired-family judge (:mod:`agent_events.dialects.judge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from agent_events.dialects.pointer import Pointer

#: How a frame decodes. ``auto``: per frame, a JSON object, else SSE records (``data: ...``) in a
#: text frame. ``envelope``: a JSON object whose event is at :attr:`Dialect.envelope`.
FRAMINGS = ("auto", "json", "sse", "envelope")
#: How the events of a family are paired: by the key pointer's value, or (no call id) by name, in order.
PAIRINGS = ("id", "name-in-order")
#: How the events of a run are found: positional (a run opens, the events that follow are its own until
#: it closes; runs follow one another), or keyed by the run id pointer (several runs may interleave).
SCOPES = ("positional", "keyed")
#: Units a timestamp may be declared in (delivery latency is judged only when one is declared).
TIMESTAMP_UNITS = {"ms": 1.0, "s": 1000.0, "us": 0.001}


@dataclass(frozen=True)
class Family:
    """One family of paired events: an item opens, may get content, closes (a tool call, a message)."""

    name: str
    opens: tuple[str, ...]
    closes: tuple[str, ...]
    content: tuple[str, ...] = ()
    #: where the item's id is (``pairing = "id"``); ``None`` with ``name-in-order``
    key: Pointer | None = None
    pairing: str = "id"
    #: where the item's name is (the tool name: pairing by name matches it, a tool-gap budget reads it)
    name_pointer: Pointer | None = None
    #: a closed id may open again (AG-UI's reopened message appends)
    reopen: bool = True
    #: the rule broken by content or a close with no open item
    paired_rule: str = "pair.no_orphan"
    #: the rule broken by opening an id that is already open (``None``: not judged)
    open_once_rule: str | None = "pair.unique_id"
    #: the rule broken by an item still open when its run finishes
    unclosed_rule: str = "pair.tool_matched"
    #: a field that must not change over one item's events when they state it (AG-UI's subagentRunId)
    attribution: Pointer | None = None
    attribution_rule: str | None = None
    #: the items are tool calls: their span is judged by ``latency.tool_gap`` when the dialect applies it
    tool: bool = False

    @property
    def types(self) -> tuple[str, ...]:
        return self.opens + self.content + self.closes


@dataclass(frozen=True)
class Runs:
    """How runs are scoped, and which types open and end one."""

    opens: tuple[str, ...]
    finishes: tuple[str, ...]
    #: types that end a run as failed; ``errors_first``: one may come with no run open (a run that
    #: failed before it began), ``late_error``: one may follow a finished run (AG-UI 1.1)
    errors: tuple[str, ...] = ()
    errors_first: bool = False
    late_error: bool = False
    scope: str = "positional"
    #: whether runs may follow one another on one connection (the live check opens one per connection
    #: otherwise); a stream's later runs are judged either way
    may_follow: bool = True
    #: further opens allowed inside a run (the seed's fallback attempt restarts a run once)
    restarts: int = 0


@dataclass(frozen=True)
class Dialect:
    """Everything the kit needs to know to judge one wire format."""

    name: str
    version: str
    title: str
    framing: str = "auto"
    #: with ``framing = "envelope"``: where the event is inside the frame
    envelope: Pointer | None = None
    type: Pointer = field(default_factory=lambda: Pointer("/type"))
    run_id: Pointer | None = None
    seq: Pointer | None = None
    timestamp: Pointer | None = None
    #: the timestamp's unit; ``None``: not declared, so delivery latency is N/A
    timestamp_unit: str | None = None
    runs: Runs = field(default_factory=lambda: Runs((), ()))
    families: tuple[Family, ...] = ()
    #: every type the dialect knows (empty: not listed, so unknown types are not judged)
    types: tuple[str, ...] = ()
    #: the JSON the client sends to start a run (the live check fills in ids: see
    #: :func:`agent_events.dialects.start_message`); ``None``: the dialect cannot be checked live
    start: Mapping[str, Any] | None = None
    #: the rules judged, in report order (the registry's ids)
    rules: tuple[str, ...] = ()
    #: rules of the registry reported N/A, with the reason (a rule judged is never here)
    not_applicable: Mapping[str, str] = field(default_factory=dict)
    #: what each lifecycle role's breach is, as a rule id: ``type`` (no string type), ``first``,
    #: ``nested``, ``after_end``, ``ended``, ``unknown_type``, ``schema``, ``schema_strict`` (see the judge)
    lifecycle: Mapping[str, str] = field(default_factory=dict)
    #: the vendored JSON Schema the events are validated against (a folder of ``schemas/dialects/``)
    schema: str | None = None
    #: named hooks (see :mod:`agent_events.dialects.hooks`) run on each decoded event before judging
    hooks: tuple[str, ...] = ()
    #: where the dialect came from (a file path for a dialect file, ``built-in`` otherwise)
    source: str = "built-in"

    @property
    def label(self) -> str:
        """``ag-ui 1.1``: how a report names what it judged."""
        return f"{self.name} {self.version}"

    @property
    def is_ours(self) -> bool:
        return self.name == "agent-events"

    def family_of(self) -> dict[str, Family]:
        """type -> its family."""
        return {t: fam for fam in self.families for t in fam.types}
