"""``agent-events proxy UPSTREAM_URL``: a fault-injecting WebSocket proxy (a thin shell over ``agent_events.proxy``).

The URL goes alone on one stdout line (flushed), as ``serve`` prints its own,
so scripts and tests can read it even with ``--port 0``; every applied fault
goes to stderr as one JSON line (and to ``--log FILE``); everything else goes
to stderr too.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from agent_events.conformance.exitcodes import ExitCode

HELP = "forward WebSocket connections to an agent, injecting deterministic faults into its run events"
DESCRIPTION = (
    "Listen on ws://HOST:PORT/ and forward every WebSocket connection to UPSTREAM_URL (path, query string, "
    "headers such as Authorization, subprotocol and close codes passed through). Without --fault or --random "
    "it is transparent. Faults apply to the server-to-client run events of every run, addressed by the event's "
    "seq: drop:SEQ (not forwarded), dup:SEQ (forwarded twice), swap:SEQ (forwarded after the next event of its "
    "run), delay:SEQ:MS (held MS ms; later events of its run wait behind it), corrupt:SEQ (replaced by text "
    "that is not JSON), cut:SEQ (the client connection is dropped without a close frame just before the "
    "event), stall:MS (after the first event of each run, nothing of that run is forwarded for MS ms), "
    "drip:BYTES_PER_S (the client-bound stream is throttled). Each of the six event faults can instead address "
    "a frame by its index on the connection, frame=I in place of SEQ (drop:frame=6, delay:frame=2:500): the "
    "I-th data frame, from 0, the upstream sends after the handshake, whatever it holds. A stream with no seq "
    "(--dialect ag-ui, or a dialect file without a seq field) is addressed by frame only, its --random faults "
    "drawn per frame. Prints its URL on one stdout line and each applied fault on stderr as one JSON line. "
    "Exit 2 for a bad fault spec (or a seq address where the dialect has no seq); SIGINT/SIGTERM stop it."
)


def add_arguments(parser) -> None:
    from agent_events.proxy.server import DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_SIZE

    parser.add_argument("upstream", metavar="UPSTREAM_URL", help="the agent to forward to, ws://HOST:PORT/PATH or wss://...")
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    net.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default 0)")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="a fault: drop:SEQ, dup:SEQ, swap:SEQ, delay:SEQ:MS, corrupt:SEQ, cut:SEQ (or by frame "
                             "index, frame=I for SEQ: drop:frame=6, delay:frame=6:MS), stall:MS, "
                             "drip:BYTES_PER_S, or coalesce:N (every N client frames reach the upstream in one "
                             "write) (repeatable; at most one fault per seq and per frame)")
    faults.add_argument("--random", default=None, metavar="SPEC",
                        help="random faults per run event (per frame with a dialect that has no seq), e.g. "
                             "drop=0.1,dup=0.05,swap=0.05,corrupt=0.01,cut=0.01,delay=0.1:200 (probabilities adding "
                             "up to at most 1); reproducible from --seed")
    faults.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of --random: the same seed on the same upstream stream picks the same faults (default 0)")
    faults.add_argument("--log", default=None, metavar="FILE",
                        help="also append each applied fault to FILE as one JSON line (connection, run, seq, frame, "
                             "fault)")
    faults.add_argument("--dialect", default=None, metavar="NAME|FILE",
                        help="the wire format the upstream speaks: agent-events (ours, the default), ag-ui (AG-UI "
                             "1.1: no seq, so faults address frames), or a dialect file (.toml); default: the "
                             "config file's dialect, else ours")
    faults.add_argument("--config", default=None, metavar="PATH",
                        help="config file read for dialect (default: ./agent-events.toml, else [tool.agent-events] "
                             "in ./pyproject.toml)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-message-size", type=int, default=DEFAULT_MAX_SIZE, metavar="BYTES",
                        help=f"largest message forwarded either way; bigger closes that side with 1009 (default {DEFAULT_MAX_SIZE})")
    limits.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, metavar="N",
                        help=f"open connections; more get HTTP 503 (default {DEFAULT_MAX_CONNECTIONS})")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log level on stderr (default WARNING)")


def run(args) -> int:
    from agent_events.conformance.cli import UsageError
    from agent_events.proxy import FaultProxy

    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {args.port}")
    dialect = _dialect(args)
    try:
        proxy = FaultProxy(args.upstream, args.fault, random=args.random, seed=args.seed, dialect=dialect,
                           host=args.host, port=args.port, log=args.log, on_fault=_print_fault,
                           max_size=args.max_message_size, max_connections=args.max_connections)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        return asyncio.run(_serve(proxy))
    except OSError as exc:
        if args.log is not None and getattr(exc, "filename", None) == args.log:
            raise UsageError(f"cannot write the fault log {args.log}: {exc.strerror or exc}") from None
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None


def _dialect(args):
    """--dialect, else the config file's (its [proxy] table, then its top level), else ``None`` (ours):
    the one settings table's validation (:data:`agent_events.conformance.config.KEYS`), as for check."""
    from agent_events.conformance import config as _config
    from agent_events.conformance.cli import UsageError

    try:
        if args.dialect is not None:
            return _config.validate("dialect", args.dialect, "--dialect")
        return _config.load(args.config).for_command("proxy").get("dialect")
    except _config.ConfigError as exc:
        raise UsageError(str(exc)) from None


def _print_fault(entry: dict) -> None:
    import orjson

    sys.stderr.write(orjson.dumps(entry).decode() + "\n")
    sys.stderr.flush()


async def _serve(proxy) -> int:
    url = await proxy.start()
    print(url, flush=True)
    print(f"agent-events proxy listening on {url} -> {proxy.upstream} ({proxy.addressing.label}; faults: "
          f"{proxy.plan.describe()}); Ctrl-C to stop", file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await proxy.stop()
    print(f"agent-events proxy: stopped after {proxy.connections_total} connection(s), "
          f"{len(proxy.applied)} fault(s) applied", file=sys.stderr, flush=True)
    return ExitCode.OK
