"""The fault planner: a pure state machine from upstream frames to forwarding actions.

No sockets, no clock, no tasks: :meth:`Planner.receive` is given each
server-to-client frame as it arrived (kind, raw bytes, the caller's clock in
milliseconds) and returns what to do with it, in order:

* :class:`Forward` - send these bytes to the client, not before ``not_before``,
  in the FIFO ``lane`` of its run (the connection's lane for a frame of no run;
  ``None``: at once);
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
``send``. Faults find their frame by its index on the connection
(``frame=I``) or, for a run event, by its ``seq``; what a run event is comes
from the dialect, as data (:mod:`agent_events.proxy.addressing`): for ours a
JSON object with a string ``run_id`` and an integer ``seq``. Everything else
(time_sync replies, errors, garbage) is forwarded untouched, in arrival order,
unless a fault names its frame index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Literal, Union

from agent_events.proxy.addressing import CONNECTION, OURS
from agent_events.proxy.faults import COALESCE_WAIT_MS, Fault, FaultPlan

Kind = Literal["text", "binary"]

#: Runs whose state one connection keeps; the oldest are forgotten beyond this (a flood of run_ids).
MAX_RUNS_TRACKED = 10_000


@dataclass(frozen=True)
class Forward:
    kind: Kind
    data: bytes
    #: a run id, :data:`~agent_events.proxy.addressing.CONNECTION`, or ``None`` (at once, in no lane)
    lane: Hashable | None
    not_before: float


@dataclass(frozen=True)
class Cut:
    lane: Hashable | None
    not_before: float


@dataclass(frozen=True)
class Applied:
    """One applied fault, as logged: ``{"connection", "run", "seq", "frame", "fault", "kind", "source"}``;
    ``frame`` is the index on its connection of the upstream frame it applied to (``None``: a fault of
    the whole connection, drip and coalesce), so a fault seen in a client can be replayed by frame too."""

    connection: int
    run: str | None
    seq: int | None
    fault: Fault
    source: Literal["fault", "random"] = "fault"
    frame: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"connection": self.connection, "run": self.run, "seq": self.seq, "frame": self.frame,
                "fault": str(self.fault), "kind": self.fault.kind, "source": self.source}


@dataclass(frozen=True)
class Upstream:
    """Client frames to write to the server in one write, in order: ``((kind, data), ...)``."""

    frames: tuple[tuple[Kind, bytes], ...]


Action = Union[Forward, Cut, Applied, Upstream]


def corrupted(fault: "Fault | int") -> bytes:
    """The text that replaces a corrupted event (``fault``, or its seq): valid UTF-8, never JSON."""
    if isinstance(fault, Fault) and fault.frame is not None:
        return b"agent-events proxy corrupted frame %d {" % fault.frame
    return b"agent-events proxy corrupted event seq %d {" % (fault.seq if isinstance(fault, Fault) else fault)


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
    #: the lanes: a run id, or CONNECTION for the frames of no run
    runs: dict[Hashable, _Run] = field(default_factory=dict)
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
        """What to do with one upstream frame that arrived at ``now`` (milliseconds).

        The frame's fault is looked up by its index on the connection (``frame=I``), else by its
        seq (a run event of a dialect that has one), else drawn by the random plan (per run event by
        seq, or per frame by index for a dialect without seq): one fault per frame, at most.
        """
        if self.cut:
            return []
        index = self.frames
        self.frames += 1
        plan = self.plan
        if plan.empty:
            return [Forward(kind, data, None, now)]
        actions: list[Action] = []
        if index == 0 and plan.drip_bytes_per_s is not None:
            actions.append(Applied(self.connection, None, None, Fault("drip", None, plan.drip_bytes_per_s)))
        addressing = plan.addressing or OURS
        address = addressing.address(kind, data)
        run_id, seq = address if address is not None else (None, None)
        fault, source = plan.by_frame.get(index), "fault"
        if fault is None and seq is not None:
            fault = plan.by_seq.get(seq)
        if fault is None and plan.random is not None:
            source = "random"
            if plan.random.by == "frame":
                fault = plan.random.pick_frame(self.connection, index)
            elif seq is not None:
                fault = plan.random.pick(self.connection, run_id or "", seq)
        lane = run_id if run_id is not None else CONNECTION
        if address is None and fault is None and addressing.has_seq and lane not in self.runs:
            actions.append(Forward(kind, data, None, now))  # not a run event, nothing held before it: at once
            return actions
        run = self._run(lane)
        at = max(now, run.release_at)
        held, run.held = run.held, None
        what = fault.kind if fault is not None else None
        if fault is not None:
            actions.append(Applied(self.connection, run_id, seq, fault, source, index))
        if what == "cut":
            self.cut = True
            self.runs.clear()
            actions.append(Cut(lane, at))
            return actions
        if what == "delay":
            at = max(now + fault.value, run.release_at)
        event = Forward(kind, data, lane, at)
        if what == "swap":
            run.held = event
        elif what == "dup":
            actions += [event, event]
        elif what == "corrupt":
            actions.append(Forward("text", corrupted(fault), lane, at))
        elif what != "drop":
            actions.append(event)
        if held is not None:
            actions.append(Forward(held.kind, held.data, lane, at))
        run.release_at = at
        # a stall holds a run after its first event; a dialect without seq has one lane, the connection's
        if not run.first_done and (address is not None or not addressing.has_seq):
            run.first_done = True
            if plan.stall_ms is not None:
                run.release_at = at + plan.stall_ms
                actions.append(Applied(self.connection, run_id, seq, Fault("stall", None, plan.stall_ms),
                                       frame=index))
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

    def _run(self, run_id: Hashable) -> _Run:
        run = self.runs.get(run_id)
        if run is None:
            if len(self.runs) >= MAX_RUNS_TRACKED:
                for old in list(self.runs)[: MAX_RUNS_TRACKED // 10]:
                    if self.runs[old].held is None:
                        del self.runs[old]
            run = self.runs[run_id] = _Run()
        return run

