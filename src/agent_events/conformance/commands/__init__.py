"""One module per ``agent-events`` subcommand; see :mod:`agent_events.conformance.cli`."""
