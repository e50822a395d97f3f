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
from agent_events.conformance.reporters.sarif import SarifReporter
from agent_events.conformance.reporters.text import TextReporter

REPORTERS: dict[str, type[Reporter]] = {
    "text": TextReporter,
    "json": JsonReporter,
    "junit": JUnitReporter,
    "html": HtmlReporter,
    "sarif": SarifReporter,
    "badge": BadgeReporter,
}


def get(name: str) -> type[Reporter]:
    try:
        return REPORTERS[name]
    except KeyError:
        raise KeyError(f"unknown report format {name!r}; known: {', '.join(REPORTERS)}") from None


def render(report, fmt: str = "text", *, color: bool = False, group: bool = False) -> str:
    return get(fmt)(color=color, group=group).render(report)


def write_outputs(report, fmt: str | None = "text", reports: Iterable[tuple[str, Path]] = (), *,
                  color: bool | None = None, stdout: IO[str] | None = None, group: bool = False) -> list[Path]:
    """Print ``report`` in ``fmt`` (``None``: print nothing) and write each ``(format, path)``.

    Colour is used on stdout only, and by default only when stdout is a
    terminal and ``NO_COLOR`` is unset. ``group`` (``--group``) applies to
    the text format, printed or written. Returns the paths written.
    """
    import os

    stdout = stdout if stdout is not None else sys.stdout
    if fmt is not None:
        if color is None:
            color = bool(getattr(stdout, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")
        text = render(report, fmt, color=color, group=group)
        stdout.write(text if text.endswith("\n") else text + "\n")
        stdout.flush()
    written = []
    for name, path in reports:
        path = Path(path)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(report, name, color=False, group=group), encoding="utf-8")
        written.append(path)
    return written
