"""Serving from the command line's point of view, as an API: signals, and several worker processes.

:func:`serve_forever` runs one :class:`~agent_events.reference_agent.server.AgentServer` until
SIGINT/SIGTERM (graceful: in-flight runs get ``shutdown_timeout``; a second signal stops at once).
:func:`serve_workers` runs N of them on one port (SO_REUSEPORT: Linux balances the connections)
and supervises them: it is what ``agent-events serve --workers N`` calls, and what a deployment
script calls from Python without the CLI. Runs are connection-scoped, so the workers share nothing.

This module belongs to the reference agent, which never imports the conformance kit: the exit
statuses are plain integers (those of ``agent_events.conformance.exitcodes``: 0 ok, 4 internal,
130 interrupted) and what would be a usage error is :class:`WorkersError` (the CLI makes it exit 2).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import ssl
import sys

from agent_events.reference_agent.server import AgentServer

#: Exit statuses (the CLI's ExitCode values, which this package cannot import).
EXIT_OK = 0
EXIT_INTERNAL = 4


class WorkersError(ValueError):
    """Workers cannot be started as asked (the CLI reports it as a usage error, exit 2)."""


async def serve_forever(config, *, worker: bool = False, on_ready=None,
                        signals=(signal.SIGINT, signal.SIGTERM)) -> int:
    """Serve ``config`` until SIGINT/SIGTERM (a second one stops at once); the URL goes alone on one
    stdout line (flushed) unless ``worker``. Returns the exit status: 0, or 130 when stopped at once."""
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
    return EXIT_OK


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
        code = asyncio.run(serve_forever(config.replace(sock=sockets[index]), worker=True,
                                  on_ready=lambda: os.write(ready_fd, b"."), signals=(signal.SIGTERM,)))
    except Exception as exc:  # noqa: BLE001 - reported on stderr; the parent stops the others
        print(f"agent-events serve (worker {os.getpid()}): {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        code = EXIT_INTERNAL
    sys.stdout.flush()
    os._exit(int(code))


def serve_workers(config, workers: int) -> int:
    """Serve ``config`` from ``workers`` processes on one port, and supervise them until they stop.

    The parent binds the port (choosing it for ``port=0``), forks the workers, which each listen on
    it with SO_REUSEPORT (the kernel spreads the connections), prints the URL once all listen, and
    relays SIGINT/SIGTERM to them as SIGTERM; the first worker to exit unasked stops the others, and
    one that does not stop within its shutdown budget plus :data:`WORKER_STOP_GRACE` is killed.
    Returns once every worker has exited: 0, 130 (stopped at once) or 4 (a worker failed).
    :class:`WorkersError` when it cannot start at all (no SO_REUSEPORT balancing, an unusable
    certificate, a port that cannot be bound). ``agent-events serve --workers N`` is this call.
    """
    import multiprocessing
    import multiprocessing.connection
    import select
    import time

    if not reuse_port_supported():
        raise WorkersError(f"--workers {workers} needs SO_REUSEPORT with kernel load balancing (Linux); "
                         f"on {sys.platform} run one agent-events serve per port behind a load balancer")
    if config.certfile:  # fail here, with exit 2, rather than in every worker
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(config.certfile, config.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise WorkersError(f"cannot load --certfile {config.certfile}: {exc}") from None
    sockets: list[socket.socket] = []
    try:
        sockets.append(_listen(config.host, config.port))
        port = sockets[0].getsockname()[1]
        while len(sockets) < workers:
            sockets.append(_listen(config.host, port))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise WorkersError(f"cannot serve on {config.host}:{config.port}: {exc}") from None
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
    code = EXIT_OK
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
            code = EXIT_INTERNAL
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
                        code = EXIT_INTERNAL
                        forward(signal.SIGTERM, None)
            alive = [p for p in procs if p.exitcode is None]
            if not alive:
                break
            if stop_by and time.monotonic() > stop_by[0]:
                for p in alive:
                    print(f"agent-events serve: worker {p.pid} did not stop in time; killing it",
                          file=sys.stderr, flush=True)
                    p.kill()
                code = EXIT_INTERNAL
            # A sentinel turns readable a moment before the worker can be reaped: the loop comes back.
            multiprocessing.connection.wait([p.sentinel for p in alive], timeout=0.2)
        for p in procs:
            p.join()
        if code == EXIT_OK:
            codes = {p.exitcode for p in procs}
            code = 130 if 130 in codes else EXIT_OK if codes <= {0} else EXIT_INTERNAL
    finally:
        os.close(ready_r)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def _url(config, port: int) -> str:
    """The URL the workers serve, named as AgentServer.url names it."""
    server = AgentServer(config)
    server.port = port
    return server.url
