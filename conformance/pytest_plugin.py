"""pytest plugin of agent-events (registered through the ``pytest11`` entry point).

It changes nothing unless asked: with no ``--agent-events-url`` it adds no
items. The options and fixtures arrive with the live check.
"""
