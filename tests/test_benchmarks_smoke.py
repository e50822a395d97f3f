"""The benchmark command runs end to end (``--quick``) and prints its table; no figure is judged here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\d+\s+.+?\s+[\d,.]+ (ev/s|ms|KiB|us)\s+[\d,.]+ \1\s+[\d.]+\s+(yes|NO|-)\s")


def run_benchmarks(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks", "--quick", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
def test_quick_mode_prints_the_table_of_every_measurement():
    """Every measurement, in two ``--quick --only`` halves run at once (a smoke run: no figure is
    judged, so sharing the two cores costs nothing but halves the wait); each half prints its table."""
    from benchmarks.run import NEEDS

    ids = sorted(NEEDS)
    halves = [",".join(map(str, ids[i::2])) for i in range(2)]  # 8 (Locust, the longest) and 9 (redis) apart
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks", "--quick", "--only", half], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for half in halves]
    rows = {}
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        lines = out.splitlines()
        assert lines[0].startswith("agent-events benchmarks (quick)")
        assert lines[1].split()[:5] == ["#", "measurement", "value", "baseline", "ratio"]
        rows.update({line.split()[0]: line for line in lines[2:] if line[:1].isdigit()})
    assert sorted(rows, key=int) == [str(i) for i in ids]
    for row in rows.values():  # a value and its baseline in the same unit, their ratio, whether the target is met
        assert ROW.match(row), row


@pytest.mark.slow
def test_json_output_carries_value_baseline_and_their_ratio():
    proc = run_benchmarks("--json", "--only", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert data["mode"] == "quick" and data["machine"]["nproc"] >= 1
    (checker,) = data["measurements"]
    assert checker["id"] == 4 and checker["details"]["violations"] == 0
    assert checker["value"] > 0 and checker["baseline"] > 0
    assert checker["ratio"] == pytest.approx(checker["value"] / checker["baseline"], rel=0.01)


def test_an_unknown_measurement_is_a_usage_error():
    from benchmarks.run import NEEDS

    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "99"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert f"--only takes numbers 1-{max(NEEDS)}" in proc.stderr
