"""Measurement 10 (issue 23): ``validate --dialect ag-ui`` against ``ag-ui-validate``, same events.

The AG-UI validator a user would otherwise pick is ``ag-ui-validate`` (PyPI): it reads a
recorded stream as an SSE capture or NDJSON, sniffed from the first line. Both tools read
the same NDJSON file here (one event per line, see :mod:`benchmarks.ag_ui_recording`), each
as the whole command a user types, in its own process, in its machine-readable format
(``--format json`` / ``--json``): start-up, reading, judging and the report are all timed.
Wall clock, CPU and peak RSS come from ``os.wait4`` on that process (its own ``ru_maxrss``),
started from a small launcher process (see :data:`_LAUNCHER`).

Both must find nothing (0 findings is asserted: a validator that rejected the events would
be measured doing something else), and ours must keep flat memory: its peak RSS on the whole
recording within 10% of its peak RSS on a quarter of it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from benchmarks.ag_ui_recording import write_ndjson

#: flat memory: peak RSS on the whole recording at most this much above the peak on a quarter of it
FLAT_BOUND = 0.10


def ours_command(path: Path) -> list[str]:
    """``agent-events validate --dialect ag-ui FILE --format json``: this interpreter's console script (what
    a user runs), else ``python -m`` (never another installation found on the PATH: it is this code we time)."""
    script = Path(sys.executable).with_name("agent-events")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "agent_events.conformance.cli"]
    return [*head, "validate", "--dialect", "ag-ui", str(path), "--format", "json"]


def theirs_command(path: Path) -> list[str] | None:
    exe = Path(sys.executable).with_name("ag-ui-validate")
    found = str(exe) if exe.exists() else shutil.which("ag-ui-validate")
    return [found, str(path), "--json"] if found else None


#: Runs the measured command as its child and reports on it. A child's ``ru_maxrss`` counts the memory
#: it had before its ``exec`` too, that is its parent's (a fork shares it): from this small launcher that
#: is about 10 MiB, less than either validator's own peak, where from the benchmark process it would be
#: the benchmark's 40 MiB.
_LAUNCHER = """\
import os, subprocess, sys, time
out = open(sys.argv[1], "wb")
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[2:], stdout=out, stderr=subprocess.PIPE)
err = p.stderr.read()
_, status, usage = os.wait4(p.pid, 0)
seconds = time.perf_counter() - t0
sys.stderr.buffer.write(err[-500:])
print(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_measured(command: list[str], out_path: Path) -> dict[str, Any]:
    """Run ``command`` (stdout to ``out_path``): wall seconds, CPU seconds, peak RSS (its own), exit code."""
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(out_path), *command], capture_output=True,
                          check=True)
    seconds, cpu, rss_kib, code = proc.stdout.split()
    return {"seconds": float(seconds), "cpu_seconds": float(cpu), "peak_rss_mib": int(rss_kib) / 1024.0,
            "exit_code": int(code), "stderr": proc.stderr.decode(errors="replace")}


def _ours(path: Path, out: Path) -> dict[str, Any]:
    sample = run_measured(ours_command(path), out)
    report = orjson.loads(out.read_bytes()) if out.stat().st_size else {}
    summary = report.get("summary", {})
    sample.update(events=summary.get("events"), findings=summary.get("violations", 0) + summary.get("warnings", 0),
                  conformant=report.get("conformant"), runs=summary.get("runs"))
    if sample["exit_code"] != 0 or sample["findings"]:
        raise RuntimeError(f"validate --dialect ag-ui found problems in the generated recording (exit "
                           f"{sample['exit_code']}, {sample['findings']} findings): {sample['stderr']}")
    return sample


def _theirs(command: list[str], out: Path) -> dict[str, Any]:
    sample = run_measured(command, out)
    report = orjson.loads(out.read_bytes()) if out.stat().st_size else {}
    summary = report.get("summary", {})
    sample.update(events=report.get("eventCount"),
                  findings=len(report.get("diagnostics", ())) + len(report.get("internalErrors", ())),
                  summary=summary)
    if sample["exit_code"] != 0 or sample["findings"]:
        raise RuntimeError(f"ag-ui-validate found problems in the generated recording (exit {sample['exit_code']}, "
                           f"{summary}): {report.get('diagnostics', [])[:3]} {sample['stderr']}")
    return sample


def measure(events: int, quarter: int, repeats: int) -> dict[str, Any]:
    """The figures of measurement 10 (synchronous: each tool is a process of its own)."""
    with tempfile.TemporaryDirectory(prefix="agent-events-bench-ag-ui-") as tmp:
        whole, small, out = Path(tmp, "recording.ndjson"), Path(tmp, "quarter.ndjson"), Path(tmp, "out.json")
        count, runs = write_ndjson(whole, events)
        small_count, _ = write_ndjson(small, quarter)
        theirs_cmd = theirs_command(whole)
        _ours(small, out)  # warm-up, not counted: byte-code compiled and cached, the files in the page cache
        if theirs_cmd is not None:
            _theirs(theirs_command(small), out)
        ours, theirs, ours_small = [], [], []
        for _ in range(repeats):  # interleaved, so a noisy minute hurts both alike
            ours.append(_ours(whole, out))
            if theirs_cmd is not None:
                theirs.append(_theirs(theirs_cmd, out))
            ours_small.append(_ours(small, out))
        for sample in ours:
            if sample["events"] != count:
                raise RuntimeError(f"validate judged {sample['events']} events of {count}")
        for sample in theirs:
            if sample["events"] != count:
                raise RuntimeError(f"ag-ui-validate judged {sample['events']} events of {count}")
        size = whole.stat().st_size
    return {"events": count, "runs": runs, "file_mib": round(size / 2**20, 1), "quarter_events": small_count,
            "ours": ours, "theirs": theirs, "ours_quarter": ours_small, "theirs_installed": theirs_cmd is not None}


def _their_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ag-ui-validate")
    except PackageNotFoundError:
        return "(not installed)"


def _best(samples: list[dict], key: str) -> float:
    """The least disturbed sample (the machine is shared: other processes only ever add time)."""
    return min(s[key] for s in samples) if samples else float("nan")


async def ag_ui_validate(scale) -> dict[str, Any]:
    from benchmarks.measurements import _ratio, _result

    data = await asyncio.to_thread(measure, scale.ag_ui_events, scale.ag_ui_events // 4, scale.ag_ui_repeats)
    events = data["events"]
    ours_s, theirs_s = _best(data["ours"], "seconds"), _best(data["theirs"], "seconds")
    ours_cpu, theirs_cpu = _best(data["ours"], "cpu_seconds"), _best(data["theirs"], "cpu_seconds")
    rate, baseline = events / ours_s, events / theirs_s if data["theirs"] else float("nan")
    rss, rss_quarter = max(s["peak_rss_mib"] for s in data["ours"]), max(s["peak_rss_mib"] for s in data["ours_quarter"])
    growth = (rss - rss_quarter) / rss_quarter
    ratio = _ratio(rate, baseline)
    flat = growth <= FLAT_BOUND
    details = {
        "events": events, "runs": data["runs"], "file_mib": data["file_mib"],
        "inputs": "both read the same NDJSON file (one event per line)",
        "ours_seconds": round(ours_s, 3), "theirs_seconds": round(theirs_s, 3),
        "ours_cpu_seconds": round(ours_cpu, 3), "theirs_cpu_seconds": round(theirs_cpu, 3),
        "cpu_ratio": round(theirs_cpu / ours_cpu, 2) if data["theirs"] else None,
        "ours_peak_rss_mib": round(rss, 1),
        "theirs_peak_rss_mib": round(max(s["peak_rss_mib"] for s in data["theirs"]), 1) if data["theirs"] else None,
        "ours_quarter_events": data["quarter_events"], "ours_quarter_peak_rss_mib": round(rss_quarter, 1),
        "ours_quarter_seconds": round(_best(data["ours_quarter"], "seconds"), 3),
        "rss_growth": round(growth, 3), "flat": flat,
        "findings": {"ours": sum(s["findings"] for s in data["ours"]),
                     "theirs": sum(s["findings"] for s in data["theirs"])},
        "samples": {name: [{k: (round(v, 3) if type(v) is float else v) for k, v in s.items() if k != "stderr"}
                           for s in data[name]] for name in ("ours", "theirs", "ours_quarter")},
    }
    if not data["theirs_installed"]:
        details["note"] = "ag-ui-validate is not installed (it is in the test extra: pip install -e '.[test]')"
    return _result(
        10, "AG-UI recording (validate --dialect ag-ui)", "events/s",
        f"a generated {events:,}-event AG-UI 1.1 recording ({data['runs']:,} sequential runs, "
        f"{data['file_mib']} MiB of NDJSON, both tools read it), whole command incl. start-up, "
        f"best of {scale.ag_ui_repeats}, interleaved, after a warm-up",
        round(rate), round(baseline) if data["theirs"] else None,
        f"ag-ui-validate {_their_version()} (PyPI), same NDJSON file, --json",
        f">= 2x the baseline, flat memory (peak RSS at {events:,} events within {FLAT_BOUND:.0%} of at "
        f"{data['quarter_events']:,}), 0 findings from both",
        (ratio is not None and ratio >= 2.0 and flat) if data["theirs"] else None,
        details)
