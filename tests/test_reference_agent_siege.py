"""Hostile clients against a server in its own process (issue #14).

* Worst-case messages at the size limit on one connection must not stall the
  event loop: another connection's ``time_sync`` round trip stays under 50 ms
  (the one latency bound in the suite; the issue asks for it. A stalled loop
  made it 16.7 s, so the bound is far from both the good case and the bad one).
* Out of file descriptors: the server fits its limits to ``RLIMIT_NOFILE`` at
  start-up, refuses what is past them cleanly (503 or a closed socket) and
  keeps its log quiet, where it once wrote half a million tracebacks.

The server runs as ``agent-events serve`` in a subprocess: its event loop is
then not shared with the test's clients, and its fd table can be limited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from agent_events import schemas
from agent_events.reference_agent import plans
from agent_events.reference_agent.actions import ActionsAgent
from agent_events.reference_agent.base import RunRequest
from agent_events.reference_agent.bridge import WebSocketBridgeAdapter
from agent_events.reference_agent.llm import OfflinePlanner
from agent_events.reference_agent.protocol import StartRun, parse_client_message
from test_reference_agent_support import arun, check_well_formed, connect, recv_until_completed, start_run

LIMIT = 64 * 1024  # the default max_message_size


@contextlib.contextmanager
def server_process(tmp_path: Path, *flags: str, preexec_fn=None):
    """``agent-events serve --port 0 FLAGS`` with its log (stderr) in a file: yields ``(url, log_path, pid)``."""
    log_path = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "AGENT_EVENTS_TOKEN"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent_events.conformance.cli", "serve", "--port", "0", "--log-level", "INFO", *flags],
            stdout=subprocess.PIPE, stderr=log, env=env, preexec_fn=preexec_fn)
    try:
        box: list[bytes] = []
        reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(20)
        assert box and box[0].startswith(b"ws://"), f"no URL line; log: {log_path.read_text(errors='replace')[-2000:]}"
        yield box[0].decode().strip(), log_path, proc.pid
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()


def health(url: str) -> dict:
    with urllib.request.urlopen(url.replace("ws://", "http://", 1) + "healthz", timeout=5) as response:
        return json.loads(response.read())


def log_text(path: Path) -> str:
    return path.read_text(errors="replace")


# -- worst-case messages, the event loop stays responsive ------------------------------

def frame_of(message: dict) -> str:
    return orjson.dumps(message).decode()


def fill(prefix: str, unit: str, suffix: str = "", limit: int = LIMIT) -> str:
    """A JSON frame of at most ``limit`` bytes: ``prefix`` + ``unit`` repeated + ``suffix``."""
    room = limit - len(prefix.encode()) - len(suffix.encode())
    return prefix + unit * (room // len(unit.encode())) + suffix


def worst_case_frames(limit: int = LIMIT) -> list[str]:
    """Client messages of at most ``limit`` bytes built to make a server work hard."""

    def start_run_with_input(unit: str, head: str = "", tail: str = "") -> str:
        """A start_run whose input is ``head`` + ``unit`` repeated + ``tail``, as big as the limit allows."""
        escaped = json.dumps(unit)[1:-1]
        return fill('{"type":"start_run","input":"' + json.dumps(head)[1:-1], escaped,
                    json.dumps(tail)[1:-1] + '"}', limit)

    def deep(depth: int) -> str:
        return "[" * depth + "]" * depth

    depth = min(1021, limit // 64)  # 1,021: the parser's limit of 1,024 levels, the message's own included
    frames = [
        start_run_with_input(" ", "a", "b"),                     # one whitespace run (issue #14: 16.7 s)
        start_run_with_input("\t \r", "a", "b"),
        start_run_with_input(" ", "x", "and y z"),
        start_run_with_input("y", "x and ", " "),                # a long word after "and"
        start_run_with_input("x and "),
        start_run_with_input(" and "),
        start_run_with_input(", "),
        start_run_with_input(",   and   "),
        start_run_with_input("also ", "", "reduce costs"),        # lead-ins stripped one at a time
        start_run_with_input("please help me to ", "", "reduce costs"),
        start_run_with_input("create a plan to ", "", "reduce costs"),
        start_run_with_input("a"),                               # one long token
        start_run_with_input("a b. "),
        start_run_with_input("a."),
        start_run_with_input("\n"),
        start_run_with_input("1. step - why\n"),
        start_run_with_input("\u00e9\u4e2d "),                   # multi-byte characters
        '{"type":"start_run","input":' + deep(depth) + "}",     # nesting (issue #14: traceback per message)
        '{"type":"start_run","input":"x","run_id":' + deep(depth) + "}",
        '{"type":"start_run","input":"x","options":{"simulate_failure":' + deep(depth) + "}}",
        '{"type":"time_sync","client_time_ms":' + deep(depth) + "}",
        '{"type":' + deep(depth) + "}",
        '{"type":"cancel_run","run_id":' + deep(depth) + "}",
        fill('{"type":"start_run","input":[', "[[[]]],", "0]}", limit),  # wide and nested
        fill('{"type":"start_run","input":"x",', '"k":0,', '"z":0}', limit),  # one key repeated
        fill('{"type":"start_run","input":"x","options":{', '"k":[[]],', '"z":0}}', limit),
        fill('{"type":"start_run","input":"x","run_id":"', "r", '"}', limit),  # run_id far past maxLength
        fill('{"type":"', "t", '"}', limit),                      # a long unknown type
        fill('{"type":"cancel_run","run_id":"', "r", '"}', limit),
        '{"type":"time_sync","client_time_ms":' + "9" * 300 + "}",  # a huge number
        fill("", "[", "", limit),                                # JSON the parser refuses
        fill('"', "a", "", limit),
        '{"type":"start_run","input":"x","extra":' + '{"a":' * depth + "0" + "}" * depth + "}",
        "{" + ",".join(f'"k{n}":{n}' for n in range(limit // 14)) + ',"type":"start_run","input":"x"}',  # many keys
    ]
    for frame in frames:
        assert len(frame.encode()) <= limit, (frame[:60], len(frame.encode()))
    return frames


#: The prober: ``time_sync`` round trips on a connection of its own, in a process of its own (in
#: a thread of the test process it would measure the GIL hand-offs with the attacking client),
#: until its stdin closes; then it prints its samples, ``[monotonic time sent, round trip s]``.
PROBER = r"""
import json, sys, threading, time
from websockets.sync.client import connect
samples, done = [], threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
with connect(sys.argv[1], subprotocols=[sys.argv[2]], open_timeout=10) as ws:
    print("ready", flush=True)
    n = 0
    while not done.is_set() and n < 20000:
        n += 1
        sent = time.monotonic()
        ws.send(json.dumps({"type": "time_sync", "client_time_ms": n}))
        reply = json.loads(ws.recv(timeout=30))
        while reply["type"] != "time_sync":  # what the server sends first (1.1: capabilities)
            reply = json.loads(ws.recv(timeout=30))
        assert reply["client_time_ms"] == n, reply
        samples.append([sent, time.monotonic() - sent])
        done.wait(0.002)
print(json.dumps(samples), flush=True)
"""


@contextlib.contextmanager
def prober(url: str):
    """Yields a function that stops the prober and returns its samples."""
    proc = subprocess.Popen([sys.executable, "-c", PROBER, url, schemas.SUBPROTOCOL], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(20)
        assert box and box[0].strip() == "ready", f"the prober did not start: {proc.stderr.read() if proc.poll() is not None else ''}"

        def stop() -> list[tuple[float, float]]:
            out, err = proc.communicate("", timeout=60)
            assert proc.returncode == 0, err[-2000:]
            return [tuple(sample) for sample in json.loads(out.strip().splitlines()[-1])]
        yield stop
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class NullConnection:
    """Where a run's events go when only the work of producing them is measured."""

    async def send(self, data, text=True) -> None:
        pass


def handle(frame: str) -> None:
    """What the server does with one client message, without the socket: parse it and, for a
    start_run, run the default agent to its end (the model answers at once)."""
    message = parse_client_message(frame)
    if isinstance(message, StartRun):
        agent = ActionsAgent(OfflinePlanner(0))
        agent.set_websocket_bridge(WebSocketBridgeAdapter(NullConnection()), "r")
        asyncio.run(agent.run(RunRequest("r", message.input, message.options)))


def python_calls(function, *args) -> int:
    """Python and C function calls made by ``function(*args)``: an operation count, not a time."""
    calls = 0

    def profile(frame, event, arg) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(profile)
    try:
        function(*args)
    finally:
        sys.setprofile(None)
    return calls


def test_the_work_per_message_grows_linearly_with_its_size():
    """Each worst-case message, at 8 KiB and at 64 KiB: the second may cost at most about 8 times
    the first in function calls (quadratic work would cost 64 times). The regexes' own steps are
    not calls; test_reference_agent_hostile.py counts what they scan."""
    small, large = worst_case_frames(LIMIT // 8), worst_case_frames(LIMIT)
    plans.extract_goals.cache_clear()
    for little, big in zip(small, large):
        handle(little)  # warm caches and imports
        counts = (python_calls(handle, little), python_calls(handle, big))
        assert counts[1] <= 10 * counts[0] + 2000, (big[:60], counts)


async def attack(url: str, frames: list[str], rounds: int) -> tuple[float, float, dict[str, int]]:
    """Send ``frames`` ``rounds`` times on one connection (reading everything the server sends);
    returns the monotonic times the attack began and ended, and the replies by type."""
    replies = {"error": 0, "agent_completed": 0, "time_sync": 0, "rounds": 0}
    async with connect(url, max_size=None, max_queue=None) as ws:
        async def drain():
            async for frame in ws:
                message = orjson.loads(frame)
                kind = message["type"]
                if kind in replies:
                    replies[kind] += 1
                if kind == "time_sync" and message["client_time_ms"] == -1:  # the end of a round
                    replies["rounds"] += 1
        reader = asyncio.create_task(drain())
        began = time.monotonic()
        for round_ in range(rounds):
            for frame in frames:
                await ws.send(frame)
            await ws.send(json.dumps({"type": "time_sync", "client_time_ms": -1}))
            async with asyncio.timeout(60):
                while replies["rounds"] <= round_:
                    await asyncio.sleep(0.005)
        ended = time.monotonic()
        reader.cancel()
    return began, ended, replies


#: Attacks measured before giving up. A server that holds its loop on some message fails every
#: one of them (each sends every worst-case frame four times, and a round trip is under way
#: most of the time); the scheduler of a loaded 2-core machine delays a process by tens of
#: milliseconds now and then, which one attack in a few meets: the best attack is the measure.
ATTEMPTS = 3


def test_worst_case_messages_at_the_size_limit_never_stall_another_connection(tmp_path):
    frames = worst_case_frames()
    rounds = 4
    worst: list[str] = []
    with server_process(tmp_path, "--llm-delay-ms", "0", "--max-runs-per-connection", "256",
                        "--run-timeout", "0") as (url, log_path, _pid):
        for _attempt in range(ATTEMPTS):
            with prober(url) as stop_prober:
                began, ended, replies = arun(attack(url, frames, rounds), timeout=120)
                samples = stop_prober()
            during = sorted(rtt for sent, rtt in samples if began <= sent <= ended)
            assert len(during) >= 5, f"the attack ({(ended - began) * 1000:.0f} ms) overlapped only {len(during)} round trips"
            assert replies["rounds"] == rounds and replies["error"] >= rounds * 15, replies
            worst.append(f"max {during[-1] * 1000:.1f} ms, median {during[len(during) // 2] * 1000:.1f} ms "
                         f"of {len(during)} round trips in {(ended - began) * 1000:.0f} ms")
            if during[-1] < 0.050:
                break
        log = log_text(log_path)

    assert during[-1] < 0.050, f"a time_sync round trip took over 50 ms during every attack: {worst}"
    assert "Traceback" not in log, log[-3000:]


# -- file descriptors ----------------------------------------------------------------

def limit_fds(soft: int, hard: int | None = None):
    def preexec() -> None:
        current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, current_hard if hard is None else hard))
    return preexec


def bare_sockets(port: int, count: int) -> list[socket.socket]:
    """Up to ``count`` TCP connections that never send a byte (a handshake that never ends).

    A connect that finds the server's accept queue full waits for the kernel's SYN
    retransmission (1 s); a short timeout skips it, so this takes a second or two, not 15.
    """
    sockets = []
    deadline = time.monotonic() + 30
    for _ in range(3 * count):
        if len(sockets) == count or time.monotonic() > deadline:
            break
        sock = socket.socket()
        sock.settimeout(0.3)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sockets.append(sock)
        time.sleep(0.001)
    return sockets


async def outcome(url: str) -> str:
    """How a client fares: "open", "503", "refused" (closed or reset), never a hang."""
    try:
        async with asyncio.timeout(10):
            async with connect(url, open_timeout=8) as ws:
                await ws.send(json.dumps({"type": "time_sync", "client_time_ms": 1}))
                await ws.recv()
                return "open"
    except InvalidStatus as exc:
        return str(exc.response.status_code)
    except (InvalidHandshake, ConnectionClosed, OSError, EOFError):
        return "refused"


def test_with_few_file_descriptors_the_server_lowers_its_limits_refuses_cleanly_and_stays_quiet(tmp_path):
    with server_process(tmp_path, "--llm-delay-ms", "0", preexec_fn=limit_fds(160, 160)) as (url, log_path, _pid):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        limits = health(url)["limits"]
        assert limits["fd_limit"] == 160
        assert limits["max_connections"] + limits["max_pending_handshakes"] < 160
        bare = bare_sockets(port, 200)  # more than the fd table holds
        assert len(bare) > 160, len(bare)
        try:
            async def during_flood():
                return [await outcome(url) for _ in range(3)]
            flooded = arun(during_flood(), timeout=60)
        finally:
            for sock in bare:
                sock.close()

        async def after():
            # the bare sockets are gone: slots free up (bounded wait)
            async with asyncio.timeout(20):
                while health(url)["connections_pending"] > 1:  # the /healthz request is pending itself
                    await asyncio.sleep(0.05)
            opened = []
            try:
                for n in range(limits["max_connections"]):
                    opened.append(await connect(url).__aenter__())
                past = await outcome(url)
            finally:
                for ws in opened:
                    await ws.close()
            async with connect(url) as ws:
                await ws.send(start_run("after"))
                runs, _ = await recv_until_completed(ws, ["after"])
            return past, runs["after"]

        past, events = arun(after(), timeout=90)
        log = log_text(log_path)

    assert flooded == ["open"] * 3, flooded  # idle connections hold every handshake slot, yet a client gets in
    assert past == "503"
    check_well_formed(events)
    assert "Traceback" not in log, log[-3000:]
    lines = log.splitlines()
    loud = [line for line in lines if " WARNING " in line or " ERROR " in line or " CRITICAL " in line]
    assert len(loud) <= 3, loud  # the fd line, one "refusing connections" line; INFO has a line per connection
    fd_lines = [line for line in lines if "file descriptor" in line]
    assert len(fd_lines) == 1 and "160" in fd_lines[0], fd_lines


def test_the_server_raises_its_soft_fd_limit_when_the_hard_limit_allows(tmp_path):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard fd limit ({hard}) is too low to raise the soft one to what 1024 connections need")
    with server_process(tmp_path, "--llm-delay-ms", "0", preexec_fn=limit_fds(256)) as (url, log_path, _pid):
        limits = health(url)["limits"]
        log = log_text(log_path)
    assert limits["max_connections"] == 1024
    assert limits["fd_limit"] > 1024 + limits["max_pending_handshakes"]
    fd_lines = [line for line in log.splitlines() if "file descriptor" in line]
    assert len(fd_lines) == 1 and "raised" in fd_lines[0], fd_lines
