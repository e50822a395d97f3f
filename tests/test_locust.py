"""``agent_events.locust``: Locust, one master and two workers (separate processes), against real servers.

The locustfile is the documented one line. Locust runs in subprocesses only: importing
locust monkey-patches the standard library with gevent, which this test process must not
get. Budgets are relaxed (as in the other live tests) so that a busy machine cannot turn a
slow moment into a violation; no figure is compared with a speed.
"""

from __future__ import annotations

import csv
import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import broken_agents as b
import misbehaving_servers as m
from agent_events import reference_agent
from misbehaving_servers import RELAXED
from test_check_connection import tls_files  # noqa: F401 - a fixture

# Only looked up, never imported: importing locust monkey-patches this whole pytest process with
# gevent (threads become greenlets, and every later asyncio.run() sees a "running" loop).
if importlib.util.find_spec("locust") is None:
    pytest.skip("locust is not installed (it is in the [load] and [test] extras)", allow_module_level=True)

pytestmark = pytest.mark.slow

LOCUSTFILE = "from agent_events.locust import AgentEventsUser\n"
RELAXED_LOCUST_FLAGS = [f"--agent-events-{name.replace('_', '-')}={value}" for name, value in RELAXED.items()]
#: Seconds the master, once both workers joined, runs the users: a few runs of the reference agent
#: (5 ms LLM delay) take well under a second; the workers' start-up is not counted in it.
RUN_SECONDS = 2
#: Seconds a lone ``locust`` runs its users: counted from its own start, and the scripted agents are slower.
ALONE_RUN_SECONDS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def run_locust(tmp_path: Path, url: str, *flags: str, locustfile: str = LOCUSTFILE) -> tuple[int, dict, list[dict], str]:
    """``locust --master`` plus two ``locust --worker``; returns the master's exit code, its
    stats CSV as {(type, name): row}, its failures CSV rows, and the master's log."""
    text, locustfile = locustfile, tmp_path / "locustfile.py"
    locustfile.write_text(text)
    port = _free_port()
    prefix = tmp_path / "stats"
    base = [sys.executable, "-m", "locust", "-f", str(locustfile)]
    master_log = tmp_path / "master.log"
    with master_log.open("w") as log:
        master = subprocess.Popen(
            [*base, "--headless", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
             "--expect-workers", "2", "--expect-workers-max-wait", "30", "-u", "4", "-r", "4",
             "-t", f"{RUN_SECONDS}s", "--csv", str(prefix), "--host", url, *RELAXED_LOCUST_FLAGS, *flags],
            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        workers = [subprocess.Popen([*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                                    cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
                   for _ in range(2)]
        try:
            code = master.wait(RUN_SECONDS + 60)
            for worker in workers:
                worker.wait(20)  # a worker quits when its master does
        finally:
            for process in (master, *workers):
                _stop(process)
    with open(f"{prefix}_stats.csv", newline="") as stream:
        stats = {(row["Type"], row["Name"]): row for row in csv.DictReader(stream)}
    with open(f"{prefix}_failures.csv", newline="") as stream:
        failures = list(csv.DictReader(stream))
    return code, stats, failures, master_log.read_text()


def test_master_and_two_workers_drive_the_reference_agent_with_every_run_checked(tmp_path):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=5) as server:
        code, stats, failures, log = run_locust(tmp_path, server.url)
        served = server.stats()
    assert code == 0, log
    run = stats["RUN", "primary"]
    assert int(run["Request Count"]) > 0 and int(run["Failure Count"]) == 0, log
    first = stats["FIRST_EVENT", "primary"]
    assert int(first["Request Count"]) > 0 and int(first["Failure Count"]) == 0
    assert not [key for key in stats if key[0] == "RULE"], stats.keys()
    assert failures == [] and int(stats["", "Aggregated"]["Failure Count"]) == 0
    # both workers connected their users: 4 connections (plus none refused)
    assert int(stats["CONNECT", "connect"]["Request Count"]) == 4
    assert served["connections_total"] == 4 and served["runs_started"] >= int(run["Request Count"])


def test_a_broken_rule_shows_as_failures_named_by_its_id(tmp_path):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=5,
                                       bridge_factory=b.bridge(b.DropsProgress)) as server:
        code, stats, failures, log = run_locust(tmp_path, server.url, "--agent-events-runs-in-flight", "2")
    assert code != 0, log  # Locust exits 1 when any request failed
    rules = {name: row for (type_, name), row in stats.items() if type_ == "RULE"}
    assert set(rules) == {"seq.contiguous"}, log
    assert int(rules["seq.contiguous"]["Failure Count"]) > 0
    run = stats["RUN", "primary"]
    assert int(run["Failure Count"]) == int(run["Request Count"]) > 0  # every run broke it
    by_name = {(row["Method"], row["Name"]): row for row in failures}
    assert "seq" in by_name["RULE", "seq.contiguous"]["Error"]
    assert "broke seq.contiguous" in by_name["RUN", "primary"]["Error"]


def test_an_endpoint_that_drops_the_connection_fails_the_runs_it_took_and_is_reconnected(tmp_path):
    with m.running(m.ClosesMidRun()) as url:
        code, stats, failures, log = run_locust(tmp_path, url)
    assert code != 0, log
    rules = {name for (type_, name) in stats if type_ == "RULE"}
    assert {"transport.connection_kept", "order.completed_last"} <= rules, rules
    run = stats["RUN", "primary"]
    assert int(run["Failure Count"]) == int(run["Request Count"]) > 0
    by_name = {(row["Method"], row["Name"]): row for row in failures}
    assert "the connection closed (code 1011 crashed on purpose) before agent_completed" in by_name["RUN", "primary"]["Error"]
    assert int(stats["CONNECT", "connect"]["Request Count"]) > 4  # each user connected again


def test_a_host_that_is_not_a_websocket_url_stops_the_test_with_exit_code_2(tmp_path):
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "-u", "2", "-r", "2",
                           "-t", "30s", "--host", "http://127.0.0.1:9/"],
                          cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "needs --host ws://HOST:PORT/PATH or wss://" in proc.stderr


def test_no_test_module_imports_locust_into_the_pytest_process():
    """Runs after collection has imported every test module: locust (and its gevent monkey-patching)
    must only ever live in the subprocesses, or every later asyncio.run() in this process fails."""
    assert "locust" not in sys.modules
    assert "gevent.monkey" not in sys.modules or not sys.modules["gevent.monkey"].is_module_patched("threading")


def run_locust_alone(tmp_path: Path, url: str, locustfile: str = LOCUSTFILE, *flags: str) -> tuple[int, dict, list[dict], str]:
    """One headless ``locust`` process, two users: its exit code, stats, failures and log."""
    (tmp_path / "locustfile.py").write_text(locustfile)
    prefix = tmp_path / "alone"
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "-u", "2", "-r", "2",
                           "-t", f"{ALONE_RUN_SECONDS}s", "--csv", str(prefix), "--host", url, *RELAXED_LOCUST_FLAGS, *flags],
                          cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=ALONE_RUN_SECONDS + 60)
    with open(f"{prefix}_stats.csv", newline="") as stream:
        stats = {(row["Type"], row["Name"]): row for row in csv.DictReader(stream)}
    with open(f"{prefix}_failures.csv", newline="") as stream:
        failures = list(csv.DictReader(stream))
    return proc.returncode, stats, failures, proc.stderr[-4000:]


class PingsAndFragments(m.ScriptedAgent):
    """Conforms, but pings before every event and sends each event in three fragments: frames the
    wire's fast path hands to websockets' protocol (which answers the pings and joins the parts)."""

    async def send_event(self, ws, run_id, seq, type_, payload):
        await ws.ping()
        text = orjson.dumps(self.envelope(run_id, seq, type_, payload)).decode()
        third = len(text) // 3
        await ws.send([text[:third], text[third:2 * third], text[2 * third:]])


def test_pinged_and_fragmented_events_are_read_whole_and_every_run_passes(tmp_path):
    with m.running(PingsAndFragments()) as url:
        code, stats, failures, log = run_locust_alone(tmp_path, url)
    assert code == 0, log
    run = stats["RUN", "primary"]
    assert int(run["Request Count"]) > 0 and int(run["Failure Count"]) == 0, (failures, log)
    assert not [key for key in stats if key[0] == "RULE"], failures
    # the run's size is its events' bytes as received: 12 events of some 150-200 bytes each
    assert 1000 < float(run["Average Content Size"]) < 5000, run


def test_a_frame_over_the_limit_is_a_frame_size_failure_and_fails_its_run(tmp_path):
    with m.running(m.SendsHugeFrame()) as url:
        code, stats, failures, log = run_locust_alone(tmp_path, url)
    assert code != 0, log
    rules = {name for (type_, name) in stats if type_ == "RULE"}
    assert "frame.size" in rules, (rules, log)
    run = stats["RUN", "primary"]
    assert int(run["Failure Count"]) == int(run["Request Count"]) > 0
    by_name = {(row["Method"], row["Name"]): row for row in failures}
    assert "the connection closed (code 1009" in by_name["RUN", "primary"]["Error"], by_name


def test_wss_with_the_ca_file_of_a_subclass(tmp_path, tls_files):  # noqa: F811
    certfile, keyfile = tls_files
    locustfile = ("import agent_events.locust as agent_events_locust\n\n"
                  "class Tls(agent_events_locust.AgentEventsUser):\n"
                  f"    cafile = {certfile!r}\n")
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=5,
                                       certfile=certfile, keyfile=keyfile) as server:
        code, stats, failures, log = run_locust_alone(tmp_path, server.url, locustfile)
    assert server.url.startswith("wss://")
    assert code == 0, log
    run = stats["RUN", "primary"]
    assert int(run["Request Count"]) > 0 and int(run["Failure Count"]) == 0, failures
    assert int(stats["CONNECT", "connect"]["Request Count"]) == 2 and int(stats["CONNECT", "connect"]["Failure Count"]) == 0


def test_a_message_that_comes_with_the_handshake_answer_is_judged(tmp_path):
    """Read in the same read as the 101 answer, from within the handshake: it must reach the checker."""
    from test_wire_sync import answers_with_a_frame

    with answers_with_a_frame(b"\x81\x08not json") as url:
        code, stats, failures, log = run_locust_alone(tmp_path, url)
    rules = {name for (type_, name) in stats if type_ == "RULE"}
    assert "frame.json" in rules, (rules, failures, log)


def test_an_endpoint_that_floods_every_connection_does_not_keep_the_process_from_stopping(tmp_path):
    """One reader serves every connection: connections that never run dry must not starve each
    other, Locust's own greenlets, or the stop at -t."""
    from test_wire_sync import answers_with_a_frame

    with answers_with_a_frame(b'\x81\x02{}', flood=True) as url:
        code, stats, failures, log = run_locust_alone(tmp_path, url)
    assert int(stats["CONNECT", "connect"]["Request Count"]) == 2, log
    rules = {name for (type_, name) in stats if type_ == "RULE"}
    assert rules, log  # each {} broke a rule, and was reported
