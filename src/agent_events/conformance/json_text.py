"""Moved to :mod:`agent_events.conformance.core.json_text`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.core import json_text as _module

sys.modules[__name__] = _module
