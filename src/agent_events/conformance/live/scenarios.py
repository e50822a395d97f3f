"""The scenarios of a live check: named, selectable groups of probes, registered here.

Each scenario drives one or more connections the way a real client would
(or, for ``robustness``, the way a broken one would) and lets its own checker
judge the stream. A scenario states the rules it is *for* (``focus``: what
the docs and the pytest plugin list under it); the report shows every rule
it actually exercised, since a scenario also exercises the schema and
sequence rules on every event it receives.

The scenarios never judge the event stream themselves: that is the
checker's job. They judge only what a stream cannot show: whether the
endpoint answered a cancel, a time_sync, or malformed input, and even that
through the pure :mod:`agent_events.conformance.live.verdicts`.

One module per family drives them (``scenario_runs``: primary, fallback,
concurrency; ``scenario_start``: multiplex; ``scenario_timing``: latency and
the time_sync exchange; ``scenario_cancel``; ``scenario_robustness``;
``scenario_reconnect``), on what ``scenario_base`` shares. This module is the
registry, :data:`SCENARIOS`, and keeps every name it had importable.
"""

from __future__ import annotations

# the registry's parts, and the names this module had before the split (imported from it elsewhere)
from agent_events.conformance.live.scenario_base import (  # noqa: F401
    CANCEL_RACE_MS, REPLY_TIMEOUT_S, Scenario, _connection, _rules_where, _run_rules, _single_run, judge_claim,
    not_claimed, reply_timeout, start_runs,
)
from agent_events.conformance.live.scenario_cancel import (  # noqa: F401
    CANCEL_SEED, CANCEL_SPREAD_MS, _answer_of, _judge_cancel, cancel,
)
from agent_events.conformance.live.scenario_reconnect import RESUME_RULES, _cut_and_resume, _cut_points, reconnect  # noqa: F401
from agent_events.conformance.live.scenario_robustness import (  # noqa: F401
    MALFORMED, OVERSIZE_BYTES, OVERSIZE_TYPE, _oversize, oversize_message, robustness,
)
from agent_events.conformance.live.scenario_runs import FALLBACK_RULES, concurrency, fallback, primary  # noqa: F401
from agent_events.conformance.live.scenario_start import (  # noqa: F401
    RUNS_BOUND_PROBE, SERVER_ID_RUNS, START_RULES, _duplicate_run, _server_run_ids, _too_many_runs, multiplex,
)
from agent_events.conformance.live.scenario_timing import LATENCY_BATCH, latency, time_sync  # noqa: F401


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("primary", "one run on the primary path; every rule that applies to a normal run",
             ("transport.subprotocol", "transport.connection_kept", "frame.size", *_run_rules(), "fallback.flag"), primary),
    Scenario("fallback", "one run with options.simulate_failure \"primary\"; N/A when the endpoint has no fallback",
             (*_run_rules(), *FALLBACK_RULES), fallback),
    Scenario("multiplex", "several runs at once on one connection; a duplicate run_id, runs without run_id, "
             "and the bound on runs in flight",
             (*_run_rules(), "isolation.run_scope", *START_RULES), multiplex),
    Scenario("concurrency", "N connections at once (default 10): isolation, and nothing dropped",
             ("transport.connections", *_run_rules(), "isolation.run_scope"), concurrency),
    Scenario("latency", "clock offset by time_sync, then enough runs for p50/p95/p99/max",
             ("time_sync.reply", *_rules_where(category="latency")), latency),
    Scenario("cancel", "cancel_run mid-run, right after start_run, during a tool and at random delays across "
             "concurrent runs: each ends with a well-formed, cancelled agent_completed",
             ("cancel.terminal", "cancel.before_first_event", "pair.tool_matched", "order.completed_last"), cancel),
    Scenario("robustness", "malformed and oversize client input is answered with error messages (SHOULD level)",
             _rules_where(category="robustness"), robustness),
    Scenario("reconnect", "1.1: the connection dropped mid-run at three points, then resumed from a new one: "
             "nothing lost, nothing repeated; a resume without the secret is refused",
             ("capabilities.first", "capabilities.honest", *RESUME_RULES, "seq.contiguous", "order.completed_last",
              "isolation.run_scope"), reconnect),
)}
