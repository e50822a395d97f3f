"""The shared run log on Redis: a resume served by any worker or machine (``--resume-store redis://...``).

Built on Redis primitives only, through ``redis.asyncio`` (the maintained client):

* **One stream per run** (``agent_events:log:<public>``): every frame the run emits is
  ``XADD``-ed with the stream entry id ``<seq>-1``, so a reader resumes with ``XREAD`` after
  ``<last_seq>-1`` and sees gaps at once. ``MAXLEN`` (exact) is the replay bound
  (``resume_buffer_events``), as in memory; ``PEXPIRE`` is the resume window.
* **One hash per run** (``agent_events:run:<public>``): its ``run_id``, the SHA-256 of its token's
  secret (compared with :func:`hmac.compare_digest`; the store never holds a usable token), the
  owner (the process that runs it) and, once the owner's window passed, ``state=expired``.
* **A lease per owner** (``agent_events:owner:<id>``, ``SET PX``, renewed every
  ``LEASE_S / 3``): a run whose owner's lease is gone and whose log has no ``agent_completed`` is
  lost, and a resuming client is told so (``error`` ``run_lost``), never left waiting.
* **A control channel per owner** (pub/sub ``agent_events:ctl:<id>``): the worker serving a resumed
  run publishes ``attach`` (the owner stops sending to the old connection and restarts the run's
  window; repeated as a heartbeat while the follower lives) and ``cancel`` (a ``cancel_run`` from
  the new connection).

Appends never make a run wait: the bridge's frame is queued and one writer task sends each loop
turn's frames in one pipeline (a round trip per batch, not per frame). When the store fails, the
batch is dropped, logged at most once a minute, and the runs go on; a follower that meets the gap
answers ``resume_unavailable``, as does a resume while the store is unreachable.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import socket
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from agent_events.reference_agent.logs import RateLimitedLog
from agent_events.reference_agent.protocol import ProtocolError
from agent_events.reference_agent.resume import ResumeRegistry, ResumeState
from agent_events.reference_agent.resume_store import StoreUnavailable

logger = logging.getLogger("reference_agent")

PREFIX = "agent_events"
#: Seconds an owner's lease lives without renewal: how long a dead owner's runs look alive at most.
LEASE_S = 3.0
#: Milliseconds a follower blocks in XREAD before it checks the owner's lease again.
FOLLOW_BLOCK_MS = 1000
#: Seconds between a follower's ``attach`` heartbeats (the owner's window restarts on each).
ATTACH_EVERY_S = 1.0
#: Queued store operations at most; past it the oldest batch is dropped (the store is too slow).
MAX_PENDING = 100_000
#: Seconds a client waits for the store to answer one command.
SOCKET_TIMEOUT_S = 5.0
#: A resume that finds no run record retries this many times, this far apart (s): the record is
#: written a loop turn after the client may already hold the token.
LOOKUP_RETRIES = (0.05, 0.15)
TERMINAL = b'{"type":"agent_completed"'
#: Operations sent in one round trip at most: enough that the writer keeps up with a saturated agent
#: (a round trip takes a few loop turns then), few enough that packing them holds the loop ~ms.
BATCH = 4096
#: A batch of writes, run by the store as one command (redis-py packs and parses each command in
#: Python: a command per frame cost the agent three times its own CPU per event, and even one
#: per run was most of what remained). Per run, in order: its record (``HSET``: run_id, the
#: secret's digest, owner), one ``XADD`` per frame (entry id ``<seq>-1``, exact ``MAXLEN``: the
#: replay bound), then ``PEXPIRE`` (the resume window) or its deletion. KEYS: the run's stream and
#: record, in pairs; ARGV: maxlen, ttl, tombstone ttl, then per run ``first_seq, count, flags``
#: (1: record follows, 2: delete, 4: expired), the record's 3 values, the frames. ``pcall``: a
#: refused frame (an id not above the last, after a store restart) does not stop the others.
APPEND_LUA = """
local maxlen, ttl, gone_ttl, a = ARGV[1], ARGV[2], ARGV[3], 4
for i = 1, #KEYS, 2 do
  local log, meta = KEYS[i], KEYS[i + 1]
  local first, n, flags = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  if flags % 2 == 1 then
    redis.call('HSET', meta, 'run_id', ARGV[a], 'h', ARGV[a + 1], 'owner', ARGV[a + 2])
    a = a + 3
  end
  for j = 0, n - 1 do
    redis.pcall('XADD', log, 'MAXLEN', maxlen, (first + j) .. '-1', 'f', ARGV[a + j])
  end
  a = a + n
  if math.floor(flags / 2) % 2 == 1 then
    redis.call('DEL', log, meta)
  elseif math.floor(flags / 4) % 2 == 1 then
    redis.call('DEL', log)
    redis.call('HSET', meta, 'state', 'expired')
    redis.call('PEXPIRE', meta, gone_ttl)
  else
    redis.call('PEXPIRE', log, ttl)
    redis.call('PEXPIRE', meta, ttl)
  end
end
return a
"""


def _meta(public: str) -> str:
    return f"{PREFIX}:run:{public}"


def _log(public: str) -> str:
    return f"{PREFIX}:log:{public}"


def _lease(owner: str) -> str:
    return f"{PREFIX}:owner:{owner}"


def _control(owner: str) -> str:
    return f"{PREFIX}:ctl:{owner}"


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest().encode()


def _client(url: str) -> aioredis.Redis:
    return aioredis.from_url(url, socket_connect_timeout=SOCKET_TIMEOUT_S, socket_timeout=SOCKET_TIMEOUT_S,
                             health_check_interval=0)


def _entries(reply: Any) -> list:
    """XREAD's entries of its one stream, RESP2 (a list) or RESP3 (a dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return next(iter(reply.values()))[0] if reply else []
    return reply[0][1]


def _seq(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.partition("-")[0])


async def ping(url: str, timeout: float = 3.0) -> None:
    client = _client(url)
    try:
        async with asyncio.timeout(timeout):
            await client.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        raise StoreUnavailable(f"cannot reach the resume store {url}: {exc or type(exc).__name__}") from None
    finally:
        await client.aclose()


class SharedResumeState(ResumeState):
    """A resumable run whose frames also go to the shared log."""

    __slots__ = ("log",)
    inline = False  # the bridge must call keep: each frame goes to the shared log too

    def keep(self, seq: int, frame: bytes) -> None:
        self.buffer.append(frame)
        self.end_seq = seq + 1
        self.log.append(self.public, seq, frame)


class SharedResumeRegistry(ResumeRegistry):
    """The owner's registry: as in memory, and every change mirrored in the store."""

    state_class = SharedResumeState

    def __init__(self, store: "RedisStore", *args: Any) -> None:
        super().__init__(*args)
        self.store = store

    def issue(self, run_id: str, handle: Any, bridge: Any, session: Any) -> ResumeState:
        state = super().issue(run_id, handle, bridge, session)
        state.log = self.store
        self.store.register(state)
        return state

    def detach(self, state: ResumeState) -> None:
        super().detach(state)
        self.store.queue(("touch", state.public))

    def discard(self, state: ResumeState) -> None:
        public = state.public
        super().discard(state)
        self.store.queue(("del", public))

    def _expire(self, state: ResumeState) -> None:
        public = state.public
        super()._expire(state)
        self.store.queue(("gone", public))

    def attach_remote(self, public: str) -> None:
        """Another process serves this run's client now: stop sending to our connection, and
        keep the run ``window_s`` from now (each heartbeat restarts it)."""
        state = self._states.get(public)
        if state is None:
            return
        previous = state.session
        if previous is not None:
            previous.release(state)
        if state.bridge is not None:
            state.bridge.detach()
        if state.handle is not None:
            state.handle.session = None
        self._detached.pop(public, None)
        state.detached_at = None
        ResumeRegistry.detach(self, state)

    def cancel(self, public: str) -> None:
        state = self._states.get(public)
        if state is not None and state.handle is not None and not state.done:
            state.handle.cancel("client")


class RemoteRun:
    """A run followed from the store on this process's connection: what the session keeps in
    ``runs`` for it (so ``cancel_run`` and the connection's end reach it)."""

    __slots__ = ("run_id", "public", "owner", "store", "task", "resume", "session")

    def __init__(self, run_id: str, public: str, owner: str, store: "RedisStore", session: Any) -> None:
        self.run_id = run_id
        self.public = public
        self.owner = owner
        self.store = store
        self.session = session
        self.task: asyncio.Task | None = None
        self.resume = None  # not resumable from this process's memory: the session cancels it on close

    def cancel(self, reason: str) -> None:
        if reason == "client":
            self.store.publish(self.owner, "cancel", self.public)  # the owner ends it; the end comes back here
        elif self.task is not None:
            self.task.cancel()  # this process stops (shutdown): stop following; the run goes on at its owner


class RedisStore:
    """The shared store of one server process (see the module docstring)."""

    shared = True

    def __init__(self, url: str, *, window_s: float, buffer_events: int) -> None:
        self.url = url
        self.window_s = window_s
        self.buffer_events = buffer_events
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ttl_ms = int((window_s + LEASE_S) * 1000)
        self.gone_ttl_ms = int(max(4 * window_s, 60.0) * 1000)
        self.quiet_log = RateLimitedLog(logger)
        self.registry: SharedResumeRegistry | None = None
        self.healthy = True
        self.appends = self.append_failures = 0
        self._redis: aioredis.Redis | None = None
        self._ops: list[tuple] = []
        self._wake: asyncio.Event | None = None
        self._tasks: set[asyncio.Task] = set()
        self._closing = False
        self._pubsub = None

    # -- lifecycle ------------------------------------------------------------------

    def make_registry(self, window_s: float, buffer_events: int, max_detached: int | None,
                      quiet_log: Any = None) -> SharedResumeRegistry:
        self.registry = SharedResumeRegistry(self, window_s, buffer_events, max_detached)
        return self.registry

    async def start(self) -> None:
        """Connect, take the lease and listen for control messages; StoreUnavailable when unreachable."""
        self._redis = _client(self.url)
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT_S):
                await self._redis.set(_lease(self.owner), b"1", px=int(LEASE_S * 1000))
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(_control(self.owner))
        except (RedisError, OSError, TimeoutError) as exc:
            await self._redis.aclose()
            raise StoreUnavailable(f"cannot reach the resume store {self.url}: {exc or type(exc).__name__}") from None
        self._wake = asyncio.Event()
        self._spawn(self._writer())
        self._spawn(self._heartbeat())
        self._pubsub = pubsub
        self._spawn(self._listen(pubsub))
        logger.info("resume store %s: this process is owner %s", self.url, self.owner)

    async def close(self) -> None:
        """Flush what is queued (bounded), give the lease up, disconnect."""
        if self._redis is None:
            return
        self._closing = True
        if self._ops:
            try:
                async with asyncio.timeout(2.0):
                    await self._flush()
            except (RedisError, OSError, TimeoutError):
                pass
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if self._wake is not None:
            self._wake.set()
        if tasks:
            # bounded: a cancellation that lands inside redis-py's read may be absorbed there, and the
            # task then only ends at its next check of _closing
            await asyncio.wait(tasks, timeout=2.0)
        try:
            async with asyncio.timeout(1.0):
                await self._redis.delete(_lease(self.owner))
                await self._pubsub.aclose()
        except (RedisError, OSError, TimeoutError):
            pass
        await self._redis.aclose()
        self._redis = None

    def describe(self) -> dict[str, Any]:
        return {"kind": "redis", "shared": True, "owner": self.owner, "healthy": self.healthy,
                "appends": self.appends, "append_failures": self.append_failures}

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the owner's writes ---------------------------------------------------------

    def queue(self, op: tuple) -> None:
        ops = self._ops
        ops.append(op)
        if len(ops) == 1 and self._wake is not None:
            self._wake.set()
        elif len(ops) > MAX_PENDING:
            dropped = len(ops) // 2
            del ops[:dropped]
            self.append_failures += dropped
            self.quiet_log.warning("store", "resume store %s too slow: dropped %d queued writes", self.url, dropped)

    def register(self, state: ResumeState) -> None:
        self.queue(("reg", state.public, {"run_id": state.run_id, "h": _digest(state.secret), "owner": self.owner}))

    def append(self, public: str, seq: int, frame: bytes) -> None:
        ops = self._ops
        ops.append(("x", public, seq, frame))
        if len(ops) == 1 and self._wake is not None:
            self._wake.set()
        elif len(ops) > MAX_PENDING:
            self.queue(("noop",))

    async def _writer(self) -> None:
        wake = self._wake
        while not self._closing:
            await wake.wait()
            wake.clear()
            try:
                await self._flush()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                self.healthy = False
                self.quiet_log.warning("store", "resume store %s: writes failed (runs go on; a resume elsewhere "
                                       "is refused until it answers)", self.url, exc=exc)

    async def _flush(self) -> None:
        """Send every queued operation in one pipeline (no transaction: order is what matters)."""
        ops = self._ops
        if len(ops) > BATCH:
            ops, self._ops = ops[:BATCH], ops[BATCH:]
            self._wake.set()  # the rest goes in the next round trip
        else:
            self._ops = []
        if not ops:
            return
        # Per run: [record or None, spans of consecutive seqs [first, frames], end flag]
        runs: dict[str, list] = {}
        appended = 0
        for op in ops:
            kind, public = op[0], op[1] if len(op) > 1 else None
            if public is None:
                continue
            run = runs.get(public)
            if run is None:
                run = runs[public] = [None, [], 0]
            if kind == "x":
                appended += 1
                spans = run[1]
                if spans and spans[-1][0] + len(spans[-1][1]) == op[2]:
                    spans[-1][1].append(op[3])
                else:  # the first, or after a gap (writes were dropped)
                    spans.append([op[2], [op[3]]])
            elif kind == "reg":
                run[0] = op[2]
            elif kind == "del":
                run[2] = 2
            elif kind == "gone":
                run[2] = 4
        keys: list[str] = []
        args: list[Any] = [self.buffer_events, self.ttl_ms, self.gone_ttl_ms]
        for public, (record, spans, end) in runs.items():
            log, meta = _log(public), _meta(public)
            spans = spans or [[0, []]]
            last = len(spans) - 1
            for k, (first, frames) in enumerate(spans):
                keys.append(log)
                keys.append(meta)
                flags = (1 if k == 0 and record is not None else 0) | (end if k == last else 0)
                args.append(first)
                args.append(len(frames))
                args.append(flags)
                if flags & 1:
                    args.append(record["run_id"])
                    args.append(record["h"])
                    args.append(record["owner"])
                args.extend(frames)
        pipe = self._redis.pipeline(transaction=False)
        # EVAL, not EVALSHA: the text is a kilobyte a batch, and a restarted store needs no reload
        pipe.eval(APPEND_LUA, len(keys), *keys, *args)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except BaseException:
            self.append_failures += appended
            raise
        refused = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if refused is not None:  # the store answered, and refused a command: say so, never silently
            self.quiet_log.warning("store", "resume store %s refused a write", self.url, exc=refused)
        self.appends += appended
        if not self.healthy:
            self.healthy = True
            logger.warning("resume store %s answers again", self.url)

    async def _heartbeat(self) -> None:
        while not self._closing:
            await asyncio.sleep(LEASE_S / 3)
            try:
                await self._redis.set(_lease(self.owner), b"1", px=int(LEASE_S * 1000))
            except (RedisError, OSError, TimeoutError) as exc:
                self.quiet_log.warning("lease", "resume store %s: cannot renew this process's lease", self.url, exc=exc)

    async def _listen(self, pubsub) -> None:
        """Control messages for the runs this process owns: ``<kind> <public>``."""
        while not self._closing:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                self.quiet_log.warning("control", "resume store %s: control channel lost; retrying", self.url, exc=exc)
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message" or self.registry is None:
                continue
            kind, _, public = message["data"].decode("ascii", "replace").partition(" ")
            if kind == "attach":
                self.registry.attach_remote(public)
            elif kind == "cancel":
                self.registry.cancel(public)

    def publish(self, owner: str, kind: str, public: str) -> None:
        """Tell the owner of a run (fire and forget: a lost message is a heartbeat missed)."""
        async def send() -> None:
            try:
                async with asyncio.timeout(SOCKET_TIMEOUT_S):
                    await self._redis.publish(_control(owner), f"{kind} {public}")
            except (RedisError, OSError, TimeoutError) as exc:
                self.quiet_log.warning("control", "resume store %s: cannot reach a run's owner", self.url, exc=exc)

        if self._redis is not None:
            self._spawn(send())

    # -- a resume that lands here -------------------------------------------------------

    async def resume_elsewhere(self, session: Any, message: Any) -> ProtocolError | None:
        """A resume of a run another process owns: check it in the store, then replay and follow."""
        run_id = message.run_id
        public, _, secret = message.resume_token.partition(".")
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT_S):
                meta = await self._redis.hgetall(_meta(public))
                for delay in LOOKUP_RETRIES:
                    if meta:
                        break
                    await asyncio.sleep(delay)
                    meta = await self._redis.hgetall(_meta(public))
                ok = hmac.compare_digest(meta.get(b"h", b"x" * 64), _digest(secret))
                if not meta or not ok or meta.get(b"run_id") != run_id.encode("utf-8", "surrogateescape"):
                    return ProtocolError("resume_denied", f"no resumable run {run_id!r} with that resume_token",
                                         run_id=run_id)
                if meta.get(b"state") == b"expired":
                    return ProtocolError("resume_expired", f"run {run_id!r} was kept {self.window_s:g} s after its "
                                         "connection dropped, and that window has passed", run_id=run_id)
                owner = meta[b"owner"].decode()
                pipe = self._redis.pipeline(transaction=False)
                pipe.xrange(_log(public), count=1)
                pipe.xrevrange(_log(public), count=1)
                pipe.exists(_lease(owner))
                first, last, alive = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self.quiet_log.warning("resume", "resume store %s unreachable: resume refused", self.url, exc=exc)
            return ProtocolError("resume_unavailable", "the resume store cannot be reached; the run may still be "
                                 "going on where it started: retry", run_id=run_id)
        oldest = _seq(first[0][0]) if first else 0
        ended = bool(last) and last[0][1].get(b"f", b"").startswith(TERMINAL)
        newest = _seq(last[0][0]) if last else -1
        if ended and message.last_seq > newest:
            return ProtocolError("invalid_message", f"last_seq {message.last_seq} is past the run's last event "
                                 f"(seq {newest})", run_id=run_id, details={"path": "/last_seq"})
        if message.last_seq + 1 < oldest:
            return ProtocolError("resume_expired", f"the events after seq {message.last_seq} are no longer buffered "
                                 f"(the oldest kept is seq {oldest})", run_id=run_id)
        if not ended and not alive:
            return _lost(run_id)
        runs = session.runs
        if run_id in runs:
            return ProtocolError("duplicate_run", f"run {run_id!r} is already in flight on this connection",
                                 run_id=run_id)
        limit = session.config.max_runs_per_connection
        if len(runs) >= limit:
            return ProtocolError("too_many_runs", f"{limit} runs are already in flight on this connection",
                                 run_id=run_id, details={"limit": limit})
        if not ended:
            self.publish(owner, "attach", public)
        remote = RemoteRun(run_id, public, owner, self, session)
        runs[run_id] = remote
        remote.task = task = self._spawn(self._follow(remote, message.last_seq))
        task.add_done_callback(lambda _t: runs.pop(run_id) if runs.get(run_id) is remote else None)
        return None

    async def _follow(self, remote: RemoteRun, last_seq: int) -> None:
        """Replay after ``last_seq`` from the log, then follow it live until ``agent_completed``."""
        session, key, owner = remote.session, _log(remote.public), remote.owner
        loop = asyncio.get_running_loop()
        cursor = f"{last_seq}-1" if last_seq >= 0 else "0-0"
        expected = last_seq + 1
        attached_at = loop.time()
        try:
            while not self._closing:
                try:
                    reply = await self._redis.xread({key: cursor}, count=512, block=FOLLOW_BLOCK_MS)
                    entries = _entries(reply)
                    if not entries:
                        if not await self._redis.exists(_lease(owner)):
                            # one last read: the owner may have written the end just before it died
                            if not _entries(await self._redis.xread({key: cursor}, count=1)):
                                await session.send(_lost(remote.run_id).encode())
                                return
                except (RedisError, OSError, TimeoutError) as exc:
                    self.quiet_log.warning("follow", "resume store %s unreachable while following a run",
                                           self.url, exc=exc)
                    await session.send(ProtocolError("resume_unavailable", "the resume store stopped answering while "
                                                     "this run was followed; resume again to go on",
                                                     run_id=remote.run_id).encode())
                    return
                for entry_id, fields in entries:
                    seq = _seq(entry_id)
                    if seq != expected:
                        await session.send(ProtocolError(
                            "resume_unavailable", f"the resume store lost events {expected}..{seq - 1} of this run "
                            "(it failed while they were written)", run_id=remote.run_id).encode())
                        return
                    frame = fields[b"f"]
                    await session.send(frame)
                    expected, cursor = seq + 1, entry_id
                    if frame.startswith(TERMINAL):
                        return
                if loop.time() - attached_at >= ATTACH_EVERY_S:
                    attached_at = loop.time()
                    self.publish(owner, "attach", remote.public)
        finally:
            if not self._closing:
                self.publish(owner, "attach", remote.public)  # the window restarts from this client's leaving


def _lost(run_id: str) -> ProtocolError:
    return ProtocolError("run_lost", f"run {run_id!r} is lost: the process that ran it stopped before it ended, "
                         "and no agent_completed will come", run_id=run_id)
