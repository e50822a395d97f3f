"""Settings of the reference agent server, shared by the CLI and the Python API.

One dataclass so that ``agent-events serve`` flags, ``agent_events.reference_agent.serve(...)``
keyword arguments and the docs all name the same knobs with the same defaults.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

DEFAULT_PORT = 8765


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    #: 0 picks a free port; the real one is in ``AgentServer.url``.
    port: int = DEFAULT_PORT
    #: Bearer token; ``None`` disables auth. Compared in constant time.
    token: str | None = None
    #: Accepted ``Origin`` header values (browsers); empty accepts any. A
    #: request without an Origin (non-browser clients) is always accepted,
    #: since Origin checks only defend browsers against cross-site use.
    allow_origins: tuple[str, ...] = ()
    #: A listening socket to serve on instead of binding ``host:port``
    #: (socket activation, or socket options such as a small SO_SNDBUF,
    #: which accepted connections inherit); ``host`` then only names the URL.
    sock: Any = None
    certfile: str | None = None
    keyfile: str | None = None
    #: Largest client message accepted, in bytes. A bigger one gets an
    #: ``error`` ``message_too_big`` and the connection stays usable; one more
    #: than ``HARD_SIZE_FACTOR`` times bigger is not even buffered: the
    #: connection closes with 1009 (message too big).
    max_message_size: int = 64 * 1024
    max_runs_per_connection: int = 16
    #: Open WebSocket connections. More get HTTP 503. Lowered at start-up (with a
    #: warning) when the process's file descriptor limit cannot hold it.
    max_connections: int = 1024
    #: TCP connections still in their opening handshake (they hold a file
    #: descriptor too). Past this, a new connection closes the oldest one that
    #: has not sent its request yet (or is closed itself when none is idle).
    max_pending_handshakes: int = 128
    #: Seconds a connection may take to complete its opening handshake.
    handshake_timeout: float = 10.0
    #: Outbound buffer per connection, in bytes. When a reader is slower than
    #: its runs, they wait once this is full (back-pressure, never drops).
    send_queue: int = 32 * 1024
    #: A connection whose outbound buffer stays full this long (seconds) is
    #: closed with 1008 and a reason; ``None`` or 0 never closes it.
    slow_reader_timeout: float | None = 10.0
    #: On shutdown, how long in-flight runs may take to finish (seconds)
    #: before they are cancelled.
    shutdown_timeout: float = 10.0
    #: How long a closing handshake may take before the TCP connection is
    #: dropped (seconds).
    close_timeout: float = 5.0
    #: Simulated model latency of the default offline planner (milliseconds).
    llm_delay_ms: float = 25.0
    #: A model call slower than this fails the primary path (milliseconds).
    llm_timeout_ms: float = 10_000.0
    #: A run still going after this many seconds is ended by the server.
    run_timeout: float | None = 25.0
    #: WebSocket keepalive ping interval (seconds); ``None`` disables it.
    ping_interval: float | None = 20.0
    #: permessage-deflate. Off by default: events are small and compressing
    #: each one costs more CPU than it saves on loopback or a LAN.
    compression: bool = False
    #: The protocol version spoken: "1.1" sends the ``capabilities`` message first on every
    #: connection and makes runs resumable; "1.0" does neither (a 1.0 server, for clients and tests).
    protocol_version: str = "1.1"
    #: 1.1 resume: how long a run outlives its dropped connection (seconds; 0 turns resume off),
    #: and how many of its latest events it keeps for the replay.
    resume_window_s: float = 30.0
    resume_buffer_events: int = 256
    #: 1.1 resume across processes and machines: the shared run log, ``redis://HOST:PORT/DB``
    #: (see :mod:`agent_events.reference_agent.redis_store`); ``None`` keeps each run's log in
    #: the process that runs it, which serves a resume only when it lands there.
    resume_store: str | None = None
    #: ``() -> BaseAgent``: builds the agent of each run. Default: an
    #: ``ActionsAgent`` using the offline planner with ``llm_delay_ms``.
    agent_factory: Callable[[], Any] | None = None
    #: ``(websocket, session) -> WebSocketBridgeAdapter``: builds the bridge of
    #: each run. Default: ``WebSocketBridgeAdapter``.
    bridge_factory: Callable[..., Any] | None = None
    #: Extra keyword arguments for ``websockets.asyncio.server.serve``.
    websockets_options: dict[str, Any] = field(default_factory=dict)

    #: See ``max_message_size``.
    HARD_SIZE_FACTOR = 4

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be 0..65535, not {self.port}")
        if self.protocol_version not in ("1.0", "1.1"):
            problems.append(f"protocol_version must be 1.0 or 1.1, not {self.protocol_version!r}")
        if not math.isfinite(self.resume_window_s) or self.resume_window_s < 0:
            problems.append(f"resume_window_s must be a finite number >= 0, not {self.resume_window_s}")
        for name in ("max_message_size", "max_runs_per_connection", "max_connections", "max_pending_handshakes",
                     "send_queue", "resume_buffer_events"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("shutdown_timeout", "close_timeout", "llm_delay_ms", "llm_timeout_ms", "handshake_timeout"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                problems.append(f"{name} must be a finite number >= 0, not {value}")
        # ``None`` (or 0, for the slow-reader timeout) turns these off; anything else
        # must be a real duration: NaN compares false with everything and would end
        # every run (or never end any).
        for name in ("slow_reader_timeout", "run_timeout", "ping_interval"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                problems.append(f"{name} must be a finite number >= 0 (or None), not {value}")
        if self.handshake_timeout == 0:
            problems.append("handshake_timeout must be above 0")
        if self.resume_store is not None:
            from agent_events.reference_agent.resume_store import check_url

            try:
                check_url(self.resume_store)
            except ValueError as exc:
                problems.append(f"resume_store must be {exc}")
        if self.keyfile and not self.certfile:
            problems.append("keyfile needs certfile")
        if self.token == "":
            problems.append("token must not be empty (omit it to disable auth)")
        if problems:
            raise ValueError("; ".join(problems))
        self.allow_origins = tuple(self.allow_origins)

    @property
    def resumable(self) -> bool:
        return self.protocol_version != "1.0" and self.resume_window_s > 0

    @property
    def scheme(self) -> str:
        return "wss" if self.certfile else "ws"

    def replace(self, **changes: Any) -> "ServerConfig":
        return dataclasses.replace(self, **changes)
