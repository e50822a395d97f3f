"""Command-line options of the commands that connect to an endpoint (``check``, ``record``).

Declared once so that ``--header`` or ``--cafile`` mean the same in both, and
turned into :func:`agent_events.conformance.live.api.live_options` keyword arguments here,
so the CLI and the Python API validate them the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, TextIO

from agent_events.conformance.cli_options import integer_at_least, positive_float as _positive_float
from agent_events.conformance.config import MAX_CONNECTIONS, MAX_RUNS
from agent_events.conformance.live.engine import DEFAULT_CONCURRENCY, DEFAULT_INPUT, DEFAULT_RACE_TRIES, DEFAULT_RUNS, MAX_MESSAGES
from agent_events.conformance.live.scenarios import SCENARIOS
from agent_events.conformance.live.wire import DEFAULT_MAX_SIZE

TOKEN_ENV = "AGENT_EVENTS_TOKEN"


_positive_int = integer_at_least(1)
_runs_arg = integer_at_least(1, MAX_RUNS)
_concurrency_arg = integer_at_least(1, MAX_CONNECTIONS)


def _header(text: str) -> str:
    from agent_events.conformance.live.api import parse_header

    try:
        parse_header(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="the endpoint, ws://HOST:PORT/PATH or wss://...")
    group = parser.add_argument_group("connection")
    group.add_argument("--header", action="append", type=_header, default=[], metavar="'NAME: VALUE'",
                       help="extra handshake header, e.g. 'Authorization: Bearer T' (repeatable)")
    group.add_argument("--token", default=None,
                       help=f"bearer token, sent as 'Authorization: Bearer TOKEN' (default ${TOKEN_ENV})")
    group.add_argument("--cafile", default=None, metavar="PEM", help="CA certificate(s) to trust for wss://")
    group.add_argument("--insecure", action="store_true",
                       help="do not verify the wss:// certificate (self-signed test servers only)")
    group.add_argument("--connect-timeout", type=_positive_float, default=10.0, metavar="S",
                       help="time allowed for the TCP, TLS and WebSocket handshakes (default 10)")
    group.add_argument("--max-frame-mib", type=_positive_float, default=DEFAULT_MAX_SIZE / 2**20, metavar="MIB",
                       help=f"largest message accepted; a bigger one fails frame.size (default {DEFAULT_MAX_SIZE // 2**20})")
    group.add_argument("--max-messages", type=_positive_int, default=MAX_MESSAGES, metavar="N",
                       help=f"stop reading a connection after N messages, a flood guard (default {MAX_MESSAGES})")
    group.add_argument("--input", default=None, metavar="TEXT",
                       help=f"the user request sent in start_run (default {DEFAULT_INPUT!r})")


def add_scenario_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scenarios")
    group.add_argument("--scenario", dest="scenarios", action="append", choices=list(SCENARIOS), default=None,
                       metavar="NAME", help=f"run only this scenario (repeatable; default all: {', '.join(SCENARIOS)})")
    defaults = ", ".join(f"{k} {v}" for k, v in DEFAULT_RUNS.items())
    group.add_argument("--runs", type=_runs_arg, default=None, metavar="N",
                       help=f"runs per multi-run scenario, at most {MAX_RUNS} (default: {defaults}); a scenario "
                            "starts no run after one run deadline")
    group.add_argument("--concurrency", type=_concurrency_arg, default=None, metavar="N",
                       help=f"connections opened at once by the concurrency scenario, at most {MAX_CONNECTIONS} "
                            f"(default {DEFAULT_CONCURRENCY})")
    group.add_argument("--race-tries", type=integer_at_least(1, MAX_RUNS), default=None, metavar="N",
                       help=f"tries of each race the cancel, multiplex and reconnect scenarios provoke (default "
                            f"{DEFAULT_RACE_TRIES}: a race that shows one time in ten is hit with 99 %% confidence)")


def token_of(args: argparse.Namespace) -> str | None:
    """``--token``, else ``$AGENT_EVENTS_TOKEN`` (empty counts as unset); ``serve`` reads it the same way."""
    return args.token if args.token is not None else (os.environ.get(TOKEN_ENV) or None)


def connection_kwargs(args: argparse.Namespace, settings=None) -> dict[str, Any]:
    """``live_options`` keyword arguments from parsed flags and the resolved settings
    (:class:`agent_events.conformance.cli_options.Settings`: the live keys, flag over config file)."""
    kwargs: dict[str, Any] = dict(
        headers=list(args.header), token=token_of(args), cafile=args.cafile, insecure=args.insecure,
        open_timeout=args.connect_timeout, max_frame_bytes=int(args.max_frame_mib * 2**20),
        max_messages=args.max_messages,
        input=getattr(settings, "input", None) or args.input or DEFAULT_INPUT,
    )
    if hasattr(args, "scenarios"):
        kwargs["scenarios"] = getattr(settings, "scenarios", None) or args.scenarios
        kwargs["runs"] = getattr(settings, "runs", None) or args.runs
        kwargs["concurrency"] = getattr(settings, "concurrency", None) or args.concurrency or DEFAULT_CONCURRENCY
        race_tries = getattr(settings, "race_tries", None) or getattr(args, "race_tries", None)
        if race_tries is not None:
            kwargs["race_tries"] = race_tries
    return kwargs


class ProgressLine:
    """One self-overwriting status line on a terminal; silent anywhere else (logs, CI, pipes)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._width = 0

    def sink(self) -> Callable[[str], None] | None:
        return self.update if self.enabled else None

    def update(self, text: str) -> None:
        text = text[:120]
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
