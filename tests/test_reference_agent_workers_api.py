"""Worker supervision is the reference agent's API: ``serve_workers`` from Python, no CLI involved."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import urllib.request

import psutil
import pytest

from agent_events import reference_agent
from agent_events.reference_agent import workers

SCRIPT = textwrap.dedent("""
    import sys
    from agent_events.reference_agent import ServerConfig, serve_workers
    sys.exit(serve_workers(ServerConfig(host="127.0.0.1", port=0, llm_delay_ms=0), 2))
""")


@pytest.mark.skipif(not workers.reuse_port_supported(), reason="SO_REUSEPORT balancing is Linux's")
def test_serve_workers_from_python_serves_and_stops_cleanly():
    process = subprocess.Popen([sys.executable, "-c", SCRIPT], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(process.pid)
    children: list[psutil.Process] = []
    try:
        url = process.stdout.readline().strip()  # printed once both workers listen
        assert url.startswith("ws://127.0.0.1:"), process.stderr.read() if process.poll() is not None else url
        children = parent.children(recursive=True)
        assert len(children) == 2
        with urllib.request.urlopen(url.replace("ws://", "http://", 1) + "healthz", timeout=10) as response:
            assert json.loads(response.read())["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    finally:
        for proc in (*children, parent):
            try:
                proc.kill()
            except psutil.Error:
                pass


def test_serve_workers_refuses_what_it_cannot_do_as_data(monkeypatch):
    monkeypatch.setattr(workers, "reuse_port_supported", lambda: False)
    with pytest.raises(reference_agent.WorkersError, match="SO_REUSEPORT"):
        reference_agent.serve_workers(reference_agent.ServerConfig(port=0), 2)
