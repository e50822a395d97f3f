"""Moved to :mod:`agent_events.conformance.core.latency_judging`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.core import latency_judging as _module

sys.modules[__name__] = _module
