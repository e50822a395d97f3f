"""Where a resumable run's log lives: the interface, and the embedded (in-process) store.

Why a store at all: a resume may land on any process behind the same URL (``serve
--workers N``, or replicas behind a load balancer), and the replay buffer of
:mod:`agent_events.reference_agent.resume` lives in the process that runs the run. A server
declares ``resume`` only when a reconnect can be served wherever it lands:

* one process, no store: the in-process buffers (:class:`MemoryStore`), the embedded default;
* several processes and a shared store (``--resume-store redis://...``,
  :mod:`agent_events.reference_agent.redis_store`): any of them serves a resume;
* several processes and no store: resume is **not declared** (:func:`plan_workers`), and the
  start-up log says why, rather than a capabilities message that a reconnect then breaks.

The store never replaces the in-process buffer: the process that runs a run (its *owner*)
still keeps it, so a resume that lands on the owner costs what it always did; the shared log
is for a resume that lands elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_events.reference_agent.resume import ResumeRegistry

if TYPE_CHECKING:  # pragma: no cover
    from agent_events.reference_agent.config import ServerConfig
    from agent_events.reference_agent.protocol import ProtocolError, ResumeRun

#: The environment variable read by ``agent-events serve`` when ``--resume-store`` is not given.
RESUME_STORE_ENV = "AGENT_EVENTS_RESUME_STORE"
#: URL schemes of the stores this package can open.
SCHEMES = ("redis", "rediss")


class StoreUnavailable(Exception):
    """The shared store cannot be reached (at start-up: ``agent-events serve`` exits 3)."""


class MemoryStore:
    """The embedded store: each run's log is its owner's in-process buffer, nothing is shared.

    Only a resume that reaches the process that ran the run can be served, so it is honest
    for one process only (see :func:`plan_workers`)."""

    shared = False
    url: str | None = None

    def make_registry(self, window_s: float, buffer_events: int, max_detached: int | None,
                      quiet_log: Any = None) -> ResumeRegistry:
        return ResumeRegistry(window_s, buffer_events, max_detached)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def resume_elsewhere(self, session: Any, message: "ResumeRun") -> "ProtocolError | None | bool":
        """A resume of a run this process does not hold: ``False`` (not known here either)."""
        return False

    def describe(self) -> dict[str, Any]:
        return {"kind": "memory", "shared": False}


def open_store(config: "ServerConfig") -> Any:
    """The store ``config.resume_store`` names (``None``: the embedded one)."""
    url = config.resume_store
    if not url:
        return MemoryStore()
    RedisStore = _redis_module().RedisStore  # redis is imported only when used

    return RedisStore(url, window_s=config.resume_window_s, buffer_events=config.resume_buffer_events)


def check_url(url: str) -> str:
    """``url`` if it names a store this package can open; ValueError saying what was expected."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES or not rest:
        raise ValueError(f"a resume store URL redis://HOST:PORT/DB (or rediss://), not {url!r}")
    return url


def plan_workers(config: "ServerConfig", workers: int) -> tuple["ServerConfig", str | None]:
    """The config each of ``workers`` processes serves, and the one start-up line that explains a
    feature turned off: several processes without a shared store cannot serve a reconnect that
    lands on another one, so they do not declare resume."""
    if workers <= 1 or config.resume_store or not config.resumable:
        return config, None
    return config.replace(resume_window_s=0.0), (
        f"resume is off: with --workers {workers} a reconnect may land on another worker, which cannot "
        "see the run's events; give --resume-store redis://HOST:PORT/DB (or $" + RESUME_STORE_ENV + ") "
        "to share them, and every worker declares resume")


async def ping(url: str, timeout: float = 3.0) -> None:
    """Raise :class:`StoreUnavailable` unless the store at ``url`` answers (for a start-up check)."""
    await _redis_module().ping(url, timeout)


class StoreMissing(ValueError):
    """A store URL whose client library is not installed (a usage error: exit 2)."""


def _redis_module():
    try:
        from agent_events.reference_agent import redis_store
    except ImportError as exc:  # pragma: no cover - the test extra installs redis
        raise StoreMissing(f"a redis:// resume store needs the redis package: pip install 'agent-events[redis]' "
                           f"({exc})") from None
    return redis_store
