"""Moved to :mod:`agent_events.conformance.core.schema_validation`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.core import schema_validation as _module

sys.modules[__name__] = _module
