"""Named hooks: what a dialect needs that its data cannot say, kept small and by name.

A dialect file or a built-in dialect lists hooks by name (``hooks = ["ag-ui.chunks"]``);
each is a factory of a per-connection object with ``expand(event, type_) -> (events,
problems)`` run on every decoded, schema-checked event before the judge sees it, and
``flush() -> events`` at the end of a connection. A problem is ``(rule id, expected,
observed)``. Sans-I/O like the judge.

``ag-ui.chunks``: AG-UI's convenience chunks (``TEXT_MESSAGE_CHUNK``,
``REASONING_MESSAGE_CHUNK``, ``TOOL_CALL_CHUNK``) expand to the START / CONTENT (ARGS) /
END events they stand for, as AG-UI 1.1 specifies (/spec/1.1/basic/patterns/streaming):
the first chunk of a stream opens it and must carry its id (and a tool call's name), a
later chunk with no id or the same id continues it and may not change its role or tool
name, a chunk with another id closes the open stream and opens a new one, and any other
event but ``RAW`` closes the open stream first (so a ``CUSTOM`` between two chunks ends
the stream, and the second chunk must carry an id again).
"""

from __future__ import annotations

from typing import Any, Callable

FIRST_ID = "ag-ui.chunk.first_id"
CONSISTENT = "ag-ui.chunk.consistent"

#: chunk type -> (id field, START, CONTENT, END, the field fixed by the first chunk, its default)
_CHUNKS = {
    "TEXT_MESSAGE_CHUNK": ("messageId", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END",
                           "role", "assistant"),
    "REASONING_MESSAGE_CHUNK": ("messageId", "REASONING_MESSAGE_START", "REASONING_MESSAGE_CONTENT",
                                "REASONING_MESSAGE_END", "role", "reasoning"),
    "TOOL_CALL_CHUNK": ("toolCallId", "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "toolCallName", None),
}
#: events that leave an open chunk stream open
_ASIDE = frozenset({"RAW"})
_CARRIED = ("subagentRunId", "parentMessageId", "timestamp")


class AgUiChunks:
    """Per connection: the one open chunk stream, if any."""

    __slots__ = ("open",)
    #: the rules every event passing through the hook could break (counted per event by the judge)
    RULES = (FIRST_ID, CONSISTENT)

    def __init__(self) -> None:
        #: (chunk type, id, fixed field value, subagentRunId) of the open stream
        self.open: tuple[str, Any, Any, Any] | None = None

    def idle_for(self, type_: str) -> bool:
        """Whether ``expand`` would hand the event back unchanged (no chunk stream open, not a chunk)."""
        return self.open is None and type_ not in _CHUNKS

    def expand(self, event: dict, type_: str) -> tuple[list[dict], list[tuple[str, str, str]]]:
        spec = _CHUNKS.get(type_)
        if spec is None:
            if type_ in _ASIDE or self.open is None:
                return [event], []
            return [*self.flush(), event], []
        id_key, start, content, _end, fixed_key, default = spec
        out: list[dict] = []
        problems: list[tuple[str, str, str]] = []
        ident = event.get(id_key)
        fixed = event.get(fixed_key)
        if self.open is not None and (self.open[0] != type_ or (ident is not None and ident != self.open[1])):
            out.extend(self.flush())
        if self.open is None:
            missing = [k for k in ((id_key, fixed_key) if fixed_key == "toolCallName" else (id_key,))
                       if event.get(k) is None]
            if missing:
                problems.append((FIRST_ID, f"the first {type_} of a stream carries {' and '.join(missing)}",
                                 f"a {type_} with no {' and no '.join(missing)} and no {type_} stream open"))
                return out, problems
            value = fixed if fixed is not None else default
            opened = {"type": start, id_key: ident}
            if value is not None:
                opened[fixed_key] = value
            for key in _CARRIED:
                if key in event:
                    opened[key] = event[key]
            out.append(opened)
            self.open = (type_, ident, value, event.get("subagentRunId"))
        elif fixed is not None and fixed != self.open[2]:
            problems.append((CONSISTENT, f"{fixed_key} {self.open[2]!r}, the open stream's",
                             f"a {type_} with {fixed_key} {fixed!r}: it does not match the open stream's {fixed_key}"))
        delta = event.get("delta")
        if delta is not None and delta != "":
            more = {"type": content, id_key: self.open[1], "delta": delta}
            if "subagentRunId" in event:
                more["subagentRunId"] = event["subagentRunId"]
            out.append(more)
        return out, problems

    def flush(self) -> list[dict]:
        """The END of the open stream, if one is open (it is then closed)."""
        if self.open is None:
            return []
        type_, ident, _, subagent = self.open
        id_key, _, _, end, _, _ = _CHUNKS[type_]
        self.open = None
        closed = {"type": end, id_key: ident}
        if subagent is not None:
            closed["subagentRunId"] = subagent
        return [closed]


#: name -> factory of a per-connection hook.
HOOKS: dict[str, Callable[[], Any]] = {"ag-ui.chunks": AgUiChunks}
