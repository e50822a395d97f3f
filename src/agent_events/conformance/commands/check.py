"""``agent-events check URL``: check a live endpoint against protocol v1."""

from __future__ import annotations

import asyncio
import sys

from agent_events.conformance.commands import publish
from agent_events.conformance.cli_options import add_check_options, settings_from_args
from agent_events.conformance.exitcodes import ExitCode
from agent_events.conformance.reporting.terminal import add_verbosity_arguments
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
    framing = parser.add_argument_group("dialect framing (with --dialect ag-ui or a dialect file)")
    framing.add_argument("--framing", choices=("auto", "json", "sse", "envelope"), default=None,
                         help="how a frame decodes: auto (per frame, the default), json, sse (data: records in a "
                              "text frame), envelope (with --envelope POINTER)")
    framing.add_argument("--envelope", default=None, metavar="POINTER",
                         help="with --framing envelope: the RFC 6901 pointer to the event inside each frame")
    out = parser.add_argument_group("output")
    out.add_argument("--record", metavar="FILE", default=None,
                     help="write every frame, both ways, as a JSONL transcript (replay: agent-events validate FILE)")
    add_verbosity_arguments(out)


def run(args) -> int:
    from agent_events.conformance.cli import UsageError
    from agent_events.conformance.live.api import live_options, run_options
    from agent_events.conformance.live.wire import ConnectError

    settings = settings_from_args(args, command="check")
    if settings.dialect is not None and not settings.dialect.is_ours:
        return _run_dialect(args, settings)
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


def _run_dialect(args, settings) -> int:
    """A foreign dialect's live check (:mod:`agent_events.dialects.live`)."""
    from dataclasses import replace

    from agent_events.conformance.cli import UsageError
    from agent_events.conformance.live.cli_args import token_of
    from agent_events.dialects.live import LiveConnectError, LiveOptions, check_live
    from agent_events.dialects.pointer import Pointer, PointerError

    dialect = settings.dialect
    if args.framing or args.envelope:
        if (args.framing == "envelope") != (args.envelope is not None):
            raise UsageError("--framing envelope and --envelope POINTER go together")
        try:
            envelope = Pointer(args.envelope) if args.envelope is not None else dialect.envelope
        except PointerError as exc:
            raise UsageError(f"--envelope: {exc}") from None
        dialect = replace(dialect, framing=args.framing or dialect.framing, envelope=envelope)
    if dialect.start is None:
        raise UsageError(f"dialect {dialect.label} names no start message ([start] message = ...): it cannot be checked live")
    if args.scenarios:
        raise UsageError(f"--scenario names agent-events scenarios; a {dialect.label} check runs its own: "
                         "run, concurrency, tool, bad_input, drop")
    headers = dict(h.split(":", 1) for h in args.header) if args.header else {}
    token = token_of(args)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    record = None
    stream = None
    if args.record:
        from agent_events.conformance.offline.transcript import TranscriptWriter

        try:
            stream = open(args.record, "wb")
        except OSError as exc:
            raise UsageError(f"cannot write {args.record}: {exc.strerror or exc}") from None
        record = TranscriptWriter(stream)
        record.header(url=args.url, dialect=dialect.name)
    options = LiveOptions(args.url, dialect, settings.profile, concurrency=settings.concurrency or args.concurrency or 3,
                          input=settings.input or args.input or "Create an action plan",
                          open_timeout=args.connect_timeout, headers=headers, record=record)
    try:
        report = asyncio.run(check_live(options, settings.policy))
    except LiveConnectError as exc:
        print(f"agent-events: cannot check {args.url}: {exc}", file=sys.stderr)
        return ExitCode.CONNECT
    finally:
        if stream is not None:
            stream.close()
    publish(report, settings, args)
    return report.exit_code()
