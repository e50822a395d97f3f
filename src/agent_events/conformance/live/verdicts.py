"""The live-only judgements, pure: what a probe observed in, a verdict out.

The checker judges the event stream; a live check also judges what a stream cannot show: whether
the endpoint answered a cancel, a duplicate start, a burst of starts over its bound, malformed or
oversize input, a time_sync, a resume with a forged secret; and whether a feature its capabilities
declare works. The scenarios (``scenario_*.py``) drive the connections and gather the facts; the
judgement of those facts is here, as plain functions of plain values (the client core's
:class:`~agent_events.conformance.core.client.RunRecord`, error dicts, close codes, counts), with no
socket, clock or probe, so each can be tested alone and read in one place.

A judgement returns a :class:`Verdict` (a rule checked: passed or not, with expected / observed),
a :class:`Skip` (the rule could not be judged here, and why), or ``None`` when the probe must look
further before anything can be said. :func:`apply` hands either to a probe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: A run that completes, not cancelled, this soon after cancel_run may simply have finished
#: first; one that goes on longer ignored the cancel.
CANCEL_RACE_MS = 50.0


@dataclass(frozen=True)
class Verdict:
    """A rule checked once: ``details`` are the keyword arguments of ``probe.external``."""

    rule_id: str
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skip:
    """A rule not exercised here, and why (reported N/A unless judged elsewhere)."""

    rule_id: str
    reason: str


def apply(probe, outcome: "Verdict | Skip | None") -> None:
    """Record ``outcome`` on ``probe`` (a :class:`~agent_events.conformance.live.session.ScenarioProbe`)."""
    if isinstance(outcome, Verdict):
        probe.external(outcome.rule_id, outcome.passed, **outcome.details)
    elif isinstance(outcome, Skip):
        probe.not_applicable(outcome.rule_id, outcome.reason)


# -- capabilities ------------------------------------------------------------------------------

def claim(claimed: bool | None, feature: str, works: bool, observed: str, conn: str = "-") -> Verdict | None:
    """1.1: a declared feature is held to its promise (``capabilities.honest``, MUST); nothing to say
    of a feature the endpoint did not declare."""
    if not claimed:
        return None
    return Verdict("capabilities.honest", works, dict(
        conn=conn, expected=f"{feature}, declared in the endpoint's capabilities, works as the spec says",
        observed=observed))


# -- start_run's promises ----------------------------------------------------------------------

def duplicate_run(error: dict | None, run, latest, *, conn: str, conn_open: bool, timeout_s: float) -> Verdict | Skip:
    """``start.duplicate_run``: the second start_run of a run in flight is answered duplicate_run, and
    the run in flight completes (``latest``: the record now under the id, a new run if it restarted)."""
    rule = "start.duplicate_run"
    expected = "an error with code 'duplicate_run', and the run in flight completes unharmed"
    details = dict(conn=conn, run_id=run.run_id, expected=expected)
    if error is not None and error.get("code") == "duplicate_run":
        return Verdict(rule, run.completed, dict(details, observed="duplicate_run, and the run completed"
                                                  if run.completed else
                                                  "duplicate_run, but the run in flight did not complete"))
    if error is None and latest is not None and latest.restarted:
        return Skip(rule, "the endpoint completed the run before it read the second start_run of its id, "
                          "which then started a new run (the id was free again): no duplicate was in flight")
    if error is not None:
        return Verdict(rule, False, dict(details, observed=f"an error with code {error.get('code')!r}"))
    twice = run.attempts.count("primary") > 1
    return Verdict(rule, False, dict(details, observed=(
        "the connection closed" if not conn_open else
        "no error, and a second run started under the same run_id" if twice else
        f"no error within {timeout_s:g} s")))


def generated_run_ids(runs: list, errors: list, *, conn: str, conn_open: bool) -> Verdict:
    """``start.generated_run_id``: runs started without run_id each get their own server-generated id
    and complete (``runs``: those not refused; ``errors``: the codes of the errors that came)."""
    rule = "start.generated_run_id"
    named = [r.run_id for r in runs if r.run_id]
    distinct = sorted(set(named))
    shared = [r.run_id for r in runs if r.run_id and r.attempts.count("primary") > 1]
    expected = f"{len(runs)} runs, each under its own server-generated run_id, each completed"
    if len(distinct) == len(runs) and not shared and all(r.completed for r in runs):
        return Verdict(rule, True, dict(conn=conn))
    if shared:
        observed = f"run_id {shared[0]!r} carried two runs (two agent_started with attempt primary)"
    elif len(distinct) < len(runs):
        observed = (f"{len(runs)} start_runs without run_id; events came for {len(distinct)} run_id(s)"
                    f"{': ' + ', '.join(map(repr, distinct)) if distinct else ''}"
                    f"{f'; errors: {errors}' if errors else ''}"
                    f"{'; the connection closed' if not conn_open else ''}")
    else:
        observed = "a run without run_id did not complete" + ("; the connection closed" if not conn_open else "")
    return Verdict(rule, False, dict(conn=conn, expected=expected, observed=observed))


TOO_MANY_RUNS_EXPECTED = ("a start_run over the bound refused with too_many_runs, and a start accepted once the "
                          "runs ended")


def too_many_runs_burst(started: int, refused: list, silent: list, *, peak: int, conn: str, conn_open: bool,
                        refusals_without_id: bool, timeout_s: float) -> Verdict | Skip | None:
    """``start.too_many_runs``, the burst of ``started`` start_runs: every start answered (an event or a
    refusal: ``silent`` are those that got neither in time, ``refused`` those refused, both as seen
    before the runs were cancelled), and the refusals too_many_runs. ``None`` when the endpoint
    showed its bound: then one more start, once the runs ended, must be accepted
    (:func:`too_many_runs_after`)."""
    rule = "start.too_many_runs"
    details = dict(conn=conn, expected=TOO_MANY_RUNS_EXPECTED)
    codes = sorted({r.refused for r in refused})
    if silent and refusals_without_id:
        return Verdict(rule, False, dict(details, observed=f"too_many_runs errors naming no run_id: {len(silent)} of "
                       f"{started} start_runs cannot be told refused (a refusal carries the run_id the client gave)"))
    if silent:
        return Verdict(rule, False, dict(details, observed=f"{len(silent)} of {started} start_runs got neither an "
                       f"event nor an error within {timeout_s:g} s"))
    if not conn_open:
        return Verdict(rule, False, dict(details, observed=f"the connection closed after {started} start_run(s)"
                       f"{f' ({len(refused)} refused)' if refused else ''}"))
    if not refused:
        return Skip(rule, f"the endpoint accepted every one of the {started} start_runs sent at once on "
                          f"one connection (up to {peak} runs in flight): its bound, if any, is higher")
    if codes != ["too_many_runs"]:
        return Verdict(rule, False, dict(details, observed=f"start_run refused with {', '.join(codes)} after "
                       f"{started - len(refused)} run(s) in flight"))
    return None


def too_many_runs_after(accepted: int, again, *, conn: str) -> Verdict:
    """``start.too_many_runs``, once the runs ended: the next start (``again``) is accepted and completes."""
    rule = "start.too_many_runs"
    details = dict(conn=conn, expected=TOO_MANY_RUNS_EXPECTED, run_id=again.run_id)
    if again.refused == "too_many_runs":
        return Verdict(rule, False, dict(details, observed=(
            f"too_many_runs after {accepted} run(s), and again once every run had ended")))
    return Verdict(rule, again.completed, dict(details, observed=(
        "too_many_runs, then the next start completed" if again.completed else
        f"too_many_runs; the next start, once the runs had ended, did not complete "
        f"({again.refused or 'no agent_completed'})")))


# -- time_sync ---------------------------------------------------------------------------------

def time_sync_silence(error: dict | None, timeout_s: float, conn: str) -> Verdict:
    """``time_sync.reply``: the first time_sync got no reply (an error instead, or nothing at all)."""
    observed = (f"an error with code {error.get('code')!r} instead" if error is not None else
                f"no time_sync reply within {timeout_s:g} s")
    return Verdict("time_sync.reply", False, dict(conn=conn, expected="a time_sync reply echoing client_time_ms",
                                                  observed=observed))


# -- cancel ------------------------------------------------------------------------------------

@dataclass
class CancelTally:
    """What one scenario's cancels showed, per rule: verdicts are passed on at once, N/A reasons kept
    in case no run of the rule could be judged at all (:meth:`unjudged`)."""

    judged: dict[str, int] = field(default_factory=lambda: {"cancel.terminal": 0, "cancel.before_first_event": 0})
    not_judged: dict[str, str] = field(default_factory=dict)

    def count(self, outcome: "Verdict | Skip | None") -> "Verdict | None":
        """Tally ``outcome``; return the verdict to record now (a skip is only kept)."""
        if isinstance(outcome, Verdict):
            self.judged[outcome.rule_id] += 1
            return outcome
        if isinstance(outcome, Skip):
            self.not_judged.setdefault(outcome.rule_id, outcome.reason)
        return None

    def unjudged(self) -> list[Skip]:
        """The rules no cancelled run could exercise, with the first reason seen."""
        return [Skip(rule_id, self.not_judged[rule_id]) for rule_id, count in self.judged.items()
                if not count and rule_id in self.not_judged]


def cancel(run, label: str, *, conn: str, conn_open: bool, deadline_s: float) -> Verdict | Skip | list:
    """One run that was sent cancel_run, once it ended or its deadline passed.

    ``cancel.before_first_event``: a run cancelled before any of its events was received still
    sends its events (silence, or ``unknown_run`` for a run that was started, fails it).
    ``cancel.terminal``: a cancelled run that sent events ends with a cancelled agent_completed;
    one that completed uncancelled may have finished before the cancel arrived (N/A for that run).
    Returns the outcomes in order (a run cancelled early that sent events passes the first rule and
    is judged on the second).
    """
    early = run.first_at is None or run.first_at > run.cancel_sent_at
    details = dict(conn=conn, run_id=run.run_id)
    if run.refused is not None:
        return [Skip("cancel.before_first_event" if early else "cancel.terminal",
                     f"the endpoint refused the run ({run.refused}) that was to be cancelled {label}")]
    out: list = []
    if early:
        if run.events:
            out.append(Verdict("cancel.before_first_event", True, details))
        else:
            why = "the connection closed" if not conn_open else f"the run deadline passed ({deadline_s:g} s)"
            answer = (f"; the cancel_run was answered with {run.error_code} as if the run had never started"
                      if run.error_code else "")
            out.append(Verdict("cancel.before_first_event", False, dict(
                details, expected="agent_started, then agent_completed, for a run cancelled before its first event",
                observed=f"no event of the run at all ({label}) before {why}{answer}")))
            return out
    result = run.result or {}
    if run.completed and result.get("cancelled") is True and result.get("success") is False:
        out.append(Verdict("cancel.terminal", True, details))
        return out
    if run.completed:
        after_ms = run.completed_at - run.cancel_sent_at
        if run.error_code == "unknown_run":
            out.append(Skip("cancel.terminal", "the run completed before cancel_run reached the endpoint (it answered "
                            "unknown_run); a slower run is needed to exercise cancellation"))
            return out
        if result.get("cancelled") is not True and after_ms <= CANCEL_RACE_MS:
            # Too close to tell "ignored the cancel" from "had already finished", and the endpoint
            # did not say which (no unknown_run): not exercised, rather than a guess either way.
            out.append(Skip("cancel.terminal", f"the run completed {after_ms:.1f} ms after cancel_run, not "
                            "cancelled, and the endpoint sent no unknown_run: it may have finished first"))
            return out
        observed = (f"agent_completed with cancelled={result.get('cancelled')!r}, success={result.get('success')!r} "
                    f"{after_ms:.1f} ms after cancel_run ({label})")
    else:
        observed = (f"the connection closed without agent_completed ({label})" if not conn_open
                    else f"no agent_completed before the run deadline ({label})")
    out.append(Verdict("cancel.terminal", False, dict(
        details, expected="agent_completed with result.cancelled true and result.success false", observed=observed)))
    return out


# -- robustness --------------------------------------------------------------------------------

def error_reply(what: str, code: str, error: dict | None, *, conn: str, conn_open: bool, timeout_s: float) -> Verdict:
    """``robustness.error_reply``: malformed input ``what`` is answered with an error of ``code``."""
    expected = f"an error with code {code!r} for {what}"
    if error is not None:
        got = error.get("code")
        return Verdict("robustness.error_reply", got == code, dict(conn=conn, expected=expected,
                                                                   observed=f"an error with code {got!r}"))
    return Verdict("robustness.error_reply", False, dict(
        conn=conn, expected=expected,
        observed="the connection closed instead" if not conn_open else f"no error message within {timeout_s:g} s"))


def closed_after(what: str, info, *, conn: str) -> Verdict:
    """``robustness.stays_open``: the connection closed after malformed input ``what``."""
    return Verdict("robustness.stays_open", False, dict(
        conn=conn, expected=f"the connection stays open after {what}",
        observed=f"closed (code {info.code}, {info.reason or info.detail or 'no reason'})"))


def oversize(size: int, code: str | None, *, answered: bool, conn_open: bool, info, answers_unknown_type: bool,
             timeout_s: float, conn: str) -> Verdict | Skip | None:
    """``robustness.message_too_big`` for a message of ``size`` bytes: answered message_too_big with the
    connection open, or closed with 1009. ``None`` when the endpoint read it (another error): its
    bound is higher, and the next size is tried. (For message_too_big the caller first gives the
    connection a moment to close, then passes what it saw.)"""
    rule = "robustness.message_too_big"
    expected = (f"an error with code 'message_too_big' (the connection staying open) or a close with 1009 "
                f"for a message of {size} bytes")
    details = dict(conn=conn, expected=expected)
    if code == "message_too_big":
        return Verdict(rule, conn_open or (info is not None and info.code == 1009), dict(
            details, observed="message_too_big" + ("" if conn_open else
                                                  f", then a close with code {info.code if info else None}")))
    if not conn_open:
        return Verdict(rule, info is not None and info.code == 1009, dict(
            details, observed=f"a close with code {info.code if info else None}"
                              f"{f' ({info.reason})' if info and info.reason else ''}"
                              + (f" after an error with code {code!r}" if code else "")))
    if not answered:
        if answers_unknown_type:
            return Verdict(rule, False, dict(details, observed=f"no answer within {timeout_s:g} s (an unknown type "
                                             "of ordinary size was answered with an error)"))
        return Skip(rule, f"no answer to a message of {size} bytes, and none to an unknown type of "
                          "ordinary size either: whether the endpoint read it is unknown")
    return None


# -- resume ------------------------------------------------------------------------------------

def resume_secret(error: dict | None, leaked: int, *, conn: str) -> Verdict:
    """``resume.secret``: a resume_run with a forged token is refused resume_denied, and nothing leaks."""
    code = error.get("code") if error is not None else None
    return Verdict("resume.secret", code == "resume_denied" and not leaked, dict(
        conn=conn, expected="error resume_denied, and no event of the run",
        observed=(f"error {code!r}" if error is not None else "no error") +
                 (f" and {leaked} event(s) of the run" if leaked else "")))


def resumed(claimed: bool | None, resumed_run, error: dict | None, *, done: bool, last_seq: int, label: str,
            conn: str) -> Verdict | None:
    """``capabilities.honest`` for resume: the resumed run completed, with no error."""
    works = resumed_run.completed and error is None
    return claim(claimed, "resume", works,
                 f"resumed after seq {last_seq} ({label}): " + (
                     f"{resumed_run.events} event(s) replayed and live, the run completed" if works else
                     f"refused with {error.get('code')!r}" if error is not None else
                     "the run did not complete within its deadline" if not done else "the run did not complete"),
                 conn)
