"""The Locust user's command-line options (``--agent-events-*``), which a master hands on to its
workers; a command-line option wins over the user's class attribute (:mod:`agent_events.locust`).

Kept apart from the user so that the user module is about driving and judging; importing this
module registers the options with Locust's parser (``agent_events.locust`` imports it).
"""

from __future__ import annotations

import argparse

from locust import events

from agent_events.conformance.core import profiles as _profiles
from agent_events.conformance.live.engine import DEFAULT_INPUT


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of seconds, not {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"a finite number >= 0, not {text}")
    return value


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    # On the parser itself: Locust's include_in_web_ui is not known to argument groups.
    group = parser
    group.add_argument("--agent-events-runs-in-flight", type=_at_least_one, default=None, metavar="N",
                       help="runs kept in flight on each user's connection (default 1)", include_in_web_ui=True)
    group.add_argument("--agent-events-think-time", type=_seconds, default=None, metavar="S",
                       help="seconds a user waits after a run ends before it starts the next (default 0)",
                       include_in_web_ui=True)
    group.add_argument("--agent-events-input", default=None, metavar="TEXT",
                       help=f"the input of every start_run (default {DEFAULT_INPUT!r})", include_in_web_ui=True)
    group.add_argument("--agent-events-simulate-failure", default=None, choices=["primary", "none"],
                       help="'primary' sends options.simulate_failure so that every run takes the fallback path",
                       include_in_web_ui=True)
    group.add_argument("--agent-events-dialect", default=None, metavar="NAME|FILE",
                       help="the wire format driven and judged: agent-events (default), ag-ui, or a dialect file "
                            "(.toml): one run per connection, its start message first", include_in_web_ui=True)
    group.add_argument("--agent-events-profile", default=None, choices=sorted(_profiles.PROFILES),
                       help=f"the rule profile runs are checked against (default {_profiles.DEFAULT_PROFILE})",
                       include_in_web_ui=True)
    default = _profiles.get(_profiles.DEFAULT_PROFILE)
    for budget in _profiles.BUDGETS:
        unit = "s" if budget.endswith("_s") else "ms"
        group.add_argument(f"--agent-events-{budget.replace('_', '-')}", type=_seconds, default=None,
                           metavar=unit.upper(), include_in_web_ui=True,
                           help=f"the profile's {budget} budget, in {unit} (default {getattr(default, budget):g})")
