"""The races the spec names, provoked: each buggy endpoint (tests/race_endpoints.py, a Starlette app
written from docs/spec.md alone) fails its race in 20 of 20 checks; the reference agent passes 20 of 20.

The 20 checks of a test run at once on one event loop (through the Python API, in-process), with
fewer tries than the default and a short run deadline: the verdicts are the same, and the suite's
time stays sane. Real servers on 127.0.0.1, port 0; nothing mocked.
"""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path

import orjson
import pytest

pytest.importorskip("starlette", reason="the race endpoints are Starlette apps: pip install -e '.[test]'")
pytest.importorskip("uvicorn", reason="the race endpoints run under uvicorn: pip install -e '.[test]'")

from agent_events.conformance import check_async  # noqa: E402
from agent_events.conformance.live import races  # noqa: E402
from agent_events.conformance.reporters import render  # noqa: E402
from agent_events.reference_agent.server import run_in_thread  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from race_endpoints import RaceEndpoint  # noqa: E402

CHECKS = 20
TRIES = 9  # each sweep offset of the completion race three times


def _failed(report) -> set[str]:
    return {v.rule_id for section in report.sections for v in section.violations}


def _notes(report) -> list[str]:
    return [n for section in report.sections for n in section.notes if n.startswith("race ")]


def _checks(url: str, scenarios: list[str], **kwargs) -> list:
    kwargs.setdefault("runs", 1)  # the races are what is judged; one run per multi-run probe keeps it quick
    async def all_at_once():
        return await asyncio.gather(*(check_async(url, scenarios=scenarios, race_tries=TRIES, deadline_s=1.5,
                                                  **kwargs) for _ in range(CHECKS)))
    return asyncio.run(all_at_once())


def test_default_tries_hit_a_one_in_ten_race_with_99_percent_confidence():
    assert races.DEFAULT_TRIES == 44 == math.ceil(math.log(0.01) / math.log(0.9))
    assert 1 - 0.9 ** races.DEFAULT_TRIES >= 0.99 > 1 - 0.9 ** (races.DEFAULT_TRIES - 1)


# the bug, the scenario whose race catches it, the rule the race fails, the race's report line
CASES = {
    "silent_cancel": ("cancel", "cancel.before_first_event", "race cancel_run in the same write as start_run: "),
    "double_completion": ("cancel", "order.completed_last", "race cancel_run racing agent_completed: "),
    "duplicate_both_run": ("multiplex", "start.duplicate_run", "race a duplicate start_run in the same write as the first: "),
    "resume_loses_end": ("reconnect", "order.completed_last", "race resume_run racing the run's completion: "),
    "resume_cancel_ignored": ("reconnect", "cancel.terminal", "race cancel_run in the same write as a resume_run: "),
}


@pytest.mark.parametrize("bug", list(CASES))
def test_each_race_bug_fails_its_race_in_every_check(bug):
    scenario, rule, line = CASES[bug]
    with RaceEndpoint(bug) as url:
        reports = _checks(url, [scenario])
    failing = [rule in _failed(r) for r in reports]
    assert all(failing), f"{bug}: {rule} failed in {sum(failing)} of {CHECKS} checks"
    for report in reports:
        assert not report.passed_gate
        counted = [n for n in _notes(report) if n.startswith(line)]
        assert counted and " tr" in counted[0], _notes(report)


def test_the_silent_endpoint_shows_its_counts_in_the_report():
    """The report says how many times the race was provoked and how the endpoint answered. One check
    alone, on an idle loop: the packing alone provokes the race (20 checks at once load the machine
    enough that a polite client's frames may merge too)."""
    with RaceEndpoint("silent_cancel") as url:
        report = asyncio.run(check_async(url, scenarios=["cancel"], race_tries=TRIES, deadline_s=1.5))
    assert "cancel.before_first_event" in _failed(report)
    note = next(n for n in _notes(report) if n.startswith("race cancel_run in the same write as start_run"))
    assert "answered with no event at all" in note
    assert "stopped early" in note  # a silent try waits out a run deadline: the race stops there
    assert note in render(report, "text")
    assert note in orjson.loads(render(report, "json"))["sections"][0]["notes"]


def test_the_reference_agent_passes_every_race_in_every_check():
    server = run_in_thread(port=0)  # its default 25 ms LLM delay: runs long enough that 20 checks at once on 2 cores stay within the cancel probes' windows
    try:
        # 20 checks at once on a shared 2-core machine: the latency budgets are not what is judged here,
        # nor the cancel scenario's random cancels (runs=1: its one random cancel lands right behind
        # its start), whose 50 ms "it may have finished first" window a loaded machine overruns
        reports = _checks(server.url, ["cancel", "multiplex", "reconnect"], first_event_ms=5000,
                          delivery_ms=5000, tool_gap_ms=1000)
    finally:
        server.stop()
    for report in reports:
        assert report.passed_gate, sorted(_failed(report))
        notes = _notes(report)
        assert len(notes) == 5, notes
        assert all(f": {TRIES} tries, " in n for n in notes), notes
    note = next(n for n in _notes(reports[0]) if n.startswith("race cancel_run in the same write as start_run"))
    assert "no event at all" not in note


def test_one_check_of_a_duplicate_start_in_one_write_provokes_both_runs():
    with RaceEndpoint("duplicate_both_run") as url:
        report = asyncio.run(check_async(url, scenarios=["multiplex"], race_tries=3, deadline_s=1.5))
    note = next(n for n in _notes(report) if n.startswith("race a duplicate start_run"))
    assert note == ("race a duplicate start_run in the same write as the first: 3 tries, 3 answered with "
                    "2 agent_started then 2 agent_completed (not cancelled, not cancelled)")


def test_resume_races_are_not_applicable_against_a_1_0_endpoint():
    with RaceEndpoint("double_completion") as url:  # speaks 1.0: no capabilities message
        report = asyncio.run(check_async(url, scenarios=["reconnect"], race_tries=2, deadline_s=1.5))
    notes = _notes(report)
    assert notes == [
        "race resume_run racing the run's completion: N/A, a 1.0 endpoint (no capabilities message): "
        "resume is a 1.1 feature",
        "race cancel_run in the same write as a resume_run: N/A, a 1.0 endpoint (no capabilities message): "
        "resume is a 1.1 feature"]


def test_race_tries_is_validated():
    from agent_events.conformance.live.api import live_options
    with pytest.raises(ValueError, match="race_tries"):
        live_options("ws://127.0.0.1:1/", race_tries=0)
