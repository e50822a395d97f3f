"""Offline input for a dialect: SSE captures, NDJSON and our transcripts, streamed.

AG-UI's validators read an SSE capture (a ``text/event-stream`` file: records ``data: {...}``
separated by blank lines) or NDJSON; ``agent-events record`` writes transcripts. The first
non-blank line decides: an SSE field line (``data:``, ``event:``, ``id:``, ``retry:`` or a
``:`` comment) makes the file an SSE capture, anything else goes to the transcript reader
(:func:`agent_events.conformance.offline.transcript.iter_frames`, which also reads plain JSONL).
Line by line, one record at a time: memory stays flat however long the file is.
"""

from __future__ import annotations

from itertools import chain
from typing import Iterable, Iterator

from agent_events.conformance.core import json_text
from agent_events.conformance.offline.transcript import DEFAULT_CONN, LongLine, OVERSIZE, Frame, iter_frames

_SSE = ("data:", "event:", "id:", "retry:", ":")
_loads = json_text.loads


def _text(line) -> str:
    if isinstance(line, str):
        return line
    return line.decode("utf-8", "surrogateescape")


def iter_dialect_frames(lines: Iterable, source: str = "<stream>", header: dict | None = None) -> Iterator[Frame]:
    """Frames of an SSE capture, an NDJSON file or a transcript (told apart by the first line)."""
    lines = iter(lines)
    first = None
    for line in lines:
        if type(line) is LongLine or _text(line).strip():
            first = line
            break
    if first is None:
        return
    if type(first) is not LongLine and _text(first).lstrip().startswith(_SSE):
        yield from _sse_frames(chain([first], lines))
    else:
        yield from iter_frames(chain([first], lines), source, header)


def _sse_frames(lines: Iterable) -> Iterator[Frame]:
    """One frame per SSE record (its data lines joined), numbered by the record's first line."""
    data: list[str] = []
    start = 0
    for number, line in enumerate(lines, 1):
        if type(line) is LongLine:
            yield number, OVERSIZE, DEFAULT_CONN, None, int(line)
            continue
        text = _text(line).rstrip("\r\n")
        if not text:
            if data:
                yield _record(start, data)
                data = []
            continue
        if text.startswith(":"):
            continue
        name, _, value = text.partition(":")
        if name == "data":
            if not data:
                start = number
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield _record(start, data)


def _record(number: int, data: list[str]) -> Frame:
    text = "\n".join(data)
    try:
        value = _loads(text)
    except json_text.JSONDecodeError:
        value = text  # judged frame.json at this line
    return number, "recv", DEFAULT_CONN, None, value
