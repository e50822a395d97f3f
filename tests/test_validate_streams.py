"""Offline verdicts that match the live check's: invalid starts a lenient server ran, concatenated
recordings, connection close records, bounded lines (``frame.size``), flat memory, closed stdin."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tracemalloc

import orjson
import pytest

from agent_events.conformance.core import checker as checker_mod
from agent_events.conformance.core import latencies
from agent_events.conformance.tooling import synth
from agent_events.conformance.offline import transcript
from agent_events.conformance.api import validate_lines
from agent_events.conformance.core.checker import Checker
from agent_events.conformance.cli import main
from agent_events.conformance.exitcodes import ExitCode
from agent_events.conformance.tooling.synth import RunSpec, run_frames
from agent_events.conformance.offline.transcript import LongLine, TranscriptWriter, read_lines

CLI = [sys.executable, "-m", "agent_events.conformance.cli"]


def lines_of(frames) -> list[bytes]:
    return [synth.frame_line(f) for f in frames]


def two_runs_one_start_invalid(invalid_first: bool, bad_start: dict) -> list[dict]:
    """Runs r-ok and r-x on one connection, both run by a lenient server; r-x's start_run is invalid."""
    ok = run_frames(RunSpec(run_id="r-ok", start_at=synth.EPOCH_MS + (50.0 if invalid_first else 0.0)))
    bad = run_frames(RunSpec(run_id="r-x", start_at=synth.EPOCH_MS + (0.0 if invalid_first else 50.0)))
    bad[0]["msg"] = {"type": "start_run", "run_id": "r-x", **bad_start}
    return synth.interleave(ok, bad)


BAD_STARTS = [{"input": "x", "surplus": True}, {"input": 42}]


@pytest.mark.parametrize("bad_start", BAD_STARTS, ids=["extra-field", "input-42"])
@pytest.mark.parametrize("invalid_first", [True, False], ids=["invalid-first", "valid-first"])
def test_a_run_whose_invalid_start_run_a_lenient_server_ran_is_judged_like_any_run(invalid_first, bad_start, tmp_path,
                                                                                    capsys):
    frames = two_runs_one_start_invalid(invalid_first, bad_start)
    # The live check feeds the checker the raw text frames it sends and receives.
    live = Checker()
    for f in frames:
        text = orjson.dumps(f["msg"]).decode()
        (live.send if f["dir"] == "send" else live.receive)(text, f["t"], f["conn"])
    live.close()
    assert live.violations == []
    assert live.outcomes()["isolation.run_scope"].checked > 0  # judged, not N/A
    # validate, from a transcript file, reaches the same verdict
    path = tmp_path / "lenient.jsonl"
    path.write_bytes(b"".join(lines_of(frames)))
    assert main(["validate", str(path), "--format", "json"]) == ExitCode.OK
    section = json.loads(capsys.readouterr().out)["sections"][0]
    assert section["violations"] == []


def test_an_event_of_a_run_no_start_run_named_still_breaks_isolation():
    frames = two_runs_one_start_invalid(False, {"input": 42})
    stray = run_frames(RunSpec(run_id="r-never", client_frames=False, start_at=synth.EPOCH_MS + 100.0))
    checker = Checker()
    transcript.feed(checker, transcript.frames_from_vector(synth.interleave(frames, stray)))
    checker.close()
    assert set(checker.violation_counts) == {"isolation.run_scope"}


def test_an_invalid_start_run_refused_or_ignored_owes_nothing():
    checker = Checker()
    checker.send({"type": "start_run", "run_id": "r-ok", "input": "x"}, 0.0)
    checker.send({"type": "start_run", "run_id": "r-x", "input": 42}, 0.0)
    checker.send({"type": "start_run", "input": 42}, 0.0)
    checker.receive({"type": "error", "code": "invalid_message", "message": "input must be a string",
                     "run_id": "r-x"}, 1.0)
    for f in run_frames(RunSpec(run_id="r-ok", client_frames=False, start_at=0.0)):
        checker.receive(f["msg"], f["t"])
    assert checker.close(100.0) == []


# -- concatenated recordings and close records -------------------------------------------------


def test_two_concatenated_recordings_validate_from_stdin(tmp_path):
    one = b"".join(synth.transcript_lines(3, conns=2))
    proc = subprocess.run([*CLI, "validate", "-", "--format", "json"], input=one + one, capture_output=True,
                          timeout=60)
    assert proc.returncode == ExitCode.OK, proc.stdout[-2000:]
    section = json.loads(proc.stdout)["sections"][0]
    assert section["violations"] == []


def test_a_run_left_open_by_the_first_recording_ends_with_it():
    first = lines_of(run_frames(RunSpec(run_id="r1")))[:-1]  # agent_completed never came
    second = list(synth.transcript_lines(1))  # header, then run-0 on c0 again
    checker_section = validate_lines(first + second, "cat")
    (violation,) = checker_section.violations
    assert violation.rule_id == "order.completed_last" and violation.run_id == "r1"


def test_close_record_ends_the_connection_and_its_runs(tmp_path):
    out = tmp_path / "t.jsonl"
    with out.open("wb") as stream:
        writer = TranscriptWriter(stream)
        writer.header(url="ws://x")
        frames = run_frames(RunSpec(run_id="r1"))
        for f in frames[:-1]:
            getattr(writer, f["dir"])(orjson.dumps(f["msg"]).decode(), f["t"], f["conn"])
        writer.close(frames[-1]["t"], "c0", 1006)
        for f in run_frames(RunSpec(run_id="r1", start_at=synth.EPOCH_MS + 1000)):  # c0 again: a new connection
            getattr(writer, f["dir"])(orjson.dumps(f["msg"]).decode(), f["t"], f["conn"])
    section = validate_lines(out.read_bytes().splitlines(keepends=True), "t")
    (violation,) = section.violations
    assert violation.rule_id == "order.completed_last"
    assert "the connection closed in state primary" in violation.observed
    assert section.stats["runs"] == 2


# -- memory ---------------------------------------------------------------------------------------


def _one_run_per_connection(runs: int, close_records: bool):
    for n in range(runs):
        frames = run_frames(RunSpec(run_id="r", conn=f"c{n}", start_at=synth.EPOCH_MS + 50.0 * n))
        yield from lines_of(frames)
        if close_records:
            yield orjson.dumps({"t": frames[-1]["t"], "dir": "close", "conn": f"c{n}"}) + b"\n"


@pytest.mark.parametrize("close_records", [True, False], ids=["close-records", "no-close-records"])
def test_memory_stays_flat_however_many_connections(monkeypatch, close_records):
    # Small caps make every bounded structure saturate early: after that, any growth is a leak.
    monkeypatch.setattr(checker_mod, "COMPLETED_MEMORY", 200)
    monkeypatch.setattr(checker_mod, "CONN_MEMORY", 50)
    monkeypatch.setattr(latencies, "EXACT_CAP", 100)

    def peak(runs: int) -> int:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            section = validate_lines(_one_run_per_connection(runs, close_records), "x")
            assert section.violations == [] and section.stats["runs"] == runs
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()

    small, large = peak(300), peak(3000)
    # 2700 more connections kept at ~7 KB each (their last messages) would be about 20 MB
    assert large - small < 256 * 1024, (small, large)


def test_read_lines_skips_an_over_long_line_without_losing_the_next(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"a\n" + b"b" * 5000 + b"\nc\n" + b"d" * 4096 + b"\n")
    with path.open("rb") as stream:
        got = list(read_lines(stream, limit=4096))
    assert got == [b"a\n", LongLine(5000), b"c\n", b"d" * 4096 + b"\n"]
    assert type(got[1]) is LongLine
    assert list(read_lines([b"a\n", b"b" * 5000 + b"\n"], limit=4096)) == [b"a\n", 5000]


def test_line_limit_is_the_live_frame_limit():
    from agent_events.conformance.live.wire import DEFAULT_MAX_SIZE

    assert transcript.MAX_LINE_BYTES == DEFAULT_MAX_SIZE


def test_a_64_mib_line_in_a_tiny_gz_is_frame_size_with_bounded_memory(tmp_path):
    path = tmp_path / "huge-line.jsonl.gz"
    with gzip.open(path, "wb") as stream:
        for _ in range(64):
            stream.write(b" " * (1 << 20))
        stream.write(b"\n")
    assert path.stat().st_size < 1 << 20
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a big pytest process
    # would report the parent's size; VmHWM belongs to the new address space alone.
    code = ("import sys\n"
            "from agent_events.conformance.cli import main\n"
            "rc = main(['validate', sys.argv[1], '--format', 'json'])\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
            "print(hwm, file=sys.stderr)\n"
            "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == ExitCode.NOT_CONFORMANT, proc.stderr
    (violation,) = json.loads(proc.stdout)["sections"][0]["violations"]
    assert violation["rule"] == "frame.size" and violation["location"] == f"{path}:1"
    peak_kib = int(proc.stderr.strip().splitlines()[-1])  # VmHWM is in KiB
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib} KiB"


def test_an_over_long_line_among_messages_does_not_hide_them(tmp_path):
    good = list(synth.transcript_lines(1))
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join(good[:3]) + b"x" * 5000 + b"\n" + b"".join(good[3:]))
    with path.open("rb") as stream:
        section = validate_lines(read_lines(stream, limit=4096), str(path))
    assert [v.rule_id for v in section.violations] == ["frame.size"]
    assert section.violations[0].location == f"{path}:4"
    assert section.stats["runs"] == 1


# -- standard input closed --------------------------------------------------------------------------


def test_validate_with_stdin_closed_is_a_usage_error():
    proc = subprocess.run(["sh", "-c", '"$0" -m agent_events.conformance.cli validate - <&-', sys.executable],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "standard input is closed" in proc.stderr and "Traceback" not in proc.stderr


# -- close records: the live check and its replay agree ------------------------------------------------


@pytest.mark.parametrize("agent", ["SendsHugeFrame", "ClosesMidRun"])
def test_a_recorded_check_validates_to_the_same_verdict(agent, tmp_path):
    import misbehaving_servers as m

    from agent_events import conformance

    from agent_events.conformance.core import profiles

    record = tmp_path / "run.jsonl"
    relaxed = profiles.get("actions-agent").with_budgets(first_event_ms=5000, delivery_ms=5000, tool_gap_ms=5000)
    with m.running(getattr(m, agent)()) as url:
        live = conformance.check(url, scenarios=["primary"], profile=relaxed, max_frame_bytes=2**20,
                                 record=str(record))
    lines = record.read_bytes().splitlines()
    assert any(orjson.loads(line).get("dir") == "close" for line in lines)
    replay = validate_lines(lines, str(record), relaxed)

    from agent_events.conformance.core import rules

    # what a transcript holds: every rule but those only a live probe can judge (frame.size it can)
    replayable = {r.id for r in rules.RULES if r.scope != "live"} | {"frame.size"}

    def failed(section) -> dict[str, int]:
        return {rule: outcome.violations for rule, outcome in section.outcomes.items()
                if outcome.violations and rule in replayable}

    live_failed = {rule: n for s in live.sections for rule, n in failed(s).items()}
    assert live_failed and failed(replay) == live_failed


def test_a_refused_start_leaves_nothing_for_the_close_to_end():
    checker = Checker()
    checker.send({"type": "start_run", "run_id": "r1", "input": "x"}, 0.0)
    checker.receive({"type": "error", "code": "too_many_runs", "message": "limit", "run_id": "r1"}, 1.0)
    assert checker.end_connection("c0", 10_000.0) == []
    assert checker.runs_refused == 1 and checker.active_runs == 0


def test_connections_whose_invalid_starts_were_refused_are_still_forgotten(monkeypatch):
    monkeypatch.setattr(checker_mod, "CONN_MEMORY", 20)
    checker = Checker()
    for n in range(200):
        conn = f"c{n}"
        checker.send({"type": "start_run", "run_id": "bad", "input": 42}, 0.0, conn)
        checker.send({"type": "start_run", "input": 42}, 0.0, conn)
        checker.receive({"type": "error", "code": "invalid_message", "message": "input", "run_id": "bad"}, 1.0, conn)
        checker.receive({"type": "error", "code": "invalid_message", "message": "input"}, 1.0, conn)
    assert len(checker._conns) <= 20 and checker.connections_forgotten >= 180
    assert checker.close(10.0) == []
