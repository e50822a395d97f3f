"""``agent-events serve --workers N``: N processes on one port, conformant, stopped without leftovers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest

from agent_events import conformance
from agent_events.conformance.cli import main
from agent_events.conformance.commands import serve as serve_command
from agent_events.conformance.exitcodes import ExitCode
from misbehaving_servers import RELAXED

pytestmark = pytest.mark.skipif(not serve_command.reuse_port_supported(), reason="SO_REUSEPORT balancing is Linux's")

#: Fresh connections to /healthz before giving up on seeing every worker answer
#: (the kernel spreads connections by a hash of the client's port: 2 workers, 1 in 2**40 to miss one).
HEALTH_ATTEMPTS = 40


class Served:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent_events.conformance.cli", "serve", "--host", "127.0.0.1", "--port", "0",
             "--llm-delay-ms", "0", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip()  # printed once every worker listens
        assert self.url.startswith("ws://127.0.0.1:"), self.process.stderr.read() if self.process.poll() is not None else self.url
        self.health = self.url.replace("ws://", "http://", 1) + "healthz"
        self.parent = psutil.Process(self.process.pid)
        self.workers = self.parent.children(recursive=True)

    def healthz(self) -> dict:
        with urllib.request.urlopen(self.health, timeout=10) as response:  # a fresh connection each time
            return json.loads(response.read())

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.process.send_signal(sig)
        try:
            _, err = self.process.communicate(timeout=30)
        finally:
            self.kill()
        return self.process.returncode, err

    def kill(self) -> None:
        for proc in (*self.workers, self.parent):
            try:
                proc.kill()
            except psutil.Error:
                pass

    def left_behind(self) -> list[psutil.Process]:
        gone, alive = psutil.wait_procs(self.workers, timeout=5)
        return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def test_two_workers_share_the_port_answer_conformant_and_stop_on_sigterm():
    served = Served("--workers", "2")
    try:
        pids = {p.pid for p in served.workers}
        assert len(pids) == 2 and served.process.pid not in pids
        seen = set()
        for _ in range(HEALTH_ATTEMPTS):
            health = served.healthz()
            assert health["status"] == "ok"
            seen.add(health["pid"])
            if seen == pids:
                break
        assert seen == pids  # both workers answer on the one port, each naming itself
        report = conformance.check(served.url, scenarios=["primary"], **RELAXED)
        assert report.conformant, report
        code, err = served.stop(signal.SIGTERM)
    finally:
        served.kill()
    assert code == ExitCode.OK, err
    assert not served.left_behind()
    assert err.count("shutting down") == 2  # each worker drained


def test_sigint_stops_every_worker_too_and_a_dead_worker_stops_the_rest():
    served = Served("--workers", "2")
    try:
        code, err = served.stop(signal.SIGINT)
    finally:
        served.kill()
    assert code == ExitCode.OK, err
    assert not served.left_behind()

    served = Served("--workers", "2")
    try:
        served.workers[0].kill()
        code, err = served.process.wait(30), served.process.stderr.read()
    finally:
        served.kill()
    assert code == ExitCode.INTERNAL
    assert f"worker {served.workers[0].pid} exited unexpectedly" in err
    assert not served.left_behind()


def test_without_reuse_port_balancing_workers_are_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(serve_command, "reuse_port_supported", lambda: False)
    assert main(["serve", "--port", "0", "--workers", "2"]) == ExitCode.USAGE
    assert "SO_REUSEPORT" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--workers", "0"]) == ExitCode.USAGE
