"""A frame over the frame limit, for any checker: counted as received, never read, ``frame.size`` failed.

One function, so our checker and a dialect's (:class:`agent_events.dialects.judge.DialectChecker`) say the
same thing about the same frame: a checker it is given has ``_conn(name)`` (with ``received``),
``frames``, ``frames_unread`` and ``external(...)``. (A function, not only a mixin: our checker is
compiled with mypyc where a compiler is, and an interpreted class such as the dialect's cannot inherit
from a compiled one; see :mod:`agent_events._native`.)
"""

from __future__ import annotations

from typing import Any

from agent_events.conformance.core.violations import Violation


def receive_oversize(checker: Any, size: int, limit: int, at: float | None = None, conn: str = "c0",
                     ref: Any = None) -> Violation | None:
    """A frame (or a transcript line) of ``size`` bytes, over the frame ``limit``, that was not read:
    it counts as a received frame and fails ``frame.size``."""
    c = checker._conn(conn)
    c.received += 1
    checker.frames += 1
    checker.frames_unread += 1
    return checker.external("frame.size", False, conn=conn, at=at, location=ref,
                            expected=f"every message at most {limit} bytes (the frame limit)",
                            observed=f"{size} bytes; not read")


class FrameLimit:
    """:func:`receive_oversize` as a method, for a checker written in Python (the dialects')."""

    def receive_oversize(self, size: int, limit: int, at: float | None = None, conn: str = "c0",
                         ref: Any = None) -> Violation | None:
        return receive_oversize(self, size, limit, at, conn, ref)
