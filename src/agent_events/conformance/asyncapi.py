"""Moved to :mod:`agent_events.conformance.tooling.asyncapi`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.tooling import asyncapi as _module

sys.modules[__name__] = _module
