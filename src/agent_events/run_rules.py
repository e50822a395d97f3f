"""The run rules, as data: one table that both sides of the protocol read.

The checker (:mod:`agent_events.conformance.core.checker`) judges a stream with it and
:class:`agent_events.reference_agent.BaseAgent` refuses, before anything reaches the wire, exactly
the calls whose event the checker would flag. Before this module the rules lived twice (a table in
the checker, imperative guards in ``BaseAgent.emit_*``) and could drift. This module is pure and
sits on floor 1: it imports only :mod:`agent_events.schemas`, never the conformance kit nor the
reference agent, so that both can import it (the reference agent still never imports the checker).
h11's ``_state.py`` is the model: the states, the events and the transitions in one place, the
I/O elsewhere.

The rules of the module
=======================

States. A run is in one of :data:`STATES`: ``awaiting_start`` (a start_run was sent, or nothing
yet, and no event of the run came), ``headless`` (events came before any agent_started; already
reported), ``primary`` / ``fallback`` (inside that attempt), ``completed`` (agent_completed came;
nothing may follow). :data:`ATTEMPT_STATES` are those in which an attempt is open (the headless
prefix counts as the primary attempt).

Kinds. An event's kind (:func:`kind_of`) is its type, except that ``agent_started`` is split by
attempt (``agent_started:primary`` / ``agent_started:fallback``); :data:`CLOSE` is the end of the
stream (or of the check) while the run is still in a state. :data:`IN_ATTEMPT_KINDS` is every run
event type that neither starts nor completes a run, derived from the schemas, so a new type lands
there without an edit here.

Transitions. :data:`TRANSITIONS` maps ``(state, kind)`` to ``(next state, rule id or None)``; it is
asserted total over ``STATES x KINDS``. A row that names a rule is a breach of that rule: the
checker reports it (with :func:`explain`'s expected / observed) and moves on to the next state; an
agent refuses to emit it (:func:`refusal`). Rows are the whole state machine: there is no branch
elsewhere that a dialect would have to copy.

Families of paired events (:class:`Family`). A family names the kinds that open a member, those
that continue it (content, arguments), those that close it; how a member is keyed (a field path
in the message, or :data:`BY_NAME_IN_ORDER` for a stream whose tools pair by name, in order, with
no id); whether a key is used once per run; whether a closed member may reopen; whether every
open member must be closed at the end of the attempt or of the run; and the rule id each breach
reports (:class:`Breaches`). Protocol v1 has one family, the tool call (:data:`TOOL_CALL`).

Scoping (:class:`Scoping`). How an event finds its run: keyed by a field (``run_id``, ours), or
positional (one run after another on a connection: a run begins at one of ``begin`` and ends at
one of ``end``; a new run may follow).

:class:`RunRules` bundles all of the above; :data:`V1` is protocol v1's value. A dialect is
another ``RunRules``, built by adding rows (``V1.with_families(...)``, a ``dataclasses.replace``
of the table), not by adding branches to the checker or to an agent.

Public API
==========

- ``STATES``, ``AWAITING_START``, ``HEADLESS``, ``PRIMARY``, ``FALLBACK``, ``COMPLETED``,
  ``ATTEMPT_STATES``: the states.
- ``KINDS``, ``STARTED``, ``STARTED_PRIMARY``, ``STARTED_FALLBACK``, ``THINKING``,
  ``TOOL_EXECUTING``, ``TOOL_COMPLETED``, ``PROGRESS``, ``COMPLETED_EVENT``, ``CLOSE``, ``IN_ATTEMPT_KINDS``,
  ``TOOL_KINDS``, ``ATTEMPTS``: the kinds; :func:`kind_of` (type and payload -> kind).
- ``TRANSITIONS``: the table; :func:`explain` (rule id, state, kind -> expected, observed);
  :func:`refusal` (state, kind -> the rule the row breaks, or None); :func:`state_diagram` (mermaid).
- :class:`Family`, :class:`Breaches`, ``BY_NAME_IN_ORDER``, ``TOOL_CALL``, ``ATTEMPT_END``,
  ``RUN_END``: paired events; :func:`path_getter` (a path -> the function that reads it from a
  message, as a family's ``key_of`` and ``name_of`` do).
- :class:`Scoping`, ``KEYED_BY_RUN_ID``: how a run is scoped.
- :class:`RunRules`, ``V1``: the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Callable, Mapping

from agent_events import schemas

# -- states -----------------------------------------------------------------------------------

AWAITING_START = "awaiting_start"   #: start_run sent (or nothing yet), no event of the run received
HEADLESS = "headless"               #: events arrived before any agent_started (already reported)
PRIMARY = "primary"                 #: inside the primary attempt
FALLBACK = "fallback"               #: inside the fallback attempt
COMPLETED = "completed"             #: agent_completed received; nothing may follow
STATES = (AWAITING_START, HEADLESS, PRIMARY, FALLBACK, COMPLETED)
#: States in which an attempt is open (the headless prefix counts as the primary attempt).
ATTEMPT_STATES = frozenset({HEADLESS, PRIMARY, FALLBACK})

# -- kinds ------------------------------------------------------------------------------------

STARTED, THINKING, TOOL_EXECUTING, TOOL_COMPLETED, COMPLETED_EVENT = (
    "agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
PROGRESS = "progress"
assert {STARTED, THINKING, TOOL_EXECUTING, TOOL_COMPLETED, PROGRESS, COMPLETED_EVENT} <= set(schemas.RUN_EVENT_TYPES)
#: The attempts, from the schemas: ``("primary", "fallback")``.
ATTEMPTS = tuple(schemas.load("defs")["$defs"]["attempt"]["enum"])
STARTED_PRIMARY = f"{STARTED}:{ATTEMPTS[0]}"
STARTED_FALLBACK = f"{STARTED}:{ATTEMPTS[1]}"
#: End of the stream (or of the check) while the run is still in a state.
CLOSE = "close"
#: Event kinds that happen inside an attempt: every run event type that neither
#: starts nor completes a run (derived from the schemas, so a new type lands here).
IN_ATTEMPT_KINDS = tuple(t for t in schemas.RUN_EVENT_TYPES if t not in (STARTED, COMPLETED_EVENT))
TOOL_KINDS = (TOOL_EXECUTING, TOOL_COMPLETED)
KINDS = (STARTED_PRIMARY, STARTED_FALLBACK, *IN_ATTEMPT_KINDS, COMPLETED_EVENT, CLOSE)
_FALLBACK_ATTEMPT = ATTEMPTS[1]


def kind_of(type_: str, payload: Mapping | None) -> str:
    """The kind of an event of ``type_``: its type, with agent_started split by ``payload.attempt``
    (anything but ``"fallback"`` counts as primary, as the checker always read it)."""
    if type_ == STARTED:
        attempt = payload.get("attempt") if payload is not None else None
        return STARTED_FALLBACK if attempt == _FALLBACK_ATTEMPT else STARTED_PRIMARY
    return type_


# -- the transition table ---------------------------------------------------------------------

Transitions = Mapping[tuple[str, str], tuple[str, "str | None"]]


def _build_transitions() -> dict[tuple[str, str], tuple[str, str | None]]:
    """(state, kind) -> (next state, rule id the transition breaks or None)."""
    t: dict[tuple[str, str], tuple[str, str | None]] = {}
    for kind in IN_ATTEMPT_KINDS:
        t[AWAITING_START, kind] = (HEADLESS, "order.first_started")
        t[HEADLESS, kind] = (HEADLESS, None)
        t[PRIMARY, kind] = (PRIMARY, None)
        t[FALLBACK, kind] = (FALLBACK, "fallback.continuity" if kind in TOOL_KINDS else None)
    t.update({
        (AWAITING_START, STARTED_PRIMARY): (PRIMARY, None),
        (AWAITING_START, STARTED_FALLBACK): (PRIMARY, "order.first_started"),
        (AWAITING_START, COMPLETED_EVENT): (COMPLETED, "order.first_started"),
        (AWAITING_START, CLOSE): (COMPLETED, "order.completed_last"),
        (HEADLESS, STARTED_PRIMARY): (PRIMARY, None),
        (HEADLESS, STARTED_FALLBACK): (PRIMARY, None),
        (HEADLESS, COMPLETED_EVENT): (COMPLETED, None),
        (HEADLESS, CLOSE): (COMPLETED, "order.completed_last"),
        (PRIMARY, STARTED_PRIMARY): (PRIMARY, "fallback.single"),
        (PRIMARY, STARTED_FALLBACK): (FALLBACK, None),
        (PRIMARY, COMPLETED_EVENT): (COMPLETED, None),
        (PRIMARY, CLOSE): (COMPLETED, "order.completed_last"),
        (FALLBACK, STARTED_PRIMARY): (FALLBACK, "fallback.single"),
        (FALLBACK, STARTED_FALLBACK): (FALLBACK, "fallback.single"),
        (FALLBACK, COMPLETED_EVENT): (COMPLETED, None),
        (FALLBACK, CLOSE): (COMPLETED, "order.completed_last"),
    })
    for kind in KINDS:
        t[COMPLETED, kind] = (COMPLETED, None if kind == CLOSE else "order.completed_last")
    return t


#: The per-run state machine, as data. The docs draw it with :func:`state_diagram`.
TRANSITIONS: dict[tuple[str, str], tuple[str, str | None]] = _build_transitions()
assert all((s, k) in TRANSITIONS for s in STATES for k in KINDS), "the transition table must be total"

#: Expected / observed of a row that breaks a rule, by ``(rule id, kind)`` (``kind`` None: any
#: kind). ``{kind}``, ``{state}`` and ``{kind_text}`` (the kind with ``:`` read as " attempt ")
#: are filled in by :func:`explain`.
EXPLANATIONS: dict[tuple[str, str | None], tuple[str, str]] = {
    ("order.first_started", STARTED_FALLBACK): (
        "the run's first agent_started has attempt primary", "agent_started with attempt fallback"),
    ("order.first_started", None): ("agent_started (attempt primary) as the run's first event", "{kind} first"),
    ("order.completed_last", None): ("nothing of the run after its agent_completed", "{kind} after agent_completed"),
    ("fallback.single", None): ("at most one further agent_started, with attempt fallback",
                                "{kind_text} while in the {state} attempt"),
    ("fallback.continuity", None): (
        "the fallback attempt goes agent_started -> agent_thinking -> agent_completed, no tools",
        "{kind} in the fallback attempt"),
}


# -- families of paired events ----------------------------------------------------------------

#: A family key meaning: members pair by their name, in order, with no id (a seed-shaped stream
#: whose tool_completed follows its tool_executing by name).
BY_NAME_IN_ORDER = "by name, in order"
#: When every open member must have been closed: at the end of each attempt, or of the run.
ATTEMPT_END = "attempt"
RUN_END = "run"


@dataclass(frozen=True)
class Breaches:
    """The rule id each breach of a family reports (``None``: that breach is not a rule of it)."""

    #: a close (or continue) that matches no open member, or one whose name differs
    orphan: str | None = None
    #: an open that uses a key used before in the run (when the family's keys are unique)
    duplicate: str | None = None
    #: a member still open when its scope (attempt or run) ends
    unclosed: str | None = None
    #: a member still open when the fallback attempt starts (reported beside ``unclosed``)
    unclosed_into_fallback: str | None = None
    #: a member of the family in a state where none may be (v1: a tool in the fallback attempt;
    #: carried by the transition table's rows, named here so a reader finds it with the family)
    misplaced: str | None = None

    def rule_ids(self) -> frozenset[str]:
        return frozenset(r for r in (self.orphan, self.duplicate, self.unclosed, self.unclosed_into_fallback,
                                     self.misplaced) if r is not None)


@dataclass(frozen=True)
class Family:
    """Paired events: the kinds that open, continue and close one member, and how members match.

    ``key`` is a path into the message (``("payload", "tool_call_id")``; AG-UI's would be
    ``("messageId",)``) or :data:`BY_NAME_IN_ORDER`; ``name`` the path of the member's name, which
    a close must repeat when the family names members (``None``: members have no name).
    """

    name: str
    opens: tuple[str, ...]
    closes: tuple[str, ...]
    key: "tuple[str, ...] | str"
    continues: tuple[str, ...] = ()
    name_path: tuple[str, ...] | None = None
    #: a key is used once per run (a second open with it is ``breaches.duplicate``)
    unique: bool = True
    #: a closed member may be opened again with the same key (AG-UI's TOOL_CALL_START)
    reopen: bool = False
    #: every open member must be closed by the end of this scope (:data:`ATTEMPT_END`,
    #: :data:`RUN_END`, or ``None``: never required)
    closed_by: str | None = ATTEMPT_END
    breaches: Breaches = field(default_factory=Breaches)
    #: ``key_of(message)``: the member key of ``message`` (``None`` when absent, or for a by-name
    #: family). ``name_of(message)``: the member's name (``None`` when absent or unnamed). Both are
    #: functions made once per family (:func:`path_getter`), because the checker asks every open
    #: and close for both: one call each instead of a method, a property and a loop (issue 26).
    key_of: Callable[[Any], Any] = field(init=False, repr=False, compare=False)
    name_of: Callable[[Any], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_of", path_getter(None if self.by_name_in_order else self.key))
        object.__setattr__(self, "name_of", path_getter(self.name_path))

    def __reduce__(self):
        # pickled and copied by its fields, as before the getters: they are made anew on the way back
        return (type(self), tuple(getattr(self, f.name) for f in fields(self) if f.init))

    @property
    def by_name_in_order(self) -> bool:
        return self.key == BY_NAME_IN_ORDER

    @property
    def kinds(self) -> tuple[str, ...]:
        return (*self.opens, *self.continues, *self.closes)


def _none(message: Any) -> None:
    return None


def path_getter(path: "tuple[str, ...] | None") -> Callable[[Any], Any]:
    """The function ``message -> _at(message, path)`` (``None``: always ``None``), written out for
    the paths families have (one or two parts), so that a lookup is one call."""
    if path is None:
        return _none
    if len(path) == 1:
        (first,) = path

        def get(message: Any) -> Any:
            return message.get(first) if type(message) is dict else None
    elif len(path) == 2:
        first, second = path

        def get(message: Any) -> Any:
            inner = message.get(first) if type(message) is dict else None
            return inner.get(second) if type(inner) is dict else None
    else:
        def get(message: Any) -> Any:
            return _at(message, path)
    return get


def _at(message: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if type(message) is not dict:
            return None
        message = message.get(part)
    return message


#: Protocol v1's tool call: tool_executing opens, tool_completed closes, keyed by
#: ``payload.tool_call_id``, named by ``payload.tool_name``, the id used once per run, every call
#: closed before its attempt ends, and no tool in the fallback attempt.
TOOL_CALL = Family(
    name="tool_call", opens=(TOOL_EXECUTING,), closes=(TOOL_COMPLETED,),
    key=("payload", "tool_call_id"), name_path=("payload", "tool_name"),
    unique=True, reopen=False, closed_by=ATTEMPT_END,
    breaches=Breaches(orphan="pair.no_orphan", duplicate="pair.unique_id", unclosed="pair.tool_matched",
                      unclosed_into_fallback="fallback.continuity", misplaced="fallback.continuity"),
)


# -- how a run is scoped ----------------------------------------------------------------------

@dataclass(frozen=True)
class Scoping:
    """How an event finds its run.

    ``"keyed"``: by the field at ``key`` (v1: ``run_id``), any number of runs interleaved on a
    connection. ``"positional"``: one run after another on a connection, a run beginning at a kind
    of ``begin`` and ending at a kind of ``end`` (AG-UI: RUN_STARTED; RUN_FINISHED, RUN_ERROR),
    after which a new run may begin.
    """

    mode: str
    key: tuple[str, ...] | None = None
    begin: tuple[str, ...] = ()
    end: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("keyed", "positional"):
            raise ValueError(f"scoping mode must be 'keyed' or 'positional', not {self.mode!r}")
        if (self.mode == "keyed") != (self.key is not None):
            raise ValueError("a keyed scoping names its key; a positional one names none")


KEYED_BY_RUN_ID = Scoping("keyed", key=("run_id",))


# -- the bundle -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunRules:
    """Everything a side needs to judge (or refuse) a run's events: one value per dialect."""

    name: str
    states: tuple[str, ...]
    initial: str
    final: str
    attempt_states: frozenset[str]
    kinds: tuple[str, ...]
    transitions: Transitions
    families: tuple[Family, ...]
    scoping: Scoping
    explanations: Mapping[tuple[str, str | None], tuple[str, str]]

    def __post_init__(self) -> None:
        missing = [(s, k) for s in self.states for k in self.kinds if (s, k) not in self.transitions]
        if missing:
            raise ValueError(f"{self.name}: the transition table must be total; missing {missing[:5]}")
        for family in self.families:
            unknown = set(family.kinds) - set(self.kinds)
            if unknown:
                raise ValueError(f"{self.name}: family {family.name} names kinds not in the table: {sorted(unknown)}")

    @property
    def rule_ids(self) -> frozenset[str]:
        """Every rule id the table and the families can report."""
        ids = {rule for _, rule in self.transitions.values() if rule is not None}
        for family in self.families:
            ids |= family.breaches.rule_ids()
        return frozenset(ids)

    def family(self, name: str) -> Family:
        for family in self.families:
            if family.name == name:
                return family
        raise KeyError(f"{self.name} has no family {name!r}; it has {', '.join(f.name for f in self.families)}")

    def family_of(self, kind: str) -> Family | None:
        """The family ``kind`` opens, continues or closes, if any."""
        for family in self.families:
            if kind in family.opens or kind in family.continues or kind in family.closes:
                return family
        return None

    def with_families(self, *families: Family) -> "RunRules":
        """This value with ``families`` added (rows, not branches)."""
        return replace(self, families=(*self.families, *families))

    def with_transitions(self, rows: Mapping[tuple[str, str], tuple[str, str | None]], *,
                         kinds: tuple[str, ...] = (), states: tuple[str, ...] = (), name: str | None = None
                         ) -> "RunRules":
        """This value with ``rows`` added or replaced (and new ``kinds`` / ``states``); it must stay total."""
        table = dict(self.transitions)
        table.update(rows)
        return replace(self, name=name or self.name, transitions=MappingProxyType(table),
                       kinds=(*self.kinds, *(k for k in kinds if k not in self.kinds)),
                       states=(*self.states, *(s for s in states if s not in self.states)))

    def explain(self, rule_id: str, state: str, kind: str) -> tuple[str, str]:
        """Expected / observed for a row that breaks ``rule_id``."""
        template = self.explanations.get((rule_id, kind)) or self.explanations.get((rule_id, None))
        if template is None:  # a dialect's row without words: say what the table says
            return f"no {kind} in state {state}", f"{kind} in state {state}"
        values = {"kind": kind, "state": state, "kind_text": kind.replace(":", " attempt ")}
        return template[0].format(**values), template[1].format(**values)

    def refusal(self, state: str, kind: str) -> str | None:
        """The rule an agent in ``state`` would break by emitting ``kind`` (``None``: allowed)."""
        return self.transitions[state, kind][1]

    def state_diagram(self) -> str:
        """The transition table as mermaid ``stateDiagram-v2`` text (for the docs)."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial}"]
        merged: dict[tuple[str, str, str | None], list[str]] = {}
        for (state, kind), (nxt, rule) in self.transitions.items():
            merged.setdefault((state, nxt, rule), []).append(kind)
        for (state, nxt, rule), kinds in merged.items():
            label = ", ".join(kinds)
            if rule:
                label += f" / violates {rule}"
            lines.append(f"    {state} --> {nxt} : {label}")
        lines.append(f"    {self.final} --> [*]")
        return "\n".join(lines) + "\n"


#: Protocol v1 (this repository's own stream): the table above, the tool-call family, keyed by run_id.
V1 = RunRules(
    name="agent-events v1", states=STATES, initial=AWAITING_START, final=COMPLETED,
    attempt_states=ATTEMPT_STATES, kinds=KINDS, transitions=MappingProxyType(TRANSITIONS),
    families=(TOOL_CALL,), scoping=KEYED_BY_RUN_ID, explanations=MappingProxyType(EXPLANATIONS),
)


def explain(rule_id: str, state: str, kind: str) -> tuple[str, str]:
    """Expected / observed for a v1 row that breaks ``rule_id`` (see :meth:`RunRules.explain`)."""
    return V1.explain(rule_id, state, kind)


def refusal(state: str, kind: str) -> str | None:
    """The v1 rule an agent in ``state`` would break by emitting ``kind`` (``None``: allowed)."""
    return TRANSITIONS[state, kind][1]


def state_diagram() -> str:
    """Protocol v1's transition table as mermaid ``stateDiagram-v2`` text (for the docs)."""
    return V1.state_diagram()


__all__ = [
    "ATTEMPTS", "ATTEMPT_END", "ATTEMPT_STATES", "AWAITING_START", "BY_NAME_IN_ORDER", "Breaches", "CLOSE",
    "COMPLETED", "COMPLETED_EVENT", "EXPLANATIONS", "FALLBACK", "Family", "HEADLESS", "IN_ATTEMPT_KINDS",
    "KEYED_BY_RUN_ID", "KINDS", "PRIMARY", "PROGRESS", "RUN_END", "RunRules", "STARTED", "STARTED_FALLBACK",
    "STARTED_PRIMARY", "STATES", "Scoping", "THINKING", "TOOL_CALL", "TOOL_COMPLETED", "TOOL_EXECUTING",
    "TOOL_KINDS", "TRANSITIONS", "V1", "explain", "kind_of", "refusal", "state_diagram",
]
