"""Moved to :mod:`agent_events.conformance.tooling.testing`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.tooling import testing as _module

sys.modules[__name__] = _module
