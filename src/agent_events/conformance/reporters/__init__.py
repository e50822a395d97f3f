"""Reporters: one per output format, looked up by name.

``REPORTERS`` maps a ``--format`` name to a class with a ``render(report)``
method returning text; adding a format (SARIF, say) is one module and one
entry here, and every command that takes ``--format`` / ``--report`` offers
it at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Iterable

from agent_events.conformance.reporters.badge import BadgeReporter
from agent_events.conformance.reporters.base import Reporter
from agent_events.conformance.reporters.html import HtmlReporter
from agent_events.conformance.reporters.json import JsonReporter
from agent_events.conformance.reporters.junit import JUnitReporter
from agent_events.conformance.reporters.markdown import MarkdownReporter
from agent_events.conformance.reporters.sarif import SarifReporter
from agent_events.conformance.reporters.text import TextReporter

REPORTERS: dict[str, type[Reporter]] = {
    "text": TextReporter,
    "json": JsonReporter,
    "junit": JUnitReporter,
    "html": HtmlReporter,
    "sarif": SarifReporter,
    "badge": BadgeReporter,
    "markdown": MarkdownReporter,
}


def get(name: str) -> type[Reporter]:
    try:
        return REPORTERS[name]
    except KeyError:
        raise KeyError(f"unknown report format {name!r}; known: {', '.join(REPORTERS)}") from None


def render(report, fmt: str = "text", *, color: bool = False, group: bool = False, verbosity: int = 0) -> str:
    return get(fmt)(color=color, group=group, verbosity=verbosity).render(report)


def use_color(stream: IO[str] | None = None, flag: bool | None = None) -> bool:
    """Whether to colour ``stream``: the ``--color`` flag (``True``/``False``; ``None`` = auto), else
    ``NO_COLOR`` (set and non-empty: never), else ``FORCE_COLOR`` (set and non-empty: always, unless
    ``0`` or ``false``), else whether ``stream`` is a terminal."""
    import os

    if flag is not None:
        return flag
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR")
    if force:
        return force.strip().lower() not in ("0", "false")
    stream = stream if stream is not None else sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def write_outputs(report, fmt: str | None = "text", reports: Iterable[tuple[str, Path]] = (), *,
                  color: bool | None = None, stdout: IO[str] | None = None, group: bool = False,
                  verbosity: int = 0) -> list[Path]:
    """Print ``report`` in ``fmt`` (``None``: print nothing) and write each ``(format, path)``.

    Colour is used on stdout only, as :func:`use_color` decides (``color``: the ``--color`` flag).
    ``group`` (``--group``) applies to the text format, printed or written; ``verbosity`` (``-q`` -1,
    ``-v`` 1) to the text printed: a text report written to a file always has every detail.
    Returns the paths written.
    """
    stdout = stdout if stdout is not None else sys.stdout
    if fmt is not None:
        color = use_color(stdout, color)
        text = render(report, fmt, color=color, group=group, verbosity=verbosity)
        stdout.write(text if text.endswith("\n") else text + "\n")
        stdout.flush()
    written = []
    for name, path in reports:
        path = Path(path)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(report, name, color=False, group=group, verbosity=1), encoding="utf-8")
        written.append(path)
    return written
