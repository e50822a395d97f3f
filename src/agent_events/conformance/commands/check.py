"""``agent-events check URL``: check a live endpoint against protocol v1."""

from __future__ import annotations

import asyncio
import sys

from agent_events.conformance.commands import publish
from agent_events.conformance.cli_options import add_check_options, settings_from_args
from agent_events.conformance.exitcodes import ExitCode
from agent_events.conformance.terminal import add_verbosity_arguments
from agent_events.conformance.live.cli_args import (
    ProgressLine, add_connection_arguments, add_scenario_arguments, connection_kwargs,
)

HELP = "check a live WebSocket endpoint against protocol v1"
DESCRIPTION = (
    "Connect to URL (ws:// or wss://), play the client's side of protocol v1 in named scenarios "
    "(primary, fallback, multiplex, concurrency, latency, cancel, robustness), feed everything received "
    "into the sequence checker and report rule by rule. Exit codes: 0 the gate passed (by default: conformant), 1 the gate failed, "
    "2 usage or config error, 3 could not connect or the handshake failed, 4 internal error."
)


def add_arguments(parser) -> None:
    add_connection_arguments(parser)
    add_scenario_arguments(parser)
    add_check_options(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--record", metavar="FILE", default=None,
                     help="write every frame, both ways, as a JSONL transcript (replay: agent-events validate FILE)")
    add_verbosity_arguments(out)


def run(args) -> int:
    from agent_events.conformance.cli import UsageError
    from agent_events.conformance.live.api import live_options, run_options
    from agent_events.conformance.live.wire import ConnectError

    settings = settings_from_args(args, command="check")
    progress = ProgressLine()
    try:
        options = live_options(args.url, profile=settings.profile, record=args.record,
                               progress=None if args.quiet else progress.sink(),
                               **connection_kwargs(args, settings))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        report = asyncio.run(run_options(options, settings.policy, command="check"))
    except ConnectError as exc:
        progress.clear()
        print(f"agent-events: cannot check {args.url}: {exc}", file=sys.stderr)
        return ExitCode.CONNECT
    except OSError as exc:  # the transcript file could not be written
        progress.clear()
        raise UsageError(f"cannot write {args.record}: {exc.strerror or exc}") from None
    finally:
        progress.clear()
    publish(report, settings, args)
    if args.record:
        print(f"transcript: {args.record} (replay: agent-events validate {args.record})", file=sys.stderr)
    return report.exit_code()
