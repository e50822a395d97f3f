"""``agent-events serve``: run the reference agent (a thin shell over ``reference_agent``).

The URL goes alone on one stdout line (flushed) so scripts and tests can read
it, even with ``--port 0``; everything else goes to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys

from agent_events.conformance.exitcodes import ExitCode
from agent_events.conformance.live.cli_args import TOKEN_ENV, token_of

HELP = "run the reference agent (a protocol v1 WebSocket server)"
DESCRIPTION = (
    "Serve the reference ActionsAgent over WebSocket on ws://HOST:PORT/ (wss:// with --certfile), with "
    "GET /healthz for health checks and, for a browser, a live viewer at GET / (http://HOST:PORT/). "
    "Prints the URL on one stdout line; --port 0 picks a free port. "
    "SIGINT/SIGTERM shut down gracefully: stop accepting, let in-flight runs finish within "
    "--shutdown-timeout, then close with 1001. A second signal stops at once."
)


#: The numeric settings, as ``(group, ServerConfig field, type, metavar, help)``;
#: the flag is the field with dashes, "{default}" is the field's default. For
#: the fields that can be switched off, 0 on the command line means "never".
NUMERIC = (
    ("limits", "max_message_size", int, "BYTES",
     "largest client message (default {default}); bigger gets error message_too_big, {factor}x bigger closes with 1009"),
    ("limits", "max_runs_per_connection", int, "N", "concurrent runs per connection (default {default}); more get too_many_runs"),
    ("limits", "max_connections", int, "N", "open connections (default {default}); more get HTTP 503"),
    ("limits", "send_queue", int, "BYTES", "outbound buffer per connection before its runs wait (default {default})"),
    ("limits", "slow_reader_timeout", float, "S", "close (1008) a reader whose buffer stays full this long; 0 never (default {default})"),
    ("limits", "run_timeout", float, "S", "end a run still going after S seconds; 0 never (default {default})"),
    ("limits", "shutdown_timeout", float, "S", "on SIGINT/SIGTERM, time in-flight runs get to finish (default {default})"),
    ("agent", "llm_delay_ms", float, "MS", "simulated model latency of the offline planner (default {default}; 0 for benchmarks)"),
    ("agent", "llm_timeout_ms", float, "MS", "a slower model call fails the primary path (default {default})"),
)
ZERO_MEANS_NEVER = ("slow_reader_timeout", "run_timeout")


def add_arguments(parser) -> None:
    from agent_events.reference_agent.config import DEFAULT_PORT, ServerConfig

    d = ServerConfig()
    net = parser.add_argument_group("network")
    net.add_argument("--host", default=d.host, help=f"interface to bind (default {d.host})")
    net.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port; 0 picks a free one (default {DEFAULT_PORT})")
    net.add_argument("--certfile", help="PEM certificate (chain) for wss://")
    net.add_argument("--keyfile", help="PEM private key for --certfile, when not inside it")
    sec = parser.add_argument_group("access")
    sec.add_argument("--token", default=None,
                     help=f"require this bearer token ('Authorization: Bearer T' or ?token=T); default ${TOKEN_ENV}")
    sec.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                     help="accept browsers only from this Origin (repeatable); clients sending no Origin are accepted")
    groups = {name: parser.add_argument_group(name) for name in ("limits", "agent")}
    for group, field, type_, metavar, help_ in NUMERIC:
        default = getattr(d, field)
        groups[group].add_argument("--" + field.replace("_", "-"), type=type_, default=default, metavar=metavar,
                                   help=help_.format(default=f"{default:g}", factor=d.HARD_SIZE_FACTOR))
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log level on stderr (default WARNING)")


def config_from_args(args):
    """A :class:`~agent_events.reference_agent.config.ServerConfig` from parsed flags; UsageError when they make no sense."""
    from agent_events.conformance.cli import UsageError
    from agent_events.reference_agent.config import ServerConfig

    token = token_of(args)
    numeric = {field: getattr(args, field) for _, field, *_ in NUMERIC}
    for field in ZERO_MEANS_NEVER:
        numeric[field] = numeric[field] or None
    try:
        return ServerConfig(host=args.host, port=args.port, token=token, allow_origins=tuple(args.allow_origin),
                            certfile=args.certfile, keyfile=args.keyfile, **numeric)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run(args) -> int:
    from agent_events.conformance.cli import UsageError

    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    try:
        return asyncio.run(_serve(config))
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot serve on {config.host}:{config.port}: {exc}") from None


async def _serve(config) -> int:
    from agent_events.reference_agent.server import AgentServer

    server = AgentServer(config)
    await server.start()
    print(server.url, flush=True)
    print(f"agent-events reference agent listening on {server.url} (auth: {'bearer token' if config.token else 'none'}, "
          f"llm delay {config.llm_delay_ms:g} ms, health: {server.url.replace('ws', 'http', 1)}healthz); "
          "Ctrl-C to stop", file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set():
            main_task.cancel()  # second signal: stop now
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await stop.wait()
        print("agent-events serve: shutting down (in-flight runs may take up to "
              f"{config.shutdown_timeout:g} s; signal again to stop now)", file=sys.stderr, flush=True)
        await server.shutdown()
    except asyncio.CancelledError:
        print("agent-events serve: stopped without waiting for in-flight runs", file=sys.stderr, flush=True)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return ExitCode.OK
