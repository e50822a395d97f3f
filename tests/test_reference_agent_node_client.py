"""A client that is not Python (Node's built-in WebSocket) completes runs against `agent-events serve`."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from test_reference_agent_support import PRIMARY_TOOLS, check_well_formed, result, served_cli, tools, valid

CLIENT = Path(__file__).resolve().parent.parent / "examples" / "node_client.mjs"
NODE = shutil.which("node")


def node_has_websocket() -> bool:
    if NODE is None:
        return False
    probe = subprocess.run([NODE, "--experimental-websocket", "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not node_has_websocket(),
                                reason="needs Node.js 20+ with a global WebSocket (node --experimental-websocket)")


@pytest.fixture(scope="module")
def served_url():
    with served_cli("--llm-delay-ms", "5") as (proc, url):
        yield url
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


@pytest.mark.parametrize("flags, fallback", [([], False), (["--fallback"], True)], ids=["primary", "fallback"])
def test_node_client_completes_a_run(served_url, flags, fallback):
    done = subprocess.run([NODE, "--experimental-websocket", str(CLIENT), served_url, "Cut costs and speed up builds", *flags],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert 'subprotocol "agent-events.v1"' in done.stderr
    assert "server speaks protocol 1.1: simulate_failure, cancel, time_sync, resume" in done.stderr
    events = [valid(json.loads(line)) for line in done.stdout.splitlines() if line.strip()]
    check_well_formed(events)
    assert events[0]["run_id"].startswith("node-")
    assert result(events)["fallback_used"] is fallback
    if not fallback:
        assert tools(events) == PRIMARY_TOOLS
