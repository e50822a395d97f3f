"""Numbers beyond a double (a 400-digit ``seq``, ``1e400``): JSON with an absurd value, judged as such.

orjson refuses them; the checker and the transcript reader fall back to the
standard library (:mod:`agent_events.conformance.core.json_text`), so the value is judged by the
schema and ``seq.contiguous`` instead of the frame being called "not JSON".
"""

from __future__ import annotations

import json
import math

import orjson
import pytest

from agent_events import schemas
from agent_events.conformance.core import json_text
from agent_events.conformance.cli import main
from agent_events.conformance.exitcodes import ExitCode

PRIMARY = dict(schemas.sequence_vectors())["valid/primary.json"]["frames"]
HUGE = "1" + "0" * 400


def _with_huge(text: str, field: str, old) -> str:
    """``text`` (one JSON object) with ``field``'s value ``old`` replaced by the 400-digit integer."""
    needle = f'"{field}":{json.dumps(old)}'
    assert needle in text
    return text.replace(needle, f'"{field}":{HUGE}', 1)


def _third_event(frames):
    return next(i for i, f in enumerate(frames) if f["dir"] == "recv" and f["msg"].get("seq") == 2)


def validate(tmp_path, lines: list[str], capsys) -> tuple[int, dict, str]:
    path = tmp_path / "huge.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code = main(["validate", str(path), "--format", "json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else {}), err


def statuses(report: dict) -> dict[str, str]:
    return {r["id"]: r["status"] for r in report["rules"]}


def test_plain_jsonl_with_a_400_digit_seq_is_a_seq_matter_not_frame_json(tmp_path, capsys):
    lines = [orjson.dumps(f["msg"]).decode() for f in PRIMARY if f["dir"] == "recv"]
    third = sum(1 for f in PRIMARY[:_third_event(PRIMARY)] if f["dir"] == "recv")
    lines[third] = _with_huge(lines[third], "seq", 2)
    code, report, err = validate(tmp_path, lines, capsys)
    assert code == ExitCode.NOT_CONFORMANT, err
    found = statuses(report)
    assert found["frame.json"] == "PASS"
    assert "FAIL" in (found["schema.envelope"], found["seq.contiguous"])


def test_a_400_digit_seq_in_a_transcript_text_frame_is_judged_too(tmp_path, capsys):
    frames = [dict(f) for f in PRIMARY]
    i = _third_event(frames)
    text = _with_huge(orjson.dumps(frames[i].pop("msg")).decode(), "seq", 2)
    frames[i]["text"] = text
    code, report, err = validate(tmp_path, [orjson.dumps(f).decode() for f in frames], capsys)
    assert code == ExitCode.NOT_CONFORMANT, err
    found = statuses(report)
    assert found["frame.json"] == "PASS" and found["frame.text"] == "PASS"
    assert "FAIL" in (found["schema.envelope"], found["seq.contiguous"])


def test_a_400_digit_t_is_a_transcript_error_naming_the_line_not_frame_json(tmp_path, capsys):
    lines = [orjson.dumps(f).decode() for f in PRIMARY]
    i = _third_event(PRIMARY)
    lines[i] = _with_huge(lines[i], "t", PRIMARY[i]["t"])
    code, _, err = validate(tmp_path, lines, capsys)
    assert code == ExitCode.USAGE
    assert f"huge.jsonl:{i + 1}:" in err and '"t" must be a finite number' in err and "Traceback" not in err


@pytest.mark.parametrize("field", ["emitted_at", "seq"])
def test_no_numeric_field_of_any_frame_crashes_validate_when_huge(field, tmp_path, capsys):
    """Every event with a huge value in turn: a verdict (0 or 1), never an internal error."""
    for index, frame in enumerate(PRIMARY):
        if frame["dir"] != "recv" or field not in frame["msg"]:
            continue
        lines = [orjson.dumps(f["msg"]).decode() for f in PRIMARY if f["dir"] == "recv"]
        pos = sum(1 for f in PRIMARY[:index] if f["dir"] == "recv")
        lines[pos] = _with_huge(lines[pos], field, frame["msg"][field])
        code, report, err = validate(tmp_path, lines, capsys)
        assert code in (ExitCode.OK, ExitCode.NOT_CONFORMANT), err
        assert statuses(report)["frame.json"] == "PASS"


def test_a_seq_beyond_64_bits_is_still_checked_for_contiguity(tmp_path, capsys):
    """orjson reads 2**64 as a double; the schema calls it an integer, so contiguity must judge it."""
    lines = [orjson.dumps(f["msg"]).decode() for f in PRIMARY if f["dir"] == "recv"]
    third = sum(1 for f in PRIMARY[:_third_event(PRIMARY)] if f["dir"] == "recv")
    lines[third] = lines[third].replace('"seq":2', f'"seq":{2**64}', 1)
    code, report, _ = validate(tmp_path, lines, capsys)
    assert code == ExitCode.NOT_CONFORMANT
    observed = [v["observed"] for s in report["sections"] for v in s["violations"] if v["rule"] == "seq.contiguous"]
    assert any(o.startswith(f"seq {2**64}:") for o in observed), observed


# -- the parser itself --------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    (HUGE, math.inf), ("-" + HUGE, -math.inf), ("1e400", math.inf), ("-1e400", -math.inf),
    ("9" * 5000, math.inf), (f'{{"seq": {HUGE}, "a": [1, 2.5, "x"]}}', {"seq": math.inf, "a": [1, 2.5, "x"]}),
    (f'[{2**64}, {HUGE}]', [float(2**64), math.inf]),
])
def test_numbers_beyond_a_double_read_as_infinities(text, expected):
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)
    assert json_text.loads(text) == expected
    assert json_text.loads(text.encode()) == expected


@pytest.mark.parametrize("text", [
    "NaN", f"[{HUGE}, NaN]", f'[{HUGE}, "\\ud800"]', f"[{HUGE},]", f"[{HUGE}] x", "[" * 2000 + HUGE + "]" * 2000,
    f'["\udcff", {HUGE}]',
])
def test_what_orjson_refuses_for_other_reasons_stays_refused(text):
    with pytest.raises(orjson.JSONDecodeError):
        json_text.loads(text)


def test_invalid_utf8_with_a_huge_number_stays_refused():
    with pytest.raises(orjson.JSONDecodeError):
        json_text.loads(b'["\xff", ' + HUGE.encode() + b"]")


def test_ordinary_json_is_orjson_s_result_unchanged():
    text = orjson.dumps(PRIMARY[1]["msg"])
    assert json_text.loads(text) == orjson.loads(text) and json_text.loads(text.decode()) == orjson.loads(text)
