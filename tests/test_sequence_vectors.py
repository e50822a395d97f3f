"""Every sequence vector gets its expected verdict, and an invalid one its expected rule."""

from __future__ import annotations

import pytest

from agent_events import schemas
from agent_events.conformance.core import rules
from agent_events.conformance.core.checker import Checker
from agent_events.conformance.offline.transcript import feed, frames_from_vector

VECTORS = list(schemas.sequence_vectors())


@pytest.mark.parametrize("name,vector", VECTORS, ids=[name for name, _ in VECTORS])
def test_vector_verdict(name, vector):
    checker = Checker(vector["profile"])
    feed(checker, frames_from_vector(vector["frames"], name), name)
    checker.close()
    found = set(checker.violation_counts)
    if vector["valid"]:
        assert found == set(), [(v.rule_id, v.observed) for v in checker.violations]
    else:
        assert vector["violates"] in found
        allowed = {vector["violates"], *vector.get("may_also_violate", [])}
        assert found <= allowed, [(v.rule_id, v.observed) for v in checker.violations if v.rule_id not in allowed]


def test_invalid_vectors_are_named_after_the_rule_they_break():
    for name, vector in VECTORS:
        if not vector["valid"]:
            stem = name.split("/", 1)[1][: -len(".json")]
            assert stem == vector["violates"] or stem.startswith(vector["violates"] + "-"), name
            assert vector["violates"] in rules.BY_ID


def test_every_checkable_must_rule_has_an_invalid_vector():
    covered = {v["violates"] for _, v in VECTORS if not v["valid"]}
    checkable = {r.id for r in rules.RULES if r.level is rules.Level.MUST and r.scope != "live"}
    assert checkable <= covered
