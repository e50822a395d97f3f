"""Moved to :mod:`agent_events.conformance.core.clock_sync`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.core import clock_sync as _module

sys.modules[__name__] = _module
