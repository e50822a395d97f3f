"""Shared test configuration."""

#: pytester runs the pytest plugin from a scratch directory (tests/test_pytest_plugin.py).
pytest_plugins = ["pytester"]

