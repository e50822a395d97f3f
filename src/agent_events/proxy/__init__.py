"""``agent_events.proxy``: deterministic fault injection between any client and any agent.

A WebSocket proxy that forwards every connection to an upstream agent and
breaks the server-to-client run events on purpose, by their ``seq`` or by a
frame's index on its connection (``drop:frame=6``: the way to break a stream
that has no seq, ``dialect="ag-ui"``): drop, duplicate, swap, delay, corrupt,
cut, stall, drip; and, the other way,
``coalesce:N`` delivers N client frames to the upstream in one write (the
races a polite client never provokes). Without faults it is transparent. So
a team can prove what its UI client does when the stream breaks, and a
harness can prove it notices::

    async with agent_events.proxy.FaultProxy(upstream_url, faults=["drop:3"]) as url:
        ...                                   # point the client under test at url

    with agent_events.proxy.run_in_thread(upstream_url, faults=["cut:5"]) as proxy:   # sync code
        ...                                   # proxy.url, proxy.applied

The planner (:mod:`agent_events.proxy.planner`) is pure: frames and times in,
actions out; :mod:`agent_events.proxy.server` is the asyncio shell around it.
The command line is ``agent-events proxy UPSTREAM_URL --fault SPEC``.
"""

from agent_events.proxy.addressing import Addressing
from agent_events.proxy.faults import (
    ACCEPTED_FORMS,
    RANDOM_FORMS,
    Fault,
    FaultPlan,
    FaultSpecError,
    RandomPlan,
    make_plan,
    parse_fault,
    parse_random,
)
from agent_events.proxy.planner import Applied, Cut, Forward, Planner, Upstream
from agent_events.proxy.server import DEFAULT_MAX_SIZE, FaultProxy, ProxyThread, run_in_thread

__all__ = [
    "ACCEPTED_FORMS", "RANDOM_FORMS", "Addressing", "Applied", "Cut", "DEFAULT_MAX_SIZE", "Fault", "FaultPlan", "FaultProxy",
    "FaultSpecError", "Forward", "Planner", "ProxyThread", "RandomPlan", "make_plan", "parse_fault",
    "parse_random", "run_in_thread", "Upstream",
]
