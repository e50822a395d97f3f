"""``agent-events record --run-id ID``: the recorded run carries the id the user chose."""

from __future__ import annotations

import json

import pytest

from agent_events import reference_agent
from agent_events.conformance.api import validate_files
from agent_events.conformance.cli import main
from agent_events.conformance.core.violations import PASS


@pytest.fixture(scope="module")
def agent_url():
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        yield server.url


def frames(path):
    return [json.loads(line) for line in path.read_text().splitlines()[1:]]


def run_ids(path) -> set[str]:
    """The run_id of every message both ways (start_run sent, events received)."""
    found = set()
    for frame in frames(path):
        message = frame.get("msg") if "msg" in frame else json.loads(frame.get("text") or "{}")
        if isinstance(message, dict) and message.get("type") not in ("time_sync",) and "run_id" in message:
            found.add(message["run_id"])
    return found


@pytest.mark.parametrize("extra", [[], ["--fallback"]])
def test_the_chosen_run_id_is_sent_and_every_event_carries_it(agent_url, tmp_path, extra, capsys):
    path = tmp_path / "rec.jsonl"
    assert main(["record", agent_url, "-o", str(path), "--run-id", "order-42", *extra]) == 0
    assert "1/1 run(s) completed" in capsys.readouterr().err
    assert run_ids(path) == {"order-42"}
    report = validate_files([path], "actions-agent")
    assert report.stat("runs") == 1 and report.statuses()["isolation.run_scope"] == PASS


def test_without_run_id_the_default_stays(agent_url, tmp_path):
    path = tmp_path / "rec.jsonl"
    assert main(["record", agent_url, "-o", str(path)]) == 0
    assert run_ids(path) == {"primary-c0-r1"}


@pytest.mark.parametrize("bad", ["", "x" * 129])
def test_a_run_id_the_schema_refuses_is_a_usage_error(agent_url, tmp_path, bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["record", agent_url, "-o", str(tmp_path / "r.jsonl"), "--run-id", bad])
    assert exc.value.code == 2 and "--run-id" in capsys.readouterr().err
    assert not (tmp_path / "r.jsonl").exists()
