"""Locust users that drive an agent-events endpoint and check every run.

A locustfile is one line::

    from agent_events.locust import AgentEventsUser

and ``locust -f locustfile.py --host ws://agent.example:8765/`` runs it (``wss://`` too; the bearer
token comes from ``$AGENT_EVENTS_TOKEN``). Each simulated user opens one WebSocket connection,
keeps ``runs_in_flight`` runs going on it, waits ``think_time`` seconds between refills, and feeds
every frame to the same sans-I/O :class:`~agent_events.conformance.core.checker.Checker` as
``agent-events check`` and ``agent-events load``. What it finds goes to Locust's own statistics,
so Locust's CSV, web UI and master/worker aggregation show conformance under load:

=====================  ======================  ==============================================
request type           name                    one entry per
=====================  ======================  ==============================================
``RUN``                the scenario            run: start_run to agent_completed; a failure
                                               when the run broke a rule, was refused, lost
                                               its connection or missed the run deadline
``FIRST_EVENT``        the scenario            run: start_run to its first event
``RULE``               the rule id             violation (always a failure: expected/observed)
``CONNECT``            ``connect``             connection (handshake time, or why it failed)
``INCONCLUSIVE``       the rule id             latency sample over budget that this process's
                                               own stall explains (a success: not judged)
=====================  ======================  ==============================================

Settings are class attributes (subclass ``agent_events.locust.AgentEventsUser`` through the
module, so that Locust does not also pick up the imported base class) and command-line options
(``--agent-events-runs-in-flight``, ``--agent-events-think-time``, ``--agent-events-input``,
``--agent-events-simulate-failure``, ``--agent-events-profile``, ``--agent-events-dialect``: a foreign
dialect's user is :mod:`agent_events.locust_dialect`'s one run per connection), which a master hands on to its
workers. A command-line option wins over the class attribute.

Locust runs users as gevent greenlets: each connection is the same sans-I/O client core as the
live check and ``agent-events load`` (:class:`~agent_events.conformance.core.client.ClientConnection`),
fed by the same wire (:class:`~agent_events.conformance.live.wire.WireCore`: websockets' sans-I/O
protocol plus the plain-frame fast path) over a plain socket, which gevent makes cooperative
(:class:`~agent_events.conformance.live.wire_sync.SocketWire`). A user is its own greenlet, which
starts runs and waits for a free slot; nothing else runs per user. One reader greenlet per
process reads every connection that gevent reports readable and hands the messages of each read
to the client core in one batch, as ``load`` does (so Locust's request listeners, which our
reports call, run in it: they must not block, as Locust asks of them anyway); one ticker greenlet
per process gives up runs past their deadline. One checker serves all users of a Locust
process (connections are told apart by name), so its memory stays bounded by the checker's own
limits rather than growing per user. Runs still in flight when Locust stops a user were not
judged: they are dropped, neither passed nor failed. Locust's master/worker mode spreads users
over processes and machines; nothing here coordinates workers.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event
from locust import User, task
from locust.exception import StopUser

from agent_events import schemas
from agent_events.conformance.core import profiles as _profiles
from agent_events.conformance.core.checker import Checker
from agent_events.conformance.core.client import ClientConnection, RunRecord
from agent_events.conformance.live.cli_args import TOKEN_ENV
from agent_events.conformance.live.clock_sync import estimate
from agent_events.conformance.live.engine import DEFAULT_INPUT
from agent_events.conformance.live.wire_core import Clock, CloseInfo, Endpoint
from agent_events.conformance.live.wire_sync import SocketWire
from agent_events import locust_options  # noqa: F401  (registers the --agent-events-* options)
from agent_events.locust_dialect import monitor_for, resolve_dialect
from agent_events.locust_lag import INCONCLUSIVE, GeventLagMonitor, ParkedRuns, report_inconclusive

__all__ = ["AgentEventsUser", "RUN", "FIRST_EVENT", "RULE", "CONNECT", "INCONCLUSIVE"]

logger = logging.getLogger("agent_events.locust")

#: Locust request types (the "Type" column of Locust's statistics).
RUN, FIRST_EVENT, RULE, CONNECT = "RUN", "FIRST_EVENT", "RULE", "CONNECT"
#: time_sync exchanges per connection to estimate the clock offset (as the live check does).
SYNC_SAMPLES = 4
SYNC_REPLY_TIMEOUT = 2.0
#: Seconds past the profile's run deadline before a run is given up on (a RUN failure).
DRAIN_GRACE = 1.0
#: How often the process's ticker wakes (the checker's own budgets are checked at most this often),
#: and how often it gives up runs past their deadline.
TICK_S = 0.5
OVERDUE_CHECK_MS = 1000.0
#: Pause after a failed connection attempt, so an unreachable host is not hammered in a loop.
RECONNECT_PAUSE = 1.0
#: Violations logged in full (run id, expected, observed) per rule and process; the rest are counted.
LOGGED_PER_RULE = 5
#: Per-rule failure texts stay few: numbers are masked so that Locust's failure table groups them.
_NUMBER_TEXT = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


class RuleViolation(Exception):
    """A Locust failure for one broken rule: what was expected and what was observed."""


class RunFailed(Exception):
    """A Locust failure for one run: the rules it broke, or why it did not complete."""


# -- one checker per Locust process ----------------------------------------------------------------

@dataclass(slots=True)
class _Run:
    """A run as Locust reports it; ``record`` is the client core's (what the protocol needs)."""

    run_id: str
    start_at: float
    record: RunRecord
    first_reported: bool = False
    failed: set | None = None


class _Monitor:
    """The checker of one Locust process and the runs its users have in flight.

    All greenlets of a process share one thread, and no checker call yields, so no lock is needed.
    The checker keeps every violation it finds (no cap per rule) in ``checker.violations``, and
    :meth:`report` takes them all after each batch of frames: each is a Locust failure as soon as
    it is found, and the list stays short.
    """

    def __init__(self, environment, profile: "_profiles.Profile") -> None:
        self.environment = environment
        self.clock = Clock()
        self.profile = profile
        #: the process's own stalls: an over-budget latency they explain is INCONCLUSIVE (locust_lag)
        self.lag = GeventLagMonitor(self.clock.now)
        self.checker = Checker(self.profile, max_violations_per_rule=sys.maxsize, timeline_runs=0, lag=self.lag.record)
        self.lag.on_tick = (self.checker.latency_held, self.settle)
        self.parked = ParkedRuns()
        self._inconclusive: dict[str, int] = {}
        self.runs: dict[tuple[str, str], _Run] = {}
        self.logged: dict[str, int] = {}
        self._names = itertools.count(1)
        self._last_tick = 0.0
        #: the users of this monitor, for the ticker (weakly: Locust drops the users it stops)
        self.users: "weakref.WeakSet[AgentEventsUser]" = weakref.WeakSet()
        self._ticker = None
        self._last_overdue = 0.0

    def new_connection_name(self) -> str:
        return f"u{os.getpid()}-{next(self._names)}"

    def fire(self, request_type: str, name: str, response_time: float, length: int = 0,
             exception: BaseException | None = None) -> None:
        self.environment.events.request.fire(request_type=request_type, name=name, response_time=response_time,
                                             response_length=length, exception=exception, context={})

    def take(self) -> list:
        """The violations found since the last call (the checker's list, emptied)."""
        checker = self.checker
        found = checker.violations
        if found:
            checker.violations = []
        return found

    def report(self, at: float) -> None:
        """Every violation the checker found since the last report: a RULE failure each, and the
        run it belongs to marked (its RUN entry will be a failure). Held latency samples read before
        the lag monitor's latest tick are judged first."""
        self.checker.settle_latencies(self.lag.seen)
        report_inconclusive(self.checker, self._inconclusive, self.fire)
        for v in self.take():
            run = self.runs.get((v.conn, v.run_id)) if v.run_id is not None else None
            if run is not None:
                if run.failed is None:
                    run.failed = set()
                run.failed.add(v.rule_id)
                elapsed = max(0.0, at - run.start_at)
            else:
                elapsed = 0.0
            text = f"expected {v.expected}; observed {v.observed}"
            self.fire(RULE, v.rule_id, elapsed, 0, RuleViolation(_NUMBER_TEXT.sub("#", text)))
            count = self.logged.get(v.rule_id, 0)
            if count < LOGGED_PER_RULE:
                self.logged[v.rule_id] = count + 1
                logger.warning("%s violated on connection %s, run %s: %s", v.rule_id, v.conn, v.run_id, text)

    def tick(self) -> None:
        """Report runs past their deadline or first-event budget (at most ten times a second)."""
        now = self.clock.now()
        if now - self._last_tick >= 100.0:
            self._last_tick = now
            self.checker.tick(now)
            self.settle(now)

    def settle(self, now: float | None = None) -> None:
        """:meth:`report`, then the RUN entries that waited for the held samples it judged."""
        self.report(self.clock.now() if now is None else now)
        for user, conn, run, at in self.parked.release(self.checker.latency_pending):
            user._fire_run(run, at, None, conn)

    def watch(self, user: "AgentEventsUser") -> None:
        """Keep ``user``'s runs to their deadline: one ticker greenlet per process does it for
        every user, so that a user waits for its runs with no timer of its own."""
        self.users.add(user)
        if self._ticker is None:
            self._ticker = gevent.spawn(self._tick_loop)
            self.lag.start()

    def _tick_loop(self) -> None:
        while True:
            gevent.sleep(TICK_S)
            try:
                self.tick()
                now = self.clock.now()
                if now - self._last_overdue >= OVERDUE_CHECK_MS:
                    self._last_overdue = now
                    for user in list(self.users):
                        user._give_up_overdue(now)
            except Exception:  # noqa: BLE001 - the ticker of every user must never die
                logger.exception("checking run deadlines failed")


#: Whether this process has said once that --host is not a WebSocket URL (every user would say it).
_BAD_HOST_LOGGED: list = []

_MONITORS: "weakref.WeakKeyDictionary[Any, dict[str, _Monitor]]" = weakref.WeakKeyDictionary()


def _monitor(environment, profile: "_profiles.Profile") -> _Monitor:
    """The monitor of this Locust process for this profile (user classes may differ in profile)."""
    by_profile = _MONITORS.setdefault(environment, {})
    key = repr(profile)
    monitor = by_profile.get(key)
    if monitor is None:
        monitor = by_profile[key] = _Monitor(environment, profile)
    return monitor


class _Readers:
    """The one greenlet that reads every connection of this Locust process.

    gevent watches each socket (an I/O watcher of its event loop, started once per connection)
    and, when one is readable, queues its wire for this greenlet, which reads it without waiting
    (:meth:`~agent_events.conformance.live.wire_sync.SocketWire.readable`) and judges what came:
    no greenlet, so no stack, per connection, and one wake-up serves every connection that has
    something to read. The watcher's callback runs in gevent's hub and only queues.
    """

    def __init__(self) -> None:
        self._loop = gevent.get_hub().loop
        self._ready: deque = deque()
        self._wake = Event()
        self._greenlet = None

    def add(self, wire: SocketWire) -> None:
        watcher = self._loop.io(wire.fileno(), 1)  # 1: readable (libev's and libuv's READ)
        watcher.start(self._readable, wire)
        wire.detach = watcher.close  # stops it (called before the socket is closed)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)
        self._readable(wire)  # what the handshake's last read, or TLS, left buffered

    def _readable(self, wire: SocketWire) -> None:
        self._ready.append(wire)
        self._wake.set()

    def _run(self) -> None:
        ready, wake = self._ready, self._wake
        while True:
            wake.wait()
            wake.clear()
            again = []
            while ready:
                wire = ready.popleft()
                try:
                    if wire.readable() and not wire.drained:
                        again.append(wire)
                except Exception:  # noqa: BLE001 - the reader of every user must never die
                    logger.exception("reading from %s failed", wire.endpoint.url)
            if again:  # connections with more to read: after the event loop and the users had a turn
                ready.extend(again)
                wake.set()
                gevent.sleep(0)


_READERS: list[_Readers] = []


def _readers() -> _Readers:
    if not _READERS:
        _READERS.append(_Readers())
    return _READERS[0]


# -- the user ------------------------------------------------------------------------------------------

class AgentEventsUser(User):
    """One connection to ``--host``, ``runs_in_flight`` runs on it at a time, every run checked."""

    #: the ``input`` of each start_run
    input: str = DEFAULT_INPUT
    #: the ``options`` of each start_run, e.g. ``{"simulate_failure": "primary"}`` (the fallback path)
    options: dict | None = None
    #: the name of the RUN and FIRST_EVENT entries; default "fallback" with simulate_failure, else "primary"
    scenario: str | None = None
    #: runs kept in flight on the connection
    runs_in_flight: int = 1
    #: seconds between a run's end and the next start (Locust's wait_time)
    think_time: float = 0.0
    #: the rule profile runs are checked against
    profile: str = _profiles.DEFAULT_PROFILE
    #: the wire format: ``None`` or ``"agent-events"`` (ours), ``"ag-ui"``, or a dialect file's path; a
    #: foreign dialect's user does one run per connection (see :mod:`agent_events.locust_dialect`)
    dialect: str | None = None
    #: budgets replacing the profile's, e.g. ``{"first_event_ms": 500, "deadline_s": 60}``
    budgets: dict | None = None
    #: bearer token; default the environment variable named by ``token_env``
    token: str | None = None
    token_env: str = TOKEN_ENV
    #: wss:// only: a CA bundle to trust (default: the system's)
    cafile: str | None = None
    open_timeout: float = 10.0
    #: largest frame accepted from the endpoint, in bytes
    max_size: int = 4 * 2**20

    def __init__(self, environment) -> None:
        super().__init__(environment)
        opts = environment.parsed_options

        def setting(name: str, attribute: str):
            value = getattr(opts, f"agent_events_{name}", None) if opts is not None else None
            return getattr(self, attribute) if value is None else value

        self._window = int(setting("runs_in_flight", "runs_in_flight"))
        self._think = float(setting("think_time", "think_time"))
        self._input = str(setting("input", "input"))
        self._options = dict(self.options) if self.options else None
        failure = getattr(opts, "agent_events_simulate_failure", None) if opts is not None else None
        if failure == "primary":
            self._options = {**(self._options or {}), "simulate_failure": "primary"}
        elif failure == "none" and self._options:
            self._options.pop("simulate_failure", None)
        if self._window < 1 or not 0 <= self._think < float("inf"):
            raise ValueError(f"runs_in_flight must be >= 1 and think_time a finite number >= 0, "
                             f"not {self._window} and {self._think}")
        self._scenario = self.scenario or (
            "fallback" if (self._options or {}).get("simulate_failure") == "primary" else "primary")
        budgets = dict(self.budgets or {})
        for budget in _profiles.BUDGETS:
            value = getattr(opts, f"agent_events_{budget}", None) if opts is not None else None
            if value is not None:
                budgets[budget] = value
        profile = _profiles.get(setting("profile", "profile")).with_budgets(**budgets)
        self._dialect, self._dialect_error = resolve_dialect(setting("dialect", "dialect"))
        if self._dialect is not None:  # one run per connection, judged by the dialect's judge
            self._dialect_monitor = monitor_for(environment, self._dialect, profile,
                                                _monitor(environment, profile).fire, RULE, _NUMBER_TEXT)
            self._scenario = self.scenario or "run"
        self._monitor = _monitor(environment, profile)
        self._deadline_ms = (self._monitor.profile.deadline_s + DRAIN_GRACE) * 1000.0
        #: the connection (kept once lost, until closed), its reader greenlet, and its client core
        #: (``None`` once the connection ended: the next task connects again)
        self._wire: SocketWire | None = None
        self._client: ClientConnection | None = None
        self._runs: dict[str, _Run] = {}
        #: runs whose FIRST_EVENT is not reported yet
        self._awaiting_first: dict[str, _Run] = {}
        #: set when a run ended, a time_sync reply came or the connection ended
        self._wake = Event()
        self._closing = False
        self._syncs = 0
        self._monitor.watch(self)

    def wait_time(self) -> float:
        return self._think

    # -- connection --------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        token = self.token if self.token is not None else os.environ.get(self.token_env) or None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _usage_error(self, problem: str) -> None:
        """Say once per process what is wrong with the settings, and stop the test (exit code 2)."""
        if not _BAD_HOST_LOGGED:
            _BAD_HOST_LOGGED.append(problem)
            logger.error("AgentEventsUser %s: stopping (exit code 2)", problem)
            self.environment.process_exit_code = 2  # a usage error, as agent-events says it
            runner = self.environment.runner
            if runner is not None:
                gevent.spawn(runner.quit)  # not from this user's own greenlet, which quit kills
        raise StopUser()

    def _connect(self) -> bool:
        url = self.host
        if not url or not url.lower().startswith(("ws://", "wss://")):
            self._usage_error(f"needs --host ws://HOST:PORT/PATH or wss://..., not {url!r}")
        monitor = self._monitor
        name = monitor.new_connection_name()
        t0 = time.perf_counter()
        self._closing = False
        self._syncs = 0
        # The client core first: messages read with the handshake's answer (a 1.1 endpoint's
        # capabilities) reach it from within open().
        self._client = ClientConnection(name, monitor.checker, forget_ended=True, run_prefix=f"locust-{name}")
        try:
            endpoint = Endpoint(url, headers=tuple(self._headers().items()), cafile=self.cafile,
                                max_size=self.max_size, open_timeout=self.open_timeout, close_timeout=2.0)
            self._wire = SocketWire(name, endpoint, monitor.clock, self._on_messages, self._on_close)
            self._wire.open([schemas.SUBPROTOCOL])
        except Exception as exc:  # noqa: BLE001 - refused, TLS, HTTP 401/503, a bad URL: a CONNECT failure, then retry
            self._wire = self._client = None
            monitor.fire(CONNECT, "connect", (time.perf_counter() - t0) * 1000.0, 0, exc)
            gevent.sleep(RECONNECT_PAUSE)
            return False
        monitor.fire(CONNECT, "connect", (time.perf_counter() - t0) * 1000.0)
        _readers().add(self._wire)
        self._synchronise()
        return True

    def _synchronise(self) -> None:
        """time_sync exchanges, as the live check does: the endpoint's clock offset for latency.delivery
        (the client core judges each echo, ``time_sync.reply``)."""
        clock = self._monitor.clock
        for _ in range(SYNC_SAMPLES):
            client, wire = self._client, self._wire
            if client is None or wire is None:
                return
            self._wake.clear()
            if wire.send("text", client.time_sync(clock.now())) is None:
                break
            if not self._wake.wait(SYNC_REPLY_TIMEOUT) or self._client is None:
                break
        client = self._client
        if client is not None:
            clock = estimate([r.sample for r in client.sync_replies if r.sample is not None])
            client.set_clock_offset(clock.offset_ms, clock.uncertainty_ms)
            client.sync_replies.clear()  # judged already (time_sync.reply); Locust reports none of them
            self._syncs = 0

    def _close(self) -> None:
        """Close the connection. Runs still in flight were not judged: they are dropped, not reported."""
        self._closing = True
        wire, self._wire = self._wire, None
        if wire is not None:
            wire.close()  # waits at most its close_timeout for the endpoint's answer; on_close has run
        if self._client is not None:
            self._drop(self._client)

    def _drop(self, client: ClientConnection) -> None:
        """The user's own close: its runs in flight end unjudged (whatever the checker says of
        them is not reported); what was found before is."""
        monitor = self._monitor
        at = monitor.clock.now()
        monitor.report(at)
        for run_id in self._runs:
            monitor.runs.pop((client.name, run_id), None)
        self._runs.clear()
        monitor.parked.drop(client.name)
        monitor.checker.forget_latencies(client.name)
        self._awaiting_first.clear()
        client.connection_closed("client", 1000, None, "", at)
        monitor.take()  # runs cut short by the user's own stop: not judged, not reported
        self._client = None

    def on_stop(self) -> None:
        self._close()

    # -- runs ------------------------------------------------------------------------------------------

    @task
    def run_agent(self) -> None:
        """Fill the connection's window of runs, then wait until one of them ends (a foreign
        dialect: one run on its own connection)."""
        if self._dialect is not None or self._dialect_error:
            return self._run_dialect()
        if self._client is None:
            if self._wire is not None:
                self._close()  # what a lost connection left: the socket, the reader
            if not self._connect():
                return
        while len(self._runs) < self._window and self._client is not None:
            if not self._start_run():
                break
        while len(self._runs) >= self._window and self._client is not None:
            self._wake.clear()
            self._wake.wait()  # a run ended (or was given up by the ticker), or the connection

    def _run_dialect(self) -> None:
        from agent_events.locust_dialect import run_once

        if self._dialect_error:
            self._usage_error(self._dialect_error)
        if not self.host or not self.host.lower().startswith(("ws://", "wss://")):
            self._connect()  # says it once and stops the test
        endpoint = Endpoint(self.host, headers=tuple(self._headers().items()), cafile=self.cafile,
                            max_size=self.max_size, open_timeout=self.open_timeout, close_timeout=2.0)
        if not run_once(self._dialect_monitor, endpoint, prefix=f"u{os.getpid()}", input_text=self._input,
                        scenario=self._scenario, add_reader=_readers().add, kinds=(RUN, FIRST_EVENT, CONNECT)):
            gevent.sleep(RECONNECT_PAUSE)

    def _start_run(self) -> bool:
        """Start one run; ``False`` when the connection is no longer open (its reader says how it ended)."""
        monitor, client, wire = self._monitor, self._client, self._wire
        if not wire.is_open:
            return False
        at = monitor.clock.now()
        run_id, data = client.start_run(at, input=self._input, options=self._options)
        run = _Run(run_id, at, client.runs[run_id])
        self._runs[run_id] = self._awaiting_first[run_id] = monitor.runs[(client.name, run_id)] = run
        wire.send("text", data)  # accounted first: nothing yields before the write
        return True

    def send_packed(self, frames: list[tuple[str, bytes]]) -> bool:
        """Send frames built by the client core (``self._client.pack(...)``) in ONE write, so that
        the endpoint reads them together: a task of a subclass can provoke the races of the spec (a
        ``start_run`` and its ``cancel_run`` in one read) under load. Whether it was sent (False:
        the connection is gone; the reader reports what it took with it)."""
        wire = self._wire
        return wire is not None and wire.send_many(frames) is not None

    def _end_run(self, run: _Run, at: float, problem: str | None = None) -> None:
        self._runs.pop(run.run_id, None)
        self._awaiting_first.pop(run.run_id, None)
        client, monitor = self._client, self._monitor
        if problem is None and client is not None and monitor.checker.latency_pending(client.name, run.run_id):
            monitor.parked.park(self, client.name, run, at)  # its RUN entry waits for that sample's judgement
        else:
            self._fire_run(run, at, problem)
        self._wake.set()

    def _fire_run(self, run: _Run, at: float, problem: str | None = None, conn: str | None = None) -> None:
        """The run's RUN entry (``conn``: its connection's name, when the user may have another one now)."""
        conn = conn if conn is not None else self._client.name if self._client is not None else None
        if conn is not None:
            self._monitor.runs.pop((conn, run.run_id), None)
        if problem is None and run.failed:
            problem = "broke " + ", ".join(sorted(run.failed))
        self._monitor.fire(RUN, self._scenario, max(0.0, at - run.start_at), run.record.size,
                           RunFailed(problem) if problem else None)

    def _give_up_overdue(self, now: float) -> None:
        for run in list(self._runs.values()):
            if now - run.start_at > self._deadline_ms:
                self._end_run(run, now, f"no agent_completed within {self._monitor.profile.deadline_s:g} s")

    # -- frames in (the reader greenlet of the process) -----------------------------------------------------------------

    def _on_messages(self, wire: SocketWire, messages: list, at: float) -> None:
        """The messages of one read: the client core judges them (the checker sees each), then
        what they meant goes to Locust's statistics."""
        client = self._client
        if client is None or wire is not self._wire:
            return  # a connection this user has already given up
        ended = client.receive_many(messages, at)
        monitor = self._monitor
        if monitor.checker.violations:
            monitor.report(at)
        if self._awaiting_first:
            for run in [r for r in self._awaiting_first.values() if r.record.first_at is not None]:
                del self._awaiting_first[run.run_id]
                run.first_reported = True
                record = run.record
                monitor.fire(FIRST_EVENT, self._scenario, max(0.0, record.first_at - run.start_at),
                             record.size // max(1, record.events))
        for record in ended:
            run = self._runs.get(record.run_id)
            if run is not None:
                refused = f"refused: error {record.refused!r}" if record.refused is not None else None
                self._end_run(run, record.completed_at if record.completed_at is not None else at, refused)
        if len(client.sync_replies) != self._syncs:
            self._syncs = len(client.sync_replies)
            self._wake.set()

    def _on_close(self, wire: SocketWire, info: CloseInfo) -> None:
        """The connection ended. Closed by this user: its runs are dropped (:meth:`_drop`).
        Otherwise the endpoint (or the network) closed it: the client core judges how
        (``transport.connection_kept``, ``frame.size``), the checker ends the runs it took with it,
        and each is a failed RUN."""
        client = self._client
        if client is None or (wire is not self._wire and self._wire is not None):
            return
        if self._closing or info.by == "client" and info.cause is None:
            self._drop(client)
            return
        monitor = self._monitor
        at = monitor.clock.now()
        client.connection_closed(info.by, info.code, info.cause, info.detail, at, max_size=wire.endpoint.max_size)
        monitor.report(at)
        text = info.reason or info.detail
        why = f"code {info.code}{' ' + text if text else ''}" if info.code is not None else text or "dropped"
        for run in list(self._runs.values()):
            self._end_run(run, at, f"the connection closed ({why}) before agent_completed")
        self._client = None
        self._wake.set()
