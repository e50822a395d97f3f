"""The Locust user's client side for a foreign dialect (``AgentEventsUser.dialect = "ag-ui"``).

What :mod:`agent_events.dialects.live` does for one run, in a Locust user's greenlet: open a
connection (the plain-socket wire, read by the process's one reader greenlet), send the dialect's
start message (AG-UI's ``RunAgentInput``) first, wait until the run ended (then a short linger so
that an event after the end is seen), the endpoint closed, or the run deadline passed; then close.
One run per connection: a Locust task is one run, the next task connects again (AG-UI's cloud
runtime closes after one run anyway). Every frame goes to the dialect's sans-I/O judge
(:class:`~agent_events.dialects.judge.DialectChecker`), one per Locust process and dialect, so
every broken rule is a ``RULE`` failure named by its id (``ag-ui.run.nested``), and the run's
``RUN`` entry fails naming the rules it broke. Kept apart from :mod:`agent_events.locust` so that
module stays about our protocol's client; it imports neither Locust nor that module.
"""

from __future__ import annotations

import json
import sys
import time
import weakref
from typing import Any, Callable

import gevent
from gevent.event import Event

from agent_events.conformance.live.wire_core import Clock, CloseInfo, Endpoint
from agent_events.conformance.live.wire_sync import SocketWire
from agent_events.dialects import Dialect, make_checker, start_message
from agent_events.dialects.live import LINGER_S, _run_over
from agent_events.locust_lag import GeventLagMonitor, report_inconclusive

#: Waits of one lag tick at a run's end for its held latency samples to be judged (a tick is 5 ms).
SETTLE_TICKS = 20

#: fire(request_type, name, response_time_ms, length, exception)
Fire = Callable[..., None]


class DialectRunFailed(Exception):
    """A Locust failure for one run of a foreign dialect: the rules it broke, or why it did not end."""


class DialectRuleViolation(Exception):
    """A Locust failure for one broken rule of a foreign dialect: expected and observed."""


class _Connection:
    __slots__ = ("name", "failed", "over", "closed", "wake", "first_at", "frames")

    def __init__(self, name: str) -> None:
        self.name = name
        self.failed: set[str] = set()
        self.over = False
        self.closed: CloseInfo | None = None
        self.wake = Event()
        self.first_at: float | None = None
        self.frames = 0


class DialectMonitor:
    """The judge of one Locust process for one dialect and profile, and the connections in flight.

    All greenlets share one thread and no judge call yields: no lock. The judge keeps every
    violation (no cap) and :meth:`report` takes them after each batch of frames."""

    def __init__(self, dialect: Dialect, profile: Any, fire: Fire, rule: str, number_text) -> None:
        self.dialect = dialect
        self.profile = profile
        self.clock = Clock()
        #: the process's own stalls: an over-budget latency they explain is inconclusive (locust_lag)
        self.lag = GeventLagMonitor(self.clock.now)
        self.judge = make_checker(dialect, profile, max_violations_per_rule=sys.maxsize, lag=self.lag.record)
        self._inconclusive: dict[str, int] = {}
        self.fire = fire
        self._rule = rule
        self._numbers = number_text
        self.connections: dict[str, _Connection] = {}
        self._count = 0

    def new_name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}-{self._count}"

    def settle(self, conn: str) -> None:
        """The run on ``conn`` ended: judge its held latency samples, once the lag monitor has ticked
        past them (a few ms), before its RUN entry says whether it broke a rule."""
        judge = self.judge
        for _ in range(SETTLE_TICKS):
            judge.settle_latencies(self.lag.seen)
            if not judge.latency_pending_on(conn):
                return
            gevent.sleep(self.lag.tick_s)
        judge.settle_latencies(self.clock.now())  # (a monitor that never ticked: judged as read)

    def report(self, at: float) -> None:
        judge = self.judge
        report_inconclusive(judge, self._inconclusive, self.fire)
        found, judge.violations = judge.violations, []
        for v in found:
            conn = self.connections.get(v.conn)
            if conn is not None:
                conn.failed.add(v.rule_id)
            text = f"expected {v.expected}; observed {v.observed}"
            self.fire(self._rule, v.rule_id, 0.0, 0, DialectRuleViolation(self._numbers.sub("#", text)))


_MONITORS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def resolve_dialect(spec: Any) -> tuple[Dialect | None, str | None]:
    """``(the user's dialect when it is not ours, None)``, or ``(None, what is wrong with it)``."""
    if spec is None:
        return None, None
    from agent_events.dialects import DialectError, resolve
    from agent_events.dialects.toml_file import DialectFileError

    try:
        dialect = resolve(spec)
    except (DialectError, DialectFileError, OSError) as exc:
        return None, f"dialect {spec!r}: {exc}"
    if dialect.is_ours:
        return None, None
    if dialect.start is None:
        return None, f"dialect {dialect.label} names no start message ([start] message = ...): it cannot be driven live"
    return dialect, None


def monitor_for(environment, dialect: Dialect, profile: Any, fire: Fire, rule: str, number_text) -> DialectMonitor:
    by_key = _MONITORS.setdefault(environment, {})
    key = (dialect.label, dialect.source, repr(profile))
    monitor = by_key.get(key)
    if monitor is None:
        monitor = by_key[key] = DialectMonitor(dialect, profile, fire, rule, number_text)
    return monitor


def run_once(monitor: DialectMonitor, endpoint: Endpoint, *, prefix: str, input_text: str, scenario: str,
             add_reader: Callable[[SocketWire], None], kinds: tuple[str, str, str]) -> bool:
    """One run on its own connection; every outcome is a Locust entry. ``kinds``: the RUN,
    FIRST_EVENT and CONNECT request types. Returns False when the connection failed."""
    run_kind, first_kind, connect_kind = kinds
    fire, judge, clock = monitor.fire, monitor.judge, monitor.clock
    name = monitor.new_name(prefix)
    conn = monitor.connections[name] = _Connection(name)
    monitor.lag.start()

    def on_messages(wire: SocketWire, messages: list, at: float) -> None:
        for kind, data in messages:
            frame: Any = bytes(data)
            if kind == "text":
                try:
                    frame = frame.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            judge.receive(frame, at, name)
        if conn.first_at is None and messages:
            conn.first_at = at
        conn.frames += len(messages)
        if judge.violations:
            monitor.report(at)
        if not conn.over and _run_over(judge, name):
            conn.over = True
        conn.wake.set()

    def on_close(wire: SocketWire, info: CloseInfo) -> None:
        conn.closed = info
        conn.wake.set()

    t0 = time.perf_counter()
    try:
        wire = SocketWire(name, endpoint, clock, on_messages, on_close)
        wire.open(None)
    except Exception as exc:  # noqa: BLE001 - refused, TLS, HTTP 4xx/5xx: a CONNECT failure
        monitor.connections.pop(name, None)
        fire(connect_kind, "connect", (time.perf_counter() - t0) * 1000.0, 0, exc)
        return False
    fire(connect_kind, "connect", (time.perf_counter() - t0) * 1000.0)
    add_reader(wire)
    stopped = False
    try:
        message = start_message(monitor.dialect, input_text)
        start_at = clock.now()
        judge.send(message, start_at, name)
        wire.send("text", json.dumps(message).encode())
        deadline = time.monotonic() + monitor.profile.deadline_s
        reported_first = False
        while not conn.over and conn.closed is None and time.monotonic() < deadline:
            conn.wake.clear()
            conn.wake.wait(max(0.0, deadline - time.monotonic()))
            if not reported_first and conn.first_at is not None:
                reported_first = True
                fire(first_kind, scenario, max(0.0, conn.first_at - start_at))
        if not reported_first and conn.first_at is not None:
            fire(first_kind, scenario, max(0.0, conn.first_at - start_at))
        ended_at = clock.now()
        if conn.over and conn.closed is None:  # an event after the end must still be seen
            until = time.monotonic() + LINGER_S
            while conn.closed is None and time.monotonic() < until:
                conn.wake.clear()
                conn.wake.wait(max(0.0, until - time.monotonic()))
    except BaseException:  # Locust stopped the user (GreenletExit) mid-run: that run is not judged
        stopped = True
        raise
    finally:
        over = conn.over
        wire.close()
        at = clock.now()
        if stopped:  # dropped, neither passed nor failed (as a run of ours cut short by the user's stop)
            monitor.report(at)  # what was found before the stop is reported
            judge.end_connection(name, at)
            judge.forget_latencies(name)
            judge.violations = [v for v in judge.violations if v.conn != name]
        else:
            judge.end_connection(name, at)  # a run still open did not end: the judge says which rule
            monitor.settle(name)
        monitor.report(at)
        monitor.connections.pop(name, None)
    problem = None
    if conn.failed:
        problem = "broke " + ", ".join(sorted(conn.failed))
    elif not over:
        problem = ("the connection closed before the run ended" if conn.closed is not None
                   and conn.closed.by != "client" else f"the run did not end within {monitor.profile.deadline_s:g} s")
    fire(run_kind, scenario, max(0.0, ended_at - start_at), conn.frames, DialectRunFailed(problem) if problem else None)
    return True
