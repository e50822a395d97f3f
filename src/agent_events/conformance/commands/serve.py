"""``agent-events serve``: run the reference agent (a thin shell over ``reference_agent``).

The URL goes alone on one stdout line (flushed) so scripts and tests can read
it, even with ``--port 0``; everything else goes to stderr.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
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
                          "elsewhere N above 1 exits 2); the limits below apply per worker, /healthz names the "
                          "answering worker's pid; resume needs --resume-store with N above 1 (default 1)")
    net.add_argument("--certfile", help="PEM certificate (chain) for wss://")
    net.add_argument("--keyfile", help="PEM private key for --certfile, when not inside it")
    net.add_argument("--resume-store", default=None, metavar="URL",
                     help="1.1: keep every run's log in this shared store, redis://HOST:PORT/DB, so that a resume "
                          "is served by whichever worker or machine it lands on (default $AGENT_EVENTS_RESUME_STORE, "
                          "else resume_store in the config file; without one, --workers N above 1 declares no "
                          "resume); unreachable at start-up exits 3")
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
                            protocol_version=getattr(args, "protocol_version", "1.1"),
                            resume_store=_resume_store(args), **numeric)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _resume_store(args) -> str | None:
    """--resume-store, else $AGENT_EVENTS_RESUME_STORE, else the config file's resume_store."""
    from agent_events.conformance import config as config_file
    from agent_events.conformance.cli import UsageError
    from agent_events.reference_agent.resume_store import RESUME_STORE_ENV

    given = getattr(args, "resume_store", None) or os.environ.get(RESUME_STORE_ENV) or None
    if given is not None:
        return given
    try:
        return config_file.load().for_command("serve").get("resume_store")
    except config_file.ConfigError as exc:
        raise UsageError(str(exc)) from None


def run(args) -> int:
    from agent_events.conformance.cli import UsageError

    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    workers = getattr(args, "workers", 1)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    from agent_events.reference_agent.resume_store import StoreMissing, StoreUnavailable, plan_workers, ping

    config, why = plan_workers(config, workers)
    if why is not None:
        logging.getLogger("reference_agent").warning("%s", why)
    try:
        if workers > 1 and config.resume_store and config.resumable:
            asyncio.run(ping(config.resume_store))  # once, here: not a failed start in every worker
        if workers > 1:
            return _serve_workers(config, workers)
        return asyncio.run(_serve(config))
    except StoreMissing as exc:
        raise UsageError(str(exc)) from None
    except StoreUnavailable as exc:
        print(f"agent-events serve: {exc}", file=sys.stderr, flush=True)
        return ExitCode.CONNECT
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot serve on {config.host}:{config.port}: {exc}") from None


async def _serve(config, *, worker: bool = False, on_ready=None,
                 signals=(signal.SIGINT, signal.SIGTERM)) -> int:
    from agent_events.reference_agent.server import AgentServer

    server = AgentServer(config)
    await server.start()
    # Everything allocated so far lives as long as the process: freezing it keeps the cyclic
    # garbage collector from walking it again, which paused the event loop for 10-35 ms.
    gc.collect()
    gc.freeze()
    if not worker:  # a worker's parent prints the URL once all workers listen and handle signals
        print(server.url, flush=True)
        print(f"agent-events reference agent listening on {server.url} (auth: {'bearer token' if config.token else 'none'}, "
              f"llm delay {config.llm_delay_ms:g} ms, health: {server.url.replace('ws', 'http', 1)}healthz); "
              "Ctrl-C to stop", file=sys.stderr, flush=True)
    who = f"agent-events serve (worker {os.getpid()})" if worker else "agent-events serve"
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set():
            main_task.cancel()  # second signal: stop now
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    if on_ready is not None:
        on_ready()
    try:
        await stop.wait()
        print(f"{who}: shutting down (in-flight runs may take up to "
              f"{config.shutdown_timeout:g} s; signal again to stop now)", file=sys.stderr, flush=True)
        await server.shutdown()
    except asyncio.CancelledError:
        print(f"{who}: stopped without waiting for in-flight runs", file=sys.stderr, flush=True)
        return 130
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    return ExitCode.OK


# -- several processes on one port -------------------------------------------------------------

#: Seconds the workers get to listen before the parent gives up on starting.
WORKER_START_TIMEOUT = 30.0
#: Seconds a worker gets past its own shutdown budget (--shutdown-timeout plus closing) before the
#: parent kills it: the parent never waits forever.
WORKER_STOP_GRACE = 10.0


def reuse_port_supported() -> bool:
    """Whether several processes can listen on one port with the kernel spreading connections.

    Linux balances SO_REUSEPORT listeners; macOS and the BSDs accept the option without
    balancing (FreeBSD has SO_REUSEPORT_LB instead), Windows has neither.
    """
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket with SO_REUSEPORT (the first address ``host`` resolves to)."""
    family, type_, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM this worker if the parent dies without stopping it (kill -9), so none is orphaned."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)


def _worker_main(config, index: int, sockets: list, ready_fd: int, parent: int) -> None:
    # The parent's handlers came with the fork: a SIGTERM before the worker's own handler is set
    # must stop it, not run the parent's relay here.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent)
    for i, sock in enumerate(sockets):
        if i != index:
            sock.close()
    # Ctrl-C in a terminal reaches the whole process group: the parent alone handles it (and
    # forwards SIGTERM), so that one Ctrl-C is not two signals (stop now) to a worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = asyncio.run(_serve(config.replace(sock=sockets[index]), worker=True,
                                  on_ready=lambda: os.write(ready_fd, b"."), signals=(signal.SIGTERM,)))
    except Exception as exc:  # noqa: BLE001 - reported on stderr; the parent stops the others
        print(f"agent-events serve (worker {os.getpid()}): {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        code = ExitCode.INTERNAL
    sys.stdout.flush()
    os._exit(int(code))


def _serve_workers(config, workers: int) -> int:
    """``--workers N``: the parent binds the port (choosing it for --port 0), forks N workers that each
    listen on it with SO_REUSEPORT, prints the URL once all listen, and relays SIGINT/SIGTERM as SIGTERM;
    it exits once every worker has."""
    import multiprocessing
    import multiprocessing.connection
    import select
    import time

    from agent_events.conformance.cli import UsageError

    if not reuse_port_supported():
        raise UsageError(f"--workers {workers} needs SO_REUSEPORT with kernel load balancing (Linux); "
                         f"on {sys.platform} run one agent-events serve per port behind a load balancer")
    if config.certfile:  # fail here, with exit 2, rather than in every worker
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(config.certfile, config.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load --certfile {config.certfile}: {exc}") from None
    sockets: list[socket.socket] = []
    try:
        sockets.append(_listen(config.host, config.port))
        port = sockets[0].getsockname()[1]
        while len(sockets) < workers:
            sockets.append(_listen(config.host, port))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise UsageError(f"cannot serve on {config.host}:{config.port}: {exc}") from None
    config = config.replace(port=port)
    context = multiprocessing.get_context("fork")
    ready_r, ready_w = os.pipe()
    procs = []
    stopping = 0
    stop_by: list[float] = []

    def forward(signum, frame) -> None:
        nonlocal stopping
        stopping += 1
        if not stop_by:
            stop_by.append(time.monotonic() + config.shutdown_timeout + 2 * config.close_timeout + WORKER_STOP_GRACE)
        for p in procs:
            if p.exitcode is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = ExitCode.OK
    try:
        for index in range(workers):
            process = context.Process(target=_worker_main, args=(config, index, sockets, ready_w, os.getpid()),
                                      name=f"agent-events-worker-{index}", daemon=False)
            process.start()
            procs.append(process)
        for sock in sockets:  # a worker's socket now lives in the worker alone: if it dies, its queue goes
            sock.close()
        os.close(ready_w)
        ready = 0
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while ready < workers and not stopping and time.monotonic() < deadline:
            if any(p.exitcode is not None for p in procs):
                break
            readable, _, _ = select.select([ready_r], [], [], 0.1)
            if readable:
                chunk = os.read(ready_r, workers)
                if not chunk:
                    break
                ready += len(chunk)
        if ready == workers and not stopping:
            url = _url(config, port)
            print(url, flush=True)
            print(f"agent-events reference agent listening on {url} with {workers} worker processes "
                  f"(pids {', '.join(str(p.pid) for p in procs)}; SO_REUSEPORT) (auth: "
                  f"{'bearer token' if config.token else 'none'}, llm delay {config.llm_delay_ms:g} ms, "
                  f"health: {url.replace('ws', 'http', 1)}healthz); Ctrl-C to stop", file=sys.stderr, flush=True)
        elif not stopping:
            print(f"agent-events serve: {workers - ready} of {workers} workers did not start; stopping",
                  file=sys.stderr, flush=True)
            code = ExitCode.INTERNAL
            forward(signal.SIGTERM, None)
        # Supervise: the first worker to exit unasked stops the others.
        exited: set[int] = set()
        while True:
            for p in procs:
                if p.exitcode is not None and p.pid not in exited:
                    exited.add(p.pid)
                    if not stopping:
                        print(f"agent-events serve: worker {p.pid} exited unexpectedly (code {p.exitcode}); "
                              "stopping the others", file=sys.stderr, flush=True)
                        code = ExitCode.INTERNAL
                        forward(signal.SIGTERM, None)
            alive = [p for p in procs if p.exitcode is None]
            if not alive:
                break
            if stop_by and time.monotonic() > stop_by[0]:
                for p in alive:
                    print(f"agent-events serve: worker {p.pid} did not stop in time; killing it",
                          file=sys.stderr, flush=True)
                    p.kill()
                code = ExitCode.INTERNAL
            # A sentinel turns readable a moment before the worker can be reaped: the loop comes back.
            multiprocessing.connection.wait([p.sentinel for p in alive], timeout=0.2)
        for p in procs:
            p.join()
        if code == ExitCode.OK:
            codes = {p.exitcode for p in procs}
            code = 130 if 130 in codes else ExitCode.OK if codes <= {0} else ExitCode.INTERNAL
    finally:
        os.close(ready_r)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def _url(config, port: int) -> str:
    """The URL the workers serve, named as AgentServer.url names it."""
    from agent_events.reference_agent.server import AgentServer

    server = AgentServer(config)
    server.port = port
    return server.url
