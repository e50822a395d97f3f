"""The reference agent's WebSocket server: connections, limits, auth, shutdown.

Built on ``websockets.asyncio.server``. What this layer adds, and why here:

* HTTP before the upgrade (``process_request``): ``GET /healthz``, bearer
  token auth (header or ``?token=``, since browsers cannot set headers),
  the connection limit. Rejecting at the handshake costs no WebSocket state.
* A connection subclass (:mod:`agent_events.reference_agent.connection`) whose flow-control callbacks arm a timer when the
  outbound buffer fills: a reader stuck longer than ``slow_reader_timeout``
  is closed with 1008 and a reason. No per-event cost: the timer exists only
  while the buffer is full.
* Corked event writes (:meth:`AgentConnection.queue_text`): the frames a
  connection's runs emit during one event-loop turn leave in one socket
  write at the end of the turn instead of one syscall each (a syscall per
  frame was a third of the server's time). Whenever websockets writes on
  its own (a pong, a close frame, an ``error`` sent with ``send``) the
  corked frames are written first: the order on the wire is the order of
  the calls.
* Graceful shutdown: stop accepting, refuse new runs (``shutting_down``),
  let in-flight runs finish within ``shutdown_timeout``, cancel the rest
  (each still ends with ``agent_completed``), then close with 1001.

Python API::

    async with agent_events.reference_agent.serve(port=0, llm_delay_ms=0) as server:
        print(server.url)            # ws://127.0.0.1:PORT/

    with agent_events.reference_agent.run_in_thread(port=0) as server:   # for sync callers
        print(server.url)

Hooks: ``agent_factory`` (``() -> BaseAgent``, one agent per run) and
``bridge_factory`` (``(websocket, session) -> WebSocketBridgeAdapter``),
e.g. test-only subclasses that break one protocol rule on purpose.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import itertools
import logging
import os
import ssl
import time
import uuid
from importlib import metadata
from typing import Any
from urllib.parse import parse_qs

import orjson
from websockets.asyncio.server import ServerConnection, serve as ws_serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from agent_events import schemas
from agent_events.reference_agent import viewer
from agent_events.reference_agent.actions import ActionsAgent
from agent_events.reference_agent.bridge import WebSocketBridgeAdapter
from agent_events.reference_agent.config import ServerConfig
from agent_events.reference_agent.connection import CORK_LIMIT, AgentConnection  # noqa: F401 - CORK_LIMIT re-exported
from agent_events.reference_agent.fds import DEFAULT_BACKLOG, fit as fit_fd_limit
from agent_events.reference_agent.logs import RateLimitedLog
from agent_events.reference_agent.llm import OfflinePlanner
from agent_events._loop_thread import LoopThread
from agent_events._net import listen_url
from agent_events.reference_agent.resume_store import open_store
from agent_events.reference_agent.session import Session

logger = logging.getLogger("reference_agent")

try:
    VERSION = metadata.version("agent-events")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    VERSION = "0+unknown"

#: Close codes the server uses, with their meaning in this protocol.
CLOSE_GOING_AWAY = 1001        # shutdown
CLOSE_POLICY = 1008            # slow reader evicted
CLOSE_TOO_BIG = 1009           # message far above max_message_size (websockets closes)
CLOSE_TRY_AGAIN = 1013         # connection limit reached during the handshake race


class AgentServer:
    """A running reference agent. Use through :func:`serve` or :func:`run_in_thread`."""

    def __init__(self, config: ServerConfig | None = None, **options: Any) -> None:
        self.config = config.replace(**options) if config is not None else ServerConfig(**options)
        self.sessions: set[Session] = set()
        self.shutting_down = False
        self.runs_in_flight = 0
        self.runs_started = 0
        self.connections_total = 0
        self.slow_readers_closed = 0
        self.port: int | None = None
        self._ws = None
        self._idle: asyncio.Event | None = None
        self._shutdown_task: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        #: Connections accepted and not (yet) serving: in the opening handshake, or refused with a 503.
        #: (a dict for its order: the oldest first)
        self._pending: dict[AgentConnection, None] = {}
        #: Of those, the ones that passed ``process_request``: they hold a connection slot already.
        self._admitted: set[AgentConnection] = set()
        self.connections_refused = 0
        self.accept_errors = 0
        self.fd_limit: int | None = None
        self._backlog = DEFAULT_BACKLOG
        self.quiet_log = RateLimitedLog(logger)
        self._exception_handler = None
        self._run_id_prefix = f"run_{uuid.uuid4().hex[:8]}_"
        self._run_numbers = itertools.count(1)
        #: 1.1: runs that outlive their connection for a resume (None under 1.0 or with resume off)
        #: where runs' logs live for a resume: this process (the default) or a shared store
        self.resume_store = open_store(self.config)
        self.resume = (self.resume_store.make_registry(self.config.resume_window_s, self.config.resume_buffer_events,
                                                       self.config.max_connections * self.config.max_runs_per_connection)
                       if self.config.resumable else None)
        self._features: dict[str, Any] | None = None
        self._make_agent = self.config.agent_factory or functools.partial(self._default_agent, self.config)
        self._make_bridge = self.config.bridge_factory or (
            lambda websocket, session: WebSocketBridgeAdapter(websocket, session=session))

    # -- factories --------------------------------------------------------------

    @staticmethod
    def _default_agent(config: ServerConfig) -> ActionsAgent:
        return ActionsAgent(OfflinePlanner(config.llm_delay_ms), llm_timeout_ms=config.llm_timeout_ms)

    def make_agent(self):
        return self._make_agent()

    def make_bridge(self, websocket: Any, session: Session):
        return self._make_bridge(websocket, session)

    def capabilities_frame(self) -> bytes | None:
        """1.1: the ``capabilities`` message every connection gets first (``None`` under 1.0): what this
        server implements, so a client need not guess and a harness holds it to exactly that."""
        config = self.config
        if config.protocol_version == "1.0":
            return None
        if self._features is None:
            factory = config.agent_factory
            # Read from the agent class, never by building an agent: ActionsAgent by default, the
            # factory itself when it is a class; a plain function's agents declare nothing.
            failure = (ActionsAgent.supports_simulate_failure if factory is None
                       else bool(getattr(factory, "supports_simulate_failure", False)))
            self._features = {
                "simulate_failure": failure, "cancel": True, "time_sync": True,
                "resume": ({"window_s": config.resume_window_s, "buffer_events": config.resume_buffer_events}
                           if self.resume is not None else False),
                "max_runs_per_connection": config.max_runs_per_connection,
                "max_message_bytes": config.max_message_size,
            }
        return orjson.dumps({"type": "capabilities", "protocol_version": config.protocol_version,
                             "emitted_at": time.time() * 1000.0, "features": self._features})

    def run_ended_detached(self, handle) -> None:
        """A resumable run finished while its connection was gone: its events wait in the replay buffer."""
        if handle.timer is not None:
            handle.timer.cancel()
            handle.timer = None
        if handle.resume is not None:
            handle.agent = handle.request = None  # its frames are kept for a resume, not its agent
            handle.resume.finish()
        handle.task = None
        self.run_finished()

    def new_run_id(self) -> str:
        """A run_id for a client that gave none: unique per server process, and cheap."""
        return f"{self._run_id_prefix}{next(self._run_numbers)}"

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> "AgentServer":
        self._fit_limits()
        config = self.config
        if self.resume is not None:
            await self.resume_store.start()  # StoreUnavailable: no half-started server
        self._idle = asyncio.Event()
        self._quiet_accept_errors(asyncio.get_running_loop())
        options: dict[str, Any] = dict(
            open_timeout=config.handshake_timeout,
            backlog=self._backlog,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            compression="deflate" if config.compression else None,
            max_size=config.max_message_size * config.HARD_SIZE_FACTOR,
            write_limit=config.send_queue,
            close_timeout=config.close_timeout,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_interval,
            create_connection=functools.partial(AgentConnection, slow_reader_timeout=config.slow_reader_timeout,
                                                on_stall=self._on_stall, on_accept=self._on_accept,
                                                on_lost=self._on_lost),
        )
        if config.allow_origins:
            options["origins"] = [*config.allow_origins, None]
        if config.certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(config.certfile, config.keyfile)
            options["ssl"] = context
        options.update(config.websockets_options)
        if config.sock is not None:
            self._ws = await ws_serve(self._handle, sock=config.sock, **options)
        else:
            self._ws = await ws_serve(self._handle, config.host, config.port, **options)
        self.port = self._ws.sockets[0].getsockname()[1]
        logger.info("reference agent listening on %s", self.url)
        return self

    @property
    def url(self) -> str:
        return listen_url(self.config.scheme, self.config.host, self.port)

    async def __aenter__(self) -> "AgentServer":
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.shutdown()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop gracefully: in-flight runs get ``timeout`` (default ``shutdown_timeout``) to finish."""
        if self._ws is None:
            return
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(self._shutdown(timeout))
        await asyncio.shield(self._shutdown_task)

    async def _shutdown(self, timeout: float | None) -> None:
        config = self.config
        self.shutting_down = True
        self._ws.server.close()  # stop accepting; open connections carry on
        if self.resume is not None:
            self.resume.close()  # nobody will come back for a detached run now
        if not await self._wait_idle(config.shutdown_timeout if timeout is None else timeout):
            logger.warning("shutdown: cancelling %d run(s) still in flight", self.runs_in_flight)
            for session in list(self.sessions):
                for handle in list(session.runs.values()):
                    handle.cancel("shutdown")
            if not await self._wait_idle(min(2.0, config.close_timeout)):
                for session in list(self.sessions):
                    for handle in list(session.runs.values()):
                        if handle.task is not None:
                            handle.task.cancel()
        self._ws.close(code=CLOSE_GOING_AWAY, reason="server shutting down")
        try:
            async with asyncio.timeout(config.close_timeout + 1.0):
                await self._ws.wait_closed()
        except TimeoutError:
            # Readers too stuck to take a close frame: drop them.
            for connection in list(self._ws.all_connections):
                connection.transport.abort()
            await self._ws.wait_closed()
        for task in list(self._background):
            task.cancel()
        if self.resume is not None:
            await self.resume_store.close()
        loop = asyncio.get_running_loop()
        if self._exception_handler is not None and loop.get_exception_handler() is self._exception_handler:
            loop.set_exception_handler(None)
        logger.info("reference agent stopped")

    async def _wait_idle(self, timeout: float) -> bool:
        if self.runs_in_flight == 0:
            return True
        self._idle.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return self.runs_in_flight == 0
        return True

    # -- bookkeeping ----------------------------------------------------------------

    def run_started(self) -> None:
        self.runs_in_flight += 1
        self.runs_started += 1

    def run_finished(self) -> None:
        self.runs_in_flight -= 1
        if self.runs_in_flight == 0 and self._idle is not None:
            self._idle.set()

    def stats(self) -> dict[str, Any]:
        """Counters for /healthz, tests and benchmarks."""
        return {
            "status": "shutting_down" if self.shutting_down else "ok",
            #: the answering process (several share a port under ``agent-events serve --workers N``)
            "pid": os.getpid(),
            "version": VERSION,
            "protocol": schemas.PROTOCOL_VERSION,
            "subprotocol": schemas.SUBPROTOCOL,
            "connections": len(self.sessions),
            "runs_in_flight": self.runs_in_flight,
            "runs_started": self.runs_started,
            "connections_total": self.connections_total,
            #: accepted TCP connections not serving (yet): in the handshake, or being refused
            "connections_pending": len(self._pending),
            #: connections closed in their opening handshake because too many were pending
            "connections_refused": self.connections_refused,
            "limits": {"max_connections": self.config.max_connections,
                       "max_pending_handshakes": self.config.max_pending_handshakes, "fd_limit": self.fd_limit},
            "paused_connections": sum(1 for s in self.sessions if getattr(s.websocket, "write_paused", False)),
            "slow_readers_closed": self.slow_readers_closed,
            "resume_store": self.resume_store.describe() if self.resume is not None else None,
        }

    # -- connections ----------------------------------------------------------------

    async def _handle(self, websocket: AgentConnection) -> None:
        limit = self.config.max_connections
        if len(self.sessions) >= limit:  # several handshakes raced past process_request
            await websocket.close(CLOSE_TRY_AGAIN, f"too many connections (limit {limit})")
            return
        self._pending.pop(websocket, None)
        self._admitted.discard(websocket)
        session = Session(self, websocket)
        self.sessions.add(session)
        self.connections_total += 1
        try:
            await session.serve()
        finally:
            self.sessions.discard(session)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        try:
            return self._route(connection, request)
        except Exception as exc:  # noqa: BLE001 - a request we failed to read is the client's 400, not our 500
            self.quiet_log.warning("request", "could not handle an HTTP request", exc=exc)
            return connection.respond(400, "Bad request.\n")

    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        if path == "/healthz":
            return _json_response(connection, 503 if self.shutting_down else 200, self.stats())
        if viewer.wants_page(request, path):  # a browser: the live viewer's static files (no token: they hold no data)
            return viewer.response(path)
        if path != "/":
            return connection.respond(404, f"Not found: the agent-events endpoint is / (and /healthz), not {path}\n")
        if self.shutting_down:
            return connection.respond(503, "The server is shutting down.\n")
        token = self.config.token
        if token is not None and not _authorized(request, query, token):
            response = connection.respond(401, "Unauthorized: send 'Authorization: Bearer <token>' or ?token=<token>.\n")
            response.headers["WWW-Authenticate"] = 'Bearer realm="agent-events"'
            return response
        if len(self.sessions) + len(self._admitted) >= self.config.max_connections:
            return connection.respond(503, f"Too many connections (limit {self.config.max_connections}); retry later.\n")
        self._admitted.add(connection)  # holds its slot until it serves or goes: racing handshakes cannot overshoot
        return None

    def _on_accept(self, connection: AgentConnection) -> bool:
        """A TCP connection was accepted: count it as pending, or refuse it when too many are."""
        limit = self.config.max_pending_handshakes
        if len(self._pending) >= limit:
            # Make room by closing the oldest connection that has not even sent its request:
            # a flood of idle connections then cycles through the slots and cannot keep a
            # client that completes its handshake promptly out for the whole handshake timeout.
            victim = next((pending for pending in self._pending if pending.request is None), None)
            self.connections_refused += 1
            self.quiet_log.warning("pending", "%d connections in their opening handshake (limit %d): closing "
                                   "the oldest idle ones", len(self._pending), limit)
            if victim is None:
                return False
            del self._pending[victim]
            victim.transport.abort()
        self._pending[connection] = None
        return True

    def _on_lost(self, connection: AgentConnection) -> None:
        self._pending.pop(connection, None)
        self._admitted.discard(connection)

    def _fit_limits(self) -> None:
        """Fit max_connections and max_pending_handshakes to the fd limit (see :mod:`.fds`)."""
        config = self.config
        budget = fit_fd_limit(config.max_connections, config.max_pending_handshakes, DEFAULT_BACKLOG)
        self._backlog = budget.backlog
        self.fd_limit = budget.fd_limit
        if budget.message is not None:
            logger.log(logging.WARNING if budget.lowered else logging.INFO, "%s", budget.message)
        if budget.lowered:
            self.config = config.replace(max_connections=budget.max_connections,
                                         max_pending_handshakes=budget.max_pending_handshakes)

    def _quiet_accept_errors(self, loop: asyncio.AbstractEventLoop) -> None:
        """Out of descriptors anyway (another part of the process took them): asyncio logs a
        traceback per failed accept() and retries; turn that into one line a minute. Only when
        the application set no exception handler of its own."""
        if loop.get_exception_handler() is not None:
            return

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if context.get("message") == "socket.accept() out of system resource":
                self.accept_errors += 1
                self.quiet_log.warning("accept", "cannot accept connections (%s); retrying",
                                       context.get("exception"))
                return
            loop.default_exception_handler(context)

        self._exception_handler = handler
        loop.set_exception_handler(handler)

    def _on_stall(self, connection: AgentConnection) -> None:
        self.slow_readers_closed += 1
        timeout = self.config.slow_reader_timeout
        self.quiet_log.warning("stall", "closing a connection whose reader accepted nothing for %g s", timeout)
        task = asyncio.get_running_loop().create_task(
            self._evict(connection, f"slow reader: outbound buffer full for more than {timeout:g} s"))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _evict(self, connection: AgentConnection, reason: str) -> None:
        try:
            async with asyncio.timeout(self.config.close_timeout):
                await connection.close(CLOSE_POLICY, reason)
        except TimeoutError:
            connection.transport.abort()


def _select_subprotocol(connection: ServerConnection, offered) -> str | None:
    """Select ``agent-events.v1`` when offered; accept clients that offer nothing (SHOULD, not MUST)."""
    return schemas.SUBPROTOCOL if schemas.SUBPROTOCOL in offered else None


def _authorized(request: Request, query: str, token: str) -> bool:
    """One bearer token, in one ``Authorization`` header or one ``token`` parameter; anything
    repeated, empty or odd is unauthorized (401), never an error."""
    supplied = None
    headers = request.headers.get_all("Authorization")
    if len(headers) > 1:
        return False
    if headers:
        scheme, _, value = headers[0].strip().partition(" ")
        if scheme.lower() == "bearer":
            supplied = value.strip()
    if supplied is None and query:
        values = parse_qs(query, keep_blank_values=True).get("token")
        if values is not None and len(values) != 1:
            return False
        supplied = values[0] if values else None
    if not supplied:
        return False
    return hmac.compare_digest(supplied.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape"))


def _json_response(connection: ServerConnection, status: int, body: dict) -> Response:
    response = connection.respond(status, "")
    data = orjson.dumps(body) + b"\n"
    kept = [(k, v) for k, v in response.headers.raw_items() if k.lower() not in ("content-type", "content-length")]
    headers = Headers(kept)
    headers["Content-Type"] = "application/json"
    headers["Content-Length"] = str(len(data))
    headers["Cache-Control"] = "no-store"
    return Response(status, response.reason_phrase, headers, data)


def serve(config: ServerConfig | None = None, **options: Any) -> AgentServer:
    """An :class:`AgentServer` to use as ``async with serve(port=0, ...) as server``.

    ``options`` are :class:`~agent_events.reference_agent.config.ServerConfig` fields, among
    them the hooks ``agent_factory`` and ``bridge_factory``.
    """
    return AgentServer(config, **options)


class ServerThread(LoopThread):
    """A reference agent on its own event loop in a daemon thread, for sync code.

    ``url`` is set once :meth:`start` returns; :meth:`stop` shuts down
    gracefully and joins the thread. Also a context manager.
    """

    thread_name = "reference-agent"
    what = "the reference agent"

    def __init__(self, config: ServerConfig | None = None, **options: Any) -> None:
        self.server = AgentServer(config, **options)
        self._shutdown_timeout: float | None = None
        super().__init__()

    async def _serve(self) -> str:
        await self.server.start()
        return self.server.url

    async def _close(self) -> None:
        await self.server.shutdown(self._shutdown_timeout)

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The server's counters, read on its own loop."""
        async def read() -> dict[str, Any]:
            return self.server.stats()
        return self.call(read, timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Shut down (in-flight runs get ``timeout`` s, default ``shutdown_timeout``) and join."""
        self._shutdown_timeout = timeout
        budget = (self.server.config.shutdown_timeout if timeout is None else timeout)
        self._stop_and_join(budget + self.server.config.close_timeout + 5.0)


def run_in_thread(config: ServerConfig | None = None, **options: Any) -> ServerThread:
    """Start a reference agent in a background thread; returns once it listens."""
    return ServerThread(config, **options).start()
