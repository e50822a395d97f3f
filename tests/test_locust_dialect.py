"""``AgentEventsUser`` with a foreign dialect (``--agent-events-dialect ag-ui``, or the class attribute):
one AG-UI run per connection, judged by the dialect's judge, every broken rule a Locust failure named by its
id. Locust runs in subprocesses only (see tests/test_locust.py), one master and two workers, against the
AG-UI endpoints of tests/ag_ui_endpoints.py on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("ag_ui.core", reason="ag-ui-protocol (the test extra) is not installed")

from ag_ui_endpoints import AgUiEndpoint  # noqa: E402
from test_locust import LOCUSTFILE, run_locust  # noqa: E402 - skips this module too when locust is missing

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def endpoint():
    server = AgUiEndpoint().start()
    yield server.url
    server.stop()


def test_a_conformant_ag_ui_endpoint_passes_every_run(tmp_path, endpoint):
    code, stats, failures, log = run_locust(tmp_path, f"{endpoint}/conformant/sse", "--agent-events-dialect", "ag-ui")
    assert code == 0, log
    run = stats["RUN", "run"]
    assert int(run["Request Count"]) > 0 and int(run["Failure Count"]) == 0, log
    assert int(stats["FIRST_EVENT", "run"]["Request Count"]) > 0
    # one connection per run (the endpoint closes after one)
    assert int(stats["CONNECT", "connect"]["Request Count"]) >= int(run["Request Count"])
    assert not [key for key in stats if key[0] == "RULE"] and failures == [], failures


def test_a_broken_ag_ui_rule_is_a_failure_named_by_its_id(tmp_path, endpoint):
    code, stats, failures, log = run_locust(tmp_path, f"{endpoint}/tool_never_ended/json",
                                            "--agent-events-dialect", "ag-ui")
    assert code != 0, log
    rules = {name for (type_, name) in stats if type_ == "RULE"}
    assert rules == {"ag-ui.run.finished_open"}, (rules, log)
    run = stats["RUN", "run"]
    assert int(run["Failure Count"]) == int(run["Request Count"]) > 0
    by_name = {(row["Method"], row["Name"]): row for row in failures}
    assert "TOOL_CALL_END" in by_name["RULE", "ag-ui.run.finished_open"]["Error"]
    assert "broke ag-ui.run.finished_open" in by_name["RUN", "run"]["Error"]


def test_the_dialect_as_a_class_attribute(tmp_path, endpoint):
    code, stats, failures, log = run_locust(
        tmp_path, f"{endpoint}/nested_run/json",
        locustfile="from agent_events import locust\n\n\nclass AgUi(locust.AgentEventsUser):\n    dialect = 'ag-ui'\n")
    assert code != 0, log
    assert {name for (type_, name) in stats if type_ == "RULE"} == {"ag-ui.run.nested"}, log


def test_an_unknown_dialect_stops_the_test_with_exit_code_2(tmp_path, endpoint):
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "-u", "2", "-r", "2",
                           "-t", "30s", "--host", f"{endpoint}/conformant/json", "--agent-events-dialect",
                           "no-such-dialect"],
                          cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "unknown dialect 'no-such-dialect'" in proc.stderr
