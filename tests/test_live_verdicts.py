"""The live-only judgements are pure functions of what a probe saw: each can be judged alone."""

from __future__ import annotations

from types import SimpleNamespace

from agent_events.conformance.live import verdicts as v


def run(**fields):
    base = dict(run_id="r1", refused=None, first_at=10.0, cancel_sent_at=5.0, events=3, error_code=None,
                result={}, completed=True, completed_at=100.0, attempts=["primary"], restarted=False, ended=True)
    return SimpleNamespace(**{**base, **fields})


def test_a_run_cancelled_before_its_first_event_owes_its_events():
    silent = run(first_at=None, events=0, completed=False)
    (outcome,) = v.cancel(silent, "right after start", conn="c0", conn_open=True, deadline_s=2.0)
    assert outcome.rule_id == "cancel.before_first_event" and outcome.passed is False
    assert "run deadline passed (2 s)" in outcome.details["observed"]


def test_a_cancelled_run_ends_cancelled_and_a_race_is_not_a_guess():
    good = run(result={"cancelled": True, "success": False})
    outcomes = v.cancel(good, "mid-run", conn="c0", conn_open=True, deadline_s=2.0)
    assert [(o.rule_id, o.passed) for o in outcomes] == [("cancel.before_first_event", True), ("cancel.terminal", True)]
    close = run(first_at=1.0, completed_at=5.0 + v.CANCEL_RACE_MS - 1)
    (skip,) = v.cancel(close, "mid-run", conn="c0", conn_open=True, deadline_s=2.0)
    assert isinstance(skip, v.Skip) and "may have finished first" in skip.reason
    ignored = run(first_at=1.0, completed_at=5.0 + v.CANCEL_RACE_MS + 1)
    (verdict,) = v.cancel(ignored, "mid-run", conn="c0", conn_open=True, deadline_s=2.0)
    assert verdict.passed is False and "cancelled=None" in verdict.details["observed"]


def test_the_cancel_tally_reports_na_only_for_rules_no_run_exercised():
    tally = v.CancelTally()
    tally.count(v.Skip("cancel.terminal", "raced"))
    tally.count(v.Skip("cancel.before_first_event", "refused"))
    assert tally.count(v.Verdict("cancel.terminal", True)) is not None
    assert tally.unjudged() == [v.Skip("cancel.before_first_event", "refused")]


def test_too_many_runs_says_when_to_look_further():
    refused = [run(refused="too_many_runs")]
    assert v.too_many_runs_burst(5, refused, [], peak=4, conn="c0", conn_open=True, refusals_without_id=False,
                                 timeout_s=1.0) is None  # the bound showed: one more start must be tried
    silent = v.too_many_runs_burst(5, refused, [run()], peak=4, conn="c0", conn_open=True, refusals_without_id=False,
                                   timeout_s=1.0)
    assert silent.passed is False and "1 of 5 start_runs got neither" in silent.details["observed"]
    assert isinstance(v.too_many_runs_burst(5, [], [], peak=5, conn="c0", conn_open=True, refusals_without_id=False,
                                            timeout_s=1.0), v.Skip)
    assert v.too_many_runs_after(4, run(refused=None, completed=True), conn="c0").passed is True
    assert v.too_many_runs_after(4, run(refused="too_many_runs"), conn="c0").passed is False


def test_oversize_read_means_try_the_next_size():
    close = SimpleNamespace(code=1009, reason="too big")
    assert v.oversize(70000, "unknown_type", answered=True, conn_open=True, info=None, answers_unknown_type=True,
                      timeout_s=1.0, conn="c0") is None
    assert v.oversize(70000, None, answered=False, conn_open=False, info=close, answers_unknown_type=True,
                      timeout_s=1.0, conn="c0").passed is True
    assert v.oversize(70000, None, answered=False, conn_open=True, info=None, answers_unknown_type=True,
                      timeout_s=1.0, conn="c0").passed is False


def test_a_claim_is_judged_only_when_declared():
    assert v.claim(None, "resume", False, "x") is None and v.claim(False, "resume", False, "x") is None
    assert v.claim(True, "resume", False, "x").rule_id == "capabilities.honest"


def test_verdicts_is_pure():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(v.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "dataclasses", "typing"}, imported
