"""The old path of :mod:`agent_events.conformance.core.clock_sync` (kept importable).

The clock estimate is pure and the client core records its samples, so it lives beside the core;
the live shell imports it from there. Importing it from here keeps working.
"""

from __future__ import annotations

from agent_events.conformance.core.clock_sync import ASSUMED_SAME_CLOCK, ClockEstimate, SyncSample, estimate

__all__ = ["ASSUMED_SAME_CLOCK", "ClockEstimate", "SyncSample", "estimate"]
