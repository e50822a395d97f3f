"""docs/capacity.md plans from one recorded benchmark run, and its figures cannot drift from it.

The figures, the worked example and its products are generated (docs/hooks/docgen_capacity.py)
from the JSON of ``python -m benchmarks --json`` committed under ``benchmarks/results/`` and
committed into the page; these tests hold the page to that file and the arithmetic to the
figures.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs" / "hooks"))
import docgen_capacity  # noqa: E402
import spec_tables  # noqa: E402

PAGE = (ROOT / "docs" / "capacity.md").read_text(encoding="utf-8")
RECORDED = sorted(set(re.findall(r"<!-- agent-events:capacity-[a-z]+ (\S+) -->", PAGE)))


def test_the_page_plans_from_one_recorded_run_that_is_in_the_repository():
    assert len(RECORDED) == 1, f"the capacity page names {RECORDED}: one recorded run, or its figures mix runs"
    data = json.loads((ROOT / RECORDED[0]).read_text(encoding="utf-8"))
    assert data["mode"] == "full", "a --quick run's figures mean nothing"
    assert {1, 3, 6, 7, 8} <= {m["id"] for m in data["measurements"]}
    for name in docgen_capacity.GENERATORS:
        opening, closing = f"<!-- agent-events:{name} {RECORDED[0]} -->\n", f"<!-- /agent-events:{name} -->"
        assert PAGE.count(opening) == 1 and PAGE.count(closing) == 1, name


def test_the_committed_figures_are_those_of_the_recorded_run():
    assert spec_tables.render(PAGE, spec_tables.CAPACITY_BLOCKS) == PAGE, (
        f"docs/capacity.md's figures drifted from {RECORDED}; regenerate them with: {spec_tables.COMMAND}")


def test_the_drift_test_sees_a_figure_edited_by_hand():
    f = docgen_capacity.figures_of(docgen_capacity.load_run(RECORDED[0]))
    shown = f"{f['locust_us']:.2f} us"
    assert shown in PAGE
    stale = PAGE.replace(shown, "20.50 us")
    assert stale != PAGE and spec_tables.render(stale, spec_tables.CAPACITY_BLOCKS) == PAGE


def test_the_regenerate_command_checks_the_capacity_page_too(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "hooks" / "spec_tables.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def _synthetic(agent_us: float = 10.0, locust_us: float = 8.0, load_us: float = 7.0) -> dict:
    """A recorded run with round figures, so the products can be checked by hand."""
    rounds = [{"kib_per_connection": 40.0, "kib_per_in_flight_run": 5.0, "rss_mib": {"few": 61.0}}]
    load_rounds = [{"kib_per_connection": 20.0, "kib_per_in_flight_run": 4.0, "rss_mib": {"few": 43.0}}]
    return {"by_id": {
        1: {"details": {"server_us_per_event": {"agent": agent_us}}},
        3: {"value": 8.0, "details": {"agent": {"rss_start_bytes": 45 * 2**20}}},
        6: {"value": load_us},
        7: {"details": {"server_us_per_event": {"agent": 11.0, "agent_workers2": 12.0}}},
        8: {"value": locust_us, "details": {"memory": {
            "locust": {"kib_per_connection": 40.0, "kib_per_in_flight_run": 5.0, "rounds": rounds},
            "load": {"kib_per_connection": 20.0, "kib_per_in_flight_run": 4.0, "rounds": load_rounds}}}},
    }, "measurements": []}


def test_the_example_is_the_arithmetic_of_the_figures(monkeypatch):
    monkeypatch.setattr(docgen_capacity, "load_run", lambda _arg: _synthetic())
    text = docgen_capacity.capacity_example("x.json")
    events = docgen_capacity.EXAMPLE_RUNS * docgen_capacity.EXAMPLE_EVENTS_PER_RUN_S  # 10,000,000
    # 10 us per event at 10M events/s is 100 cores, 143 processes at 70 %, 5 machines of 30 workers
    agent = next(line for line in text.splitlines() if line.startswith("| reference agent"))
    assert f"{events:,} x 10.00 us = 100 cores" in agent and "143 processes" in agent and "5 machines" in agent
    # memory: 1M runs x 8 KiB + 143 x 50 MiB (45 rounded up to 10 MiB)
    assert f"= {(1_000_000 * 8.0 / 2**20) + 143 * 50 / 1024:.1f} GiB" in agent
    locust = next(line for line in text.splitlines() if line.startswith("| Locust workers"))
    processes = math.ceil(80 / 0.7)
    assert f"= 80 cores" in locust and f"{processes} processes" in locust
    assert f"e.g. {math.ceil(processes / 8)} machines" in locust
    gib = (100_000 * 40.0 + 1_000_000 * 5.0) / 2**20 + processes * 70 / 1024
    assert f"= {gib:.1f} GiB" in locust
    assert "1 / 7.00 us = 142,857 events/s" in text


def test_a_recorded_run_without_a_measurement_the_page_needs_says_which(monkeypatch):
    data = _synthetic()
    del data["by_id"][6]
    monkeypatch.setattr(docgen_capacity, "load_run", lambda _arg: data)
    with pytest.raises(ValueError, match=r"lacks measurement\(s\) \[6\]"):
        docgen_capacity.capacity_figures("x.json")


def test_a_missing_results_file_is_a_clear_error_not_a_traceback_of_the_build():
    with pytest.raises(ValueError, match="cannot read the recorded run benchmarks/results/none.json"):
        docgen_capacity.load_run("benchmarks/results/none.json")
