"""``agent-events load``: drive an endpoint with many concurrent runs, checking every one.

A load test that only counts events cannot see what load breaks: a dropped
or reordered event looks like throughput. So every frame goes through the
same sans-I/O :class:`~conformance.checker.Checker` as ``check`` and
``validate``, and the result is a normal report (same rules, same exit
codes, same gating flags) with the load figures beside it.

* :mod:`~conformance.loadgen.engine`: connections, pacing (closed loop or
  an open-loop target rate), latency histograms.
* :mod:`~conformance.loadgen.server`: the server under test seen from
  outside: CPU and RSS with psutil, and starting a reference agent.
* :mod:`~conformance.loadgen.summary`: the report with its load figures,
  and their text table.
"""

from conformance.loadgen.engine import LoadEngine, LoadOptions, LoadResult, run_load
from conformance.loadgen.server import ServerWatch, spawn_reference_agent
from conformance.loadgen.summary import LoadReport, render_text

__all__ = ["LoadEngine", "LoadOptions", "LoadResult", "LoadReport", "ServerWatch", "render_text",
           "run_load", "spawn_reference_agent"]
