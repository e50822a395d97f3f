"""The proxy's asyncio shell: accept a client, open the upstream, pump frames both ways through the planner.

Built on ``websockets`` on both sides. What this layer does, and why here:

* The upstream connection is opened *during* the client's handshake
  (``process_request``), with the client's path and query, its headers
  (``Authorization``, ``Origin``, cookies...) and its offered subprotocols.
  So an upstream that refuses (401, 404, 503) refuses the client with the
  same HTTP status and body, and the client gets the subprotocol the
  upstream chose. An unreachable upstream is HTTP 502.
* Messages are forwarded as they came: text or binary, the raw bytes (a
  text frame that is not UTF-8 stays one), client-to-upstream untouched,
  upstream-to-client through the :class:`~agent_events.proxy.planner.Planner`.
* A close is mirrored: the close code and reason of one side are sent to
  the other; a side dropped without a close frame drops the other the same
  way. When the upstream closes, what the faults still hold is delivered
  first.
* Bounded everywhere: message size (websockets closes with 1009 above it),
  connections (HTTP 503 above the limit), frames held by delays and stalls
  per connection (the upstream is read no further while the limit is
  reached: TCP back-pressure, never memory). Errors of one connection end
  that connection, never the proxy, and never print a traceback.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import ssl
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve as ws_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.uri import parse_uri

from agent_events._loop_thread import LoopThread
from agent_events._net import listen_url
from agent_events.proxy.addressing import Addressing
from agent_events.proxy.faults import FaultPlan, RandomPlan, make_plan
from agent_events.proxy.planner import Applied, Cut, Planner
from agent_events.proxy.upstream import (  # noqa: F401  (check_upstream, upstream_url: public here before)
    HOP_HEADERS, check_upstream, copy_response as _copy_response, upstream_url, why as _why,
)

logger = logging.getLogger("agent_events.proxy")

#: Largest message forwarded either way (the harness's own default frame limit).
DEFAULT_MAX_SIZE = 16 * 2**20
DEFAULT_MAX_CONNECTIONS = 1024
#: Frames one connection may hold back (delays, stalls) before the upstream is read no further.
MAX_HELD = 10_000
#: Frames queued for the client writer.
OUT_QUEUE = 256
#: Faults kept in :attr:`FaultProxy.applied` (all are logged).
MAX_APPLIED_KEPT = 100_000
CLOSE_BAD_GATEWAY = 1014
CLOSE_GOING_AWAY = 1001

OnFault = Callable[[dict], None]


class _KindsMixin:
    """Remembers whether each message started as a text or a binary frame.

    ``recv(decode=False)`` hands over the raw bytes of either kind (so a text
    frame that is not UTF-8 can be forwarded as it came), and loses the kind;
    messages arrive in order, so one deque of kinds matches them up.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kinds: collections.deque[str] = collections.deque()

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame):
            if event.opcode is Opcode.TEXT:
                self.kinds.append("text")
            elif event.opcode is Opcode.BINARY:
                self.kinds.append("binary")
        super().process_event(event)

    async def recv_message(self) -> tuple[str, bytes]:
        data = await self.recv(decode=False)
        return self.kinds.popleft(), bytes(data)


class _Upstream(_KindsMixin, ClientConnection):
    pass


class _Client(_KindsMixin, ServerConnection):
    proxy_index: int = -1
    upstream: _Upstream | None = None
    handled = False


class FaultProxy:
    """A WebSocket proxy that injects ``faults`` into the run events an ``upstream`` sends its clients.

    ``async with FaultProxy("ws://127.0.0.1:8765/", faults=["drop:3"]) as url:`` gives the
    proxy's URL, to point the client under test at; :meth:`start` and :meth:`stop` do the same
    by hand. ``faults`` are specs (``"drop:3"``, ``"delay:5:200"``, ``"stall:500"``...,
    see :mod:`agent_events.proxy.faults`); ``random`` (``"drop=0.1,dup=0.05"``)
    with ``seed`` picks more, reproducibly. ``dialect`` (a built-in name such as
    ``"ag-ui"``, a dialect file, a :class:`~agent_events.dialects.Dialect`; default
    ours) says where a frame's seq is: one without seq takes ``frame=I`` addresses
    only. Every applied fault is appended to
    :attr:`applied` and passed to ``on_fault`` (a dict: connection, run, seq,
    fault); ``log`` names a file that gets each as one JSON line.
    ``ValueError`` (a :class:`~agent_events.proxy.faults.FaultSpecError` for a
    bad spec) for a bad argument.
    """

    def __init__(self, upstream: str, faults: Iterable[str] = (), *, random: "str | Mapping | RandomPlan | None" = None,
                 seed: int = 0, dialect: Any = None, host: str = "127.0.0.1", port: int = 0,
                 log: "str | os.PathLike | None" = None, on_fault: OnFault | None = None, max_size: int = DEFAULT_MAX_SIZE,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, open_timeout: float = 10.0,
                 close_timeout: float = 2.0, max_held: int = MAX_HELD) -> None:
        check_upstream(upstream)
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1024:
            raise ValueError(f"max_size must be an integer of at least 1024 bytes, not {max_size!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a positive integer, not {max_connections!r}")
        self.upstream = upstream
        self.addressing = Addressing.of(dialect)  # a bad dialect: DialectError, a ValueError
        self.plan: FaultPlan = make_plan(faults, random, seed, self.addressing)
        self.host = host
        self.port = port
        self.log_path = Path(log) if log is not None else None
        self.on_fault = on_fault
        self.max_size = max_size
        self.max_connections = max_connections
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.max_held = max_held
        self.applied: list[dict] = []
        self.connections_total = 0
        #: The most frames one connection held back at once (bounded by ``max_held``, plus one frame's actions).
        self.held_peak = 0
        self._counter = itertools.count()
        self._sessions: set[_Session] = set()
        self._reapers: set[asyncio.Task] = set()
        self._ws = None
        self._log_file = None

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> str:
        """Listen; return the proxy's ``ws://`` URL."""
        if self._ws is not None:
            return self.url
        if self.log_path is not None:
            self._log_file = open(self.log_path, "a", encoding="utf-8", buffering=1)
        try:
            self._ws = await ws_serve(
                self._handle, self.host, self.port,
                process_request=self._process_request, select_subprotocol=_select_subprotocol,
                create_connection=_Client, compression=None, max_size=self.max_size, ping_interval=None,
                close_timeout=self.close_timeout, server_header=None,
            )
        except BaseException:
            self._close_log()
            raise
        self.port = self._ws.sockets[0].getsockname()[1]
        logger.info("agent-events proxy on %s -> %s (faults: %s)", self.url, self.upstream, self.plan.describe())
        return self.url

    @property
    def url(self) -> str:
        return listen_url("ws", self.host, self.port)

    async def stop(self) -> None:
        """Close every connection (1001 to clients, upstreams mirrored) and stop listening."""
        if self._ws is None:
            return
        ws, self._ws = self._ws, None
        ws.close(close_connections=True)
        try:
            async with asyncio.timeout(self.close_timeout + 1.0):
                await ws.wait_closed()
        except TimeoutError:
            for connection in list(ws.connections):
                connection.transport.abort()
        for session in list(self._sessions):
            session.abort()
        for task in list(self._reapers):
            task.cancel()
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    # -- faults ----------------------------------------------------------------------
    def _record(self, applied: Applied) -> None:
        entry = applied.to_json()
        if len(self.applied) < MAX_APPLIED_KEPT:
            self.applied.append(entry)
        if self._log_file is not None:
            try:
                self._log_file.write(orjson.dumps(entry).decode() + "\n")
            except (OSError, ValueError) as exc:
                logger.warning("cannot write the fault log %s: %s", self.log_path, exc)
                self._close_log()
        if self.on_fault is not None:
            try:
                self.on_fault(entry)
            except Exception as exc:  # noqa: BLE001 - a callback bug must not end the connection
                logger.warning("on_fault raised %s: %s", type(exc).__name__, exc)

    # -- the handshake ---------------------------------------------------------------
    async def _process_request(self, connection: _Client, request: Request) -> Response | None:
        if len(self._sessions) >= self.max_connections:
            return connection.respond(503, f"Too many connections through the proxy (limit {self.max_connections}).\n")
        url = upstream_url(self.upstream, request.path)
        headers = [(k, v) for k, v in request.headers.raw_items() if k.lower() not in HOP_HEADERS]
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            # A plain GET (a health check, a page such as the reference agent's live viewer): relayed as it is.
            try:
                return await asyncio.wait_for(self._forward_http(url, headers), self.open_timeout)
            except (OSError, TimeoutError, ssl.SSLError, ValueError) as exc:
                return connection.respond(502, f"agent-events proxy: cannot reach the upstream {url}: {_why(exc)}\n")
        if "Sec-WebSocket-Key" not in request.headers:
            return None  # not a valid handshake: websockets refuses it (400) without bothering the upstream
        offered = [p.strip() for value in request.headers.get_all("Sec-WebSocket-Protocol")
                   for p in value.split(",") if p.strip()]
        try:
            upstream = await connect(
                url, additional_headers=headers, subprotocols=offered or None, user_agent_header=None,
                compression=None, max_size=self.max_size, ping_interval=None, open_timeout=self.open_timeout,
                close_timeout=self.close_timeout, create_connection=_Upstream, proxy=None,
            )
        except InvalidStatus as exc:
            return _copy_response(exc.response)
        except (OSError, TimeoutError, InvalidHandshake, ssl.SSLError, ValueError) as exc:
            return connection.respond(502, f"agent-events proxy: cannot open the upstream {url}: {_why(exc)}\n")
        connection.proxy_index = next(self._counter)
        connection.upstream = upstream
        # Whatever happens to the client's handshake from here, the upstream goes when the client goes.
        reaper = asyncio.get_running_loop().create_task(self._reap(connection, upstream))
        self._reapers.add(reaper)
        reaper.add_done_callback(self._reapers.discard)
        return None

    async def _forward_http(self, url: str, headers: list[tuple[str, str]]) -> Response:
        """One plain HTTP GET to the upstream, its response read whole (at most ``max_size`` bytes)."""
        uri = parse_uri(url)
        context = ssl.create_default_context() if uri.secure else None
        reader, writer = await asyncio.open_connection(uri.host, uri.port, ssl=context,
                                                       server_hostname=uri.host if context else None)
        try:
            lines = [f"GET {uri.resource_name} HTTP/1.1", f"Host: {urlsplit(url).netloc}",
                     *(f"{k}: {v}" for k, v in headers), "Connection: close", "", ""]
            writer.write("\r\n".join(lines).encode("latin-1", "replace"))
            data = await reader.read(self.max_size + 1)
            while len(data) <= self.max_size:
                more = await reader.read(self.max_size + 1 - len(data))
                if not more:
                    break
                data += more
        finally:
            writer.close()
        if len(data) > self.max_size:
            raise ValueError(f"the upstream's response is over {self.max_size} bytes")
        head, sep, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not sep or not version.startswith("HTTP/") or not code.isdigit():
            raise ValueError("the upstream's answer is not HTTP")
        pairs = [tuple(part.strip() for part in line.split(":", 1)) for line in header_lines if ":" in line]
        if any(k.lower() == "transfer-encoding" for k, _ in pairs):
            raise ValueError("the upstream's response is chunked; the proxy relays only plain responses")
        length = next((v for k, v in pairs if k.lower() == "content-length"), None)
        if length is not None and length.isdigit():
            body = body[: int(length)]
        return _copy_response(Response(int(code), reason, Headers(pairs), body))

    async def _reap(self, connection: _Client, upstream: _Upstream) -> None:
        await connection.wait_closed()
        if not connection.handled and upstream.state is not State.CLOSED:
            upstream.transport.abort()

    # -- a connection ----------------------------------------------------------------
    async def _handle(self, client: _Client) -> None:
        client.handled = True
        upstream = client.upstream
        if upstream is None:  # pragma: no cover - process_request always sets it or refuses
            await client.close(CLOSE_BAD_GATEWAY, "no upstream")
            return
        self.connections_total += 1
        session = _Session(self, client, upstream, Planner(self.plan, client.proxy_index))
        self._sessions.add(session)
        try:
            await session.run()
        except Exception as exc:  # noqa: BLE001 - one connection's failure is logged, never a traceback
            logger.warning("connection %d ended by %s: %s", client.proxy_index, type(exc).__name__, exc)
            session.abort()
        finally:
            self._sessions.discard(session)


def _select_subprotocol(connection: _Client, offered) -> str | None:
    upstream = connection.upstream
    chosen = upstream.subprotocol if upstream is not None else None
    return chosen if chosen in offered else None


class _Close:
    """The writer's last item: close the client like the upstream closed (``None``: drop it)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason


class _Session:
    """One client connection and its upstream: two pumps, a writer, and a lane per run held back."""

    def __init__(self, proxy: FaultProxy, client: _Client, upstream: _Upstream, planner: Planner) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.planner = planner
        self.loop = asyncio.get_running_loop()
        self.out: asyncio.Queue = asyncio.Queue(OUT_QUEUE)
        self.lanes: dict[Any, _Lane] = {}  # by run id, or the connection's lane
        self.held = 0
        self.room = asyncio.Event()
        self.room.set()
        self.drip = proxy.plan.drip_bytes_per_s
        self.wire_free_at = 0.0
        self.tasks: list[asyncio.Task] = []

    def now(self) -> float:
        return self.loop.time() * 1000.0

    async def run(self) -> None:
        writer = self.loop.create_task(self._writer())
        from_upstream = self.loop.create_task(self._from_upstream())
        self.tasks = [writer, from_upstream]
        for task in self.tasks:
            task.add_done_callback(self._task_done)
        try:
            await self._from_client()
        finally:
            for task in self.tasks + [lane.task for lane in self.lanes.values()]:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def _task_done(self, task: asyncio.Task) -> None:
        """A pump that fails ends its connection (both sides dropped), with one log line and no traceback."""
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            logger.warning("connection %d ended by %s: %s", self.planner.connection, type(exc).__name__, exc)
            self.abort()

    def abort(self) -> None:
        for connection in (self.client, self.upstream):
            if connection.state is not State.CLOSED:
                connection.transport.abort()

    # -- client -> upstream: untouched, but for coalesce -----------------------------------
    async def _from_client(self) -> None:
        client, upstream, planner = self.client, self.upstream, self.planner
        while True:
            deadline = planner.client_deadline
            try:
                if deadline is None:
                    kind, data = await client.recv_message()
                else:  # a coalesce group is held: it goes as it is when its wait is over
                    kind, data = await asyncio.wait_for(client.recv_message(), max(0.0, deadline - self.now()) / 1000.0)
            except asyncio.TimeoutError:
                await self._to_upstream(planner.flush_client(self.now()))
                continue
            except ConnectionClosed as exc:
                await self._to_upstream(planner.flush_client(self.now()))
                await self._mirror(upstream, exc, "client")
                return
            await self._to_upstream(planner.from_client(kind, data, self.now()))

    async def _to_upstream(self, actions) -> None:
        upstream = self.upstream
        for action in actions:
            if isinstance(action, Applied):
                self.proxy._record(action)
                continue
            frames = action.frames
            try:
                if len(frames) == 1:
                    await upstream.send(frames[0][1], text=frames[0][0] == "text")
                    continue
                # coalesce: every frame of the group framed by the protocol, then ONE transport.write
                async with upstream.send_context():
                    protocol = upstream.protocol
                    for kind, data in frames:
                        if kind == "text":
                            protocol.send_text(data)
                        else:
                            protocol.send_binary(data)
                    upstream.transport.write(b"".join(protocol.data_to_send()))
            except ConnectionClosed:
                pass  # the upstream is gone: _from_upstream closes the client once what is held is out

    # -- upstream -> client: through the planner ------------------------------------------
    async def _from_upstream(self) -> None:
        upstream, planner = self.upstream, self.planner
        while True:
            await self.room.wait()
            try:
                kind, data = await upstream.recv_message()
            except ConnectionClosed as exc:
                closed = exc
                break
            for action in planner.receive(kind, data, self.now()):
                await self._route(action)
            if planner.cut:
                return
        for action in planner.drain(self.now()):
            await self._route(action)
        for lane in list(self.lanes.values()):
            await asyncio.shield(lane.task)
        await self.out.put(self._close_for_client(closed))

    def _close_for_client(self, exc: ConnectionClosed) -> _Close:
        rcvd, sent = exc.rcvd, exc.sent
        if rcvd is not None and (sent is None or exc.rcvd_then_sent):
            return _Close(rcvd.code, rcvd.reason)
        if sent is not None:  # the proxy failed the upstream (a message over max_size, bad framing)
            return _Close(CLOSE_BAD_GATEWAY, f"agent-events proxy: the upstream connection failed ({sent.code})")
        return _Close(None)  # dropped without a close frame: so is the client

    async def _route(self, action) -> None:
        if isinstance(action, Applied):
            self.proxy._record(action)
            return
        lane_name = action.lane
        lane = self.lanes.get(lane_name) if lane_name is not None else None
        if lane is None and (lane_name is None or action.not_before <= self.now()):
            await self.out.put(action)
            return
        if lane is None:
            lane = self.lanes[lane_name] = _Lane(self, lane_name)
        lane.push(action)

    def hold(self, delta: int) -> None:
        self.held += delta
        if self.held > self.proxy.held_peak:
            self.proxy.held_peak = self.held
        if self.held >= self.proxy.max_held:
            self.room.clear()
        else:
            self.room.set()

    # -- the client writer ---------------------------------------------------------------
    async def _writer(self) -> None:
        client = self.client
        while True:
            item = await self.out.get()
            if isinstance(item, Cut):
                self.abort()
                return
            if isinstance(item, _Close):
                await self._close(client, item.code, item.reason)
                return
            if self.drip is not None:
                now = self.now()
                self.wire_free_at = max(now, self.wire_free_at) + len(item.data) * 1000.0 / self.drip
                await asyncio.sleep((self.wire_free_at - now) / 1000.0)
            try:
                await client.send(item.data, text=item.kind == "text")
            except ConnectionClosed:
                return

    # -- closing -------------------------------------------------------------------------------
    async def _mirror(self, other, exc: ConnectionClosed, side: str) -> None:
        rcvd, sent = exc.rcvd, exc.sent
        if rcvd is not None and (sent is None or exc.rcvd_then_sent):
            await self._close(other, rcvd.code, rcvd.reason)
        elif sent is not None:  # the proxy closed this side (a message over max_size, shutdown)
            await self._close(other, CLOSE_GOING_AWAY, f"agent-events proxy: the {side} connection closed ({sent.code})")
        else:
            await self._close(other, None, "")

    async def _close(self, connection, code: int | None, reason: str) -> None:
        """Close with ``code`` (1005: a close frame without a code), or drop without one (``None``)."""
        if connection.state is State.CLOSED:
            return
        if code is None:
            connection.transport.abort()
            return
        try:
            if code == 1005:
                async with connection.send_context():
                    connection.protocol.send_close()
            else:
                await connection.close(code, reason)
        except (ConnectionClosed, ValueError, Exception):  # noqa: BLE001 - a close that fails is a drop
            connection.transport.abort()


class _Lane:
    """The events of one run that wait (a delay, a stall), released in order, each not before its time."""

    def __init__(self, session: _Session, name: Any) -> None:
        self.session = session
        self.name = name
        self.items: collections.deque = collections.deque()
        self.task = session.loop.create_task(self._run())

    def push(self, action) -> None:
        self.items.append(action)
        self.session.hold(1)

    async def _run(self) -> None:
        session = self.session
        try:
            while self.items:
                item = self.items[0]
                wait = item.not_before - session.now()
                if wait > 0:
                    await asyncio.sleep(wait / 1000.0)
                self.items.popleft()
                session.hold(-1)
                await session.out.put(item)
        finally:
            if session.lanes.get(self.name) is self:
                del session.lanes[self.name]


class ProxyThread(LoopThread):
    """A :class:`FaultProxy` on its own event loop in a daemon thread, for sync code.

    ``url`` is set once :meth:`start` returns; :meth:`stop` closes it and joins
    the thread; :attr:`applied` lists the faults applied so far. Also a context manager.
    """

    thread_name = "agent-events-proxy"
    what = "the proxy"

    def __init__(self, upstream: str, faults: Iterable[str] = (), **options: Any) -> None:
        self.proxy = FaultProxy(upstream, faults, **options)
        super().__init__()

    @property
    def applied(self) -> list[dict]:
        return list(self.proxy.applied)

    async def _serve(self) -> str:
        return await self.proxy.start()

    async def _close(self) -> None:
        await self.proxy.stop()

    def stop(self) -> None:
        self._stop_and_join(self.proxy.close_timeout + 5.0)


def run_in_thread(upstream: str, faults: Iterable[str] = (), **options: Any) -> ProxyThread:
    """Start a :class:`FaultProxy` in a background thread; returns once it listens (``.url``)."""
    return ProxyThread(upstream, faults, **options).start()
