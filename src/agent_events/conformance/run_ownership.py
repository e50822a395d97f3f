"""Moved to :mod:`agent_events.conformance.core.run_ownership`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.core import run_ownership as _module

sys.modules[__name__] = _module
