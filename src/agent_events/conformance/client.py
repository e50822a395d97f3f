"""Moved to :mod:`agent_events.conformance.core.client`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.core import client as _module

sys.modules[__name__] = _module
