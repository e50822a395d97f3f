"""Moved to :mod:`agent_events.conformance.tooling.strategies`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.tooling import strategies as _module

sys.modules[__name__] = _module
