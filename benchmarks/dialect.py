"""Measurement 9: ``validate --dialect ag-ui`` against ``ag-ui-validate``, same events, same run.

One AG-UI recording is generated (runs of RUN_STARTED, a text message, a tool call, RUN_FINISHED)
as NDJSON, the input both tools read; each tool runs as its own process on it (wall clock, peak
RSS of that process). Flat memory: ours also reads a quarter of the file, and its peak RSS on the
whole file must stay within 10% (plus 8 MiB) of that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: Events per run of the generated recording.
_RUN = 12
_WRAP = ("import resource, subprocess, sys, time\n"
         "t = time.perf_counter()\n"
         "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
         "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)\n")


def write_recording(path: Path, events: int) -> int:
    """An AG-UI NDJSON recording of about ``events`` events (whole runs); returns the exact count."""
    runs = max(1, events // _RUN)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(runs):
            r, m, c = f"r{i}", f"m{i}", f"c{i}"
            lines = [{"type": "RUN_STARTED", "threadId": "t", "runId": r},
                     {"type": "TEXT_MESSAGE_START", "messageId": m, "role": "assistant"},
                     *({"type": "TEXT_MESSAGE_CONTENT", "messageId": m, "delta": f"part {k} "} for k in range(4)),
                     {"type": "TEXT_MESSAGE_END", "messageId": m},
                     {"type": "TOOL_CALL_START", "toolCallId": c, "toolCallName": "search", "parentMessageId": m},
                     {"type": "TOOL_CALL_ARGS", "toolCallId": c, "delta": '{"q": "agui"}'},
                     {"type": "TOOL_CALL_END", "toolCallId": c},
                     {"type": "TOOL_CALL_RESULT", "messageId": f"t{i}", "toolCallId": c, "content": "found"},
                     {"type": "RUN_FINISHED", "threadId": "t", "runId": r}]
            out.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in lines))
    return runs * _RUN


#: Both tools run as installed for a user: byte-code cached (an environment that forbids writing it
#: would charge each start with compiling every module, which no user's installed tool pays).
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _timed(cmd: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, exit code) of ``cmd`` run as its own process."""
    proc = subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True, check=True, env=_ENV)
    seconds, rss_kib, code = proc.stdout.split()
    return float(seconds), int(rss_kib) / 1024.0, int(code)


def measure(events: int, repeats: int) -> dict[str, Any]:
    ours_cmd = [sys.executable, "-m", "agent_events.conformance.cli", "validate", "--dialect", "ag-ui", "-q"]
    theirs = shutil.which("ag-ui-validate") or str(Path(sys.executable).with_name("ag-ui-validate"))
    with tempfile.TemporaryDirectory() as tmp:
        whole, quarter = Path(tmp, "whole.ndjson"), Path(tmp, "quarter.ndjson")
        n = write_recording(whole, events)
        n4 = write_recording(quarter, events // 4)
        _timed([*ours_cmd, str(quarter)])  # warm-up: byte-code cached, files in the page cache
        if os.path.exists(theirs):
            _timed([theirs, str(quarter), "--json"])
        ours = [_timed([*ours_cmd, str(whole)]) for _ in range(repeats)]
        small = _timed([*ours_cmd, str(quarter)])
        if os.path.exists(theirs):
            base = [_timed([theirs, str(whole), "--json"]) for _ in range(repeats)]
        else:  # pragma: no cover - the test extra installs it
            base = []
    best = min(ours)
    ours_rate = n / best[0]
    base_rate = n / min(base)[0] if base else float("nan")
    flat = best[1] <= small[1] * 1.10 + 8
    return {"events": n, "ours_events_per_s": round(ours_rate), "ag_ui_validate_events_per_s": round(base_rate),
            "ours_exit": best[2], "ag_ui_validate_exit": min(base)[2] if base else None,
            "ours_peak_rss_mib": round(best[1], 1), "ours_peak_rss_quarter_mib": round(small[1], 1),
            "quarter_events": n4, "ag_ui_validate_peak_rss_mib": round(min(base)[1], 1) if base else None,
            "flat_memory": flat}


async def dialect_validate(scale) -> dict[str, Any]:
    from benchmarks.measurements import _result

    events = 200_000 if scale.checker_events >= 1_000_000 else 20_000
    d = measure(events, scale.repeats)
    ratio_ok = d["ag_ui_validate_events_per_s"] and d["ours_events_per_s"] >= 2 * d["ag_ui_validate_events_per_s"]
    return _result(9, "validate --dialect ag-ui", "events/s",
                   f"one AG-UI NDJSON recording of {d['events']} events, each tool its own process (byte-code cached, "
                   f"one warm-up run each), best of {scale.repeats}",
                   d["ours_events_per_s"], d["ag_ui_validate_events_per_s"], "ag-ui-validate 0.4.0, same file",
                   ">= 2x ag-ui-validate, flat memory", bool(ratio_ok and d["flat_memory"]), d)
