"""Resumable runs (protocol 1.1): a run outlives its dropped connection, and the client that
started it can take it over from a new one.

Rules of this module:

* Authority is a secret, never the run_id. Each run gets a ``resume_token``
  ``"<public>.<secret>"``: the public half finds the run, the secret half is
  compared in constant time, and a wrong token and an unknown run get the same
  answer (``resume_denied``), so a guess learns nothing.
* Memory is bounded: each run keeps its latest ``buffer_events`` events (the
  bytes already sent), a connection keeps its finished runs only up to its
  run limit, and a run whose connection is gone is kept ``window_s`` seconds.
* Replay is exact: the frames replayed are the bytes first sent, in seq order,
  from ``last_seq + 1``; the bridge re-attaches with no ``await`` between the
  last replayed frame and the first live one, so nothing is lost or doubled.

The session and the bridge use it; agents know nothing of it, so every
:class:`~agent_events.reference_agent.base.BaseAgent` is resumable for free.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
from collections import OrderedDict, deque
from typing import Any


#: Tokens drawn from the OS at once: 27 random bytes each (72 bits public, 144 secret), which are
#: 36 base64 characters exactly, so a block is encoded in one pass and a token is a slice of it.
POOL_TOKENS = 256
_TOKEN_BYTES, _TOKEN_CHARS, _PUBLIC_CHARS = 27, 36, 12


class ResumeState:
    """One resumable run: its token, its latest frames, and where it is attached."""

    __slots__ = ("run_id", "public", "secret", "buffer", "end_seq", "handle", "bridge", "session", "detached_at",
                 "done", "final_seq")
    #: Whether :meth:`keep` only buffers the frame: then the bridge does it itself, with no call per
    #: event. A subclass whose ``keep`` does more (the shared store's mirrors each frame) sets it False.
    inline = True

    def __init__(self, run_id: str, handle: Any, bridge: Any, session: Any, buffer_events: int,
                  public: str, secret: str) -> None:
        self.run_id = run_id
        self.public = public
        self.secret = secret
        #: the latest frames (the bytes sent), oldest first, of consecutive seqs ending before
        #: ``end_seq``: bytes only, no tuple each, so the garbage collector has nothing to walk
        #: (a tuple of them once the run is done: see :meth:`finish`)
        self.buffer: deque[bytes] | tuple[bytes, ...] = deque((), buffer_events)  # (positional: half the cost)
        self.end_seq = 0
        self.handle = handle
        self.bridge = bridge
        #: the session it is attached to; ``None`` while its connection is gone
        self.session = session
        #: when its connection went (the event loop's clock); ``None`` while attached
        self.detached_at: float | None = None
        self.done = False
        #: the seq after the run's last event, once it is done (its bridge is let go then)
        self.final_seq = 0

    @property
    def token(self) -> str:
        return f"{self.public}.{self.secret}"

    @property
    def next_seq(self) -> int:
        """The seq the run's next event gets (its end, once it is done)."""
        return self.final_seq if self.done else self.bridge.next_seq

    def finish(self) -> None:
        """The run ended: all a resume of it still needs is its frames and where they end.

        Its handle and bridge (and through them the connection's bound methods) are let go now,
        not when the run leaves the connection's recent runs, and its frames become a tuple of
        bytes, which the garbage collector stops tracking: a server keeps up to
        ``max_runs_per_connection`` finished runs per connection, and five tracked objects each
        (state, deque, handle, bridge, bound method) made every older-generation collection
        walk them all: about half of what resume cost per event (issue 26: 0.64-0.67 of 1.0's CPU per
        event before, 0.80-0.84 after; benchmarks/README.md)."""
        if self.done:
            return
        bridge = self.bridge
        self.final_seq = bridge.next_seq if bridge is not None else self.end_seq
        self.done = True
        self.unlink()
        self.buffer = tuple(self.buffer)

    def unlink(self) -> None:
        """Break the cycles run handle <-> state <-> bridge and let both go, so that what only they
        hold is freed at once, by reference counting."""
        handle, bridge = self.handle, self.bridge
        if handle is not None and handle.resume is self:
            handle.resume = None
        if bridge is not None and bridge.resume is self:
            bridge.resume = None
        self.handle = self.bridge = None

    def keep(self, seq: int, frame: bytes) -> None:
        """Buffer the frame of event ``seq`` (the run's events come in seq order, one by one)."""
        self.buffer.append(frame)
        self.end_seq = seq + 1

    def oldest_seq(self, next_seq: int) -> int:
        """The first seq a resume can still start from."""
        return self.end_seq - len(self.buffer) if self.buffer else next_seq

    def since(self, seq: int) -> list[tuple[int, bytes]]:
        """``(seq, frame)`` of every buffered event from ``seq`` on."""
        first = self.end_seq - len(self.buffer)
        skip = max(0, seq - first)
        return [(first + i, frame) for i, frame in enumerate(self.buffer) if i >= skip]


class ResumeRegistry:
    """The server's resumable runs, found by the public half of their token."""

    #: Expired runs remembered (public half -> secret), so their client hears resume_expired,
    #: not resume_denied; the oldest are forgotten first.
    TOMBSTONES = 4096
    #: the class of its runs' states (a shared store's keeps each frame in the store too)
    state_class = ResumeState

    def __init__(self, window_s: float, buffer_events: int, max_detached: int | None = None) -> None:
        self.window_s = window_s
        self.buffer_events = buffer_events
        #: Runs waiting for their client at most: past it the oldest expires at once (issue #14:
        #: a client that starts runs and drops its connection, again and again, must not pile
        #: up runs for the whole window). ``None``: no bound.
        self.max_detached = max_detached
        self._states: dict[str, ResumeState] = {}
        self._detached: OrderedDict[str, ResumeState] = OrderedDict()
        self._expired: OrderedDict[str, tuple[str, str]] = OrderedDict()
        #: the one timer of the detached runs (see detach)
        self._sweeper: asyncio.TimerHandle | None = None
        #: base64 of :data:`POOL_TOKENS` tokens' random bytes, and where the next token starts in it
        self._pool = ""
        self._pool_at = 0

    def __len__(self) -> int:
        return len(self._states)

    def _draw(self) -> str:
        """The next token's 36 characters: 27 bytes of the OS's CSPRNG, base64url, each used once.
        The OS is asked, and base64 run, once per block of :data:`POOL_TOKENS` tokens, not per run
        (27 bytes are 36 characters exactly, so the block's encoding splits at every token)."""
        pool, at = self._pool, self._pool_at
        if at >= len(pool):
            pool, at = base64.urlsafe_b64encode(os.urandom(_TOKEN_BYTES * POOL_TOKENS)).decode(), 0
            self._pool = pool
        self._pool_at = at + _TOKEN_CHARS
        return pool[at:at + _TOKEN_CHARS]

    def issue(self, run_id: str, handle: Any, bridge: Any, session: Any) -> ResumeState:
        # 72 random bits find the run, 144 authorise it (9 bytes are 12 characters exactly)
        token = self._draw()
        public, secret = token[:_PUBLIC_CHARS], token[_PUBLIC_CHARS:]
        while public in self._states:  # a collision is the test of a lifetime
            public = self._draw()[:_PUBLIC_CHARS]
        state = self.state_class(run_id, handle, bridge, session, self.buffer_events, public, secret)
        self._states[public] = state
        return state

    def find(self, run_id: str, token: str) -> ResumeState | None:
        """The run ``token`` authorises, if it is ``run_id``'s; ``None`` otherwise, whatever the reason."""
        public, _, secret = token.partition(".")
        state = self._states.get(public)
        candidate = state.secret if state is not None else "x" * 32
        ok = hmac.compare_digest(candidate.encode(), secret.encode())
        if state is None or not ok or state.run_id != run_id:
            return None
        return state

    def expired(self, run_id: str, token: str) -> bool:
        """Whether ``token`` is the right one for a run of ``run_id`` whose window has passed."""
        public, _, secret = token.partition(".")
        gone = self._expired.get(public)
        candidate = gone[1] if gone is not None else "x" * 32
        ok = hmac.compare_digest(candidate.encode(), secret.encode())
        return gone is not None and ok and gone[0] == run_id

    def detach(self, state: ResumeState) -> None:
        """Its connection is gone: keep the run ``window_s`` seconds for a resume, then end it.

        The detached runs wait in detachment order, so one timer (for the oldest) serves them
        all: a timer per run cost three objects each for the garbage collector to walk."""
        state.session = None
        loop = asyncio.get_running_loop()
        if state.detached_at is None:
            state.detached_at = loop.time()
            self._detached[state.public] = state
        while self.max_detached is not None and len(self._detached) > self.max_detached:
            _, oldest = self._detached.popitem(last=False)
            self._expire(oldest)
        if self._sweeper is None and self._detached:
            self._sweeper = loop.call_later(self.window_s, self._sweep)

    def _sweep(self) -> None:
        """End every detached run whose window has passed; wake again for the next oldest."""
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        detached = self._detached
        while detached:
            oldest = next(iter(detached.values()))
            if oldest.detached_at + self.window_s > now:
                self._sweeper = asyncio.get_running_loop().call_at(oldest.detached_at + self.window_s, self._sweep)
                return
            detached.popitem(last=False)
            self._expire(oldest)

    def attach(self, state: ResumeState, session: Any) -> None:
        self._detached.pop(state.public, None)
        state.detached_at = None
        state.session = session

    def discard(self, state: ResumeState) -> None:
        self._detached.pop(state.public, None)
        state.detached_at = None
        self._states.pop(state.public, None)
        _let_go(state)

    def _expire(self, state: ResumeState) -> None:
        self._detached.pop(state.public, None)
        state.detached_at = None
        self._states.pop(state.public, None)
        self._expired[state.public] = (state.run_id, state.secret)
        while len(self._expired) > self.TOMBSTONES:
            self._expired.popitem(last=False)
        task = state.handle.task if state.handle is not None else None
        if not state.done and task is not None:
            task.cancel()  # nobody came back for it: stop its work, nothing is sent anywhere
        _let_go(state)

    def close(self) -> None:
        """The server stops: no run waits for a resume any more."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for state in list(self._states.values()):
            task = state.handle.task if state.handle is not None else None
            detached = state.session is None
            self.discard(state)
            if not state.done and detached and task is not None:
                task.cancel()


def _let_go(state: ResumeState) -> None:
    """A finished run no client can resume any more: break its reference cycles (run handle <->
    state <-> bridge) so that its frames and its agent are freed at once, by reference counting.
    Left to the cyclic garbage collector, thousands of them made its full passes pause every
    connection's events for 100-300 ms under load. A run still going keeps them: its task uses them."""
    if not state.done:
        return
    state.unlink()  # (done already by finish(), for a run that ended through the session)
    state.session = None
    state.buffer = ()


class RecentRuns:
    """A connection's finished resumable runs, newest last, at most ``limit`` of them: a client whose
    connection dropped just as a run ended may still need that run's last events."""

    def __init__(self, registry: ResumeRegistry, limit: int) -> None:
        self.registry = registry
        self.limit = limit
        #: a plain dict (insertion-ordered): an OrderedDict cost 10 us a lookup under this churn
        #: (its node table is rebuilt whenever the dict's is)
        self._states: dict[str, ResumeState] = {}

    def add(self, state: ResumeState) -> None:
        states = self._states
        states.pop(state.run_id, None)  # re-added: now the newest
        states[state.run_id] = state
        while len(states) > self.limit:
            oldest = states.pop(next(iter(states)))
            self.registry.discard(oldest)

    def pop(self, run_id: str) -> ResumeState | None:
        return self._states.pop(run_id, None)

    def release(self) -> list[ResumeState]:
        """The connection is gone: hand the finished runs over to the registry's window."""
        states = list(self._states.values())
        self._states.clear()
        return states
