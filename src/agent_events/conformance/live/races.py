"""The races the spec names, provoked on purpose and many times, instead of hoped for.

A polite client writes ``start_run``, waits, then writes ``cancel_run``: the
server's task for the run has always begun by then, so a server whose cancel
kills a task that has not started yet (and sends nothing) passes. Here the
frames of a race go in ONE write (:meth:`LiveConnection.send_packed`: one TCP
segment, so one read on the server, whose receive loop may then handle both
without yielding), or are sent from inside the read, on the very frame that
opens the window (:meth:`LiveConnection.watch`, :meth:`LiveConnection.send_now`).

Each race is tried :func:`tries` times (``--race-tries``; by default
:data:`DEFAULT_TRIES`, enough to hit a race that shows one time in ten with 99 %
confidence), its tries spread over :data:`LANES` connections at once. Every
frame goes to the scenario's checker as always, so the stream rules judge each
try (``order.completed_last`` sees a second ``agent_completed``,
``resume.replay`` a lost or repeated event); this module judges only what a
stream cannot show (that a run cancelled in the write of its start_run owed a
cancelled end, that a duplicate start was answered ``duplicate_run``), and it
counts how the endpoint answered each try, for the report: one note per race,
``race <what>: 44 tries, 44 answered with agent_started then agent_completed
cancelled``.

A try that waits out a run deadline (silence, a lost ``agent_completed``) ends
its race: the verdict is known, and each further try would wait as long.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import orjson

from agent_events.conformance.live.session import LiveConnection, ScenarioProbe

#: A race the endpoint loses one time in ten is hit at least once with this confidence ...
CONFIDENCE = 0.99
RACE_RATE = 0.1
#: ... in this many tries: ceil(ln(0.01) / ln(0.9)) = 44.
DEFAULT_TRIES = math.ceil(math.log(1.0 - CONFIDENCE) / math.log(1.0 - RACE_RATE))
#: Connections a race's tries are spread over, at once (each runs its tries one after the other).
LANES = 4
#: After a run ended, how long a try waits for what may still come of it (a second agent_completed,
#: the unknown_run answering a late cancel) when nothing has come yet.
SETTLE_S = 0.025


def tries(probe: ScenarioProbe) -> int:
    return getattr(probe.engine.options, "race_tries", DEFAULT_TRIES)


@dataclass
class Seen:
    """What one run of a try sent, as the race sees it (the checker sees the same frames)."""

    types: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: every frame of the run in arrival order: event types, and ``error:CODE`` for its errors
    order: list[str] = field(default_factory=list)

    def before(self, code: str, type_: str) -> bool:
        """Whether an ``error`` with ``code`` naming the run came before its first ``type_`` event (or
        without one): the order of one connection's frames is the order the server sent them in, so
        an unknown_run before the run's agent_completed was said while the run was in flight."""
        error = f"error:{code}"
        if error not in self.order:
            return False
        return type_ not in self.order or self.order.index(error) < self.order.index(type_)


class Watch:
    """The frames of the runs a lane tracks, read inside the read loop, and the sends they trigger."""

    def __init__(self, conn: LiveConnection) -> None:
        self.runs: dict[str, Seen] = {}
        #: run_id -> (events seen, action): the action runs on the frame that makes that many
        self.triggers: dict[str, tuple[int, Callable[[], None]]] = {}
        conn.watch(self)

    def track(self, run_id: str) -> Seen:
        seen = self.runs[run_id] = Seen()
        return seen

    def on(self, run_id: str, events: int, action: Callable[[], None]) -> None:
        self.triggers[run_id] = (events, action)

    def __call__(self, kind: str, data: bytes, at: float) -> None:
        # binary frames too: the client core follows their content as the checker judges it (frame.text)
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if type(message) is not dict:
            return
        run_id = message.get("run_id")
        seen = self.runs.get(run_id) if type(run_id) is str else None
        if seen is None:
            return
        type_ = message.get("type")
        if type_ == "error":
            seen.errors.append(str(message.get("code")))
            seen.order.append(f"error:{message.get('code')}")
            return
        if type(type_) is not str:
            return
        seen.types.append(type_)
        seen.order.append(type_)
        if type(message.get("seq")) is int:
            seen.seqs.append(message["seq"])
        if type_ == "agent_completed":
            payload = message.get("payload")
            result = payload.get("result") if type(payload) is dict else None
            seen.results.append(result if type(result) is dict else {})
        trigger = self.triggers.get(run_id)
        if trigger is not None and len(seen.types) >= trigger[0]:
            del self.triggers[run_id]
            trigger[1]()


def _ending(result: dict) -> str:
    return "cancelled" if result.get("cancelled") is True else "not cancelled"


def describe(seen: Seen) -> str:
    """How the endpoint answered one try, in words a report can count: "agent_started then
    agent_completed cancelled", "no event at all", "agent_started then 2 agent_completed (...)"."""
    errors = f", and error {', '.join(dict.fromkeys(seen.errors))}" if seen.errors else ""
    if not seen.types:
        return "no event at all" + (f" (error {', '.join(dict.fromkeys(seen.errors))})" if seen.errors else "")
    starts = seen.types.count("agent_started")
    head = (f"{starts} agent_started" if starts > 1 else "agent_started" if seen.types[0] == "agent_started"
            else f"{seen.types[0]} first")
    if not seen.results:
        return f"{head}, no agent_completed{errors}"
    if len(seen.results) == 1:
        return f"{head} then agent_completed {_ending(seen.results[0])}{errors}"
    return f"{head} then {len(seen.results)} agent_completed ({', '.join(map(_ending, seen.results))}){errors}"


@dataclass
class RaceTally:
    """One race's tries and answers: the report's line for it."""

    label: str
    tries: int = 0
    answers: Counter = field(default_factory=Counter)
    stopped: str | None = None
    not_applicable: str | None = None

    def add(self, answer: str) -> None:
        self.tries += 1
        self.answers[answer] += 1

    def text(self) -> str:
        if self.not_applicable is not None:
            return f"race {self.label}: N/A, {self.not_applicable}"
        answered = ", ".join(f"{n} answered with {a}" for a, n in self.answers.most_common())
        line = f"race {self.label}: {self.tries} tr{'y' if self.tries == 1 else 'ies'}" + (f", {answered}" if answered else "")
        return line + (f" (stopped early: {self.stopped})" if self.stopped else "")


#: ``(probe, conn, watch, tally, index) -> go on``: one try of a race on one lane's connection.
Try = Callable[[ScenarioProbe, LiveConnection, Watch, RaceTally, int], Awaitable[bool]]


async def _race(probe: ScenarioProbe, tally: RaceTally, one_try: Try) -> None:
    """``tries(probe)`` tries of ``one_try`` over :data:`LANES` connections; then the report's note."""
    total = tries(probe)
    next_index = iter(range(total))

    async def lane() -> None:
        conn: LiveConnection | None = None
        watch: Watch | None = None
        for index in next_index:
            if tally.stopped is not None:
                return
            if conn is None or not conn.open:
                conn = await probe.connect()
                if conn is None:
                    tally.stopped = tally.stopped or "a connection could not be opened"
                    return
                watch = Watch(conn)
            if not await one_try(probe, conn, watch, tally, index):
                return

    await asyncio.gather(*(lane() for _ in range(min(LANES, total))))
    probe.note(tally.text())


def _input(probe: ScenarioProbe) -> str:
    return probe.engine.options.input


def _silent(tally: RaceTally, what: str) -> bool:
    tally.stopped = f"{what}: each further try would wait as long"
    return False


# -- cancel in the same write as start_run -----------------------------------------------------

async def _cancel_in_start_write(probe, conn: LiveConnection, watch: Watch, tally: RaceTally, index: int) -> bool:
    box: list[str] = []

    def build(core, at):
        run_id, start = core.start_run(at, input=_input(probe))
        box.append(run_id)
        watch.track(run_id)
        return core.pack(start, core.cancel_run(run_id, at))

    if await conn.send_packed(build) is None:
        return True
    run_id = box[0]
    run, seen = conn.runs[run_id], watch.runs[run_id]
    await conn.wait(lambda: run.ended, conn.run_deadline(run_id))
    answer = describe(seen)  # as of the run's end: an unknown_run that matters came before it
    tally.add(answer if run.refused is None else f"a refusal ({run.refused})")
    if run.refused is not None:
        return True
    details = dict(conn=conn.name, run_id=run_id)
    label = "cancel_run in the same write as its start_run"
    if not run.events:
        probe.external("cancel.before_first_event", False, **details,
                       expected="agent_started, then a cancelled agent_completed, for a run cancelled in the write "
                                "of its start_run",
                       observed=f"{answer} ({label}), until " + ("the connection closed" if not conn.open else
                                                                 "the run deadline passed"))
        return _silent(tally, "a try got no event of its run within the run deadline") if conn.open else True
    if seen.before("unknown_run", "agent_started"):
        probe.external("cancel.before_first_event", False, **details,
                       expected="agent_started, then a cancelled agent_completed; never unknown_run, as if the run had "
                                "never started",
                       observed=f"{answer}: the cancel_run was answered unknown_run before the run's agent_started "
                                f"({label})")
        return True
    probe.external("cancel.before_first_event", True, **details)
    # Frames read together are still handled in order: a server may let the run go on to its end
    # (a cancel that finds it finishing is ignored, or answered unknown_run) before it handles the
    # cancel. So an uncancelled end is no verdict here (the cancel scenario's probes judge ignored
    # cancels); a cancelled end must say success false, and a run that started must end.
    result = seen.results[0] if seen.results else None
    expected = "agent_completed with result.cancelled true and result.success false"
    if result is not None and result.get("cancelled") is True:
        probe.external("cancel.terminal", result.get("success") is False, **details, expected=expected,
                       observed=f"{answer}, success={result.get('success')!r} ({label})")
    elif result is None or seen.before("unknown_run", "agent_completed"):
        probe.external("cancel.terminal", False, **details, expected=expected, observed=(
            f"{answer} ({label})" if result is None else
            f"{answer}: the cancel_run was answered unknown_run while the run was in flight ({label})"))
    return True


async def cancel_in_start_write(probe: ScenarioProbe) -> None:
    """start_run and cancel_run in one write: the server reads the cancel before its task for the run
    can have begun; the run still owes agent_started, then a cancelled agent_completed."""
    if probe.engine.claimed("cancel") is False:
        return
    await _race(probe, RaceTally("cancel_run in the same write as start_run"), _cancel_in_start_write)


# -- cancel racing agent_completed -------------------------------------------------------------

async def _calibrate(probe: ScenarioProbe) -> tuple[int, str | None] | None:
    """The events of one uncut, uncancelled run (and its resume_token): where the windows are."""
    conn = await probe.connect()
    if conn is None:
        return None
    run_id = await conn.start_run()
    run = conn.runs[run_id]
    if not await conn.wait(lambda: run.ended, _half_deadline(probe)):
        # not done in half the run deadline (an endpoint that waits for a cancel, say): ended
        # well within it, and the races that need its length are not made
        await conn.cancel_run(run_id)
        await conn.wait_runs([run_id])
        await conn.close()
        return None
    await conn.close()
    return (run.events, run.resume_token) if run.completed and run.result.get("cancelled") is not True else None


def _half_deadline(probe: ScenarioProbe) -> float:
    return probe.engine.options.profile.deadline_s / 2


_WHERE = ("cancel sent on the second-to-last event before agent_completed",
          "cancel sent on the last event before agent_completed",
          "cancel sent right after agent_completed")


def _cancel_near_completion(length: int) -> Try:
    async def one_try(probe, conn: LiveConnection, watch: Watch, tally: RaceTally, index: int) -> bool:
        where = index % len(_WHERE)
        box: list[str] = []

        def build(core, at):
            run_id, start = core.start_run(at, input=_input(probe))
            box.append(run_id)
            watch.track(run_id)
            watch.on(run_id, max(1, length - 2 + where),
                     lambda: conn.send_now(lambda c, t: c.pack(c.cancel_run(run_id, t))))
            return core.pack(start)

        if await conn.send_packed(build) is None:
            return True
        run_id = box[0]
        run, seen = conn.runs[run_id], watch.runs[run_id]
        if not await conn.wait(lambda: run.ended or run.cancel_sent_at is not None, _half_deadline(probe)):
            watch.triggers.pop(run_id, None)  # it stopped short of the cancel point: ended by a cancel now
            await conn.cancel_run(run_id)
            await conn.wait(lambda: run.ended, conn.run_deadline(run_id))
            tally.add(f"not provoked: the run stopped after {run.events} event(s), short of the cancel point")
            return _silent(tally, "a try's run did not reach its cancel point within half the run deadline")
        await conn.wait(lambda: run.ended, conn.run_deadline(run_id))
        if run.completed:  # what may still come: a second agent_completed, or the cancel's unknown_run
            await conn.wait(lambda: bool(seen.errors) or len(seen.results) > 1, SETTLE_S)
        watch.triggers.pop(run_id, None)
        if run.cancel_sent_at is None:
            tally.add("the run ended before the cancel point" if run.ended else describe(seen))
        else:
            tally.add(f"{describe(seen)} ({_WHERE[where]})")
        if not run.completed and run.refused is None and conn.open:
            return _silent(tally, "a try's run did not complete within the run deadline")
        return True
    return one_try


async def cancel_near_completion(probe: ScenarioProbe) -> None:
    """cancel_run sent from inside the read, on a run's last events and right after its agent_completed:
    one agent_completed, whichever comes first (the checker's order.completed_last sees a second one),
    and a cancel that came too late answered unknown_run."""
    if probe.engine.claimed("cancel") is False:
        return
    tally = RaceTally("cancel_run racing agent_completed")
    calibrated = await _calibrate(probe)
    if calibrated is None:
        tally.not_applicable = ("no run completed uncancelled within half the run deadline, so the windows around "
                                "agent_completed are unknown")
        probe.note(tally.text())
        return
    await _race(probe, tally, _cancel_near_completion(calibrated[0]))


# -- duplicate start_run in the same write as the first -----------------------------------------

async def _duplicate_in_start_write(probe, conn: LiveConnection, watch: Watch, tally: RaceTally, index: int) -> bool:
    box: list[str] = []

    def build(core, at):
        run_id, first = core.start_run(at, input=_input(probe))
        _, second = core.start_run(at, input=_input(probe), run_id=run_id)
        box.append(run_id)
        watch.track(run_id)
        return core.pack(first, second)

    if await conn.send_packed(build) is None:
        return True
    run_id = box[0]
    seen = watch.runs[run_id]
    deadline = conn.run_deadline(run_id)
    # every run started under the id has ended (a second agent_started means a second run)
    await conn.wait(lambda: seen.results and len(seen.results) >= seen.types.count("agent_started")
                    or bool(conn.runs[run_id].refused), deadline)
    await conn.wait(lambda: "duplicate_run" in seen.errors or len(seen.results) > 1, SETTLE_S)
    answer = describe(seen)
    tally.add(answer)
    ok = "duplicate_run" in seen.errors and seen.types.count("agent_started") == 1 and len(seen.results) == 1
    probe.external("start.duplicate_run", ok, conn=conn.name, run_id=run_id,
                   expected="an error with code 'duplicate_run' for the second start_run of the same write, and "
                            "one run, completed",
                   observed=f"{answer} (two start_runs of one run_id in one write)")
    if not seen.results and conn.open and not conn.runs[run_id].refused:
        return _silent(tally, "a try's run did not complete within the run deadline")
    return True


async def duplicate_in_start_write(probe: ScenarioProbe) -> None:
    """Two start_runs of one run_id in one write: the second is answered duplicate_run, one run runs."""
    await _race(probe, RaceTally("a duplicate start_run in the same write as the first"), _duplicate_in_start_write)


# -- resume (1.1) --------------------------------------------------------------------------------

def _resume_unclaimed(probe: ScenarioProbe, *tallies: RaceTally) -> bool:
    if probe.engine.claimed("resume") is True:
        return False
    reason = ("a 1.0 endpoint (no capabilities message): resume is a 1.1 feature" if probe.engine.features is None
              else "not claimed: the endpoint's capabilities do not declare resume")
    for tally in tallies:
        tally.not_applicable = reason
        probe.note(tally.text())
    return True


async def _cut_run(probe: ScenarioProbe, cut_at: int) -> tuple[str, int, str] | str:
    """A run on a connection of its own, dropped (no close frame) right after its ``cut_at``-th event:
    ``(run_id, last_seq, resume_token)``, or why not."""
    first = await probe.connect()
    if first is None:
        return "a connection could not be opened"
    run_id = await first.start_run()
    run = first.runs[run_id]
    first.cut_when(lambda: run.events >= cut_at and run.completed_at is None)
    await first.wait(lambda: first.close_info is not None or run.ended, first.run_deadline(run_id))
    if first.close_info is None:
        await first.close()
        return "the run completed before the cut" if run.completed else "the run sent too few events to cut"
    if run.resume_token is None or run.last_seq is None:
        return "the run's agent_started carried no resume_token"
    return run_id, run.last_seq, run.resume_token


def _resume_answer(seen: Seen, last_seq: int) -> str:
    if not seen.types:
        return "no event of the run" + (f" (error {', '.join(dict.fromkeys(seen.errors))})" if seen.errors else "")
    contiguous = seen.seqs == list(range(last_seq + 1, last_seq + 1 + len(seen.seqs)))
    order = "every event after last_seq once, in order" if contiguous else f"seqs {seen.seqs[:8]} after last_seq {last_seq}"
    ends = ("no agent_completed" if not seen.results else f"agent_completed {_ending(seen.results[0])}"
            if len(seen.results) == 1 else f"{len(seen.results)} agent_completed")
    errors = f", and error {', '.join(dict.fromkeys(seen.errors))}" if seen.errors else ""
    return f"{order}, {ends}{errors}"


def _resume_racing_completion(length: int) -> Try:
    async def one_try(probe, conn: LiveConnection, watch: Watch, tally: RaceTally, index: int) -> bool:
        cut = await _cut_run(probe, max(1, length - 1 - index % 2))
        if isinstance(cut, str):
            tally.add(f"not provoked: {cut}")
            return True
        run_id, last_seq, token = cut
        seen = watch.track(run_id)
        sent = await conn.send_packed(lambda core, at: core.pack(core.resume_run(at, run_id=run_id, resume_token=token,
                                                                                 last_seq=last_seq)))
        if sent is None:
            return True
        resumed = conn.runs[run_id]
        done = await conn.wait(lambda: resumed.completed or bool(seen.errors), conn.run_deadline(run_id))
        await conn.wait(lambda: len(seen.results) > 1, SETTLE_S)
        tally.add(_resume_answer(seen, last_seq))
        if seen.errors and not seen.types:
            probe.external("resume.replay", False, conn=conn.name, run_id=run_id,
                           expected="the run's events after last_seq, its agent_completed last, once (a run that "
                                    "finished while its client was away is kept for its last events)",
                           observed=f"resume_run refused with {', '.join(seen.errors)} (cut {length - 1 - index % 2} "
                                    "event(s) into the run, just before its end)")
        if not done and conn.open:
            return _silent(tally, "a resumed run did not complete within the run deadline")
        return True
    return one_try


async def _cancel_racing_resume(probe, conn: LiveConnection, watch: Watch, tally: RaceTally, index: int) -> bool:
    cut = await _cut_run(probe, 1)
    if isinstance(cut, str):
        tally.add(f"not provoked: {cut}")
        return True
    run_id, last_seq, token = cut
    seen = watch.track(run_id)

    def build(core, at):
        return core.pack(core.resume_run(at, run_id=run_id, resume_token=token, last_seq=last_seq),
                         core.cancel_run(run_id, at))

    if await conn.send_packed(build) is None:
        return True
    run = conn.runs[run_id]
    done = await conn.wait(lambda: run.completed or "resume_denied" in seen.errors or "resume_expired" in seen.errors,
                           conn.run_deadline(run_id))
    if run.completed and seen.results[0].get("cancelled") is not True:
        await conn.wait(lambda: bool(seen.errors) or len(seen.results) > 1, SETTLE_S)  # the cancel's unknown_run
    answer = _resume_answer(seen, last_seq)
    tally.add(answer)
    details = dict(conn=conn.name, run_id=run_id,
                   expected="the resumed run ends with agent_completed cancelled (the cancel came in the write of "
                            "the resume_run), or, if it had finished while its client was away, its replayed end")
    result = seen.results[0] if seen.results else None
    if result is not None and result.get("cancelled") is True:
        probe.external("cancel.terminal", True, **details)
    elif result is not None:
        # Uncancelled: fine if the run had ended before the server handled the cancel (its end then
        # comes before the unknown_run); an unknown_run first was said of a run in flight here.
        if seen.before("unknown_run", "agent_completed"):
            probe.external("cancel.terminal", False, **details,
                           observed=f"{answer}: the cancel_run sent with the resume_run was answered unknown_run "
                                    "before the resumed run's agent_completed, which then came uncancelled")
    elif not seen.errors:
        probe.external("cancel.terminal", False, **details,
                       observed=f"{answer} (resume_run and cancel_run in one write)")
    if not done and conn.open:
        return _silent(tally, "a resumed run did not complete within the run deadline")
    return True


async def resume_races(probe: ScenarioProbe) -> None:
    """1.1: a resume_run racing the run's own completion (the connection cut on its last events), and a
    cancel_run in the same write as a resume_run. N/A, with the reason, when resume is not claimed."""
    completion = RaceTally("resume_run racing the run's completion")
    cancel = RaceTally("cancel_run in the same write as a resume_run")
    if _resume_unclaimed(probe, completion, cancel):
        return
    calibrated = await _calibrate(probe)
    if calibrated is None or calibrated[1] is None:
        completion.not_applicable = ("no uncut run completed" if calibrated is None else
                                     "the endpoint's agent_started carried no resume_token")
        probe.note(completion.text())
    else:
        await _race(probe, completion, _resume_racing_completion(calibrated[0]))
    if probe.engine.claimed("cancel") is False:
        cancel.not_applicable = "not claimed: the endpoint's capabilities do not declare cancel"
        probe.note(cancel.text())
        return
    await _race(probe, cancel, _cancel_racing_resume)


# -- registration ------------------------------------------------------------------------------

CANCEL_RACES = (cancel_in_start_write, cancel_near_completion)
START_RACES = (duplicate_in_start_write,)
RESUME_RACES = (resume_races,)


def then(run: Callable[[ScenarioProbe], Awaitable[None]], races) -> Callable[[ScenarioProbe], Awaitable[None]]:
    """A scenario's probes, then its races (``races``: async functions of the probe)."""

    async def with_races(probe: ScenarioProbe) -> None:
        await run(probe)
        if probe.connections and not any(r.events for c in probe.connections for r in c.runs.values()):
            # an endpoint that sent no event at all: each race would only wait out more deadlines
            probe.note("the races were not provoked: no run of this scenario sent any event")
            return
        for race in races:
            await race(probe)

    with_races.__doc__ = (run.__doc__ or "").rstrip() + "\n\nThen its races: " + "; ".join(
        (r.__doc__ or r.__name__).strip().split("\n")[0] for r in races)
    with_races.__name__ = run.__name__
    return with_races
