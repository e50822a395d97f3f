"""The agent-events conformance kit: check any agent's event stream against protocol v1."""

from __future__ import annotations

from agent_events import __version__  # noqa: F401 - re-exported: agent_events.conformance.__version__

#: Public names, imported on first use so that ``agent-events --version`` and
#: the pytest plugin's start-up stay cheap.
_EXPORTS = {
    "Checker": "agent_events.conformance.core.checker",
    "Violation": "agent_events.conformance.core.violations",
    "RuleOutcome": "agent_events.conformance.core.violations",
    "Profile": "agent_events.conformance.core.profiles",
    "PROFILES": "agent_events.conformance.core.profiles",
    "Policy": "agent_events.conformance.reporting.gating",
    "Report": "agent_events.conformance.reporting.report",
    "Section": "agent_events.conformance.reporting.report",
    "validate_messages": "agent_events.conformance.api",
    "validate_frames": "agent_events.conformance.api",
    "validate_files": "agent_events.conformance.api",
    "check": "agent_events.conformance.live.api",
    "check_async": "agent_events.conformance.live.api",
    "ConnectError": "agent_events.conformance.live.wire",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agent_events.conformance' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
