"""``agent-events ci``: the GitHub Action's step (see :mod:`agent_events.ci`)."""

from __future__ import annotations

HELP = "run a check as the GitHub Action does: start the agent, check it, write the job summary and outputs"
DESCRIPTION = (
    "Start the agent (--start CMD) or take a running one (--url), wait until it is ready, run agent-events check "
    "with the given scenarios, dialect, gate and baseline, stop the agent, then append the Markdown report to "
    "$GITHUB_STEP_SUMMARY, write the step outputs (verdict, exit-code, report paths) to $GITHUB_OUTPUT and, "
    "under GITHUB_ACTIONS=true, annotate each failing rule. The exit code is the check's: 0 passed, 1 failed, "
    "2 usage or config error, 3 the agent could not be started or reached, 4 internal error."
)


def add_arguments(parser) -> None:
    from agent_events.ci import add_arguments as _add

    _add(parser)


def run(args) -> int:
    from agent_events.ci import run as _run

    return _run(args)
