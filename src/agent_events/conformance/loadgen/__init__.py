"""``agent-events load``: drive an endpoint with many concurrent runs, checking every one.

A load test that only counts events cannot see what load breaks: a dropped
or reordered event looks like throughput. So every frame goes through the
same sans-I/O :class:`~agent_events.conformance.core.checker.Checker` as ``check`` and
``validate``, and the result is a normal report (same rules, same exit
codes, same gating flags) with the load figures beside it.

* :mod:`~agent_events.conformance.loadgen.engine`: connections, pacing (closed loop or
  an open-loop target rate), latency histograms.
* :mod:`~agent_events.conformance.loadgen.server`: the server under test seen from
  outside: CPU and RSS with psutil, and starting a reference agent.
* :mod:`~agent_events.conformance.loadgen.summary`: the report with its load figures,
  and their text table.
"""

from agent_events.conformance.loadgen.engine import LoadEngine, LoadOptions, LoadResult, run_load
from agent_events.conformance.loadgen.server import ServerWatch, spawn_reference_agent
from agent_events.conformance.loadgen.summary import LoadReport, render_text

__all__ = ["LoadEngine", "LoadOptions", "LoadResult", "LoadReport", "ServerWatch", "render_text",
           "run_load", "spawn_reference_agent"]
