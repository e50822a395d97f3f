"""``--format badge`` / ``--badge PATH``: the README badge of :mod:`agent_events.conformance.reporting.claim`, as a format.

A format rather than a separate output so that ``--report badge=PATH``, the
config file's ``reports`` table and every command that writes reports get it
with no code of their own.
"""

from __future__ import annotations

from agent_events.conformance.reporting.claim import badge_svg
from agent_events.conformance.reporters.base import Reporter


class BadgeReporter(Reporter):
    name = "badge"
    extension = ".svg"
    media_type = "image/svg+xml"

    def render(self, report) -> str:
        return badge_svg(report)
