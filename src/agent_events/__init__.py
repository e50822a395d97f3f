"""agent-events: the reference specification and conformance kit for AI-agent event streams.

Everything the distribution installs lives under this one import namespace, so a
project with its own ``schemas``, ``conformance`` or ``reference_agent`` package keeps
working beside it:

* :mod:`agent_events.schemas` - protocol v1 as JSON Schemas (the single source of truth);
* :mod:`agent_events.conformance` - the checker, the live probe, reports, CLI and pytest plugin;
* :mod:`agent_events.reference_agent` - the reference WebSocket server and ``BaseAgent``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

# first: with AGENT_EVENTS_PURE_PYTHON set, the compiled core's modules must load from their sources
from agent_events import _native  # noqa: F401

try:
    __version__ = _version("agent-events")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
