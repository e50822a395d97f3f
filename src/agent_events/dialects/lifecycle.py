"""A dialect's run rules as a value of :mod:`agent_events.run_rules`: the table the judge walks.

The run lifecycle of a foreign dialect is a transition table like protocol v1's, built from the
dialect's data (:class:`agent_events.dialects.model.Runs` and its lifecycle roles), and its
families of paired events are :class:`agent_events.run_rules.Family` rows with their breaches, all
bundled in one :class:`agent_events.run_rules.RunRules`. The judge (:mod:`agent_events.dialects.judge`)
looks every event's ``(state, kind)`` up in it; no dialect adds a branch to the judge.

States: ``idle`` (no run yet on the connection, or for the key), ``running`` (``running+1``...
after each allowed restart), ``finished``, ``errored``. Kinds: ``run_open``, ``run_finish``,
``run_error``, each family type, ``event`` (any other), and ``close`` (the connection or the
stream ended). A row naming a rule is a breach of it, reported, and the walk goes on in the next
state.
"""

from __future__ import annotations

from types import MappingProxyType

from agent_events import run_rules as rr

IDLE, FINISHED, ERRORED = "idle", "finished", "errored"
RUN_OPEN, RUN_FINISH, RUN_ERROR, EVENT = "run_open", "run_finish", "run_error", "event"
CLOSE = rr.CLOSE


def running(k: int) -> str:
    return "running" if k == 0 else f"running+{k}"


def build(dialect) -> rr.RunRules:
    """The dialect's :class:`~agent_events.run_rules.RunRules` value (lifecycle rows, family rows, scoping)."""
    runs, roles = dialect.runs, dialect.lifecycle
    first, nested, after, ended = roles["first"], roles["nested"], roles["after_end"], roles["ended"]
    runnings = [running(k) for k in range(runs.restarts + 1)]
    family_kinds = tuple(t for fam in dialect.families for t in fam.types)
    kinds = (RUN_OPEN, RUN_FINISH, RUN_ERROR, EVENT, *family_kinds, CLOSE)
    inside = (EVENT, *family_kinds)
    t: dict[tuple[str, str], tuple[str, str | None]] = {}
    for state in (IDLE, FINISHED, ERRORED):
        t[state, RUN_OPEN] = (runnings[0], None)  # a new run, whatever came before
    for kind in inside:
        t[IDLE, kind] = (runnings[0], first)      # headless: judged as the run's own, reported once
        t[FINISHED, kind] = (FINISHED, after)
        t[ERRORED, kind] = (ERRORED, after)
    t[IDLE, RUN_FINISH] = (FINISHED, first)
    t[IDLE, RUN_ERROR] = (ERRORED, None if runs.errors_first else first)
    t[FINISHED, RUN_FINISH] = (FINISHED, after)
    t[FINISHED, RUN_ERROR] = (ERRORED, None if runs.late_error else after)
    t[ERRORED, RUN_FINISH] = (ERRORED, after)
    t[ERRORED, RUN_ERROR] = (ERRORED, after)
    for state in (IDLE, FINISHED, ERRORED):
        t[state, CLOSE] = (state, None)
    for k, state in enumerate(runnings):
        last = k == len(runnings) - 1
        t[state, RUN_OPEN] = (state, nested) if last else (runnings[k + 1], None)  # a restart, or a nested run
        for kind in inside:
            t[state, kind] = (state, None)
        t[state, RUN_FINISH] = (FINISHED, None)
        t[state, RUN_ERROR] = (ERRORED, None)
        t[state, CLOSE] = (IDLE, ended)
    families = tuple(_family(fam) for fam in dialect.families)
    scoping = (rr.Scoping("keyed", key=dialect.run_id.tokens, begin=runs.opens, end=runs.finishes + runs.errors)
               if runs.scope == "keyed" and dialect.run_id is not None
               else rr.Scoping("positional", begin=runs.opens, end=runs.finishes + runs.errors))
    return rr.RunRules(
        name=dialect.label, states=(IDLE, *runnings, FINISHED, ERRORED), initial=IDLE, final=FINISHED,
        attempt_states=frozenset(runnings), kinds=kinds, transitions=MappingProxyType(t), families=families,
        scoping=scoping, explanations=MappingProxyType({}))


def _family(fam) -> rr.Family:
    """A dialect family as a run-rules row: its kinds, key, and the rule each breach reports."""
    return rr.Family(
        name=fam.name, opens=fam.opens, closes=fam.closes, continues=fam.content,
        key=fam.key.tokens if fam.pairing == "id" and fam.key is not None else rr.BY_NAME_IN_ORDER,
        name_path=fam.name_pointer.tokens if fam.name_pointer is not None else None,
        unique=fam.open_once_rule is not None, reopen=fam.reopen, closed_by=rr.RUN_END,
        breaches=rr.Breaches(orphan=fam.paired_rule, duplicate=fam.open_once_rule, unclosed=fam.unclosed_rule))
