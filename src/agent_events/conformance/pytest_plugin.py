"""Moved to :mod:`agent_events.conformance.tooling.pytest_plugin`; this path stays importable (the same module object)."""

import sys

from agent_events.conformance.tooling import pytest_plugin as _module

sys.modules[__name__] = _module
