"""What the checking commands share about the terminal: ``-q`` / ``-v`` and a progress line for files.

``check``, ``demo``, ``validate`` and ``load`` declare the same two flags with
:func:`add_verbosity_arguments` and read them with :func:`verbosity_of`, so
``-q`` and ``-v`` mean the same everywhere (see
:mod:`agent_events.conformance.reporters.text` for what each level prints).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")

#: How often the progress line of ``validate`` is rewritten, in seconds.
PROGRESS_INTERVAL_S = 0.5
#: Lines read between two looks at the clock (looking at it per line would cost more than the line).
_CLOCK_EVERY = 1024


def add_verbosity_arguments(parser) -> None:
    """``-q/--quiet`` and ``-v/--verbose`` (exclusive) on ``parser`` or an argument group of it."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", default=False,
                       help="text report: only the failures that fail the gate and the verdict (no progress line)")
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="text report: also the full rule matrix, the latency tables and the error codes "
                            "received, for every section")


def verbosity_of(args: argparse.Namespace) -> int:
    """-1 for ``-q``, 0 by default, 1 for ``-v``."""
    if getattr(args, "quiet", False):
        return -1
    return 1 if getattr(args, "verbose", 0) else 0


class FileProgress:
    """``validate``'s progress on a terminal: one line on stderr, rewritten with ``\\r`` about every
    half second (files done, lines read of the current file), cleared at the end. Silent when the
    stream is not a terminal, and then :meth:`lines` adds nothing to the loop it wraps."""

    def __init__(self, total_files: int, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)()) if enabled is None else enabled
        self.total = total_files
        self.done = 0
        self.lines_total = 0
        self._width = 0

    def lines(self, source: Iterable[T], name: str) -> Iterable[T]:
        """``source``, counted, with the line rewritten as it is read (``source`` itself when disabled)."""
        if not self.enabled:
            return source
        return self._counted(source, name)

    def _counted(self, source: Iterable[T], name: str) -> Iterator[T]:
        count = 0
        self._show(name, count)  # at once, so even a quick file says what is being read
        next_at = time.monotonic() + PROGRESS_INTERVAL_S
        for item in source:
            yield item
            count += 1
            if not count % _CLOCK_EVERY:
                now = time.monotonic()
                if now >= next_at:
                    self._show(name, count)
                    next_at = now + PROGRESS_INTERVAL_S
        self.lines_total += count

    def _show(self, name: str, count: int) -> None:
        text = (f"validate: {self.done}/{self.total} file(s) done, {self.lines_total + count:,} line(s) read"
                f" - {name}")[:120]
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def file_done(self) -> None:
        self.done += 1

    def clear(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
