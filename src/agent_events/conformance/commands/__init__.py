"""One module per ``agent-events`` subcommand; see :mod:`agent_events.conformance.cli`."""

from __future__ import annotations

import sys
from typing import Any


def publish(report, settings, args, *, extra_reports: list[tuple[str, Any]] = ()) -> None:
    """The end every checking command shares: apply the ``--baseline``, print the report and write
    the ``--report`` files (plus ``extra_reports``); a file that cannot be written is a usage error."""
    from agent_events.conformance.reporting.baseline import settle
    from agent_events.conformance.cli import UsageError
    from agent_events.conformance.reporters import write_outputs
    from agent_events.conformance.reporting.terminal import verbosity_of

    settle(report, settings)
    try:
        write_outputs(report, settings.format, [*settings.reports, *extra_reports], color=settings.color,
                      stdout=sys.stdout, group=settings.group, verbosity=verbosity_of(args))
    except OSError as exc:
        raise UsageError(f"cannot write a report: {exc.strerror or exc}") from None
