"""Fuzzing the reference agent's message handling over a real connection (issue #14).

One server (``agent-events serve`` in a subprocess, its log in a file) and one
connection take every example: random JSON shaped like client messages, random
text, random bytes as binary frames, pings, oversized frames. After each example
the connection must still answer a ``time_sync``, and every message the server
sent must be a valid server message whose ``error`` codes are documented (and
never ``internal_error``). At the end: no traceback in the server's log, the
log did not grow per bad message, nothing is left in flight, and the server's
memory stayed bounded.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from websockets.sync.client import connect as sync_connect

from agent_events import schemas
from test_reference_agent_siege import health, server_process
from test_reference_agent_support import SERVER_MESSAGE, SUBPROTOCOLS

MAX_SIZE = 4096  # the server's max_message_size here, so that "too big" is cheap to reach
DOCUMENTED = set(schemas.ERROR_CODES) - {"internal_error"}

scalars = (st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                      max_leaves=12)
depths = st.integers(1, 1023).map(lambda depth: "[" * depth + "]" * depth)
run_ids = st.text(min_size=1, max_size=10) | values
types = st.sampled_from(sorted(schemas.CLIENT_TYPES)) | st.text(max_size=12) | values

messages = st.fixed_dictionaries(
    {"type": types},
    optional={
        "input": st.text(max_size=200) | values,
        "run_id": run_ids,
        "client_time_ms": st.floats(allow_nan=False, allow_infinity=False) | values,
        "options": st.fixed_dictionaries({}, optional={"simulate_failure": st.just("primary") | values,
                                                       "extra": values}) | values,
        "extra": values,
    },
).map(lambda message: orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS).decode())


def _with_deep(pair) -> str:
    """A message with one field's value replaced by deeply nested arrays."""
    field, nesting = pair
    return {
        "type": '{"type":%s}',
        "input": '{"type":"start_run","input":%s}',
        "run_id": '{"type":"start_run","input":"x","run_id":%s}',
        "options": '{"type":"start_run","input":"x","options":{"simulate_failure":%s}}',
        "client_time_ms": '{"type":"time_sync","client_time_ms":%s}',
    }[field] % nesting


deep_messages = st.tuples(st.sampled_from(["type", "input", "run_id", "options", "client_time_ms"]), depths).map(_with_deep)
whitespace = st.tuples(st.sampled_from([" ", "\t", "\n", ", ", " and ", "also ", "a."]), st.integers(1, MAX_SIZE // 6)).map(
    lambda pair: json.dumps({"type": "start_run", "input": pair[0] * pair[1]}))
frames = st.one_of(
    st.tuples(st.just("text"), messages),
    st.tuples(st.just("text"), deep_messages),
    st.tuples(st.just("text"), whitespace),
    st.tuples(st.just("text"), st.text(max_size=300)),
    st.tuples(st.just("text"), values.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode())),
    st.tuples(st.just("text"), st.integers(MAX_SIZE + 1, 2 * MAX_SIZE).map(lambda n: "x" * n)),
    st.tuples(st.just("text"), st.integers(20, 400).map(lambda n: '{"type":"time_sync","client_time_ms":%s}' % ("9" * n))),
    st.tuples(st.just("binary"), st.binary(max_size=300)),
    st.tuples(st.just("ping"), st.binary(max_size=125)),
)


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


class Client:
    """One connection for every example, and what the server said on it."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.marker = 0
        self.errors: list[str] = []
        self.bad_frames = 0
        self.pings = 0

    def settle(self) -> None:
        """Send a time_sync and read until its reply: the connection is usable and everything before it was read."""
        self.marker += 1
        marker = -self.marker
        self.ws.send(json.dumps({"type": "time_sync", "client_time_ms": marker}))
        for _ in range(100_000):
            frame = self.ws.recv(timeout=10)
            assert isinstance(frame, str), f"binary frame from the server: {frame!r:.80}"
            message = orjson.loads(frame)
            problems = list(SERVER_MESSAGE.iter_errors(message))
            assert not problems, (message, problems[0].message)
            if message["type"] == "error":
                assert message["code"] in DOCUMENTED, message
                self.errors.append(message["code"])
            if message["type"] == "time_sync" and message["client_time_ms"] == marker:
                return
        raise AssertionError("no time_sync reply")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    with server_process(tmp, "--llm-delay-ms", "0", "--max-message-size", str(MAX_SIZE),
                        "--max-runs-per-connection", "4") as (url, log_path, pid):
        with sync_connect(url, subprotocols=SUBPROTOCOLS, open_timeout=10, close_timeout=2, max_size=None,
                          ping_interval=None, max_queue=None) as ws:  # always reading: pongs are never held up
            client = Client(ws)
            client.settle()
            yield url, log_path, pid, client


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.lists(frames, min_size=1, max_size=6))
def test_fuzzed_frames_get_documented_errors_and_the_connection_stays_usable(fuzz_server, batch):
    url, log_path, pid, client = fuzz_server
    for kind, data in batch:
        if kind == "text":
            client.ws.send(data)
            client.bad_frames += 1
        elif kind == "binary":
            client.ws.send(data)
            client.bad_frames += 1
        else:
            client.pings += 1  # a ping's data must differ from any unanswered one's
            assert client.ws.ping(client.pings.to_bytes(4, "big") + data[:121]).wait(10), "no pong"
    client.settle()


def test_after_the_fuzzing_the_server_is_clean(fuzz_server):
    """Runs after the fuzz test (same module, same server): nothing leaked, nothing logged per bad frame."""
    url, log_path, pid, client = fuzz_server
    if client.bad_frames < 100:
        pytest.skip("runs after the fuzz test, on its server")
    baseline = rss_kib(pid)
    # a valid run still works on the fuzzed connection
    client.ws.send(json.dumps({"type": "start_run", "run_id": "after-fuzz", "input": "reduce costs and fix bugs"}))
    completed = False
    for _ in range(1000):
        message = orjson.loads(client.ws.recv(timeout=10))
        if message["type"] == "agent_completed" and message["run_id"] == "after-fuzz":
            completed = message["payload"]["result"]["success"]
            break
    assert completed is True
    # another pass of worst-case frames must not grow the server's memory without bound
    for _ in range(3):
        for n in range(1, 40):
            client.ws.send(json.dumps({"type": "start_run", "input": " " * (MAX_SIZE - 40 - n)}))
            client.ws.send("[" * 1000 + "]" * 1000)
        client.settle()
    grown = rss_kib(pid) - baseline
    assert grown < 64 * 1024, f"the server's RSS grew by {grown} KiB"
    deadline = time.monotonic() + 10
    while health(url)["runs_in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = health(url)
    assert stats["runs_in_flight"] == 0 and stats["connections"] == 1
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert len(log.splitlines()) < 50, log[-3000:]
