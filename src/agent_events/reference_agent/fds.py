"""File descriptors: fit the connection limits to ``RLIMIT_NOFILE`` at start-up.

Every open connection is a file descriptor, and so is every connection still
in its opening handshake. When the process runs out, ``accept()`` fails with
EMFILE, asyncio logs a traceback and retries, and clients time out instead of
being told no (issue #14: 552,977 tracebacks in two minutes with 256 fds).
So the server never lets its limits exceed the descriptors it has: at
start-up it raises the soft limit up to the hard one when that is enough,
and otherwise lowers its own limits to what fits, saying so in one log line.

The budget: ``max_connections`` + ``max_pending_handshakes`` + ``backlog``
(asyncio accepts up to that many sockets in one go before the server sees
any of them) + the descriptors already open + ``SERVER_FDS`` to spare.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

try:
    import resource
except ImportError:  # pragma: no cover - Windows: no RLIMIT_NOFILE to fit
    resource = None  # type: ignore[assignment]

#: Descriptors kept free for the server itself (a certificate file, a log file reopened, DNS).
SERVER_FDS = 16
#: The listen backlog, also the most connections asyncio accepts in one event-loop turn.
DEFAULT_BACKLOG = 100


@dataclass(frozen=True)
class FdBudget:
    max_connections: int
    max_pending_handshakes: int
    backlog: int
    #: The soft RLIMIT_NOFILE once fitted; ``None`` when the platform has none.
    fd_limit: int | None
    #: The one line to log when something was changed, else ``None``.
    message: str | None = None
    #: True when the limits were lowered (the line is a warning), False when only raised.
    lowered: bool = False


def open_fds() -> int:
    """Descriptors open in this process now (an estimate where /proc and /dev/fd are missing)."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder))
        except OSError:
            continue
    return 32  # pragma: no cover


def fit(max_connections: int, max_pending_handshakes: int, backlog: int = DEFAULT_BACKLOG, *,
        in_use: int | None = None, rlimit=None) -> FdBudget:
    """The limits that fit this process's descriptors, raising the soft limit when allowed.

    ``rlimit`` is ``(getrlimit, setrlimit)`` (the ``resource`` module's, by default), for tests.
    """
    if rlimit is None:
        if resource is None:  # pragma: no cover
            return FdBudget(max_connections, max_pending_handshakes, backlog, None)
        rlimit = (resource.getrlimit, resource.setrlimit)
    getrlimit, setrlimit = rlimit
    infinity = resource.RLIM_INFINITY if resource is not None else -1
    soft, hard = getrlimit(resource.RLIMIT_NOFILE)
    in_use = open_fds() if in_use is None else in_use
    need = max_connections + max_pending_handshakes + backlog + in_use + SERVER_FDS
    if soft == infinity or soft >= need:
        return FdBudget(max_connections, max_pending_handshakes, backlog, None if soft == infinity else soft)
    wanted = need if hard == infinity else min(need, hard)
    original = soft
    if wanted > soft:
        try:
            setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = getrlimit(resource.RLIMIT_NOFILE)[0]
        except (ValueError, OSError):
            pass
    wants = (f"--max-connections {max_connections} with {max_pending_handshakes} pending handshakes needs "
             f"{need} file descriptors ({in_use} open already)")
    if soft >= need:
        return FdBudget(max_connections, max_pending_handshakes, backlog, soft,
                        f"raised the soft file descriptor limit from {original} to {soft}: {wants}")
    available = max(3, soft - in_use - SERVER_FDS)
    backlog = max(1, min(backlog, available // 8))
    rest = max(2, available - backlog)
    pending = max(1, min(max_pending_handshakes, rest // 4))
    connections = max(1, min(max_connections, rest - pending))
    hard_text = "unlimited" if hard == infinity else str(hard)
    return FdBudget(connections, pending, backlog, soft,
                    f"the file descriptor limit is {soft} (hard limit {hard_text}) but {wants}: serving at most "
                    f"{connections} connections and {pending} pending handshakes; raise the limit "
                    f"(ulimit -n) or lower --max-connections to silence this", lowered=True)
