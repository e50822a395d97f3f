"""An asyncio server on its own event loop in a daemon thread, for sync callers (tests, scripts).

The reference agent and the fault proxy both offer ``run_in_thread``; the thread, the start-up
handshake (an error raised while starting is re-raised in the caller) and the graceful stop
are this one class. Not part of ``conformance``: the reference agent may use it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class LoopThread:
    """Subclasses implement :meth:`_serve` (start, return the URL) and :meth:`_close` (stop)."""

    #: what the thread is called, and what the start-up timeout message names
    thread_name = "agent-events"
    what = "the server"

    def __init__(self) -> None:
        self.url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=self.thread_name, daemon=True)

    async def _serve(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self, timeout: float = 10.0):
        """Start serving and return once listening (idempotent)."""
        if self._thread.ident is not None:
            return self
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self.what} did not start within {timeout} s")
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._amain())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._error = exc
            self._ready.set()

    async def _amain(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.url = await self._serve()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def call(self, coroutine_function, timeout: float = 5.0) -> Any:
        """Run ``coroutine_function()`` on the server's own loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine_function(), self._loop).result(timeout)

    def _stop_and_join(self, join_timeout: float) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(join_timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stop(self) -> None:  # pragma: no cover - overridden
        self._stop_and_join(10.0)
