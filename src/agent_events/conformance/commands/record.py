"""``agent-events record URL -o FILE``: record one run as a transcript, judge nothing.

Why a separate command: a team often wants the evidence first (attach it to
a bug, replay it later with ``agent-events validate``, diff two agent
versions) without a verdict deciding its exit code.
"""

from __future__ import annotations

import asyncio
import sys

from agent_events.conformance.core import profiles as _profiles
from agent_events.conformance.exitcodes import ExitCode
from agent_events.conformance.cli_options import positive_float as _positive_float
from agent_events.conformance.live.cli_args import add_connection_arguments, connection_kwargs

HELP = "record one run of a live endpoint as a JSONL transcript"
DESCRIPTION = (
    "Connect to URL, exchange time_sync messages (so the transcript can be judged on latency), start one "
    "run and record every frame both ways until it completes, as JSONL (replay it with `agent-events "
    "validate FILE`). No verdict: exit 0 once the run is recorded, 3 if the endpoint cannot be reached, "
    "2 for a usage error."
)


def add_arguments(parser) -> None:
    add_connection_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the transcript to write ('-' for stdout)")
    parser.add_argument("--fallback", action="store_true",
                        help="ask for the fallback path (options.simulate_failure: \"primary\")")
    parser.add_argument("--deadline-s", type=_positive_float, default=None, metavar="S",
                        help="stop waiting for the run after S seconds (default 30)")
    parser.add_argument("--dialect", default=None, metavar="NAME|FILE",
                        help="the wire format spoken: agent-events (ours, the default), ag-ui, or a dialect file; "
                             "a foreign dialect's run is started with its own start message (AG-UI: a RunAgentInput)")
    parser.add_argument("--run-id", type=_run_id, default=None, metavar="ID",
                        help="the run_id sent in start_run, 1 to 128 characters (default primary-c0-r1, or "
                             "fallback-c0-r1 with --fallback)")


def _run_id(text: str) -> str:
    """argparse type of --run-id: what the schemas allow a run_id to be (defs.json#/$defs/run_id)."""
    import argparse

    from agent_events import schemas

    if not schemas.validator("start_run").is_valid({"type": "start_run", "run_id": text, "input": "x"}):
        raise argparse.ArgumentTypeError(f"not a valid run_id (a string of 1 to 128 characters): {text!r}")
    return text


def run(args) -> int:
    from agent_events.conformance.cli import UsageError
    from agent_events.conformance.live.api import live_options
    from agent_events.conformance.live.engine import LiveCheck
    from agent_events.conformance.live.wire import ConnectError

    output = args.output
    target = "/dev/stdout" if output == "-" else output
    if args.dialect is not None:
        from agent_events.conformance import config as _config

        try:  # the one settings table's validation, as for every other command
            dialect = _config.validate("dialect", args.dialect, "--dialect")
        except _config.ConfigError as exc:
            raise UsageError(str(exc)) from None
        if not dialect.is_ours:
            return _record_dialect(args, dialect, target, output)
    scenario = "fallback" if args.fallback else "primary"
    try:
        options = live_options(args.url, profile=_profiles.get("generic"), deadline_s=args.deadline_s,
                               scenarios=[scenario], record=target, **connection_kwargs(args))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    options.first_run_id = args.run_id
    live = LiveCheck(options)
    try:
        sections = asyncio.run(live.run())
    except ConnectError as exc:
        print(f"agent-events: cannot record {args.url}: {exc}", file=sys.stderr)
        return ExitCode.CONNECT
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    stats = sections[0].stats
    runs, completed = stats.get("starts_sent", 0), stats.get("runs_completed", 0)
    print(f"recorded {stats.get('frames', 0)} frame(s) received, {completed}/{runs} run(s) completed, "
          f"to {output} (check it: agent-events validate {output})", file=sys.stderr)
    return ExitCode.OK


def _record_dialect(args, dialect, target: str, output: str) -> int:
    """One run of a foreign dialect's endpoint, recorded (the transcript's header names the dialect)."""
    from dataclasses import replace

    from agent_events.conformance.cli import UsageError
    from agent_events.conformance.reporting.report import DEFAULT_POLICY
    from agent_events.conformance.offline.transcript import TranscriptWriter
    from agent_events.dialects.live import LiveConnectError, LiveOptions, check_live

    if dialect.start is None:
        raise UsageError(f"dialect {dialect.label} names no start message: it cannot be recorded live")
    profile = _profiles.get("generic")
    if args.deadline_s:
        profile = profile.with_budgets(deadline_s=args.deadline_s)
    try:
        stream = open(target, "wb")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    try:
        writer = TranscriptWriter(stream)
        writer.header(url=args.url, dialect=dialect.name)
        options = LiveOptions(args.url, replace(dialect), profile, scenarios=("run",), input=args.input or "Create an action plan",
                              open_timeout=args.connect_timeout, record=writer)
        report = asyncio.run(check_live(options, DEFAULT_POLICY, command="record"))
        writer.flush()
    except LiveConnectError as exc:
        print(f"agent-events: cannot record {args.url}: {exc}", file=sys.stderr)
        return ExitCode.CONNECT
    finally:
        stream.close()
    stats = report.sections[0].stats
    print(f"recorded {stats.get('frames', 0)} frame(s) received, {stats.get('runs_completed', 0)} run(s) ended, "
          f"to {output} (check it: agent-events validate --dialect {args.dialect} {output})", file=sys.stderr)
    return ExitCode.OK
