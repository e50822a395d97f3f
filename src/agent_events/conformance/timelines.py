"""Moved to :mod:`agent_events.conformance.reporting.timelines`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.reporting import timelines as _module

sys.modules[__name__] = _module
