"""The server under load, seen from outside: its CPU and memory, or the process itself.

Why from outside: a load figure without the server's cost is half a figure
(20,000 events/s at 10 % of a core is not 20,000 events/s at 100 %), and
the endpoint may be any implementation, so all we can rely on is its pid.
psutil reads it without touching the server. :func:`spawn_server` starts a
server command that prints its URL on the first stdout line (as
``agent-events serve`` does), so ``load --spawn`` and the benchmarks
measure a process of their own, on its own core, not a thread sharing
the load generator's interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import AsyncIterator, Sequence

#: Seconds a spawned server gets to print its URL, then to shut down.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


class ServerGone(Exception):
    """The watched process does not exist (any more)."""


def _psutil():
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is in the [load] and [test] extras
        raise ImportError("server CPU/RSS needs psutil: pip install 'agent-events[load]'") from None
    return psutil


class ServerWatch:
    """CPU time and RSS of one process between :meth:`begin` and :meth:`end`.

    RSS is sampled (:meth:`sample`) with the number of runs in flight at that
    moment, so that memory per in-flight run is the growth at the peak
    divided by the runs that peak carried.
    """

    def __init__(self, pid: int) -> None:
        psutil = _psutil()
        try:
            self.process = psutil.Process(pid)
            self.process.cpu_times()
        except psutil.Error as exc:
            raise ServerGone(f"no process {pid} to watch ({exc})") from None
        self.pid = pid
        self._error = psutil.Error
        self._cpu0 = 0.0
        self._wall0 = 0.0
        self.rss_start = 0
        self.rss_peak = 0
        self.in_flight_peak = 0
        self.samples = 0
        self.gone = False

    def _cpu(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def begin(self) -> None:
        """Start measuring (after the warm-up: connections, imports and caches are not per-run costs)."""
        try:
            self._cpu0 = self._cpu()
            self.rss_start = self.rss_peak = self.process.memory_info().rss
        except self._error:
            self.gone = True
        self._wall0 = time.perf_counter()

    def sample(self, in_flight: int) -> None:
        if self.gone:
            return
        try:
            rss = self.process.memory_info().rss
        except self._error:
            self.gone = True
            return
        self.samples += 1
        if rss > self.rss_peak:
            self.rss_peak = rss
        if in_flight > self.in_flight_peak:
            self.in_flight_peak = in_flight

    def end(self) -> dict:
        wall = time.perf_counter() - self._wall0
        cpu = None
        rss_end = None
        if not self.gone:
            try:
                cpu = self._cpu() - self._cpu0
                rss_end = self.process.memory_info().rss
            except self._error:
                self.gone = True
        growth = self.rss_peak - self.rss_start
        return {
            "pid": self.pid,
            "cpu_seconds": None if cpu is None else round(cpu, 3),
            #: percent of one core over the measured window
            "cpu_percent": None if cpu is None or wall <= 0 else round(100.0 * cpu / wall, 1),
            "rss_start_bytes": self.rss_start,
            "rss_peak_bytes": self.rss_peak,
            "rss_end_bytes": rss_end,
            "in_flight_peak": self.in_flight_peak,
            "rss_growth_per_in_flight_run_bytes": round(growth / self.in_flight_peak) if self.in_flight_peak else None,
            "exited": self.gone,
        }


@dataclass
class SpawnedServer:
    url: str
    pid: int
    process: asyncio.subprocess.Process


class SpawnError(Exception):
    """The server command did not come up (its stderr tail says why)."""


def reference_agent_command(*args: str) -> list[str]:
    """``agent-events serve`` on a free loopback port, as a command line."""
    return [sys.executable, "-m", "agent_events.conformance.cli", "serve", "--host", "127.0.0.1", "--port", "0", *args]


@contextlib.asynccontextmanager
async def spawn_server(command: Sequence[str], *, start_timeout: float = START_TIMEOUT) -> AsyncIterator[SpawnedServer]:
    """Run ``command`` until the block ends; it must print its ws:// URL as its first stdout line."""
    with tempfile.TemporaryFile() as errors:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=errors)
        try:
            try:
                line = await asyncio.wait_for(process.stdout.readline(), start_timeout)
            except asyncio.TimeoutError:
                line = b""
            url = line.decode("utf-8", "replace").strip()
            if not url.startswith(("ws://", "wss://")):
                errors.seek(0)
                tail = errors.read()[-2000:].decode("utf-8", "replace").strip()
                raise SpawnError(f"{' '.join(command[:6])} ... did not print its URL within {start_timeout:g} s"
                                 + (f": {tail}" if tail else ""))
            yield SpawnedServer(url, process.pid, process)
        finally:
            await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    try:
        process.terminate()
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except ProcessLookupError:
        pass
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()


def spawn_reference_agent(*args: str, start_timeout: float = START_TIMEOUT):
    """A reference agent subprocess (``agent-events serve ARGS`` on 127.0.0.1, a free port)."""
    return spawn_server(reference_agent_command(*args), start_timeout=start_timeout)
