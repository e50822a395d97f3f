"""The agent-events conformance kit: check any agent's event stream against protocol v1."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("agent-events")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

#: Public names, imported on first use so that ``agent-events --version`` and
#: the pytest plugin's start-up stay cheap.
_EXPORTS = {
    "Checker": "conformance.checker",
    "Violation": "conformance.violations",
    "RuleOutcome": "conformance.violations",
    "Profile": "conformance.profiles",
    "PROFILES": "conformance.profiles",
    "Policy": "conformance.report",
    "Report": "conformance.report",
    "Section": "conformance.report",
    "validate_messages": "conformance.api",
    "validate_frames": "conformance.api",
    "validate_files": "conformance.api",
    "check": "conformance.live.api",
    "check_async": "conformance.live.api",
    "ConnectError": "conformance.live.wire",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conformance' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
