"""Hypothesis strategies: conforming runs, and runs broken in exactly one named way.

For users: property-test your own consumers of agent-events streams (a UI
reducer, a log pipeline) on every shape of conforming stream, and on streams
broken one rule at a time, without hand-writing fixtures::

    from hypothesis import given
    from agent_events.conformance.tooling import strategies as aes

    @given(aes.runs())
    def test_reducer_shows_completed(frames):
        state = reduce(aes.messages(frames))
        assert state.done

    @given(aes.mutations())
    def test_reducer_never_crashes(mutation):
        reduce(aes.messages(mutation.frames))   # mutation.rule says what is broken

Frames are in transcript form (``{"t", "dir", "conn", "msg"}`` dicts, as in
the sequence vectors); :func:`messages` extracts what the client received.
A :class:`Mutation` names the rule it breaks and the rules its change may
legitimately also break (``may_also``); our own tests check that the checker
reports exactly that. Requires ``hypothesis`` (the ``[test]`` extra).
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from typing import Callable

import orjson
from hypothesis import strategies as st

from agent_events.conformance.core import profiles as _profiles
from agent_events.conformance.tooling.synth import AGENT_NAME, EPOCH_MS, RunSpec, Tool, interleave, run_frames

__all__ = [
    "Mutation", "MUTATIONS", "run_specs", "runs", "primary_runs", "fallback_runs", "cancelled_runs",
    "multiplexed_runs", "mutations", "messages",
]

#: Timing bounds that keep every generated valid run inside the default budgets
#: with room to spare, so that a mutation's latency change is the only one.
_FIRST_EVENT_MS = (0.5, 40.0)
_DELIVERY_MS = (0.1, 30.0)
_STEP_MS = (0.2, 15.0)
_FAST_TOOL_MS = (0.05, 3.0)
_SLOW_TOOL_MS = (1.0, 60.0)
_NAMES = st.from_regex(r"[a-z][a-z0-9_]{2,15}", fullmatch=True)


def _floats(bounds: tuple[float, float]) -> st.SearchStrategy[float]:
    return st.floats(*bounds, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 3))


@st.composite
def run_specs(draw, profile: str = _profiles.DEFAULT_PROFILE, *, fallback: bool | None = None,
              cancel: bool | None = False, timing: bool | None = True, client_frames: bool | None = True,
              run_id: str | None = None, conn: str = "c0", start_at: float | None = None) -> RunSpec:
    """Parameters of one valid run; ``None`` for a flag lets hypothesis choose."""
    prof = _profiles.get(profile)
    fallback = draw(st.booleans()) if fallback is None else fallback
    cancel = draw(st.booleans()) if cancel is None else cancel
    timing = draw(st.booleans()) if timing is None else timing
    client_frames = draw(st.booleans()) if client_frames is None else client_frames
    fast = set(prof.fast_tools)

    def tool(name: str) -> Tool:
        return Tool(name, draw(_floats(_FAST_TOOL_MS if name in fast else _SLOW_TOOL_MS)))

    if prof.expected_tools is not None:
        names = list(prof.expected_tools)
        if fallback:  # the primary fails at one of its tools, which still completes
            names = names[: draw(st.integers(1, len(names)))]
        tools = tuple(tool(n) for n in names)
    else:
        tools = tuple(tool(n) for n in draw(st.lists(_NAMES, min_size=1 if fallback else 0, max_size=4)))
    low, high = prof.thinking if prof.thinking is not None else (1, 4)
    thinking = draw(st.integers(low, high))
    events = 1 + thinking + 2 * len(tools)
    spec = RunSpec(
        run_id=run_id if run_id is not None else draw(st.from_regex(r"run-[a-z0-9]{1,12}", fullmatch=True)),
        conn=conn,
        thinking=thinking,
        tools=tools,
        progress=draw(st.integers(0, 2)),
        fallback=fallback,
        fallback_thinking=draw(st.integers(1, 2)),
        cancel_after=draw(st.integers(1, events)) if cancel else None,
        client_frames=client_frames or cancel,
        timing=timing,
        step_ms=draw(_floats(_STEP_MS)),
        delivery_ms=draw(_floats(_DELIVERY_MS)),
        first_event_ms=draw(_floats(_FIRST_EVENT_MS)),
        start_at=start_at if start_at is not None else EPOCH_MS + draw(st.integers(0, 10**6)),
        agent_name=draw(st.sampled_from([AGENT_NAME, "agent-1", "planner.v2"])),
    )
    return spec


def runs(profile: str = _profiles.DEFAULT_PROFILE, **flags) -> st.SearchStrategy[list[dict]]:
    """The frames of one valid run (primary or fallback, timed, with client frames by default)."""
    flags.setdefault("fallback", None)
    return run_specs(profile, **flags).map(run_frames)


def primary_runs(profile: str = _profiles.DEFAULT_PROFILE, **flags) -> st.SearchStrategy[list[dict]]:
    return run_specs(profile, fallback=False, **flags).map(run_frames)


def fallback_runs(profile: str = _profiles.DEFAULT_PROFILE, **flags) -> st.SearchStrategy[list[dict]]:
    return run_specs(profile, fallback=True, **flags).map(run_frames)


def cancelled_runs(profile: str = _profiles.DEFAULT_PROFILE, **flags) -> st.SearchStrategy[list[dict]]:
    flags.setdefault("fallback", None)
    return run_specs(profile, cancel=True, **flags).map(run_frames)


@st.composite
def multiplexed_runs(draw, profile: str = _profiles.DEFAULT_PROFILE, *, runs_per_conn: tuple[int, int] = (2, 4),
                     conns: int = 1) -> list[dict]:
    """Several valid runs in flight at once on each of ``conns`` connections, interleaved by time."""
    per_conn = []
    for c in range(conns):
        count = draw(st.integers(*runs_per_conn))
        start = EPOCH_MS
        specs = [draw(run_specs(profile, fallback=None, run_id=f"run-{c}-{i}", conn=f"c{c}",
                                start_at=start + draw(st.floats(0, 20).map(lambda x: round(x, 3)))))
                 for i in range(count)]
        per_conn.append(interleave(*(run_frames(s) for s in specs)))
    return [f for frames in per_conn for f in frames]


def messages(frames: list[dict]) -> list:
    """What the client received, in order: decoded messages (``str`` / ``bytes`` for raw frames)."""
    out = []
    for f in frames:
        if f.get("dir") != "recv":
            continue
        if "msg" in f:
            out.append(f["msg"])
        elif "text" in f:
            out.append(f["text"])
        else:
            out.append(base64.b64decode(f["binary"]))
    return out


# -- mutations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    """A run broken in one way: ``frames`` violate ``rule`` (and at most ``may_also``)."""

    rule: str
    may_also: frozenset[str]
    description: str
    frames: list[dict]
    profile: str = _profiles.DEFAULT_PROFILE


def _recv(frames: list[dict], type_: str | None = None, *, attempt: int | None = None) -> list[int]:
    """Indexes of received run events (of ``type_``; in attempt 0 primary / 1 fallback)."""
    found, current = [], 0
    for i, f in enumerate(frames):
        msg = f.get("msg")
        if f.get("dir") != "recv" or not isinstance(msg, dict):
            continue
        if msg.get("type") == "agent_started" and msg["payload"].get("attempt") == "fallback":
            current = 1
        if (type_ is None or msg.get("type") == type_) and (attempt is None or attempt == current):
            found.append(i)
    return found


def _renumber(frames: list[dict]) -> list[dict]:
    """Make every run's seq contiguous again after an insertion or removal."""
    counters: dict[tuple, int] = {}
    for f in frames:
        msg = f.get("msg")
        if f.get("dir") == "recv" and isinstance(msg, dict) and "seq" in msg:
            key = (f.get("conn", "c0"), msg["run_id"])
            msg["seq"] = counters.get(key, 0)
            counters[key] = msg["seq"] + 1
    return frames


def _event_like(frames: list[dict], at: int, type_: str, payload: dict) -> dict:
    """A new frame for the same run as ``frames[at]``, at the same time."""
    base = frames[at]
    msg = {**copy.deepcopy(base["msg"]), "type": type_, "payload": payload}
    frame = {**base, "msg": msg}
    return frame


def _shift(frames: list[dict], start: int, ms: float, *, only: int | None = None) -> None:
    """Move frames (from ``start``, or just ``only``) later by ``ms`` on both clocks."""
    for i, f in enumerate(frames):
        if (only is None and i >= start) or i == only:
            if "t" in f:
                f["t"] = round(f["t"] + ms, 3)
            if isinstance(f.get("msg"), dict) and "emitted_at" in f["msg"]:
                f["msg"]["emitted_at"] = round(f["msg"]["emitted_at"] + ms, 3)




@dataclass(frozen=True)
class _MutationKind:
    base: Callable[[str], st.SearchStrategy[RunSpec]]
    mutate: Callable
    may_also: frozenset[str] = frozenset()
    profile_rule: bool = False


def _any(profile):
    return run_specs(profile, fallback=None, cancel=None)


def _timed(profile):
    return run_specs(profile, fallback=None, cancel=None, timing=True, client_frames=True)


def _plain_primary(profile):
    return run_specs(profile, fallback=False, cancel=False)


def _m_frame_text(draw, frames, profile):
    i = draw(st.sampled_from(_recv(frames)))
    frames[i] = {k: v for k, v in frames[i].items() if k != "msg"} | {
        "binary": base64.b64encode(orjson.dumps(frames[i]["msg"])).decode()}
    return frames, f"frame {i} sent as a binary frame"


def _m_frame_json(draw, frames, profile):
    candidates = _recv(frames, "progress")
    if not candidates:
        return None
    i = draw(st.sampled_from(candidates))
    text = orjson.dumps(frames[i]["msg"]).decode()
    frames[i] = {k: v for k, v in frames[i].items() if k != "msg"} | {"text": text[: draw(st.integers(1, len(text) - 1))]}
    return frames, f"progress frame {i} truncated"


def _m_envelope(draw, frames, profile):
    i = draw(st.sampled_from(_recv(frames)))
    frames[i]["msg"][draw(st.sampled_from(["trace", "timestamp", "x"]))] = "extra"
    return frames, f"frame {i} has a property the envelope does not allow"


def _m_payload(draw, frames, profile):
    i = draw(st.sampled_from(_recv(frames, "agent_thinking")))
    del frames[i]["msg"]["payload"]["message"]
    return frames, f"agent_thinking {i} has no message"


def _m_unknown_type(draw, frames, profile):
    i = draw(st.sampled_from(_recv(frames)))
    extra = _event_like(frames, i, "agent_dreaming", {"message": "zzz"})
    del extra["msg"]["seq"]
    frames.insert(i + 1, extra)
    return frames, f"an agent_dreaming after frame {i}"


def _m_seq(draw, frames, profile):
    i = draw(st.sampled_from(_recv(frames)[1:]))
    frames[i]["msg"]["seq"] += draw(st.sampled_from([-1, 1, 2]))
    return frames, f"seq of frame {i} changed"


def _m_first_started(draw, frames, profile):
    first = _recv(frames)[0]
    if draw(st.booleans()):
        frames[first]["msg"]["payload"]["attempt"] = "fallback"
        return frames, "the first agent_started says attempt fallback"
    second = _recv(frames)[1]
    frames[first]["msg"], frames[second]["msg"] = frames[second]["msg"], frames[first]["msg"]
    return _renumber(frames), "agent_thinking before agent_started"


def _m_completed_last(draw, frames, profile):
    last = _recv(frames, "agent_completed")[0]
    if draw(st.booleans()):
        del frames[last]
        return frames, "no agent_completed"
    extra = _event_like(frames, last, "progress", {"message": "late"})
    frames.insert(last + 1, extra)
    return _renumber(frames), "a progress after agent_completed"


def _m_thinking(draw, frames, profile):
    for i in reversed(_recv(frames, "agent_thinking", attempt=0)):
        del frames[i]
    return _renumber(frames), "no agent_thinking in the primary attempt"


def _m_tool_matched(draw, frames, profile):
    # (in a fallback run the open tool would also break fallback.continuity: primary runs only)
    done = _recv(frames, "tool_completed", attempt=0)
    if not done:
        return None
    del frames[draw(st.sampled_from(done))]
    return _renumber(frames), "a tool_completed is missing"


def _m_no_orphan(draw, frames, profile):
    i = draw(st.sampled_from(_recv(frames, "agent_thinking", attempt=0)))
    frames.insert(i + 1, _event_like(frames, i, "tool_completed", {
        "tool_call_id": "orphan-1", "tool_name": "ghost_tool", "status": "success", "message": "done",
        "duration_ms": 1.0}))
    return _renumber(frames), "a tool_completed with no tool_executing"


def _m_unique_id(draw, frames, profile):
    calls = _recv(frames, "tool_executing")
    if len(calls) < 2:
        return None
    first_id = frames[calls[0]]["msg"]["payload"]["tool_call_id"]
    second_id = frames[calls[1]]["msg"]["payload"]["tool_call_id"]
    for i in _recv(frames):
        payload = frames[i]["msg"]["payload"]
        if payload.get("tool_call_id") == second_id:
            payload["tool_call_id"] = first_id
    return frames, "a tool_call_id is used twice"


def _m_single(draw, frames, profile):
    fallback = _recv(frames, "agent_started", attempt=1)
    if fallback:
        at = fallback[0]
        extra = _event_like(frames, at, "agent_started", {"message": "again", "attempt": draw(
            st.sampled_from(["primary", "fallback"]))})
    else:
        at = _recv(frames, "agent_thinking", attempt=0)[0]
        extra = _event_like(frames, at, "agent_started", {"message": "again", "attempt": "primary"})
    frames.insert(at + 1, extra)
    return _renumber(frames), "an extra agent_started"


def _m_flag(draw, frames, profile):
    last = _recv(frames, "agent_completed")[0]
    result = frames[last]["msg"]["payload"]["result"]
    result["fallback_used"] = not result["fallback_used"]
    return frames, "fallback_used flipped"


def _m_continuity(draw, frames, profile):
    at = _recv(frames, "agent_started", attempt=1)[0]
    payload = {"tool_call_id": "fb-tool-1", "tool_name": "fallback_tool", "message": "running"}
    frames.insert(at + 1, _event_like(frames, at, "tool_executing", payload))
    frames.insert(at + 2, _event_like(frames, at, "tool_completed", {
        **payload, "status": "success", "message": "done", "duration_ms": 0.5}))
    return _renumber(frames), "a tool pair in the fallback attempt"


def _m_isolation(draw, frames, profile):
    other = run_frames(draw(run_specs(profile, fallback=False, run_id="run-other-conn", conn="c9",
                                      start_at=frames[0].get("t", EPOCH_MS))))
    leaked = copy.deepcopy(draw(st.sampled_from([f for f in other if f["dir"] == "recv"])))
    leaked["conn"] = frames[0].get("conn", "c0")
    return frames + other + [leaked], "an event of another connection's run"


def _m_first_event(draw, frames, profile):
    budget = _profiles.get(profile).first_event_ms
    _shift(frames, 1, budget + draw(st.floats(1, 500).map(lambda x: round(x, 3))))
    return frames, "every event later than the first-event budget"


def _m_delivery(draw, frames, profile):
    budget = _profiles.get(profile).delivery_ms
    i = draw(st.sampled_from(_recv(frames)))
    frames[i]["msg"]["emitted_at"] = round(frames[i]["msg"]["emitted_at"] - budget - draw(st.floats(1, 1000)), 3)
    return frames, f"frame {i} delivered late"


def _m_capabilities_late(draw, frames, profile):
    """1.1: a capabilities message that is not the connection's first server message."""
    i = draw(st.sampled_from(_recv(frames)))
    caps = {"type": "capabilities", "protocol_version": "1.1", "features": {"cancel": True}}
    frames.insert(i + 1, {**{k: v for k, v in frames[i].items() if k != "msg"}, "msg": caps})
    return frames, f"capabilities after frame {i}"


RESUME_TOKEN = "strategy-resume-token-0001"


def _m_resume_replay(draw, frames, profile):
    """1.1: the run's connection drops after some event; a resume_run on a new connection gets the
    rest, with one event repeated or left out."""
    recv = _recv(frames)
    first = frames[recv[0]]
    first["msg"]["payload"]["resume_token"] = RESUME_TOKEN
    cut = draw(st.integers(0, len(recv) - 2))  # the last event the first connection received
    last_seq = frames[recv[cut]]["msg"]["seq"]
    conn = first.get("conn", "c0")
    at = frames[recv[cut]]["t"] + 0.5 if "t" in frames[recv[cut]] else None
    timed = {"t": at} if at is not None else {}
    resumed = f"{conn}-resumed"
    head = frames[:recv[cut] + 1]
    tail = [{**f, "conn": resumed} for f in frames[recv[cut] + 1:] if f.get("dir") == "recv"]
    if draw(st.booleans()) or len(tail) < 2:
        tail.insert(0, copy.deepcopy({**frames[recv[cut]], "conn": resumed}))  # seq last_seq again
        what = f"seq {last_seq} replayed twice"
    else:
        del tail[0]
        what = f"seq {last_seq + 1} left out of the replay"
    frames[:] = head + [{**timed, "dir": "close", "conn": conn},
                        {**timed, "dir": "send", "conn": resumed,
                         "msg": {"type": "resume_run", "run_id": first["msg"]["run_id"],
                                 "resume_token": RESUME_TOKEN, "last_seq": last_seq}}] + tail
    return frames, f"resumed after seq {last_seq}: {what}"


def _m_tool_gap(draw, frames, profile):
    prof = _profiles.get(profile)
    done = [i for i in _recv(frames, "tool_completed")
            if frames[i]["msg"]["payload"]["tool_name"] in prof.fast_tools]
    if not done:
        return None
    _shift(frames, draw(st.sampled_from(done)), prof.tool_gap_ms + draw(st.floats(1, 50).map(lambda x: round(x, 3))))
    return frames, "a fast tool is slow"


def _m_deadline(draw, frames, profile):
    last = _recv(frames, "agent_completed")[0]
    _shift(frames, last, _profiles.get(profile).deadline_s * 1000.0 + draw(st.floats(1, 10**5)), only=last)
    return frames, "agent_completed after the deadline"


def _m_profile_tools(draw, frames, profile):
    calls = _recv(frames, "tool_executing")
    i = draw(st.sampled_from(calls))
    call_id = frames[i]["msg"]["payload"]["tool_call_id"]
    if draw(st.booleans()):
        for j in reversed(_recv(frames)):
            if frames[j]["msg"]["payload"].get("tool_call_id") == call_id:
                del frames[j]
        return _renumber(frames), "a tool pair is missing"
    for j in _recv(frames):
        if frames[j]["msg"]["payload"].get("tool_call_id") == call_id:
            frames[j]["msg"]["payload"]["tool_name"] = "other_tool"
    return frames, "a tool is replaced by another"


def _m_profile_thinking(draw, frames, profile):
    low, high = _profiles.get(profile).thinking
    thinking = _recv(frames, "agent_thinking", attempt=0)
    if draw(st.booleans()) and low > 1:
        for i in reversed(thinking[: len(thinking) - (low - 1)]):
            del frames[i]
        return _renumber(frames), "too few agent_thinking"
    for _ in range(high + 1 - len(thinking)):
        frames.insert(thinking[-1] + 1, _event_like(frames, thinking[-1], "agent_thinking", {"message": "more"}))
    return _renumber(frames), "too many agent_thinking"


MUTATIONS: dict[str, _MutationKind] = {
    "frame.text": _MutationKind(_any, _m_frame_text),
    "frame.json": _MutationKind(lambda p: run_specs(p, fallback=False, cancel=False).filter(lambda s: s.progress > 0),
                                _m_frame_json, frozenset({"seq.contiguous"})),
    "schema.envelope": _MutationKind(_any, _m_envelope),
    "schema.payload": _MutationKind(_plain_primary, _m_payload),
    "schema.unknown_type": _MutationKind(_any, _m_unknown_type),
    "seq.contiguous": _MutationKind(_any, _m_seq),
    "order.first_started": _MutationKind(_plain_primary, _m_first_started),
    "order.completed_last": _MutationKind(lambda p: run_specs(p, fallback=None, cancel=False), _m_completed_last),
    "order.thinking": _MutationKind(_plain_primary, _m_thinking, frozenset({"profile.actions.thinking"})),
    "pair.tool_matched": _MutationKind(_plain_primary, _m_tool_matched),
    "pair.no_orphan": _MutationKind(_plain_primary, _m_no_orphan),
    "pair.unique_id": _MutationKind(_plain_primary, _m_unique_id),
    "fallback.single": _MutationKind(lambda p: run_specs(p, fallback=None, cancel=False), _m_single),
    "fallback.flag": _MutationKind(lambda p: run_specs(p, fallback=None, cancel=False), _m_flag),
    "fallback.continuity": _MutationKind(lambda p: run_specs(p, fallback=True, cancel=False), _m_continuity),
    "isolation.run_scope": _MutationKind(lambda p: run_specs(p, fallback=None, cancel=False, client_frames=True),
                                         _m_isolation),
    "latency.first_event": _MutationKind(_timed, _m_first_event),
    # an earlier emitted_at of a fast tool's tool_executing also lengthens its tool gap (server stamps)
    "latency.delivery": _MutationKind(_timed, _m_delivery, frozenset({"latency.tool_gap"})),
    "latency.tool_gap": _MutationKind(lambda p: run_specs(p, fallback=False, cancel=False, timing=True), _m_tool_gap),
    "latency.run_deadline": _MutationKind(lambda p: run_specs(p, fallback=None, cancel=False, timing=True),
                                          _m_deadline),
    "capabilities.first": _MutationKind(_any, _m_capabilities_late),
    # a repeated event may also be a second agent_started, tool_completed or agent_completed
    "resume.replay": _MutationKind(_plain_primary, _m_resume_replay,
                                   frozenset({"fallback.single", "fallback.continuity", "fallback.flag", "pair.unique_id",
                                              "pair.no_orphan", "order.completed_last", "pair.tool_matched",
                                              "order.thinking", "profile.actions.thinking",
                                              "profile.actions.tools", "latency.tool_gap"})),
    "profile.actions.tools": _MutationKind(_plain_primary, _m_profile_tools, profile_rule=True),
    "profile.actions.thinking": _MutationKind(_plain_primary, _m_profile_thinking, profile_rule=True),
}


def mutation_rules(profile: str = _profiles.DEFAULT_PROFILE) -> list[str]:
    """The rules :func:`mutations` can break under ``profile``."""
    prof = _profiles.get(profile)
    return [rule for rule, kind in MUTATIONS.items()
            if (not kind.profile_rule or rule in prof.rule_ids)
            and (rule != "latency.tool_gap" or prof.fast_tools)]


@st.composite
def mutations(draw, rule: str | None = None, profile: str = _profiles.DEFAULT_PROFILE) -> Mutation:
    """A run that breaks ``rule`` (any breakable rule when ``None``)."""
    rule = draw(st.sampled_from(mutation_rules(profile))) if rule is None else rule
    kind = MUTATIONS[rule]
    frames = copy.deepcopy(run_frames(draw(kind.base(profile))))
    done = kind.mutate(draw, frames, profile)
    if done is None:  # this base run offers nothing to break that way: try another
        from hypothesis import assume

        assume(False)
    frames, description = done
    return Mutation(rule, kind.may_also, description, frames, profile)
