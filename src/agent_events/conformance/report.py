"""Moved to :mod:`agent_events.conformance.reporting.report`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.reporting import report as _module

sys.modules[__name__] = _module
