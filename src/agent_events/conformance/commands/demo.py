"""``agent-events demo``: start the reference agent on a free port and check it, end to end.

The first command a new user runs: it shows, with nothing to configure and
no network, what the kit does (every scenario of a live check against a
real server speaking protocol v1) and what a report looks like, in the
terminal and as an HTML file to open. It takes the same profile, budget,
gating and report options as ``check``, so it also shows what they do.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from agent_events.conformance.commands import publish
from agent_events.conformance.cli_options import add_check_options, settings_from_args
from agent_events.conformance.exitcodes import ExitCode
from agent_events.conformance.reporting.terminal import add_verbosity_arguments

HELP = "start the reference agent on a free port and check it"
DESCRIPTION = (
    "Start the reference ActionsAgent in-process on a free loopback port, run the full live check "
    "against it (every scenario), print the text report and write the HTML report. Exits 0 when the "
    "reference agent is conformant, as it should be."
)
DEFAULT_HTML = "agent-events-report.html"


def add_arguments(parser) -> None:
    parser.add_argument("--html", type=Path, default=Path(DEFAULT_HTML), metavar="PATH",
                        help=f"where to write the HTML report (default ./{DEFAULT_HTML})")
    parser.add_argument("--llm-delay-ms", type=float, default=None, metavar="MS",
                        help="simulated model latency of the reference agent (default: the agent's own)")
    parser.add_argument("--record", metavar="FILE", default=None, help="also write the JSONL transcript")
    add_verbosity_arguments(parser)
    add_check_options(parser)


async def demo(profile=None, policy=None, *, llm_delay_ms: float | None = None, record: str | None = None,
               progress=None):
    """Serve the reference agent on 127.0.0.1:0 and check it with every scenario; return the report."""
    from agent_events import reference_agent
    from agent_events.conformance.core import profiles
    from agent_events.conformance.live.api import live_options, run_options
    from agent_events.conformance.reporting.report import DEFAULT_POLICY

    server_options = {"host": "127.0.0.1", "port": 0}
    if llm_delay_ms is not None:
        server_options["llm_delay_ms"] = llm_delay_ms
    async with reference_agent.serve(**server_options) as server:
        options = live_options(server.url, profile=profile or profiles.DEFAULT_PROFILE, record=record,
                               progress=progress)
        return await run_options(options, policy or DEFAULT_POLICY, command="demo")


def run(args) -> int:
    from agent_events.conformance.cli import UsageError
    from agent_events.conformance.live.cli_args import ProgressLine

    if args.llm_delay_ms is not None and args.llm_delay_ms < 0:
        raise UsageError("--llm-delay-ms must not be negative")
    settings = settings_from_args(args, command="demo")
    if settings.dialect is not None and not settings.dialect.is_ours:
        from agent_events.conformance.cli import UsageError

        raise UsageError("demo checks the reference agent, which speaks agent-events; --dialect does not apply")
    progress = ProgressLine()
    try:
        report = asyncio.run(demo(settings.profile, settings.policy, llm_delay_ms=args.llm_delay_ms,
                                  record=args.record, progress=None if args.quiet else progress.sink()))
    finally:
        progress.clear()
    publish(report, settings, args, extra_reports=[("html", args.html)])
    # Machine-readable output on stdout must stay parseable: the pointer to the HTML
    # goes to stderr unless the report printed is the human (text) one.
    human = settings.format == "text"
    print(f"HTML report: {args.html.resolve()}", file=sys.stdout if human else sys.stderr)
    if report.exit_code() != ExitCode.OK:
        print("agent-events demo: the reference agent is not conformant with these settings", file=sys.stderr)
    return report.exit_code()
