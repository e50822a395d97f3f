"""How the proxy finds what a fault names in an upstream frame: a run event's ``seq``, or the frame itself.

A fault is addressed one of two ways (:mod:`agent_events.proxy.faults`):

* by ``seq`` (``drop:3``): the run event whose sequence number is 3, in every run. That needs
  the dialect's ``seq`` pointer (and, for runs that interleave on one connection, its run id
  pointer): ours has both (``/seq``, ``/run_id``); a dialect file may name them;
* by frame index (``drop:frame=3``): the fourth data frame (text or binary message) the
  upstream sends on a connection after the handshake, whatever it holds. Every dialect has
  frames, so this is how an AG-UI stream (no seq) or a home-grown shape without one is broken.

:class:`Addressing` is data built from a :class:`~agent_events.dialects.Dialect`: where the seq
and the run id are, how a frame decodes, and why a dialect without seq has none (its
``seq.contiguous`` N/A reason, so the usage error says it in the dialect's own words). The
planner asks it one question per frame (:meth:`Addressing.address`); nothing here does I/O.

Lanes: the events of a run keep their order behind a delay or a swap, and a run's lane is its run
id. Every other frame (ours: ``capabilities``, ``time_sync`` replies; a dialect without seq or
without run ids: every frame) is in the connection's lane, :data:`CONNECTION`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from agent_events.dialects import AGENT_EVENTS, Dialect, Pointer, resolve
from agent_events.dialects.framing import FrameProblem, decode

#: The lane of the frames that belong to no run the proxy can tell apart (never equal to a run id, a str).
CONNECTION: tuple[str] = ("connection",)


@dataclass(frozen=True)
class Addressing:
    """Where a frame's seq and run are, for one dialect (``seq is None``: faults address frames only)."""

    label: str
    seq: Pointer | None
    run_id: Pointer | None = None
    framing: str = "json"
    envelope: Pointer | None = None
    #: why there is no seq (a dialect without one): said by the usage error of a seq-addressed fault
    no_seq_reason: str | None = None

    @classmethod
    def of(cls, dialect: "Dialect | str | None") -> "Addressing":
        """The addressing of a dialect (a name, a dialect file path, a :class:`Dialect`; ``None``: ours)."""
        dialect = resolve(dialect)
        reason = None
        if dialect.seq is None:
            reason = dialect.not_applicable.get("seq.contiguous") or f"dialect {dialect.name} names no seq field"
        keyed = dialect.runs.scope == "keyed" and dialect.run_id is not None
        return cls(label=f"dialect {dialect.label}", seq=dialect.seq, run_id=dialect.run_id if keyed else None,
                   framing=dialect.framing, envelope=dialect.envelope, no_seq_reason=reason)

    @property
    def has_seq(self) -> bool:
        return self.seq is not None

    def address(self, kind: str, data: bytes) -> tuple[str | None, int] | None:
        """``(run_id, seq)`` of a run event (``run_id`` ``None`` when runs are positional), ``None`` for
        any other frame: not text, not the dialect's framing, no integer seq, no string run id. A frame
        holding several events (SSE records) is addressed by its first."""
        seq_at = self.seq
        if kind != "text" or seq_at is None:
            return None
        event: Any
        if self.framing == "json":
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                return None
        else:
            try:
                event = decode(data, self.framing, self.envelope)[0]
            except (FrameProblem, IndexError):
                return None
        if type(event) is not dict:
            return None
        seq = seq_at.resolve(event, None)
        if type(seq) is not int:  # bool is not a seq
            return None
        if self.run_id is None:
            return None, seq
        run_id = self.run_id.resolve(event, None)
        if type(run_id) is not str:
            return None
        return run_id, seq


#: Ours, the default: ``/seq`` in runs keyed by ``/run_id``, one JSON object per frame.
OURS = Addressing.of(AGENT_EVENTS)
