"""The live check: play the client's side of protocol v1 against a real endpoint.

``wire`` speaks WebSocket (frames exactly as they arrive), ``session`` wires
connections to a scenario's checker and the transcript, ``scenarios`` are
the selectable probes, ``engine`` runs a whole check, ``api`` is
``agent_events.conformance.check`` / ``agent_events.conformance.check_async``.
"""
