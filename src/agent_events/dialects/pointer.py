"""RFC 6901 JSON Pointers: where a dialect finds a field in a decoded event.

Small enough to own (parse once, resolve many times on the hot path): a pointer
is parsed into its reference tokens when a dialect is built, so a bad pointer is
an error of the dialect file, never of a stream, and resolving is a loop of
dict/list look-ups that never raises.
"""

from __future__ import annotations

from typing import Any

#: What :meth:`Pointer.resolve` returns for a path that is not there (``None`` is a JSON value).
MISSING = object()


class PointerError(ValueError):
    """Not an RFC 6901 pointer; the message says why."""


class Pointer:
    """A parsed RFC 6901 pointer (``""`` is the whole document, ``/a/b`` a member of a member)."""

    __slots__ = ("text", "tokens")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise PointerError(f"a JSON pointer is a string, not {type(text).__name__}")
        if text and not text.startswith("/"):
            raise PointerError(f"{text!r} is not a JSON pointer: it must be empty or start with '/' (RFC 6901)")
        tokens = []
        for raw in text.split("/")[1:]:
            i = raw.find("~")
            while i != -1:
                if i + 1 >= len(raw) or raw[i + 1] not in "01":
                    raise PointerError(f"{text!r} is not a JSON pointer: '~' must be followed by 0 or 1 (RFC 6901)")
                i = raw.find("~", i + 2)
            tokens.append(raw.replace("~1", "/").replace("~0", "~"))
        self.text = text
        self.tokens = tuple(tokens)

    def resolve(self, document: Any, default: Any = MISSING) -> Any:
        """The value at this pointer in ``document``, or ``default`` when it is not there."""
        value = document
        for token in self.tokens:
            kind = type(value)
            if kind is dict:
                if token not in value:
                    return default
                value = value[token]
            elif kind is list:
                if not token.isdigit() or (len(token) > 1 and token[0] == "0") or int(token) >= len(value):
                    return default
                value = value[int(token)]
            else:
                return default
        return value

    def __repr__(self) -> str:
        return f"Pointer({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pointer) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)
