"""One module per ``agent-events`` subcommand; see :mod:`conformance.cli`."""
