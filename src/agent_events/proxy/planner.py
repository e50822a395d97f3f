"""The fault planner: a pure state machine from upstream frames to forwarding actions.

No sockets, no clock, no tasks: :meth:`Planner.receive` is given each
server-to-client frame as it arrived (kind, raw bytes, the caller's clock in
milliseconds) and returns what to do with it, in order:

* :class:`Forward` - send these bytes to the client, not before ``not_before``,
  in the FIFO ``lane`` of its run (``None``: a frame outside any run, at once);
* :class:`Cut` - drop the client connection without a close frame, once every
  earlier frame of the lane has left;
* :class:`Applied` - a fault was applied: the record to log.

The client's frames go the other way through :meth:`Planner.from_client`,
which returns :class:`Upstream` actions: the frames to write to the server in
ONE write (``coalesce:N`` groups N of them; without it, each frame alone).
A group still short of N is released by :meth:`Planner.flush_client` once the
shell's clock passes :attr:`Planner.client_deadline`.

So a test can drive it with made-up frames and times, and the asyncio shell
(:mod:`agent_events.proxy.server`) stays a loop of ``recv``, ``receive``,
``send``. A run event is a JSON object with a string ``run_id`` and an
integer ``seq``; everything else (time_sync replies, errors, garbage) is
forwarded untouched, in arrival order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

import orjson

from agent_events.proxy.faults import COALESCE_WAIT_MS, Fault, FaultPlan

Kind = Literal["text", "binary"]

#: Runs whose state one connection keeps; the oldest are forgotten beyond this (a flood of run_ids).
MAX_RUNS_TRACKED = 10_000


@dataclass(frozen=True)
class Forward:
    kind: Kind
    data: bytes
    lane: str | None
    not_before: float


@dataclass(frozen=True)
class Cut:
    lane: str | None
    not_before: float


@dataclass(frozen=True)
class Applied:
    """One applied fault, as logged: ``{"connection", "run", "seq", "fault", "kind", "source"}``."""

    connection: int
    run: str | None
    seq: int | None
    fault: Fault
    source: Literal["fault", "random"] = "fault"

    def to_json(self) -> dict[str, Any]:
        return {"connection": self.connection, "run": self.run, "seq": self.seq, "fault": str(self.fault),
                "kind": self.fault.kind, "source": self.source}


@dataclass(frozen=True)
class Upstream:
    """Client frames to write to the server in one write, in order: ``((kind, data), ...)``."""

    frames: tuple[tuple[Kind, bytes], ...]


Action = Union[Forward, Cut, Applied, Upstream]


def corrupted(seq: int) -> bytes:
    """The text that replaces a corrupted event: valid UTF-8, never JSON."""
    return b"agent-events proxy corrupted event seq %d {" % seq


@dataclass
class _Run:
    release_at: float = float("-inf")   # no event of the run leaves before this
    held: Forward | None = None          # a swapped event waiting for the next one
    first_done: bool = False


@dataclass
class Planner:
    """The faults of one client connection (``connection`` is its index, in accept order, from 0)."""

    plan: FaultPlan
    connection: int = 0
    runs: dict[str, _Run] = field(default_factory=dict)
    cut: bool = False
    frames: int = 0
    #: coalesce: the client frames held for the next write, and when the first of them came
    held_client: list[tuple[Kind, bytes]] = field(default_factory=list)
    held_since: float | None = None

    # -- client to server ------------------------------------------------------------
    def from_client(self, kind: Kind, data: bytes, now: float) -> list[Action]:
        """What to do with one client frame that arrived at ``now``: an :class:`Upstream` write (of
        this frame alone, or of the N frames of a coalesce group it completes), or nothing yet."""
        count = self.plan.coalesce
        if count is None:
            return [Upstream(((kind, data),))]
        if not self.held_client:
            self.held_since = now
        self.held_client.append((kind, data))
        if len(self.held_client) < count:
            return []
        return self._release(count)

    @property
    def client_deadline(self) -> float | None:
        """When the held client frames must go even short of N (the shell's clock, ms), if any are held."""
        return self.held_since + COALESCE_WAIT_MS if self.held_client and self.held_since is not None else None

    def flush_client(self, now: float) -> list[Action]:
        """The held client frames, as they are: their wait is over, or the client has gone."""
        if not self.held_client:
            return []
        return self._release(len(self.held_client))

    def _release(self, count: int) -> list[Action]:
        frames, self.held_client, self.held_since = tuple(self.held_client), [], None
        actions: list[Action] = []
        if len(frames) > 1:
            actions.append(Applied(self.connection, None, None, Fault("coalesce", None, float(len(frames)))))
        actions.append(Upstream(frames))
        return actions

    def receive(self, kind: Kind, data: bytes, now: float) -> list[Action]:
        """What to do with one upstream frame that arrived at ``now`` (milliseconds)."""
        if self.cut:
            return []
        self.frames += 1
        plan = self.plan
        if plan.empty:
            return [Forward(kind, data, None, now)]
        actions: list[Action] = []
        if self.frames == 1 and plan.drip_bytes_per_s is not None:
            actions.append(Applied(self.connection, None, None, Fault("drip", None, plan.drip_bytes_per_s)))
        address = _address(kind, data)
        if address is None:
            actions.append(Forward(kind, data, None, now))
            return actions
        run_id, seq = address
        run = self._run(run_id)
        fault, source = plan.by_seq.get(seq), "fault"
        if fault is None and plan.random is not None:
            fault, source = plan.random.pick(self.connection, run_id, seq), "random"
        at = max(now, run.release_at)
        held, run.held = run.held, None
        what = fault.kind if fault is not None else None
        if fault is not None:
            actions.append(Applied(self.connection, run_id, seq, fault, source))
        if what == "cut":
            self.cut = True
            self.runs.clear()
            actions.append(Cut(run_id, at))
            return actions
        if what == "delay":
            at = max(now + fault.value, run.release_at)
        event = Forward(kind, data, run_id, at)
        if what == "swap":
            run.held = event
        elif what == "dup":
            actions += [event, event]
        elif what == "corrupt":
            actions.append(Forward("text", corrupted(seq), run_id, at))
        elif what != "drop":
            actions.append(event)
        if held is not None:
            actions.append(Forward(held.kind, held.data, run_id, at))
        run.release_at = at
        if not run.first_done:
            run.first_done = True
            if plan.stall_ms is not None:
                run.release_at = at + plan.stall_ms
                actions.append(Applied(self.connection, run_id, seq, Fault("stall", None, plan.stall_ms)))
        return actions

    def drain(self, now: float) -> list[Action]:
        """The upstream has ended: the swapped events still held leave now (they have no next event)."""
        actions: list[Action] = []
        if self.cut:
            return actions
        for run_id, run in self.runs.items():
            if run.held is not None:
                actions.append(Forward(run.held.kind, run.held.data, run_id, max(now, run.release_at)))
                run.held = None
        return actions

    def _run(self, run_id: str) -> _Run:
        run = self.runs.get(run_id)
        if run is None:
            if len(self.runs) >= MAX_RUNS_TRACKED:
                for old in list(self.runs)[: MAX_RUNS_TRACKED // 10]:
                    if self.runs[old].held is None:
                        del self.runs[old]
            run = self.runs[run_id] = _Run()
        return run


def _address(kind: str, data: bytes) -> tuple[str, int] | None:
    """``(run_id, seq)`` of a run event; ``None`` for any other frame."""
    if kind != "text":
        return None
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict):
        return None
    run_id, seq = message.get("run_id"), message.get("seq")
    if not isinstance(run_id, str) or not isinstance(seq, int) or isinstance(seq, bool):
        return None
    return run_id, seq
