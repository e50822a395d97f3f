"""Moved to :mod:`agent_events.conformance.core.rules`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.core import rules as _module

sys.modules[__name__] = _module
