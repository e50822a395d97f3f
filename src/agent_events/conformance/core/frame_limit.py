"""A frame over the frame limit, for any checker: counted as received, never read, ``frame.size`` failed.

One mixin, so our checker and a dialect's (:class:`agent_events.dialects.judge.DialectChecker`) say the
same thing about the same frame: a checker that mixes it in has ``_conn(name)`` (with ``received``),
``frames``, ``frames_unread`` and ``external(...)``.
"""

from __future__ import annotations

from agent_events.conformance.core.violations import Violation


class FrameLimit:
    def receive_oversize(self, size: int, limit: int, at: float | None = None, conn: str = "c0",
                         ref: str | None = None) -> Violation | None:
        """A frame (or a transcript line) of ``size`` bytes, over the frame ``limit``, that was not read:
        it counts as a received frame and fails ``frame.size``."""
        c = self._conn(conn)
        c.received += 1
        self.frames += 1
        self.frames_unread += 1
        return self.external("frame.size", False, conn=conn, at=at, location=ref,
                             expected=f"every message at most {limit} bytes (the frame limit)",
                             observed=f"{size} bytes; not read")
