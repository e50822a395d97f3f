"""Moved to :mod:`agent_events.conformance.core.profiles`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.core import profiles as _module

sys.modules[__name__] = _module
