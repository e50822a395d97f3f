"""``agent-events load URL | --spawn``: many concurrent runs, every one checked, with throughput and latency."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from agent_events.conformance.cli_options import (
    MAX_CONNECTIONS, MAX_RUNS, add_check_options, integer_at_least, positive_float, settings_from_args,
)
from agent_events.conformance.reporting.baseline import settle as settle_baseline
from agent_events.conformance.exitcodes import ExitCode
from agent_events.conformance.reporting.terminal import add_verbosity_arguments, verbosity_of
from agent_events.conformance.live.cli_args import ProgressLine, add_connection_arguments, connection_kwargs

HELP = "drive an endpoint with many concurrent runs, check every one, report throughput and latency"
DESCRIPTION = (
    "Open --connections WebSocket connections to URL and keep --runs-per-connection runs in flight on each "
    "(closed loop), or start runs at --rate events/s (open loop), until --runs runs have started or --duration "
    "seconds have passed (default 10 s), then let in-flight runs finish. Every frame goes through the sequence "
    "checker, so drops and reorders under load are violations, not just lower counts. Reports runs, events/s, "
    "delivery and first-event latency percentiles (HdrHistogram), violations by rule and, with --pid or "
    "--spawn, the server's CPU and RSS. --spawn starts a reference agent (agent-events serve --llm-delay-ms 0) "
    "instead of a URL. With --dialect ag-ui (or a dialect file) each run is the dialect's: its start message "
    "(AG-UI's RunAgentInput) first, one run at a time per connection, a new connection per run unless the dialect "
    "lets runs follow and the endpoint keeps the connection open; every frame is judged by the dialect's rules. "
    "Exit codes: 0 no violation at the gating severity, 1 violations, 2 usage error, "
    "3 could not connect, 4 internal error."
)


def _non_negative(text: str) -> float:
    """argparse type of --ramp-up and --spawn-llm-delay-ms, where 0 means "none"."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


_count = integer_at_least(1)
_runs = integer_at_least(1, MAX_RUNS)
_connections = integer_at_least(1, MAX_CONNECTIONS)


def add_arguments(parser) -> None:
    add_connection_arguments(parser)
    # The URL is optional here (--spawn brings its own); argparse has no public way to relax
    # a positional declared elsewhere, and declaring the shared connection options twice is worse.
    for action in parser._actions:  # noqa: SLF001
        if action.dest == "url":
            action.nargs = "?"
            action.default = None
            action.help = "the endpoint, ws://HOST:PORT/PATH or wss://... (omit with --spawn)"
    load = parser.add_argument_group("load")
    load.add_argument("--connections", type=_connections, default=10, metavar="N",
                      help=f"connections, at most {MAX_CONNECTIONS} (default 10)")
    load.add_argument("--runs-per-connection", type=_runs, default=1, metavar="N",
                      help=f"runs in flight per connection, at most {MAX_RUNS} (default 1)")
    load.add_argument("--runs", type=_runs, default=None, metavar="N",
                      help=f"stop starting runs after N, at most {MAX_RUNS} (the warm-up not counted)")
    load.add_argument("--duration", type=positive_float, default=None, metavar="S",
                      help="stop starting runs after S seconds (default 10 when --runs is not given; "
                           "with both, whichever comes first)")
    load.add_argument("--rate", type=positive_float, default=None, metavar="EVENTS_PER_S",
                      help="open loop: start runs on a schedule aiming at this many events/s, counting the "
                           "warm-up's events per run (12 without it); default: closed loop, as fast as the "
                           "endpoint goes")
    load.add_argument("--ramp-up", type=_non_negative, default=0.0, metavar="S",
                      help="closed loop: spread the connections' first runs over S seconds (default 0: all at once)")
    load.add_argument("--no-warmup", dest="warmup", action="store_false",
                      help="measure from the first run (default: one unmeasured run per connection first)")
    server = parser.add_argument_group("server under test")
    server.add_argument("--pid", type=_count, default=None,
                        help="process id of a local endpoint, to report its CPU and RSS (psutil)")
    server.add_argument("--spawn", action="store_true",
                        help="start a reference agent on 127.0.0.1 (agent-events serve --port 0) and load it")
    server.add_argument("--spawn-llm-delay-ms", type=_non_negative, default=0.0, metavar="MS",
                        help="the spawned agent's --llm-delay-ms (default 0: as fast as it goes)")
    add_check_options(parser)
    add_verbosity_arguments(parser)


def run(args) -> int:
    from agent_events.conformance.cli import UsageError

    settings = settings_from_args(args, command="load")
    dialect = settings.dialect
    if dialect is not None and not dialect.is_ours:
        if args.spawn:
            raise UsageError(f"--spawn starts our reference agent, which speaks agent-events, not {dialect.label}: "
                             f"give the {dialect.name} endpoint's URL")
        if args.runs_per_connection != 1:
            raise UsageError(f"--runs-per-connection must be 1 with dialect {dialect.label}: its runs do not "
                             "interleave on a connection (use more --connections)")
        if dialect.start is None:
            raise UsageError(f"dialect {dialect.label} names no start message ([start] message = ...): "
                             "it cannot be driven live")
    if args.spawn == bool(args.url):
        raise UsageError("give the endpoint's URL, or --spawn to start a reference agent (one of the two)")
    if args.spawn and args.pid:
        raise UsageError("--pid watches a server you started; --spawn watches the one it starts")
    try:
        if args.pid or args.spawn:
            import psutil  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"{exc}: pip install 'agent-events[load]'") from None
    return asyncio.run(_run(args, settings))


async def _run(args, settings) -> int:
    from agent_events.conformance.cli import UsageError
    from agent_events.conformance.live.api import live_options
    from agent_events.conformance.live.wire import ConnectError
    from agent_events.conformance.loadgen.engine import LoadOptions, run_load
    from agent_events.conformance.loadgen.server import ServerGone, SpawnError, ServerWatch, spawn_reference_agent
    from agent_events.conformance.loadgen.summary import build_report, render_text
    from agent_events.conformance.reporting.report import _now
    from agent_events.conformance.reporters import write_outputs

    if args.spawn:
        spawn = spawn_reference_agent(
            "--llm-delay-ms", f"{args.spawn_llm_delay_ms:g}", "--max-connections", str(args.connections + 16),
            "--max-runs-per-connection", str(args.runs_per_connection + 1))
    else:
        spawn = contextlib.nullcontext(None)
    progress = ProgressLine()
    try:
        async with spawn as spawned:
            url = spawned.url if spawned is not None else args.url
            pid = spawned.pid if spawned is not None else args.pid
            kwargs = connection_kwargs(args, settings)
            try:
                endpoint = live_options(url, **kwargs).endpoint
                watch = ServerWatch(pid) if pid else None
                options = LoadOptions(
                    endpoint=endpoint, profile=settings.profile, connections=args.connections,
                    runs_per_connection=args.runs_per_connection, runs=args.runs, duration=args.duration,
                    rate=args.rate, ramp_up=args.ramp_up, input=kwargs["input"], warmup=args.warmup, server=watch,
                    progress=None if args.quiet else progress.sink(), dialect=settings.dialect)
            except (ValueError, ServerGone) as exc:
                raise UsageError(str(exc)) from None
            started = _now()
            try:
                result = await run_load(options)
            except ConnectError as exc:
                progress.clear()
                print(f"agent-events: cannot load {url}: {exc}", file=sys.stderr)
                return ExitCode.CONNECT
            finally:
                progress.clear()
    except SpawnError as exc:
        raise UsageError(f"--spawn: {exc}") from None
    report = build_report(result, settings.policy, started)
    settle_baseline(report, settings)
    fmt = settings.format
    verbosity = verbosity_of(args)
    if fmt == "text" and verbosity >= 0:  # -q: the text reporter's failures and verdict
        sys.stdout.write(render_text(report))
        if verbosity > 0:  # -v: the rule matrix and every violation kept, in full
            from agent_events.conformance.reporters import use_color
            from agent_events.conformance.reporters.text import TextReporter

            body = TextReporter(color=use_color(sys.stdout, settings.color), verbosity=1).full_body(report)
            sys.stdout.write("\n".join(body) + "\n")
        sys.stdout.flush()
        fmt = None
    try:
        write_outputs(report, fmt, settings.reports, color=settings.color, stdout=sys.stdout, group=settings.group,
                      verbosity=verbosity)
    except OSError as exc:
        raise UsageError(f"cannot write report: {exc}") from None
    return report.exit_code()
