"""Transcripts: recorded streams as JSON Lines, read lazily and written as they happen.

A transcript is what ``agent-events record`` and ``check --record`` write and
``agent-events validate`` reads back, so a live check can be replayed and a
bug report can carry its evidence. Its format (see the spec):

* an optional first line, the header:
  ``{"transcript": "agent-events/v1", "url": ..., "started_at": ..., "kit_version": ...}``;
* then one frame per line: ``{"t": <client epoch ms>, "dir": "send"|"recv",
  "conn": "c0", "text": <raw text frame>}`` (or ``"binary"``: base64 of a
  binary frame, or ``"msg"``: an already-decoded JSON value, as the sequence
  vectors use). ``t`` and ``conn`` are optional.

A line without ``dir`` is a plain server message with no timing (a log of
what a server sent), so plain JSONL validates too. Reading is a generator
over the file's lines: memory does not grow with the file. Raw frames are
recorded as received, not re-encoded, so a malformed frame stays malformed
in the transcript and is reported when the transcript is validated.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from typing import IO, Any, Iterable, Iterator

import orjson

from agent_events.conformance import json_text

#: The value of the header's ``transcript`` key.
FORMAT = "agent-events/v1"
HEADER_KEY = "transcript"
DIRECTIONS = ("send", "recv")
DEFAULT_CONN = "c0"

_loads = json_text.loads
_JSONDecodeError = json_text.JSONDecodeError


class TranscriptError(ValueError):
    """A line that claims to be a transcript frame but is malformed (not the server's fault)."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: not a valid transcript frame: {problem}")
        self.source = source
        self.line = line


#: One frame ready for the checker: (line number, direction, conn, time or None, data).
#: ``data`` is ``str`` (a text frame), ``bytes`` (a binary frame) or a decoded JSON value.
Frame = tuple[int, str, str, "float | None", Any]


def iter_frames(lines: Iterable[bytes | str], source: str = "<stream>", header: dict | None = None) -> Iterator[Frame]:
    """The frames of a transcript or plain JSONL, one per non-blank line.

    A line that is not JSON is yielded as its text, received: the checker then
    reports it as ``frame.json`` at ``source:line``. If ``header`` is a dict,
    the header line's fields are stored into it.
    """
    first = True
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = _loads(line)
        except _JSONDecodeError:
            yield number, "recv", DEFAULT_CONN, None, _as_text(line)
            first = False
            continue
        if type(value) is dict:
            direction = value.get("dir")
            if direction is not None:
                yield _frame(value, direction, number, source)
                first = False
                continue
            if first and HEADER_KEY in value:
                if header is not None:
                    header.update(value)
                first = False
                continue
        first = False
        yield number, "recv", DEFAULT_CONN, None, value


def _as_text(line: bytes | str) -> str:
    if isinstance(line, str):
        return line.rstrip("\r\n")
    # Invalid UTF-8 stays invalid: lone surrogates make the checker's JSON parser reject it.
    return line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")


def _frame(value: dict, direction: Any, number: int, source: str) -> Frame:
    if direction not in DIRECTIONS:
        raise TranscriptError(source, number, f'"dir" must be "send" or "recv", not {direction!r}')
    t = value.get("t")
    if t is not None and (type(t) not in (int, float) or not math.isfinite(t)):
        # a number beyond a double (a 400-digit "t") is read as an infinity: no receive time at all
        what = "a number beyond a double's range" if type(t) is float and math.isinf(t) else repr(t)
        raise TranscriptError(source, number, f'"t" must be a finite number (client epoch ms), not {what}')
    conn = value.get("conn", DEFAULT_CONN)
    if type(conn) is not str:
        raise TranscriptError(source, number, f'"conn" must be a string, not {conn!r}')
    present = [k for k in ("text", "msg", "binary") if k in value]
    if len(present) != 1:
        raise TranscriptError(source, number, 'exactly one of "text", "msg" and "binary" is required'
                              + (f", found {', '.join(present)}" if present else ""))
    kind = present[0]
    data = value[kind]
    if kind == "text" and type(data) is not str:
        raise TranscriptError(source, number, f'"text" must be a string, not {type(data).__name__}')
    if kind == "binary":
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise TranscriptError(source, number, '"binary" must be base64') from None
    return number, direction, conn, float(t) if t is not None else None, data


def feed(checker, frames: Iterable[Frame], source: str | None = None) -> int:
    """Drive ``checker`` with ``frames``; returns how many frames were fed."""
    send, receive = checker.send, checker.receive
    count = 0
    for number, direction, conn, t, data in frames:
        count += 1
        if direction == "recv":
            receive(data, t, conn, f"{source}:{number}" if source is not None else None)
        else:
            send(data, t, conn)
    return count


def frames_from_vector(frames: Iterable[dict], source: str = "<frames>") -> Iterator[Frame]:
    """Frames in the sequence vectors' (and the strategies') dict form, as checker input."""
    for number, value in enumerate(frames, 1):
        if type(value) is dict and "dir" in value:
            yield _frame(value, value["dir"], number, source)
        else:
            yield number, "recv", DEFAULT_CONN, None, value


class TranscriptWriter:
    """Writes a transcript as the frames happen (a binary stream, one line per frame).

    The live probe calls :meth:`send` / :meth:`recv` with the raw frames it
    exchanged and their client-clock times; nothing is buffered beyond the
    stream's own buffer, so a crash loses at most the last lines.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def header(self, url: str | None = None, started_at: float | None = None, **extra: Any) -> None:
        from agent_events.conformance import __version__

        record = {HEADER_KEY: FORMAT, "url": url,
                  "started_at": started_at if started_at is not None else time.time() * 1000.0,
                  "kit_version": __version__, **extra}
        self._write(record)

    def send(self, data: str | bytes | Any, t: float | None = None, conn: str = DEFAULT_CONN) -> None:
        self._write(self._record("send", data, t, conn))

    def recv(self, data: str | bytes | Any, t: float | None = None, conn: str = DEFAULT_CONN) -> None:
        self._write(self._record("recv", data, t, conn))

    @staticmethod
    def _record(direction: str, data: Any, t: float | None, conn: str) -> dict:
        record: dict[str, Any] = {"t": t, "dir": direction, "conn": conn}
        if t is None:
            del record["t"]
        if isinstance(data, str):
            record["text"] = data
        elif isinstance(data, (bytes, bytearray, memoryview)):
            record["binary"] = base64.b64encode(bytes(data)).decode("ascii")
        else:
            record["msg"] = data
        return record

    def _write(self, record: dict) -> None:
        self._stream.write(orjson.dumps(record) + b"\n")

    def flush(self) -> None:
        self._stream.flush()
