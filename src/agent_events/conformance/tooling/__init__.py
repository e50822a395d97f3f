"""Tooling for users' tests: assertion helpers, the pytest plugin, hypothesis strategies, synthetic streams, AsyncAPI."""
