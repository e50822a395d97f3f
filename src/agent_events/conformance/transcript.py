"""Moved to :mod:`agent_events.conformance.offline.transcript`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.offline import transcript as _module

sys.modules[__name__] = _module
