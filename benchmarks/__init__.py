"""Benchmarks of the reference agent, the checker and the harness (issue 8).

``python -m benchmarks`` runs all five measurements and prints a table;
``--json`` for machines, ``--quick`` for a smoke run. Not shipped in the
wheel: run from a checkout with ``pip install -e '.[load]'``.
"""
