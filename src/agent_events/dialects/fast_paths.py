"""Shortcuts of the judge's hot path, computed once per judge from its run rules.

Most events of a long AG-UI recording are ordinary events inside a running run (message and
argument fragments, steps, results), and most of those belong to a family paired by id whose
pointers are one member each. For them the judge need not walk the run-rules table nor resolve
pointers: :func:`build` gives

* ``steady``: state -> type -> the rules its row counts as checked, for each row that keeps a
  running run running and breaks nothing (``_event`` then goes straight to the run's event);
* ``plain``: the dialect has no seq and no timestamp unit, so such an event's ``_run_event`` is
  only counting (inlined);
* ``plans``: type -> (role, key, name, attribution member, orphan rule, duplicate rule) for an
  id-paired family with one-member pointers (``_family_event`` reads the members directly; an
  orphan or an attribution to compare still takes the general path).

They change no verdict: ``tests/test_dialect_judge_fast_path.py`` judges every AG-UI conformance
stream, benchmark 10's recording and broken variants of it with and without them.
"""

from __future__ import annotations

from typing import Any

from agent_events.dialects.lifecycle import EVENT, RUN_OPEN

#: a family event's role in its item
OPEN, CONTENT, CLOSE = 0, 1, 2


def build(judge: Any) -> tuple[dict[str, dict[str, tuple[str, ...]]], bool, dict[str, tuple]]:
    """``(steady, plain, plans)`` for ``judge`` (a :class:`agent_events.dialects.judge.DialectChecker`)."""
    steady: dict[str, dict[str, tuple[str, ...]]] = {}
    for state in judge._running:
        rows = steady[state] = {}
        for type_ in set(judge._known) | set(judge._families):
            kind = judge._kinds.get(type_, EVENT)
            if kind == RUN_OPEN:
                continue
            nxt, rule = judge._table[state, kind]
            if rule is None and nxt == state:
                counted = kind is not EVENT and kind not in judge._families  # as _event counts them
                rows[type_] = tuple(judge._row_checks.get((state, kind), ())) if counted else ()
    plain = judge.dialect.seq is None and judge._unit is None
    plans: dict[str, tuple] = {}
    for fam in judge.dialect.families:
        if fam.pairing != "id" or fam.key is None:
            continue
        key_tok, name_tok, attr_tok = judge._tokens[fam.name]
        if key_tok is None or (fam.name_pointer is not None and name_tok is None) \
                or (fam.attribution is not None and attr_tok is None):
            continue
        breaches = judge._rows[fam.name].breaches
        for type_ in fam.types:
            role = OPEN if type_ in fam.opens else CLOSE if type_ in fam.closes else CONTENT
            plans[type_] = (role, key_tok, name_tok, attr_tok, breaches.orphan, breaches.duplicate)
    return steady, plain, plans
