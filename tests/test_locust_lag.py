"""A saturated Locust process never names a latency failure that is its own (the harness-lag rule of
the spec's latency section, as the live check and ``load`` judge it).

The locustfile starves its own process: once a run's first event is read (a foreign dialect: once
its start is sent), the interpreter stays busy for 600 ms, so what the endpoint sends meanwhile
waits, unread, in the socket. The endpoint (the reference
agent, in this test's process) is on time. Every over-budget sample that wait explains is an
``INCONCLUSIVE`` entry, not a ``RULE`` failure; a run whose sample was late only so is a passed
``RUN``. The same endpoint made late on its own still fails (``tests/test_locust.py`` holds the
failures of broken endpoints; here, the budgets are the default ones, not the suite's relaxed ones).
"""

from __future__ import annotations

import orjson
import pytest

from test_locust import LOCUSTFILE, run_locust_alone  # noqa: E402 - skips this module too when locust is missing

from agent_events import reference_agent
from agent_events.reference_agent import WebSocketBridgeAdapter

pytestmark = pytest.mark.slow

STARVING = '''\
import time

import gevent
from locust import events

from agent_events import locust

STALL_S, GAP_S = 0.6, 0.3
#: what makes the process go busy: ours, a run's first event; a foreign dialect, a connection
ON = "FIRST_EVENT"
_last = [0.0]


def _busy():
    until = time.perf_counter() + STALL_S  # the whole process busy: nothing is read meanwhile
    while time.perf_counter() < until:
        pass
    _last[0] = time.perf_counter()


@events.request.add_listener
def _on_request(request_type, name, **kwargs):
    if request_type != ON or time.perf_counter() - _last[0] <= GAP_S:
        return
    if ON == "FIRST_EVENT":  # ours: the reader itself goes busy, with the run's other events to come
        _busy()
    else:  # a foreign dialect (a run per connection): its start goes next, then the process goes busy
        _last[0] = float("inf")  # one stall at a time
        gevent.spawn(_busy)


class Starved(locust.AgentEventsUser):
    pass
'''

#: budgets three times below the stall, yet with room for an endpoint slowed by a busy machine (the
#: suite's other Locust tests relax them to 10 s)
DEFAULT_BUDGETS = ("--agent-events-first-event-ms=200", "--agent-events-delivery-ms=200")


def test_a_starved_locust_process_reports_its_own_lateness_as_inconclusive_not_as_failures(tmp_path):
    # a 50 ms model call: a run's later events come well after its first, even on a busy machine
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=50) as server:
        code, stats, failures, log = run_locust_alone(tmp_path, server.url, STARVING, *DEFAULT_BUDGETS)
    inconclusive = {name: int(row["Request Count"]) for (type_, name), row in stats.items() if type_ == "INCONCLUSIVE"}
    assert inconclusive and set(inconclusive) <= {"latency.first_event", "latency.delivery"}, (stats.keys(), log)
    assert not [key for key in stats if key[0] == "RULE"] and failures == [], failures
    run = stats["RUN", "primary"]
    assert int(run["Request Count"]) > 0 and int(run["Failure Count"]) == 0, log
    assert code == 0, log[-6000:]


class StampsProgressLate(WebSocketBridgeAdapter):
    """Stamps its progress event 300 ms before it sends it: a delivery latency of the endpoint's own."""

    async def emit(self, type_, payload):
        data = self.encode(type_, payload)
        if type_ == "progress":
            message = orjson.loads(data)
            message["emitted_at"] -= 300.0
            data = orjson.dumps(message)
        await self.send_frame(data)


def test_a_late_sample_held_for_the_lag_judgement_still_fails_its_rule_and_its_run(tmp_path):
    # the sample is held until the process's lag monitor has ticked past its read, and its run's RUN
    # entry waits for that judgement: it still fails, naming the rule
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=5,
                                       bridge_factory=lambda ws, session: StampsProgressLate(ws, session=session)) as server:
        code, stats, failures, log = run_locust_alone(tmp_path, server.url, LOCUSTFILE, *DEFAULT_BUDGETS)
    assert code != 0, log
    assert {name for (type_, name) in stats if type_ == "RULE"} == {"latency.delivery"}, (stats.keys(), log)
    run = stats["RUN", "primary"]
    assert int(run["Failure Count"]) == int(run["Request Count"]) > 0, log  # every run broke it
    by_name = {(row["Method"], row["Name"]): row for row in failures}
    assert "broke latency.delivery" in by_name["RUN", "primary"]["Error"]


def test_a_starved_locust_process_judges_a_foreign_dialect_the_same_way(tmp_path):
    pytest.importorskip("ag_ui.core", reason="ag-ui-protocol (the test extra) is not installed")
    from ag_ui_endpoints import AgUiEndpoint

    server = AgUiEndpoint().start()
    try:
        locustfile = STARVING.replace('ON = "FIRST_EVENT"', 'ON = "CONNECT"').replace(
            "class Starved(locust.AgentEventsUser):\n    pass", "class Starved(locust.AgentEventsUser):\n    dialect = 'ag-ui'")
        code, stats, failures, log = run_locust_alone(tmp_path, f"{server.url}/conformant/json", locustfile,
                                                      *DEFAULT_BUDGETS)
    finally:
        server.stop()
    inconclusive = {name for (type_, name) in stats if type_ == "INCONCLUSIVE"}
    assert inconclusive == {"latency.first_event"}, (stats.keys(), log)
    assert not [key for key in stats if key[0] == "RULE"] and failures == [], failures
    assert int(stats["RUN", "run"]["Request Count"]) > 0 and code == 0, log
