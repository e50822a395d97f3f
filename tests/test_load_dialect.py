"""``agent-events load --dialect ag-ui URL``: the load generator driving AG-UI runs (a RunAgentInput first,
one run at a time per connection), every frame judged by the dialect's judge, against the AG-UI endpoints
of tests/ag_ui_endpoints.py (built from the ``ag-ui-protocol`` models, on 127.0.0.1)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ag_ui.core", reason="ag-ui-protocol (the test extra) is not installed")

from ag_ui_endpoints import AgUiEndpoint  # noqa: E402

from agent_events.conformance.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def endpoint():
    server = AgUiEndpoint().start()
    yield server.url
    server.stop()


def _load(capsys, url: str, *extra: str) -> tuple[int, dict]:
    code = main(["load", "--dialect", "ag-ui", url, "--connections", "3", "--runs", "12", "--format", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("framing", ["json", "sse"])
def test_a_conformant_ag_ui_endpoint_under_load_exits_0(capsys, endpoint, framing):
    code, report = _load(capsys, f"{endpoint}/conformant/{framing}")
    assert code == 0, [r for r in report["rules"] if r["status"] == "FAIL"]
    load = report["load"]
    # every run its own connection (the endpoint closes after one), every one completed and judged
    assert load["runs_started"] == 12 and load["runs_completed"] == 12 and load["runs_unfinished"] == 0
    assert load["events"] == 12 * 8
    assert load["latency_ms"]["first_event"]["count"] == 12  # every start message sent was timed
    assert report["dialect"]["name"] == "ag-ui" and report["claim"]["withheld_because"] == "foreign_dialect"
    statuses = {r["id"]: r["status"] for r in report["rules"]}
    assert statuses["ag-ui.tool.paired"] == "PASS" and statuses["ag-ui.run.ended"] == "PASS"
    assert statuses["seq.contiguous"] == "N/A"  # AG-UI has no seq: not judged, never passed


@pytest.mark.parametrize("variant,rule,extra", [
    ("tool_never_ended", "ag-ui.run.finished_open", ()),
    ("nested_run", "ag-ui.run.nested", ()),
    ("event_after_finished", "ag-ui.run.after_finished", ()),
    ("silence", "ag-ui.run.ended", ("--deadline-s", "0.25", "--runs", "3", "--no-warmup")),
])
def test_a_broken_ag_ui_endpoint_under_load_exits_1_naming_the_rule(capsys, endpoint, variant, rule, extra):
    code, report = _load(capsys, f"{endpoint}/{variant}/json", *extra)
    assert code == 1
    assert report["load"]["violations"].get(rule, 0) >= 1, report["load"]["violations"]
    assert rule in {v["rule"] for v in report["sections"][0]["violations"]}
    assert rule in {r["id"] for r in report["rules"] if r["status"] == "FAIL"}


def test_the_text_report_names_the_dialect_and_the_rule(capsys, endpoint):
    code = main(["load", "--dialect", "ag-ui", f"{endpoint}/tool_never_ended/sse", "--connections", "2", "--runs", "4"])
    out = capsys.readouterr().out
    assert code == 1
    assert "judged as dialect ag-ui 1.1" in out and "ag-ui.run.finished_open" in out
    assert "time_sync" not in out  # no clock sync claimed or blamed for a dialect that has none


@pytest.mark.parametrize("args,message", [
    (("--spawn",), "--spawn starts our reference agent"),
    (("URL", "--runs-per-connection", "2"), "--runs-per-connection must be 1"),
])
def test_spawn_and_multiplexing_are_usage_errors_with_a_foreign_dialect(capsys, endpoint, args, message):
    args = tuple(f"{endpoint}/conformant/json" if a == "URL" else a for a in args)
    assert main(["load", "--dialect", "ag-ui", *args, "--runs", "1"]) == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_ag_ui_endpoint_exits_3(capsys):
    assert main(["load", "--dialect", "ag-ui", "ws://127.0.0.1:9/none", "--runs", "1", "--connect-timeout", "2"]) == 3


@pytest.mark.parametrize("variant,code,status", [("holds_the_gil", 0, "INCONCLUSIVE"), ("late_start", 1, "FAIL")])
def test_under_load_a_first_event_the_harness_read_late_is_inconclusive_and_a_late_one_fails(
        capsys, endpoint, variant, code, status):
    # holds_the_gil: the endpoint starves this process (the generator's too: a one-second switch
    # interval) for 300 ms before its first event; late_start: it waits 300 ms, the harness unstalled
    import sys

    before = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        got, report = _load(capsys, f"{endpoint}/{variant}/json", "--connections", "1", "--runs", "3", "--no-warmup")
    finally:
        sys.setswitchinterval(before)
    rule = next(r for r in report["rules"] if r["id"] == "latency.first_event")
    assert (got, rule["status"]) == (code, status), rule
    if status == "INCONCLUSIVE":
        assert rule["violations"] == 0 and rule["inconclusive"] >= 1 and not report["load"]["violations"]
    else:
        assert report["load"]["violations"] == {"latency.first_event": 3}
