"""Fault specs: the text a user writes (``drop:3``, ``drop:frame=3``, ``drop=0.1``) parsed into values, or a clear error.

Pure and I/O-free, so the CLI, the Python API and the pytest fixture accept
exactly the same forms and reject the same mistakes with the same message.

=========================  ======================================================================
spec                       effect on the server-to-client run events of every run
=========================  ======================================================================
``drop:SEQ``               the event is not forwarded
``dup:SEQ``                the event is forwarded twice
``swap:SEQ``               the event is forwarded after the next event of its run
``delay:SEQ:MS``           the event is held MS ms; later events of its run wait behind it
``corrupt:SEQ``            the frame is replaced by text that is not JSON
``cut:SEQ``                the client connection is dropped, without a close frame, just before the event
``stall:MS``               after the first event of each run, nothing of that run is forwarded for MS ms
``drip:BYTES_PER_S``       the client-bound byte stream is throttled to BYTES_PER_S
``coalesce:N``             client to server: every N consecutive client frames reach the server in
                           ONE write (one TCP segment, one read), so that ``start_run`` and
                           ``cancel_run`` (say) meet the server's receive loop together
=========================  ======================================================================

The six event faults take an address: ``SEQ`` (or ``seq=SEQ``), a run event's
``seq`` in every run, or ``frame=I``, the index from 0 of a data frame (a text
or binary message) the upstream sends on each connection after the handshake,
whatever it holds (``drop:frame=6``, ``delay:frame=2:500``). A dialect with no
seq (AG-UI; a dialect file without a ``seq`` field) can only be addressed by
frame: :func:`make_plan` refuses a seq address for it, naming why, and its
random faults are drawn per frame. For such a dialect a frame is in its
connection's one lane, so "its run" above reads "its connection" and a stall
holds the connection after its first frame (see :mod:`agent_events.proxy.addressing`).

``coalesce`` is the one fault on the client's frames: it provokes the races a
polite client never shows (a cancel read with the start of its run), from the
team's own client. A group still short of N frames after
:data:`COALESCE_WAIT_MS` goes on as it is: a client that waits for an answer
before it sends more is slowed, never stalled.

A random plan (``drop=0.1,dup=0.05,delay=0.1:200``) gives each run event at
most one fault, with those probabilities, drawn from a generator seeded by
``(seed, connection, run_id, seq)``: the same seed on the same upstream
stream picks the same faults, whatever the timing or the concurrency. With a
dialect that has no seq it gives each frame at most one, seeded by ``(seed,
connection, frame index)``: as reproducible, by frame.
"""

from __future__ import annotations

import math
import random as _random
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Iterable, Mapping

if TYPE_CHECKING:
    from agent_events.proxy.addressing import Addressing

#: The faults addressed to one event, by its seq.
EVENT_KINDS = ("drop", "dup", "swap", "delay", "corrupt", "cut")
#: The faults that apply to a whole run or connection.
STREAM_KINDS = ("stall", "drip")
#: The faults on the client-to-server frames.
CLIENT_KINDS = ("coalesce",)
KINDS = EVENT_KINDS + STREAM_KINDS + CLIENT_KINDS
#: coalesce:N: N from 2 (a pair is the smallest race) to this.
MAX_COALESCE = 1000
#: How long a coalesce group short of N frames is held before it goes on as it is (ms).
COALESCE_WAIT_MS = 200.0
#: The kinds a random plan can pick (per event).
RANDOM_KINDS = EVENT_KINDS

#: How an event fault names its frame: ``SEQ``/``seq=SEQ`` (a run event's seq) or ``frame=I`` (the frame's index).
ADDRESSES = ("seq", "frame")

ACCEPTED_FORMS = ("drop:SEQ, dup:SEQ, swap:SEQ, delay:SEQ:MS, corrupt:SEQ, cut:SEQ, each also addressed by frame "
                  "index as drop:frame=I, delay:frame=I:MS, ..., stall:MS, drip:BYTES_PER_S, coalesce:N (SEQ an "
                  "integer >= 0, a run event's seq; I an integer >= 0, the index of a data frame the upstream sends "
                  "on a connection, from 0; MS milliseconds > 0, BYTES_PER_S an integer >= 1, N client frames "
                  f"per write, 2 to {MAX_COALESCE})")
RANDOM_FORMS = ("comma-separated KIND=P with P a probability in [0, 1] and KIND one of drop, dup, swap, corrupt, cut, "
                "or delay=P:MS; the probabilities add up to at most 1 (e.g. drop=0.1,dup=0.05,delay=0.1:200)")

#: Bounds that keep a plan finite: an hour of delay, a seq within JSON's exact integers.
MAX_MS = 3_600_000.0
MAX_SEQ = 2**53
MAX_BYTES_PER_S = 2**40


class FaultSpecError(ValueError):
    """A fault spec that is not one of the accepted forms; the message names the spec and the forms."""


@dataclass(frozen=True)
class Fault:
    """One fault: ``kind`` and, as the kind needs them, its address (``seq``, or ``frame``: a frame
    index) and ``value`` (MS or BYTES_PER_S)."""

    kind: str
    seq: int | None = None
    value: float | None = None
    frame: int | None = None

    def __str__(self) -> str:
        """The spec form, accepted back by :func:`parse_fault`."""
        value = None if self.value is None else f"{self.value:g}" if self.value != int(self.value) else str(int(self.value))
        at = f"frame={self.frame}" if self.frame is not None else self.seq
        parts = [self.kind] + [str(p) for p in (at, value) if p is not None]
        return ":".join(parts)


def _bad(spec: str, why: str) -> FaultSpecError:
    return FaultSpecError(f"bad fault {spec!r}: {why}; accepted forms: {ACCEPTED_FORMS}")


def _seq(spec: str, text: str, what: str = "SEQ") -> int:
    try:
        seq = int(text, 10)
    except ValueError:
        raise _bad(spec, f"{what} must be an integer, not {text!r}") from None
    if not 0 <= seq < MAX_SEQ:
        raise _bad(spec, f"{what} must be between 0 and 2**53, not {seq}")
    return seq


def _address(spec: str, text: str) -> dict[str, int]:
    """``"3"``/``"seq=3"`` -> ``{"seq": 3}``; ``"frame=3"`` -> ``{"frame": 3}``."""
    name, sep, number = text.partition("=")
    if not sep:
        return {"seq": _seq(spec, text)}
    name = name.strip().lower()
    if name not in ADDRESSES:
        raise _bad(spec, f"{name!r} is not an address: give SEQ, seq=SEQ or frame=I")
    return {name: _seq(spec, number.strip(), "SEQ" if name == "seq" else "I (a frame index)")}


def _ms(spec: str, text: str, what: str = "MS") -> float:
    try:
        ms = float(text)
    except ValueError:
        raise _bad(spec, f"{what} must be a number of milliseconds, not {text!r}") from None
    if not (math.isfinite(ms) and 0 < ms <= MAX_MS):
        raise _bad(spec, f"{what} must be more than 0 and at most {MAX_MS:.0f} (an hour), not {text}")
    return ms


def parse_fault(spec: "str | Fault") -> Fault:
    """``"delay:3:200"`` -> ``Fault("delay", 3, 200.0)``; :class:`FaultSpecError` for anything else."""
    if isinstance(spec, Fault):
        return parse_fault(str(spec))
    if not isinstance(spec, str):
        raise FaultSpecError(f"bad fault {spec!r}: a fault is a string; accepted forms: {ACCEPTED_FORMS}")
    parts = spec.strip().split(":")
    kind, args = parts[0].strip().lower(), [p.strip() for p in parts[1:]]
    arity = {"delay": 2, "stall": 1, "drip": 1}.get(kind, 1)
    if kind not in KINDS:
        raise _bad(spec, f"unknown fault {kind!r}")
    if len(args) != arity:
        form = {"delay": "delay:SEQ:MS or delay:frame=I:MS", "stall": "stall:MS", "drip": "drip:BYTES_PER_S",
                "coalesce": "coalesce:N"}.get(kind, f"{kind}:SEQ or {kind}:frame=I")
        raise _bad(spec, f"{kind} is written {form}")
    if kind == "coalesce":
        try:
            count = int(args[0], 10)
        except ValueError:
            raise _bad(spec, f"N must be an integer, not {args[0]!r}") from None
        if not 2 <= count <= MAX_COALESCE:
            raise _bad(spec, f"N must be between 2 and {MAX_COALESCE} (frames per write), not {count}")
        return Fault("coalesce", None, float(count))
    if kind == "stall":
        return Fault("stall", None, _ms(spec, args[0]))
    if kind == "drip":
        try:
            rate = int(args[0], 10)
        except ValueError:
            raise _bad(spec, f"BYTES_PER_S must be an integer, not {args[0]!r}") from None
        if not 1 <= rate <= MAX_BYTES_PER_S:
            raise _bad(spec, f"BYTES_PER_S must be at least 1, not {rate}")
        return Fault("drip", None, float(rate))
    at = _address(spec, args[0])
    if kind == "delay":
        return Fault("delay", value=_ms(spec, args[1]), **at)
    return Fault(kind, **at)


@dataclass(frozen=True)
class RandomPlan:
    """Per-event probabilities ``(kind, p, ms)`` and the seed that makes the draws reproducible.

    ``by``: what gets a draw, each run event by its seq (``"seq"``) or each frame by its index
    (``"frame"``, for a dialect without seq; :func:`make_plan` decides it from the dialect)."""

    choices: tuple[tuple[str, float, float | None], ...]
    seed: int = 0
    by: str = "seq"

    def __str__(self) -> str:
        return ",".join(f"{k}={p:g}" + (f":{ms:g}" if ms is not None else "") for k, p, ms in self.choices)

    def pick(self, connection: int, run_id: str, seq: int) -> Fault | None:
        """The fault for this event, or ``None``: a pure function of the seed and the event's address."""
        return self._draw(f"{self.seed}/{connection}/{run_id}/{seq}", {"seq": seq})

    def pick_frame(self, connection: int, frame: int) -> Fault | None:
        """The fault for this frame, or ``None``: a pure function of the seed, the connection and the index."""
        return self._draw(f"{self.seed}/{connection}/frame/{frame}", {"frame": frame})

    def _draw(self, key: str, at: dict[str, int]) -> Fault | None:
        draw = _random.Random(key).random()
        edge = 0.0
        for kind, p, ms in self.choices:
            edge += p
            if draw < edge:
                return Fault(kind, value=ms, **at)
        return None


def _bad_random(spec: str, why: str) -> FaultSpecError:
    return FaultSpecError(f"bad random plan {spec!r}: {why}; accepted form: {RANDOM_FORMS}")


def parse_random(spec: "str | Mapping[str, float | str] | RandomPlan", seed: int = 0) -> RandomPlan:
    """``"drop=0.1,delay=0.05:200"`` (or ``{"drop": 0.1, "delay": "0.05:200"}``) -> :class:`RandomPlan`."""
    if isinstance(spec, RandomPlan):
        spec = str(spec)
    if isinstance(spec, Mapping):
        spec = ",".join(f"{k}={v}" for k, v in spec.items())
    if not isinstance(spec, str):
        raise _bad_random(repr(spec), "a random plan is a string")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise _bad_random(spec, f"the seed must be an integer, not {seed!r}")
    choices: list[tuple[str, float, float | None]] = []
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        kind, sep, value = item.partition("=")
        kind = kind.strip().lower()
        if not sep:
            raise _bad_random(spec, f"{item!r} is not KIND=P")
        if kind not in RANDOM_KINDS:
            raise _bad_random(spec, f"{kind!r} cannot be random")
        if any(k == kind for k, _, _ in choices):
            raise _bad_random(spec, f"{kind} is given twice")
        p_text, colon, ms_text = value.partition(":")
        if (kind == "delay") != bool(colon):
            raise _bad_random(spec, "delay is written delay=P:MS" if kind == "delay" else f"{kind} is written {kind}=P")
        try:
            p = float(p_text)
        except ValueError:
            raise _bad_random(spec, f"{p_text!r} is not a probability") from None
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise _bad_random(spec, f"{p_text} is not a probability in [0, 1]")
        ms = None
        if kind == "delay":
            try:
                ms = _ms(spec, ms_text)
            except FaultSpecError:
                raise _bad_random(spec, f"MS must be a number of milliseconds in (0, {MAX_MS:.0f}], not {ms_text!r}") from None
        choices.append((kind, p, ms))
    if not choices:
        raise _bad_random(spec, "no fault given")
    if sum(p for _, p, _ in choices) > 1.0 + 1e-9:
        raise _bad_random(spec, "the probabilities add up to more than 1")
    return RandomPlan(tuple(choices), seed)


@dataclass(frozen=True)
class FaultPlan:
    """Everything a proxy injects: faults by seq and by frame index, the per-run stall, the drip
    rate, the random plan; and how a frame's seq and run are found (``addressing``: ours when ``None``)."""

    by_seq: Mapping[int, Fault]
    stall_ms: float | None = None
    drip_bytes_per_s: float | None = None
    random: RandomPlan | None = None
    #: coalesce:N: client frames per write to the server (``None``: each as it came)
    coalesce: int | None = None
    by_frame: Mapping[int, Fault] = field(default_factory=dict)
    addressing: "Addressing | None" = None

    @property
    def empty(self) -> bool:
        """No fault on the server-to-client stream (``coalesce`` is on the other one)."""
        return (not self.by_seq and not self.by_frame and self.stall_ms is None and self.drip_bytes_per_s is None
                and self.random is None)

    def describe(self) -> str:
        parts = [str(f) for f in self.by_seq.values()] + [str(f) for f in self.by_frame.values()]
        if self.stall_ms is not None:
            parts.append(str(Fault("stall", None, self.stall_ms)))
        if self.drip_bytes_per_s is not None:
            parts.append(str(Fault("drip", None, self.drip_bytes_per_s)))
        if self.random is not None:
            parts.append(f"random {self.random} (seed {self.random.seed}, by {self.random.by})")
        if self.coalesce is not None:
            parts.append(str(Fault("coalesce", None, self.coalesce)))
        return ", ".join(parts) or "none (transparent)"


def make_plan(faults: Iterable["str | Fault"] = (), random: "str | Mapping | RandomPlan | None" = None,
              seed: int = 0, addressing: "Addressing | None" = None) -> FaultPlan:
    """A :class:`FaultPlan` from specs; :class:`FaultSpecError` for a bad spec, two faults on one seq
    or one frame, or a seq address where ``addressing`` (the dialect's; ``None``: ours) has no seq."""
    if isinstance(faults, (str, Fault)):
        faults = [faults]
    no_seq = addressing.no_seq_reason if addressing is not None and not addressing.has_seq else None
    by_seq: dict[int, Fault] = {}
    by_frame: dict[int, Fault] = {}
    stall = drip = coalesce = None
    for spec in faults:
        fault = parse_fault(spec)
        if fault.kind == "coalesce":
            if coalesce is not None:
                raise _bad(str(spec), "coalesce is given twice; give one coalesce:N")
            coalesce = int(fault.value)
        elif fault.kind == "stall":
            if stall is not None:
                raise _bad(str(spec), "stall is given twice; give one stall:MS")
            stall = fault.value
        elif fault.kind == "drip":
            if drip is not None:
                raise _bad(str(spec), "drip is given twice; give one drip:BYTES_PER_S")
            drip = fault.value
        elif fault.frame is not None:
            if fault.frame in by_frame:
                raise _bad(str(spec), f"frame {fault.frame} already has the fault {by_frame[fault.frame]}; "
                                      "give each frame at most one fault")
            by_frame[fault.frame] = fault
        else:
            if no_seq is not None:
                by_frame_form = str(Fault(fault.kind, None, fault.value, frame=fault.seq))
                raise _bad(str(spec), f"{addressing.label} has no seq ({no_seq}), so a fault cannot be addressed "
                                      f"by seq; address the frame instead, e.g. {by_frame_form} (the index from 0 of "
                                      "a data frame the upstream sends on each connection)")
            if fault.seq in by_seq:
                raise _bad(str(spec), f"seq {fault.seq} already has the fault {by_seq[fault.seq]}; "
                                      "give each seq at most one fault")
            by_seq[fault.seq] = fault
    plan_random = parse_random(random, seed) if random is not None else None
    if plan_random is not None and no_seq is not None:
        plan_random = replace(plan_random, by="frame")
    return FaultPlan(by_seq, stall, drip, plan_random, coalesce, by_frame, addressing)
