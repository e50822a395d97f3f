"""Moved to :mod:`agent_events.conformance.core.harness_lag`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.core import harness_lag as _module

sys.modules[__name__] = _module
