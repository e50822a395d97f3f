"""The paired-family judge's fast paths decide exactly what its general path decides.

``DialectChecker._event`` takes a shortcut for an ordinary event inside a running run (no walk
of the run-rules table), and ``_family_event`` one for an id-paired family whose pointers are
one member each (benchmark 10 runs through them). A judge with both shortcuts switched off is the reference: on every AG-UI
1.1 conformance stream, on the benchmark's recording and on many broken variants of it (events
dropped, repeated, moved; tool names that are the profile's fast tools, with receive times, so
tool spans are judged; subagent attributions that change), both judges must report the same
violations, the same rule outcomes and the same counters.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from agent_events.dialects import AG_UI
from agent_events.dialects.judge import DialectChecker
from benchmarks import ag_ui_recording

STREAMS = Path(__file__).resolve().parents[1] / "schemas" / "dialects" / "ag-ui-1.1" / "streams"
COUNTERS = ("frames", "objects", "events", "run_events", "runs", "runs_completed", "runs_errored", "typed")


def _judge(events, fast: bool, timed: bool) -> DialectChecker:
    judge = DialectChecker(AG_UI)
    if not fast:
        judge._steady, judge._plans, judge._plain_run_event = {}, {}, False
    for i, event in enumerate(events):
        judge.receive(event, at=1000.0 + 3.0 * i if timed else None)
    judge.close(at=1000.0 + 3.0 * len(events) if timed else None)
    return judge


def _same(events, timed: bool = False) -> None:
    fast, general = _judge(events, True, timed), _judge(events, False, timed)
    assert fast._steady and fast._plans and not general._plans  # the shortcuts were there (and off in the reference)
    assert [(v.rule_id, v.run_id, v.index, v.expected, v.observed) for v in fast.violations] == \
           [(v.rule_id, v.run_id, v.index, v.expected, v.observed) for v in general.violations]
    assert fast.outcomes() == general.outcomes()
    assert {k: getattr(fast, k) for k in COUNTERS} == {k: getattr(general, k) for k in COUNTERS}


@pytest.mark.parametrize("path", sorted(STREAMS.glob("*.json")), ids=lambda p: p.stem)
def test_every_conformance_stream_is_judged_alike(path):
    _same(json.loads(path.read_text())["stream"])


def _recording() -> list[dict]:
    events = list(ag_ui_recording.events(600))
    for event in events:  # fast tools, so that the spans of the tool calls are judged when timed
        if event.get("toolCallName") == "search":
            event["toolCallName"] = "prompt_builder"
    return events


def test_the_benchmark_recording_is_judged_alike():
    events = _recording()
    _same(events)
    _same(events, timed=True)


def _broken(events: list[dict], rng: random.Random) -> list[dict]:
    out = [dict(e) for e in events]
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(out))
        how = rng.choice(("drop", "repeat", "move", "attribute", "rekey"))
        if how == "drop":
            del out[i]
        elif how == "repeat":
            out.insert(rng.randrange(len(out)), dict(out[i]))
        elif how == "move":
            out.insert(rng.randrange(len(out)), out.pop(i))
        elif how == "attribute" and out[i]["type"] not in ("RUN_STARTED", "RUN_FINISHED"):
            out[i]["subagentRunId"] = rng.choice(("sub-a", "sub-b"))
        elif how == "rekey":
            for field in ("toolCallId", "messageId", "stepName"):
                if field in out[i]:
                    out[i][field] = "other"
    return out


@pytest.mark.parametrize("seed", range(60))
def test_broken_variants_of_the_recording_are_judged_alike(seed):
    rng = random.Random(seed)
    events = _recording()[:rng.randint(40, 300)]
    broken = _broken(events, rng)
    _same(broken, timed=seed % 2 == 0)
