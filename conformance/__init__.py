"""The agent-events conformance kit: check any agent's event stream against protocol v1."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("agent-events")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
