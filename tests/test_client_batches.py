"""The client core judges a read's messages as one batch exactly as its careful path judges them
one by one.

The live check and ``load`` hand the core every message of one socket read at once
(:meth:`ClientConnection.receive_many`), parsed straight from the bytes for speed; the careful
path (``_receive_careful``: decode, then parse, as a transcript needs) is the reference, and what
the fast one falls back to for anything unusual. Whatever the stream (valid
runs, runs broken in any way the strategies know, frames that are not JSON, not UTF-8, not an
object, binary, or hold numbers beyond a double) and however it is cut into reads, both paths
must leave the same verdicts, counters and run records. No I/O: the core is sans-I/O.
"""

from __future__ import annotations

import base64

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_events.conformance.tooling import strategies
from agent_events.conformance.core.checker import Checker
from agent_events.conformance.core.client import ClientConnection

#: frames no generated run holds, each taking another branch of the one-message path
ODD_FRAMES = [
    ("text", b"not json"),
    ("text", b"[1, 2]"),
    ("text", b'"a string"'),
    ("text", b"\xff\xfe{}"),  # not UTF-8
    ("binary", b'{"type":"progress","run_id":"run-0","seq":99}'),
    ("binary", b"\x00\x01"),
    ("text", b'{"type":"progress","run_id":"run-0","seq":1e400,"emitted_at":1}'),  # beyond a double
    ("text", b'{"type":"error","code":"too_many_runs","message":"full"}'),
    ("text", b'{"no":"type"}'),
]


def _wire_frames(frames: list[dict]) -> list[tuple]:
    """A strategies stream as the wire gives it: ("send", message, t) or ("recv", kind, data, t)."""
    out = []
    for f in frames:
        if f.get("conn", "c0") != "c0" or f["dir"] not in ("send", "recv"):
            continue  # one connection's frames (a close, another connection: the shells' business)
        if f["dir"] == "send":
            out.append(("send", f["msg"], f["t"]))
        elif "msg" in f:
            out.append(("recv", "text", orjson.dumps(f["msg"]), f["t"]))
        elif "text" in f:
            out.append(("recv", "text", f["text"].encode("utf-8", "surrogatepass"), f["t"]))
        else:
            out.append(("recv", "binary", base64.b64decode(f["binary"]), f["t"]))
    return out


def _state(core: ClientConnection, checker: Checker, ended: list) -> dict:
    checker.close(None)
    return {
        "violations": [(v.rule_id, v.run_id, v.index, v.expected, v.observed, v.excerpt) for v in checker.violations],
        "counts": dict(checker.violation_counts),
        # every integer field (dir, not vars: the compiled checker keeps its fields in slots)
        "stats": {k: v for k in dir(checker) if not k.startswith("__")
                  for v in [getattr(checker, k)] if isinstance(v, int) and not isinstance(v, bool)},
        "delivery": checker.latencies.delivery.summary(),
        "runs": {rid: (r.events, r.first_at, r.completed_at, r.last_seq, tuple(r.attempts), r.refused)
                 for rid, r in core.runs.items()},
        "ended": [(r.run_id, r.events) for r in ended],
        "received": core.received,
        "errors": core.error_count,
        "invalid_utf8": core.invalid_utf8,
    }


@st.composite
def streams_cut_into_reads(draw):
    base = draw(st.one_of(strategies.runs(), strategies.multiplexed_runs(),
                          strategies.mutations().map(lambda m: m.frames)))
    wire = _wire_frames(base)
    for odd in draw(st.lists(st.sampled_from(ODD_FRAMES), max_size=4)):
        at = draw(st.integers(0, len(wire)))
        t = wire[at - 1][-1] if at else wire[0][-1]
        wire.insert(at, ("recv", *odd, t))
    # cut the received frames into reads: a send always ends a read (it happens between reads)
    reads: list = []
    current: list = []
    for item in wire:
        if item[0] == "send":
            if current:
                reads.append(current)
                current = []
            reads.append(item)
            continue
        current.append(item)
        if draw(st.booleans()):
            reads.append(current)
            current = []
    if current:
        reads.append(current)
    return reads


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams_cut_into_reads())
def test_a_batch_is_judged_as_its_messages_one_by_one(reads):
    one, many = Checker(), Checker()
    core_one, core_many = ClientConnection("c0", one), ClientConnection("c0", many)
    ended_one: list = []
    ended_many: list = []
    for read in reads:
        if read[0] == "send":
            core_one.send(read[1], read[2])
            core_many.send(read[1], read[2])
            continue
        at = read[-1][-1]  # every message of a read arrives at the read's time
        for _, kind, data, _ in read:
            run = core_one._receive_careful(kind, data, at)
            if run is not None:
                ended_one.append(run)
        ended_many.extend(core_many.receive_many([(kind, data) for _, kind, data, _ in read], at))
    assert _state(core_many, many, ended_many) == _state(core_one, one, ended_one)


def test_the_odd_frames_take_the_one_message_path_and_are_judged():
    """The batch path hands every odd frame to the careful path: each is a finding, none lost."""
    checker = Checker()
    core = ClientConnection("c0", checker)
    core.receive_many(ODD_FRAMES, 1.0)
    checker.close(None)
    assert core.received == len(ODD_FRAMES)
    assert checker.frames == len(ODD_FRAMES)
    counts = checker.violation_counts
    assert counts["frame.json"] >= 4  # not json, not UTF-8, a list, a string (and binary noise)
    assert counts["frame.text"] == 2  # the two binary frames
    assert counts["schema.envelope"] >= 1  # the object without a type
    assert core.invalid_utf8 is not None
