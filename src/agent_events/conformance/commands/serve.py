"""``agent-events serve``: run the reference agent (a thin shell over ``reference_agent``).

Flags become a :class:`~agent_events.reference_agent.config.ServerConfig`; serving (signals, and
``--workers N`` processes under supervision) is the reference agent's own API,
:func:`agent_events.reference_agent.serve_workers`, which this command calls.

The URL goes alone on one stdout line (flushed) so scripts and tests can read
it, even with ``--port 0``; everything else goes to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys

from agent_events.conformance.live.cli_args import TOKEN_ENV, token_of

HELP = "run the reference agent (a protocol v1 WebSocket server)"
DESCRIPTION = (
    "Serve the reference ActionsAgent over WebSocket on ws://HOST:PORT/ (wss:// with --certfile), with "
    "GET /healthz for health checks and, for a browser, a live viewer at GET / (http://HOST:PORT/). "
    "Prints the URL on one stdout line; --port 0 picks a free port. "
    "SIGINT/SIGTERM shut down gracefully: stop accepting, let in-flight runs finish within "
    "--shutdown-timeout, then close with 1001. A second signal stops at once. --workers N runs N server "
    "processes on the one port (SO_REUSEPORT: Linux only; elsewhere N above 1 exits 2)."
)


#: The numeric settings, as ``(group, ServerConfig field, type, metavar, help)``;
#: the flag is the field with dashes, "{default}" is the field's default. For
#: the fields that can be switched off, 0 on the command line means "never".
NUMERIC = (
    ("limits", "max_message_size", int, "BYTES",
     "largest client message (default {default}); bigger gets error message_too_big, {factor}x bigger closes with 1009"),
    ("limits", "max_runs_per_connection", int, "N", "concurrent runs per connection (default {default}); more get too_many_runs"),
    ("limits", "max_connections", int, "N", "open connections (default {default}); more get HTTP 503; lowered at "
     "start-up (with a warning) when the file descriptor limit cannot hold it"),
    ("limits", "max_pending_handshakes", int, "N",
     "connections still in their opening handshake (default {default}); past it the oldest idle one is closed"),
    ("limits", "handshake_timeout", float, "S", "time a connection gets to complete its opening handshake (default {default})"),
    ("limits", "send_queue", int, "BYTES", "outbound buffer per connection before its runs wait (default {default})"),
    ("limits", "slow_reader_timeout", float, "S", "close (1008) a reader whose buffer stays full this long; 0 never (default {default})"),
    ("limits", "run_timeout", float, "S", "end a run still going after S seconds; 0 never (default {default})"),
    ("limits", "shutdown_timeout", float, "S", "on SIGINT/SIGTERM, time in-flight runs get to finish (default {default})"),
    ("protocol", "resume_window_s", float, "S", "1.1: how long a run outlives its dropped connection for a resume_run; "
     "0 turns resume off (default {default})"),
    ("protocol", "resume_buffer_events", int, "N", "1.1: latest events kept per run for the replay (default {default})"),
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
    net.add_argument("--workers", type=int, default=1, metavar="N",
                     help="N server processes on one port, SO_REUSEPORT spreading the connections (Linux; "
                          "elsewhere N above 1 exits 2); runs are connection-scoped, so nothing is shared: "
                          "the limits below apply per worker, /healthz names the answering worker's pid "
                          "(default 1)")
    net.add_argument("--certfile", help="PEM certificate (chain) for wss://")
    net.add_argument("--keyfile", help="PEM private key for --certfile, when not inside it")
    sec = parser.add_argument_group("access")
    sec.add_argument("--token", default=None,
                     help=f"require this bearer token ('Authorization: Bearer T' or ?token=T); default ${TOKEN_ENV}")
    sec.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                     help="accept browsers only from this Origin (repeatable); clients sending no Origin are accepted")
    groups = {name: parser.add_argument_group(name) for name in ("limits", "protocol", "agent")}
    groups["protocol"].add_argument("--protocol-version", choices=("1.0", "1.1"), default=d.protocol_version,
                                    help="1.1 (default) sends the capabilities message first and makes runs "
                                         "resumable; 1.0 does neither, as a 1.0 server")
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
                            certfile=args.certfile, keyfile=args.keyfile,
                            protocol_version=getattr(args, "protocol_version", "1.1"), **numeric)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run(args) -> int:
    from agent_events.conformance.cli import UsageError

    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    workers = getattr(args, "workers", 1)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if workers > 1:
        return _serve_workers(config, workers)
    try:
        return asyncio.run(_serve(config))
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot serve on {config.host}:{config.port}: {exc}") from None


# -- serving: the reference agent's API (agent_events.reference_agent.workers), called from here ----

async def _serve(config, **options) -> int:
    """One server until SIGINT/SIGTERM: :func:`agent_events.reference_agent.serve_forever`."""
    from agent_events.reference_agent.workers import serve_forever

    return await serve_forever(config, **options)


def reuse_port_supported() -> bool:
    """Whether ``--workers N`` can work here (see :func:`agent_events.reference_agent.workers.reuse_port_supported`)."""
    from agent_events.reference_agent import workers

    return workers.reuse_port_supported()


def _serve_workers(config, workers: int) -> int:
    """``--workers N``: :func:`agent_events.reference_agent.serve_workers`, its refusals as usage errors."""
    from agent_events.conformance.cli import UsageError
    from agent_events.reference_agent.workers import WorkersError, serve_workers

    if not reuse_port_supported():  # (this module's name: a test makes the platform lack it)
        raise UsageError(f"--workers {workers} needs SO_REUSEPORT with kernel load balancing (Linux); "
                         f"on {sys.platform} run one agent-events serve per port behind a load balancer")
    try:
        return serve_workers(config, workers)
    except WorkersError as exc:
        raise UsageError(str(exc)) from None
