"""Resume that holds at scale (issue 24): ``serve --workers N`` and several ``serve`` processes sharing
a run log on a real ``redis-server`` (Debian's; started here on a free loopback port, no persistence,
killed after). Without ``redis-server`` on the machine these tests are skipped, saying so.

Which worker serves a connection is read from the kernel, not guessed: each worker's pid is named by
``/healthz``, and the worker that holds a connection's socket is the one whose connections list our
client's address (psutil). A test that needs the other worker reconnects until it gets it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import orjson
import psutil
import pytest

from agent_events import conformance
from agent_events.conformance.cli import main
from agent_events.conformance.commands import serve as serve_command
from agent_events.conformance.exitcodes import ExitCode
from agent_events.conformance.core.violations import NOT_APPLICABLE, PASS
from misbehaving_servers import RELAXED
from test_reference_agent_support import arun, connect, recv, start_run
from test_serve_workers import HEALTH_ATTEMPTS, Served

REDIS_SERVER = shutil.which("redis-server")
pytestmark = [
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)"),
    pytest.mark.skipif(not serve_command.reuse_port_supported(), reason="SO_REUSEPORT balancing is Linux's"),
]
#: Connections opened at most to land on a chosen worker (1 in 2**30 to miss with 2 workers).
LAND_ATTEMPTS = 30


class Redis:
    """A throw-away redis-server on 127.0.0.1."""

    def __init__(self) -> None:
        for _ in range(5):  # the port is free when chosen; another process may take it before redis binds
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            self.process = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._answers():
                break
            self.stop()
        else:  # pragma: no cover
            pytest.fail("redis-server did not start")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def _answers(self) -> bool:
        for _ in range(100):
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def command(self, *args: str) -> bytes:
        """One command through redis-cli's wire protocol, by hand (inline commands): no client needed."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall((" ".join(args) + "\r\n").encode())
            return sock.recv(65536)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@pytest.fixture(scope="module")
def redis_server():
    server = Redis()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    redis_server.command("FLUSHALL")
    return redis_server.url


def _stopped(*served: Served) -> None:
    for s in served:
        try:
            s.stop()
        finally:
            s.kill()


def _worker_of(served: Served, ws) -> int:
    """The pid of the worker process that holds ``ws``'s connection."""
    local = ws.transport.get_extra_info("sockname")[:2]
    for worker in served.workers or [served.parent]:
        for conn in worker.net_connections(kind="tcp"):
            if conn.raddr and (conn.raddr.ip, conn.raddr.port) == tuple(local):
                return worker.pid
    raise AssertionError(f"no worker holds the connection from {local}")


async def _connect_to(served: Served, want=None, avoid=None):
    """A connection on worker ``want`` (or on any but ``avoid``), and that worker's pid."""
    for _ in range(LAND_ATTEMPTS):
        ws = await connect(served.url)
        await recv(ws, capabilities=True)
        pid = _worker_of(served, ws)
        if (want is None or pid == want) and (avoid is None or pid != avoid):
            return ws, pid
        await ws.close()
    raise AssertionError(f"no connection landed on the worker wanted after {LAND_ATTEMPTS} attempts")


async def _events(ws, run_id: str, until, timeout: float = 20.0) -> list[dict]:
    """``run_id``'s messages (events and errors) until ``until(last)`` holds."""
    seen: list[dict] = []
    async with asyncio.timeout(timeout):
        while not seen or not until(seen[-1]):
            message = await recv(ws, timeout)
            if message.get("run_id") == run_id:
                seen.append(message)
    return seen


def _ended(message: dict) -> bool:
    return message["type"] in ("agent_completed", "error")


def _resume(run_id: str, token: str, last_seq: int) -> str:
    return orjson.dumps({"type": "resume_run", "run_id": run_id, "resume_token": token, "last_seq": last_seq}).decode()


async def _start_and_cut(served: Served, run_id: str, cut_after: int, want=None, **options):
    """Start a run, read it up to seq ``cut_after``, drop the link (no close frame): (token, owner pid)."""
    ws, owner = await _connect_to(served, want=want)
    await ws.send(start_run(run_id, **options))
    seen = await _events(ws, run_id, lambda m: m.get("seq", -1) >= cut_after)
    ws.transport.abort()
    return seen[0]["payload"]["resume_token"], owner, seen


def _statuses(report, *rule_ids):
    statuses = report.statuses()
    return {rule_id: statuses[rule_id] for rule_id in rule_ids}


# -- honest capabilities ------------------------------------------------------------------------

def test_workers_without_a_store_declare_no_resume_say_why_and_are_conformant():
    served = Served("--workers", "2")
    try:
        report = conformance.check(served.url, **RELAXED)
        code, err = served.stop()
    finally:
        served.kill()
    assert report.conformant and report.exit_code() == 0, report
    assert report.features["resume"] is False
    assert _statuses(report, "resume.replay", "resume.secret") == {"resume.replay": NOT_APPLICABLE,
                                                                   "resume.secret": NOT_APPLICABLE}
    assert code == ExitCode.OK
    assert err.count("resume is off: with --workers 2") == 1 and "--resume-store" in err


def test_workers_with_a_store_claim_resume_and_prove_it_ten_times_in_a_row(redis_url):
    served = Served("--workers", "2", "--resume-store", redis_url)
    try:
        health = served.healthz()
        assert health["resume_store"]["kind"] == "redis" and health["resume_store"]["shared"]
        for _ in range(10):  # resume claimed and proven each time; how often a resume race shows
            # is tests/test_races.py's point (20 checks x 9 tries), so 4 tries of each here: still judged, cheaper
            report = conformance.check(served.url, scenarios=["reconnect"], race_tries=4, **RELAXED)
            assert report.conformant and report.features["resume"], report
            assert _statuses(report, "resume.replay", "resume.secret", "capabilities.honest") == {
                "resume.replay": PASS, "resume.secret": PASS, "capabilities.honest": PASS}
        report = conformance.check(served.url, **RELAXED)  # and every other scenario, once
        assert report.conformant and report.exit_code() == 0, report
        code, err = served.stop()
    finally:
        served.kill()
    assert code == ExitCode.OK, err
    assert "resume is off" not in err


# -- a resume on another worker ---------------------------------------------------------------

def test_a_resume_on_the_other_worker_replays_every_missed_event_once_then_the_rest(redis_url):
    served = Served("--workers", "2", "--resume-store", redis_url, "--llm-delay-ms", "100")
    pids = {p.pid for p in served.workers}
    seen_pids = {served.healthz()["pid"] for _ in range(HEALTH_ATTEMPTS)}
    assert seen_pids == pids  # /healthz names each worker

    async def body():
        token, owner, before = await _start_and_cut(served, "far", 1)
        ws, other = await _connect_to(served, avoid=owner)
        await ws.send(_resume("far", token, 1))
        after = await _events(ws, "far", _ended)
        await ws.close()
        return owner, other, before, after

    try:
        owner, other, before, after = arun(body(), timeout=60)
    finally:
        _stopped(served)
    assert owner != other and {owner, other} == pids
    assert after[-1]["type"] == "agent_completed", after[-1]
    assert [m["seq"] for m in after] == list(range(2, 2 + len(after)))  # each missed event once, in order
    assert [m["seq"] for m in before][-1] == 1


def test_a_cancel_on_the_new_worker_reaches_the_owner_and_a_wrong_token_is_denied(redis_url):
    served = Served("--workers", "2", "--resume-store", redis_url, "--llm-delay-ms", "2000")

    async def body():
        token, owner, _ = await _start_and_cut(served, "stop-me", 0)
        ws, _other = await _connect_to(served, avoid=owner)
        public, _, secret = token.partition(".")
        await ws.send(_resume("stop-me", f"{public}.{secret[:-2]}xx", 0))
        denied = await _events(ws, "stop-me", _ended)
        await ws.send(_resume("stop-me", token, 0))
        await _events(ws, "stop-me", lambda m: m.get("seq", -1) >= 1)  # following it, live
        await ws.send(orjson.dumps({"type": "cancel_run", "run_id": "stop-me"}).decode())
        rest = await _events(ws, "stop-me", _ended)
        await ws.close()
        return denied, rest

    try:
        denied, rest = arun(body(), timeout=60)
    finally:
        _stopped(served)
    assert [m["type"] for m in denied] == ["error"] and denied[0]["code"] == "resume_denied"
    completed = rest[-1]
    assert completed["type"] == "agent_completed", completed
    assert completed["payload"]["result"]["error"]["type"] == "cancelled"  # the owner ended it: the client's cancel


def test_two_serve_processes_sharing_one_store_are_two_machines_behind_a_balancer(redis_url):
    first = Served("--resume-store", redis_url, "--llm-delay-ms", "50")
    second = Served("--resume-store", redis_url)

    async def body():
        token, _, _ = await _start_and_cut(first, "roam", 2)
        ws, _ = await _connect_to(second)
        await ws.send(_resume("roam", token, 2))
        after = await _events(ws, "roam", _ended)
        await ws.close()
        return after

    try:
        after = arun(body(), timeout=60)
        report = conformance.check(second.url, scenarios=["reconnect"], **RELAXED)
    finally:
        _stopped(first, second)
    assert after[-1]["type"] == "agent_completed"
    assert [m["seq"] for m in after] == list(range(3, 3 + len(after)))
    assert report.conformant, report


# -- faults -----------------------------------------------------------------------------------

def test_a_store_unreachable_at_start_up_exits_3_saying_which(capsys):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for extra in ([], ["--workers", "2"]):
        assert main(["serve", "--port", "0", "--resume-store", f"redis://127.0.0.1:{port}/0", *extra]) == ExitCode.CONNECT
        err = capsys.readouterr().err
        assert f"cannot reach the resume store redis://127.0.0.1:{port}/0" in err and "Traceback" not in err
    assert main(["serve", "--port", "0", "--resume-store", "http://127.0.0.1/0"]) == ExitCode.USAGE
    assert "redis://HOST:PORT/DB" in capsys.readouterr().err


def test_the_store_from_the_environment_and_a_bad_config_key(redis_url, tmp_path, monkeypatch, capsys):
    served = Served.__new__(Served)
    env = {**os.environ, "AGENT_EVENTS_RESUME_STORE": redis_url}
    served.process = subprocess.Popen(
        [sys.executable, "-m", "agent_events.conformance.cli", "serve", "--port", "0", "--workers", "2"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    served.url = served.process.stdout.readline().strip()
    served.health = served.url.replace("ws://", "http://", 1) + "healthz"
    served.parent = psutil.Process(served.process.pid)
    served.workers = served.parent.children(recursive=True)
    try:
        assert served.healthz()["resume_store"]["kind"] == "redis"
    finally:
        _stopped(served)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "agent-events.toml").write_text('[serve]\nresume_store = "redis//nowhere"\n')
    assert main(["serve", "--port", "0"]) == ExitCode.USAGE
    assert "resume_store must be a resume store URL" in capsys.readouterr().err


def test_the_store_gone_mid_run_refuses_a_resume_elsewhere_and_running_runs_go_on():
    store = Redis()  # this test kills it
    owner = Served("--resume-store", store.url, "--llm-delay-ms", "300")
    other = Served("--resume-store", store.url)

    async def body():
        live, _ = await _connect_to(owner)
        await live.send(start_run("keeps-going"))
        await _events(live, "keeps-going", lambda m: m.get("seq", -1) >= 0)
        token, _, _ = await _start_and_cut(owner, "dropped", 0)
        store.stop()
        ws, _ = await _connect_to(other)
        await ws.send(_resume("dropped", token, 0))
        refused = await _events(ws, "dropped", _ended)
        going = await _events(live, "keeps-going", _ended)
        back, _ = await _connect_to(owner)  # the owner still has the run in memory: it resumes there
        await back.send(_resume("dropped", token, 0))
        there = await _events(back, "dropped", _ended)
        for w in (ws, live, back):
            await w.close()
        return refused, going, there

    try:
        refused, going, there = arun(body(), timeout=60)
        health = owner.healthz()
    finally:
        _stopped(owner, other)
        store.stop()
    assert [m["type"] for m in refused] == ["error"] and refused[0]["code"] == "resume_unavailable"
    assert going[-1]["type"] == "agent_completed" and going[-1]["payload"]["result"]["success"]
    assert there[-1]["type"] == "agent_completed" and there[0]["seq"] == 1
    assert health["resume_store"]["healthy"] is False and health["resume_store"]["append_failures"] > 0


def test_a_dead_owner_is_a_lost_run_for_its_follower_and_for_a_later_resume(redis_url):
    owner = Served("--resume-store", redis_url, "--llm-delay-ms", "1500")
    other = Served("--resume-store", redis_url)

    async def body():
        token, _, _ = await _start_and_cut(owner, "doomed", 0)
        ws, _ = await _connect_to(other)
        await ws.send(_resume("doomed", token, 0))
        await _events(ws, "doomed", lambda m: m.get("seq", -1) >= 1)
        owner.parent.kill()  # kill -9: no goodbye, the lease just stops being renewed
        following = await _events(ws, "doomed", _ended)
        again, _ = await _connect_to(other)
        await again.send(_resume("doomed", token, 0))
        later = await _events(again, "doomed", _ended)
        for w in (ws, again):
            await w.close()
        return following, later

    try:
        following, later = arun(body(), timeout=60)
    finally:
        _stopped(other)
        owner.kill()
    assert following[-1]["type"] == "error" and following[-1]["code"] == "run_lost", following[-1]
    assert all(m["type"] != "agent_completed" for m in following)  # never a fake success
    assert [m["type"] for m in later] == ["error"] and later[0]["code"] == "run_lost"


def test_the_bounds_hold_in_the_store(redis_server, redis_url):
    owner = Served("--resume-store", redis_url, "--resume-buffer-events", "4", "--resume-window-s", "5")
    other = Served("--resume-store", redis_url)

    async def body():
        token, _, seen = await _start_and_cut(owner, "bounded", 8)
        public = token.partition(".")[0]
        await asyncio.sleep(0.2)  # the writer's next loop turn
        length = int(redis_server.command("XLEN", f"agent_events:log:{public}")[1:].split(b"\r")[0])
        ttl = int(redis_server.command("PTTL", f"agent_events:log:{public}")[1:].split(b"\r")[0])
        stored = redis_server.command("HGETALL", f"agent_events:run:{public}")
        ws, _ = await _connect_to(other)
        await ws.send(_resume("bounded", token, 0))
        expired = await _events(ws, "bounded", _ended)
        await ws.close()
        return token, length, ttl, stored, expired

    try:
        token, length, ttl, stored, expired = arun(body(), timeout=60)
    finally:
        _stopped(owner, other)
    assert length == 4  # resume_buffer_events, as in memory
    assert 0 < ttl <= 8000  # the resume window (5 s) and the owner's lease (3 s) at most
    assert token.partition(".")[2].encode() not in stored  # the store holds the secret's digest only
    assert [m["type"] for m in expired] == ["error"] and expired[0]["code"] == "resume_expired"
