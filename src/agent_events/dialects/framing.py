"""Framing: how one received frame becomes zero or more events of a dialect.

AG-UI over WebSocket is framed three ways in the wild: one JSON object per text
frame (AG-UI 1.1's "one event object per frame"), one or more SSE records
``data: {...}\\n\\n`` inside a text frame (a cloud runtime's ``/ws`` route), and
an envelope ``{"action": ..., "payload": {...}}`` around each event. ``auto``
decides per frame: a frame whose text starts with ``{`` is JSON, one that
starts with an SSE field (``data:``, ``event:``, ``id:``, ``retry:`` or a ``:``
comment) is SSE. Pure functions: no state, no I/O.
"""

from __future__ import annotations

from typing import Any

from agent_events.conformance.core import json_text
from agent_events.dialects.pointer import MISSING, Pointer

_loads = json_text.loads
_JSONDecodeError = json_text.JSONDecodeError
_SSE_FIELDS = ("data:", "event:", "id:", "retry:", ":")


class FrameProblem(ValueError):
    """A frame that holds no event in the dialect's framing (``frame.json`` with this observation)."""


def decode(frame: Any, framing: str, envelope: Pointer | None = None) -> list[Any]:
    """The events a frame holds (decoded JSON values), or :class:`FrameProblem`.

    ``frame`` is ``str`` (a text frame), ``bytes`` (already judged ``frame.text``,
    decoded here as UTF-8) or an already-decoded JSON value (a transcript's ``msg``).
    """
    if isinstance(frame, (bytes, bytearray, memoryview)):
        try:
            frame = bytes(frame).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FrameProblem(f"binary content that is not UTF-8 ({exc.reason})") from None
    if type(frame) is str:
        kind = framing
        if kind == "auto":
            head = frame.lstrip()[:8]
            kind = "sse" if head.startswith(_SSE_FIELDS) else "json"
        if kind == "sse":
            values = sse_records(frame)
        else:
            try:
                values = [_loads(frame)]
            except _JSONDecodeError as exc:
                what = "SSE records (data: ...) nor JSON" if framing == "auto" else "JSON"
                raise FrameProblem(f"neither {what}: {exc}" if framing == "auto" else f"not JSON ({exc})") from None
    else:
        values = [frame]
    if framing == "envelope" and envelope is not None:
        out = []
        for value in values:
            event = envelope.resolve(value)
            if event is MISSING:
                raise FrameProblem(f"no event at the envelope pointer {envelope.text!r}")
            out.append(event)
        return out
    return values


def sse_records(text: str) -> list[Any]:
    """The JSON values of the SSE records in ``text`` (one frame may hold several, ``\\n\\n`` apart).

    A record's ``data:`` lines are joined with ``\\n`` (the SSE rule); a record with no data is a
    keep-alive and holds no event. Raises :class:`FrameProblem` for a record whose data is not JSON.
    """
    values: list[Any] = []
    data: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if data:
                values.append(_record("\n".join(data)))
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name not in ("event", "id", "retry"):
            raise FrameProblem(f"not an SSE field line: {line[:60]!r}")
    if data:
        values.append(_record("\n".join(data)))
    if not values:
        raise FrameProblem("SSE with no data record")
    return values


def _record(data: str) -> Any:
    try:
        return _loads(data)
    except _JSONDecodeError as exc:
        raise FrameProblem(f"an SSE record whose data is not JSON ({exc}): {data[:60]!r}") from None
