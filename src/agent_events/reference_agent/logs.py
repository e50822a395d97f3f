"""Quiet logging for things a client can cause over and over.

A client that can make the server write a log line per message can fill a
disk (issue #14: 2,000 nested messages wrote 3.3 MiB of tracebacks; an fd
exhaustion wrote 252 MB). So what a client can repeat goes through
:class:`RateLimitedLog`: one line per kind of event per interval, the next one
saying how many were left out, and an exception as one line (its type,
message and where it was raised); the full traceback goes to DEBUG only.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from typing import Callable

#: Seconds between two lines of the same kind.
DEFAULT_INTERVAL = 60.0


def one_line(exc: BaseException) -> str:
    """``Type: message (file.py:123)`` for an exception: where it was raised, without the traceback."""
    text = " ".join(str(exc).split())[:300]
    where = ""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    if frames:
        last = frames[-1]
        where = f" ({os.path.basename(last.filename)}:{last.lineno})"
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


class RateLimitedLog:
    """At most one record per ``key`` per ``interval`` seconds; keys are a small fixed set."""

    def __init__(self, logger: logging.Logger, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, key: str, message: str, *args: object, exc: BaseException | None = None) -> bool:
        """Log ``message % args`` (plus ``exc`` in one line) unless ``key`` was logged within the interval.

        Returns whether the line was written. The full traceback of ``exc``
        goes to DEBUG, rate-limited the same way.
        """
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        text = message % args if args else message
        if exc is not None:
            text = f"{text}: {one_line(exc)}"
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            text += f" [{suppressed} more like this in the last {self.interval:g} s not logged]"
        self.logger.log(level, "%s", text)
        if exc is not None and self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("traceback of the above", exc_info=exc)
        return True

    def warning(self, key: str, message: str, *args: object, exc: BaseException | None = None) -> bool:
        return self.log(logging.WARNING, key, message, *args, exc=exc)

    def error(self, key: str, message: str, *args: object, exc: BaseException | None = None) -> bool:
        return self.log(logging.ERROR, key, message, *args, exc=exc)
