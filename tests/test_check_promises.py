"""Every promise exercised (issue 13): cancels at every stage of a run, a duplicate run_id, more
runs than the endpoint allows, runs without run_id, a message without type, an oversize message.

Each probe fails a small endpoint that breaks exactly that promise (a ScriptedAgent variant from
tests/misbehaving_servers.py, over a real socket) with the right rule, and the reference agent
passes every one of them. Budgets are relaxed and deadlines short: these tests are about
behaviour, never timing.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from agent_events import conformance, reference_agent
import misbehaving_servers as m
from agent_events.conformance.cli import main
from agent_events.conformance.live.scenarios import RUNS_BOUND_PROBE
from agent_events.conformance.core.violations import FAIL, NOT_APPLICABLE, PASS, WARN

# 4 tries of each race the cancel, multiplex and reconnect scenarios provoke, not 44: these endpoints'
# faults are not races (tests/test_races.py provokes those: 20 checks at once, 9 tries of each race in each)
FAST = {"race_tries": 4, "deadline_s": 0.5, **m.RELAXED}
NEW_RULES = ("cancel.before_first_event", "cancel.terminal", "start.generated_run_id", "start.duplicate_run",
             "start.too_many_runs", "robustness.message_too_big", "robustness.error_reply")


def statuses(report, *wanted: str) -> dict[str, str]:
    return {rule: status for rule, status in report.statuses().items() if status in wanted}


def observed(report, rule_id: str) -> list[str]:
    return [v.observed for s in report.sections for v in s.violations if v.rule_id == rule_id]


# -- the endpoints -----------------------------------------------------------------------------

class DropsRunsCancelledBeforeTheirTask(m.ScriptedAgent):
    """The outside implementation of issue 13: a run's task starts a moment after its start_run,
    and a run cancelled before that sends nothing at all (``answer``: or only unknown_run)."""

    def __init__(self, answer: bool = False) -> None:
        super().__init__()
        self.answer = answer

    async def run(self, ws, run_id, options, cancelled):
        await asyncio.sleep(0.02)  # queued: the task has not started yet
        if cancelled.is_set():
            if self.answer:
                await self.error(ws, "unknown_run", "no such run", run_id)
            return
        await super().run(ws, run_id, options, cancelled)


class LeavesTheToolOpenOnCancel(m.ScriptedAgent):
    """Cancelled during a tool, completes the run without completing the tool."""

    step_delay = 0.02

    async def run(self, ws, run_id, options, cancelled):
        seq = 0
        for type_, payload in self.primary_events(options):
            if cancelled.is_set() and type_ != "agent_started":
                await self.send_event(ws, run_id, seq, "agent_completed",
                                      {"message": "cancelled", "result": self.result(fallback=False, cancelled=True)})
                return
            await self.send_event(ws, run_id, seq, type_, payload)
            seq += 1
            await asyncio.sleep(self.step_delay)


class SlowScripted(m.ScriptedAgent):
    """Conforming, with runs long enough to be in flight when the next message arrives."""

    step_delay = 0.01


class IgnoresDuplicates(SlowScripted):
    """Starts a second run under a run_id already in flight, instead of answering duplicate_run."""

    async def on_duplicate(self, ws, run_id):
        return True


class ReusesItsGeneratedId(IgnoresDuplicates):
    """Gives every run started without run_id the same id, even while another such run is in flight."""

    def generated_run_id(self, n):
        return "srv"


class BoundsRuns(SlowScripted):
    """At most ``LIMIT`` runs in flight per connection; over it, ``code`` (too_many_runs when right).
    ``forever``: counts every run ever started, so the connection is never usable again."""

    LIMIT = 2

    def __init__(self, code: str = "too_many_runs", forever: bool = False) -> None:
        super().__init__()
        self.code, self.forever = code, forever

    async def handle(self, ws):
        ws.in_flight = 0
        await super().handle(ws)

    async def run(self, ws, run_id, options, cancelled):
        if ws.in_flight >= self.LIMIT:
            await self.error(ws, self.code, "too many runs", run_id)
            return
        ws.in_flight += 1
        try:
            await super().run(ws, run_id, options, cancelled)
        finally:
            if not self.forever:
                ws.in_flight -= 1


class AnswersNoTypeWithUnknownType(m.ScriptedAgent):
    """Answers a message without type with unknown_type (the spec says invalid_message)."""

    async def error(self, ws, code, message, run_id=None):
        if code == "invalid_message" and message == "type is required":
            code = "unknown_type"
        await super().error(ws, code, message, run_id)


class Oversize(m.ScriptedAgent):
    """Reads messages of up to 1 MiB, and treats one over 64 KiB its own way (``how``)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    async def handle(self, ws):
        original = ws.recv

        async def recv(*args, **kwargs):
            while True:
                frame = await original(*args, **kwargs)
                if len(frame) <= 64 * 1024:
                    return frame
                if self.how == "close 1011":
                    await ws.close(1011, "that was too much")
                elif self.how == "message_too_big, then close 1000":
                    await self.error(ws, "message_too_big", "too big")
                    await ws.close(1000, "bye")
                # "silent": read, never answered

        ws.recv = recv
        await super().handle(ws)


class Unbounded(m.ScriptedAgent):
    """Reads messages of any size: the oversize probe cannot find its bound."""

    max_size = None


# -- cancel ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [False, True], ids=["silent", "unknown_run"])
def test_runs_cancelled_before_their_task_started_and_never_sent_fail_the_cancel_scenario(answer, capsys):
    # The regression of issue 13: this endpoint passed `--scenario cancel --runs 20`.
    with m.running(DropsRunsCancelledBeforeTheirTask(answer)) as url:
        code = main(["check", url, "--scenario", "cancel", "--runs", "20", "--deadline-s", "0.5", "--format", "json",
                     *m.RELAXED_FLAGS])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["exit_code"] == 1
    rules = {r["id"]: r for r in data["sections"][0]["rules"]}
    assert rules["cancel.before_first_event"]["status"] == FAIL
    message = next(v["observed"] for v in data["sections"][0]["violations"] if v["rule"] == "cancel.before_first_event")
    assert "no event of the run at all" in message
    assert ("answered with unknown_run" in message) is answer
    # the stream shows it too: a started run that never ended
    assert rules["order.completed_last"]["status"] == FAIL


def test_a_tool_left_open_by_a_cancel_fails_pairing():
    with m.running(LeavesTheToolOpenOnCancel()) as url:
        report = conformance.check(url, scenarios=["cancel"], runs=1, deadline_s=2.0, race_tries=4, **m.RELAXED)
    assert report.statuses()["pair.tool_matched"] == FAIL
    assert report.statuses()["cancel.terminal"] == PASS  # it did end cancelled
    assert any("while a tool call was open" in n or "random cancels" in n for s in report.sections for n in s.notes)


# -- multiplex: the promises of start_run ---------------------------------------------------------

def test_a_second_run_under_a_run_id_in_flight_warns_duplicate_run():
    with m.running(IgnoresDuplicates()) as url:
        report = conformance.check(url, scenarios=["multiplex"], runs=1, **FAST)
    assert report.statuses()["start.duplicate_run"] == WARN
    assert "a second run started under the same run_id" in observed(report, "start.duplicate_run")[0]
    assert report.statuses()["seq.contiguous"] == FAIL  # the two runs' events mixed under one id


def test_a_generated_run_id_given_to_two_runs_in_flight_fails():
    with m.running(ReusesItsGeneratedId()) as url:
        report = conformance.check(url, scenarios=["multiplex"], runs=1, deadline_s=1.0, **m.RELAXED)
    assert report.statuses()["start.generated_run_id"] == FAIL
    assert "'srv'" in observed(report, "start.generated_run_id")[0]


@pytest.mark.parametrize("code, forever, expect", [
    ("internal_error", False, "start_run refused with internal_error"),
    ("too_many_runs", True, "and again once every run had ended"),
], ids=["wrong code", "never usable again"])
def test_a_bound_on_runs_answered_wrongly_warns_too_many_runs(code, forever, expect):
    with m.running(BoundsRuns(code, forever)) as url:
        report = conformance.check(url, scenarios=["multiplex"], runs=1, **FAST)
    assert report.statuses()["start.too_many_runs"] == WARN
    assert expect in observed(report, "start.too_many_runs")[0]


def test_a_bound_answered_with_too_many_runs_passes_and_the_probes_stay_within_it():
    with m.running(BoundsRuns()) as url:
        report = conformance.check(url, scenarios=["multiplex"], runs=1, deadline_s=2.0, **m.RELAXED)
    found = statuses(report, FAIL, WARN)
    assert found == {}, [v.observed for s in report.sections for v in s.violations]
    for rule_id in ("start.too_many_runs", "start.duplicate_run", "start.generated_run_id"):
        assert report.statuses()[rule_id] == PASS, rule_id
    assert any("too_many_runs with 2 run(s) in flight" in n for n in report.sections[0].notes)


def test_an_endpoint_without_a_bound_on_runs_is_not_applicable_with_the_reason():
    with m.running(m.ScriptedAgent()) as url:
        report = conformance.check(url, scenarios=["multiplex"], runs=1, **FAST)
    outcome = report.sections[0].outcomes["start.too_many_runs"]
    assert report.statuses()["start.too_many_runs"] == NOT_APPLICABLE
    assert f"accepted every one of the {RUNS_BOUND_PROBE} start_runs sent at once" in outcome.reason
    assert statuses(report, FAIL, WARN) == {}


# -- robustness: no type, oversize ---------------------------------------------------------------

def test_a_message_without_type_answered_unknown_type_warns():
    with m.running(AnswersNoTypeWithUnknownType()) as url:
        report = conformance.check(url, scenarios=["robustness"], **FAST)
    assert statuses(report, FAIL, WARN) == {"robustness.error_reply": WARN}
    (violation,) = [v for s in report.sections for v in s.violations]
    assert "a message without type" in violation.expected and "'unknown_type'" in violation.observed


@pytest.mark.parametrize("how, expect", [
    ("close 1011", "a close with code 1011"),
    ("silent", "no answer within"),
    ("message_too_big, then close 1000", "message_too_big, then a close with code 1000"),
])
def test_an_oversize_message_not_answered_as_the_spec_says_warns(how, expect):
    with m.running(Oversize(how)) as url:
        report = conformance.check(url, scenarios=["robustness"], deadline_s=0.5, **m.RELAXED)
    assert statuses(report, FAIL, WARN) == {"robustness.message_too_big": WARN}
    assert expect in observed(report, "robustness.message_too_big")[0]


def test_an_oversize_message_closed_with_1009_passes():
    with m.running(m.ScriptedAgent()) as url:  # reads 64 KiB + 1 KiB, closes 1009 past 1 MiB
        report = conformance.check(url, scenarios=["robustness"], **FAST)
    assert report.statuses()["robustness.message_too_big"] == PASS
    assert statuses(report, FAIL, WARN) == {}


def test_an_endpoint_that_reads_every_oversize_probe_is_not_applicable():
    with m.running(Unbounded()) as url:
        report = conformance.check(url, scenarios=["robustness"], **FAST)
    assert report.statuses()["robustness.message_too_big"] == NOT_APPLICABLE
    assert "read every oversize probe" in report.sections[0].outcomes["robustness.message_too_big"].reason


# -- the reference agent keeps every promise --------------------------------------------------------

def test_the_reference_agent_passes_every_new_probe():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=20) as server:
        report = conformance.check(server.url, scenarios=["multiplex", "cancel", "robustness"], **m.RELAXED)
    assert statuses(report, FAIL, WARN) == {}
    for rule_id in NEW_RULES:
        assert report.statuses()[rule_id] == PASS, (rule_id, report.statuses()[rule_id])
    notes = [n for s in report.sections for n in s.notes]
    assert any("too_many_runs with 16 run(s) in flight" in n for n in notes)  # its documented bound
    assert any("random cancels" in n for n in notes)


def test_the_pytest_plugin_has_an_item_for_each_new_rule_under_its_scenario():
    from agent_events.conformance.tooling.pytest_plugin import _rules_of

    assert "cancel.before_first_event" in _rules_of("cancel", None)
    assert {"start.generated_run_id", "start.duplicate_run", "start.too_many_runs"} <= set(_rules_of("multiplex", None))
    assert "robustness.message_too_big" in _rules_of("robustness", None)
    assert "start.duplicate_run" not in _rules_of("cancel", None)  # another scenario's live probe
