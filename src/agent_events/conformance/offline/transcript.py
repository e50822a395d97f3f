"""Transcripts: recorded streams as JSON Lines, read lazily and written as they happen.

A transcript is what ``agent-events record`` and ``check --record`` write and
``agent-events validate`` reads back, so a live check can be replayed and a
bug report can carry its evidence. Its format (see the spec):

* an optional first line, the header:
  ``{"transcript": "agent-events/v1", "url": ..., "started_at": ..., "kit_version": ...}``;
* then one frame per line: ``{"t": <client epoch ms>, "dir": "send"|"recv",
  "conn": "c0", "text": <raw text frame>}`` (or ``"binary"``: base64 of a
  binary frame, or ``"msg"``: an already-decoded JSON value, as the sequence
  vectors use). ``t`` and ``conn`` are optional;
* ``{"t": ..., "dir": "close", "conn": "c0"}`` (optionally with ``"code"``,
  and ``"cause"``/``"detail"`` when the client closed it because of what it
  received, such as ``"message_too_big"``, which fails ``frame.size`` as in the
  live check) when a connection closed: its open runs end there and the
  checker releases its state, so memory does not grow with the number of
  connections.

A line without ``dir`` is a plain server message with no timing (a log of
what a server sent), so plain JSONL validates too. A header line after
frames starts a new recording (two transcripts concatenated): every
connection of the previous one has ended. Reading is a generator over the
file's lines, each read with a bound (:func:`read_lines`): memory does not
grow with the file nor with a line; a line longer than :data:`MAX_LINE_BYTES`
is skipped unread and judged ``frame.size``. Raw frames are recorded as
received, not re-encoded, so a malformed frame stays malformed in the
transcript and is reported when the transcript is validated.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from typing import IO, Any, Iterable, Iterator

import orjson

from agent_events.conformance.core import json_text

#: The value of the header's ``transcript`` key.
FORMAT = "agent-events/v1"
HEADER_KEY = "transcript"
DIRECTIONS = ("send", "recv")
#: The ``dir`` of a record saying that a connection closed.
CLOSE = "close"
#: The ``cause`` of a close record when the client closed because a message was over its frame limit.
MESSAGE_TOO_BIG = "message_too_big"
#: Pseudo-directions :func:`iter_frames` yields besides DIRECTIONS and CLOSE.
HEADER = "header"
OVERSIZE = "oversize"
DEFAULT_CONN = "c0"
#: The longest line read: the live check's frame limit (16 MiB, ``live.wire.DEFAULT_MAX_SIZE``). A
#: longer line is a frame over the limit (``frame.size``), skipped in chunks without being held.
MAX_LINE_BYTES = 16 * 2**20
#: Bytes read at a time while skipping the rest of an over-long line.
SKIP_CHUNK = 1 << 20

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
#: Direction CLOSE (data: ``{"code", "cause", "detail"}``), HEADER (data: the header) and OVERSIZE
#: (data: the line's length in bytes) are not frames but what :func:`feed` must know.
Frame = tuple[int, str, str, "float | None", Any]


class LongLine(int):
    """Stands for a line longer than the bound, skipped unread: its length in bytes."""


def read_lines(source: "IO[bytes] | Iterable[bytes | str]", limit: int = MAX_LINE_BYTES) -> Iterator[bytes | str | LongLine]:
    """The lines of ``source``, never holding more than ``limit`` bytes of one.

    A binary stream is read with ``readline(limit + 1)``; the rest of a longer
    line is read and dropped in chunks, and a :class:`LongLine` stands for it.
    Any other iterable of lines is passed through, a line over ``limit``
    replaced by a :class:`LongLine` too.
    """
    readline = getattr(source, "readline", None)
    if readline is None:
        for line in source:  # type: ignore[union-attr]
            if type(line) is not LongLine and len(line) > limit:
                content = len(line.rstrip(b"\r\n" if isinstance(line, bytes) else "\r\n"))
                if content > limit:
                    line = LongLine(content)
            yield line
        return
    while True:
        line = readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        size = len(line)
        while True:
            chunk = readline(SKIP_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if chunk.endswith(b"\n"):
                size -= 1
                break
        yield LongLine(size)


def iter_frames(lines: Iterable[bytes | str], source: str = "<stream>", header: dict | None = None) -> Iterator[Frame]:
    """The frames of a transcript or plain JSONL, one per non-blank line.

    A line that is not JSON is yielded as its text, received: the checker then
    reports it as ``frame.json`` at ``source:line``. If ``header`` is a dict,
    the header line's fields are stored into it.
    """
    first = True
    for number, line in enumerate(lines, 1):
        if type(line) is LongLine:
            yield number, OVERSIZE, DEFAULT_CONN, None, int(line)
            first = False
            continue
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
            if HEADER_KEY in value and (first or "type" not in value):
                if first:
                    if header is not None:
                        header.update(value)
                else:  # a second recording: its connections are new ones
                    yield number, HEADER, DEFAULT_CONN, None, value
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
    if direction not in DIRECTIONS and direction != CLOSE:
        raise TranscriptError(source, number, f'"dir" must be "send", "recv" or "close", not {direction!r}')
    t = value.get("t")
    if t is not None and (type(t) not in (int, float) or not math.isfinite(t)):
        # a number beyond a double (a 400-digit "t") is read as an infinity: no receive time at all
        what = "a number beyond a double's range" if type(t) is float and math.isinf(t) else repr(t)
        raise TranscriptError(source, number, f'"t" must be a finite number (client epoch ms), not {what}')
    conn = value.get("conn", DEFAULT_CONN)
    if type(conn) is not str:
        raise TranscriptError(source, number, f'"conn" must be a string, not {conn!r}')
    if direction == CLOSE:
        code, cause, detail = value.get("code"), value.get("cause"), value.get("detail")
        return number, CLOSE, conn, float(t) if t is not None else None, {
            "code": code if type(code) is int else None, "cause": cause if type(cause) is str else None,
            "detail": detail if type(detail) is str else ""}
    if "msg" in value and "text" not in value and "binary" not in value:  # the common cases, first
        return number, direction, conn, float(t) if t is not None else None, value["msg"]
    data = value.get("text")
    if type(data) is str and "msg" not in value and "binary" not in value:
        return number, direction, conn, float(t) if t is not None else None, data
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


def feed(checker, frames: Iterable[Frame], source: str | None = None, limit: int = MAX_LINE_BYTES) -> int:
    """Drive ``checker`` with ``frames``; returns how many frames were fed.

    A connection's close record ends it (:meth:`Checker.end_connection`), a later header starts a
    new recording (:meth:`Checker.new_recording`), and an over-long line fails ``frame.size``.
    """
    send, receive = checker.send, checker.receive
    count = 0
    for number, direction, conn, t, data in frames:
        if direction == "recv":
            count += 1
            # (source, line): formatted "file:line" only if a violation names it
            receive(data, t, conn, (source, number) if source is not None else None)
        elif direction == "send":
            count += 1
            send(data, t, conn)
        elif direction == CLOSE:
            if data.get("cause") == MESSAGE_TOO_BIG:  # the live check's judgement of that close, replayed
                checker.external("frame.size", False, conn=conn, at=t,
                                 location=f"{source}:{number}" if source is not None else None,
                                 expected="every message at most the client's frame limit",
                                 observed=f"a message over the limit ({data.get('detail') or 'not recorded'}); "
                                          "the client closed the connection with 1009")
            checker.end_connection(conn, t)
        elif direction == HEADER:
            checker.new_recording()
        elif direction == OVERSIZE:
            count += 1
            checker.receive_oversize(data, limit, t, conn, f"{source}:{number}" if source is not None else None)
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

    def close(self, t: float | None = None, conn: str = DEFAULT_CONN, code: int | None = None,
              cause: str | None = None, detail: str | None = None) -> None:
        """The connection ``conn`` closed (``code``: its close code, if known; ``cause``: what the
        client objected to when it closed it, such as ``"message_too_big"``)."""
        record: dict[str, Any] = {"t": t, "dir": CLOSE, "conn": conn, "code": code, "cause": cause,
                                  "detail": detail or None}
        self._write({k: v for k, v in record.items() if v is not None})

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
