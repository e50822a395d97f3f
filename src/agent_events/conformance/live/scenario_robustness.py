"""The ``robustness`` scenario: malformed and oversize client input answered with error messages,
the connection staying usable."""

from __future__ import annotations

from agent_events import schemas
from agent_events.conformance.live import verdicts as _v
from agent_events.conformance.live.scenario_base import (
    LiveConnection, ScenarioProbe, _connection, reply_timeout,
)

# -- robustness --------------------------------------------------------------------

#: (what, frame, the error code the spec names for it). ``bytes`` is a binary frame.
MALFORMED: tuple[tuple[str, str | bytes, str], ...] = (
    ("a text frame that is not JSON", "{this is not json", "invalid_json"),
    ("a JSON array instead of an object", "[1, 2, 3]", "invalid_json"),
    ("a binary frame", b"\x00\x01\x02binary", "unsupported_frame"),
    ("an unknown message type", '{"type": "no_such_message_type"}', "unknown_type"),
    ("a start_run without input", '{"type": "start_run", "run_id": "robustness-missing-input"}', "invalid_message"),
    ("a start_run whose input is a number", '{"type": "start_run", "run_id": "robustness-bad-input", "input": 42}',
     "invalid_message"),
    ("a cancel_run of a run that does not exist", '{"type": "cancel_run", "run_id": "robustness-no-such-run"}',
     "unknown_run"),
    ("a message without type", '{"run_id": "robustness-no-type"}', "invalid_message"),
)
assert all(code in schemas.ERROR_CODES for _, _, code in MALFORMED)


#: Sizes of the oversize probe, in bytes: just over the bound the spec asks a server to allow at
#: least (64 KiB), then, when that was read, just over 1 MiB (a common library default).
OVERSIZE_BYTES = (64 * 1024 + 1024, 2**20 + 1024)
#: The oversize message: a type no server knows, so that one that reads it answers unknown_type.
OVERSIZE_TYPE = "no_such_message_type"


def oversize_message(size: int) -> str:
    """A JSON object of exactly ``size`` bytes."""
    head, tail = f'{{"type": "{OVERSIZE_TYPE}", "padding": "', '"}'
    return head + "x" * (size - len(head) - len(tail)) + tail


async def _oversize(probe: ScenarioProbe, conn: LiveConnection, answers_unknown_type: bool) -> None:
    """Messages over the endpoint's size bound: answered message_too_big (the connection stays
    open), or a close with 1009. The bound of a foreign endpoint is unknown: a message it reads
    (an unknown_type answer) tells that its bound is higher, and the next size is tried."""
    timeout = reply_timeout(probe)
    read: list[str] = []
    for size in OVERSIZE_BYTES:
        conn = await _connection(probe, conn)
        if conn is None:
            return
        before = conn.error_count
        await conn.send(oversize_message(size))
        await conn.wait(lambda: conn.error_count > before, timeout)
        error = conn.errors[before][1] if conn.error_count > before and before < len(conn.errors) else None
        code = error.get("code") if error is not None else None
        if code == "message_too_big":
            await conn.wait(lambda: not conn.open, timeout / 4)  # the connection must stay open (or close 1009)
        outcome = _v.oversize(size, code, answered=error is not None, conn_open=conn.open, info=conn.close_info,
                              answers_unknown_type=answers_unknown_type, timeout_s=timeout, conn=conn.name)
        if outcome is not None:
            _v.apply(probe, outcome)
            return
        read.append(f"{size} bytes (answered {code})")
    probe.not_applicable("robustness.message_too_big", f"the endpoint read every oversize probe ({', '.join(read)}): "
                         "its bound, if any, is higher")


async def robustness(probe: ScenarioProbe) -> None:
    """Malformed input gets an error of the documented code, and the connection stays usable."""
    conn = await probe.connect()
    if conn is None:
        return
    timeout = reply_timeout(probe)
    answers_unknown_type = False
    for what, frame, code in MALFORMED:
        if not conn.open:
            conn = await probe.connect()
            if conn is None:
                return
        before = conn.error_count
        await conn.send(frame)
        error = await conn.wait_error(before, timeout)
        answers_unknown_type |= code == "unknown_type" and error is not None
        _v.apply(probe, _v.error_reply(what, code, error, conn=conn.name, conn_open=conn.open, timeout_s=timeout))
        if not conn.open:
            _v.apply(probe, _v.closed_after(what, conn.close_info, conn=conn.name))
    if conn.open:
        run_id = await conn.start_run()
        await conn.wait_runs([run_id])
        run = conn.runs[run_id]
        probe.external("robustness.stays_open", run.completed, conn=conn.name, run_id=run_id,
                       expected="a run started after the malformed input completes on the same connection",
                       observed="it did not complete" if not run.completed else "it completed")
    await _oversize(probe, conn, answers_unknown_type)
