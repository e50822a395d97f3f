"""Moved to :mod:`agent_events.conformance.core.evidence`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.core import evidence as _module

sys.modules[__name__] = _module
