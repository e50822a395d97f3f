"""Moved to :mod:`agent_events.conformance.reporting.baseline`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.reporting import baseline as _module

sys.modules[__name__] = _module
