"""Hostile clients (issue #14): no input may stall, crash or confuse the reference agent.

Each test here pins one attack that once worked: nested JSON that crashed the
error formatting, a doubled ``Authorization`` header that gave HTTP 500, a
client that guessed the next server-generated run id. The attacks that need a
process of their own (a stalled event loop, an exhausted fd table) are in
``test_reference_agent_siege.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from pathlib import Path

import pytest

from agent_events import schemas
from agent_events.reference_agent import fds, plans
from agent_events.reference_agent.config import ServerConfig
from agent_events.reference_agent.protocol import ProtocolError, StartRun, parse_client_message
from test_reference_agent_support import (
    FAST, agent, arun, check_well_formed, connect, recv, recv_until_completed, start_run, wait_for,
)

TOKEN = "s3cret-t0ken"
ERROR = schemas.validator("error")


# -- logs ---------------------------------------------------------------------------

class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        return [line for record in self.records for line in formatter.format(record).splitlines()]


@contextlib.contextmanager
def server_log(level: int = logging.INFO):
    """What the server's loggers (ours, websockets', asyncio's) write at ``level`` and above."""
    handler = _Records()
    loggers = [logging.getLogger(name) for name in ("reference_agent", "websockets", "asyncio")]
    saved = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(level)
    try:
        yield handler
    finally:
        for logger, old in saved:
            logger.removeHandler(handler)
            logger.setLevel(old)


def assert_no_traceback(log: _Records) -> None:
    assert not [r for r in log.records if r.exc_info], [r.getMessage() for r in log.records if r.exc_info]
    assert not [line for line in log.lines() if "Traceback" in line]


# -- 2. deeply nested JSON ------------------------------------------------------------

def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "0" + "}" * depth


NESTED = [
    # (template, expected code, expected details.path or None)
    ('{"type": "start_run", "input": %s}', "invalid_message", "/input"),
    ('{"type": "start_run", "input": "x", "run_id": %s}', "invalid_message", "/run_id"),
    ('{"type": "start_run", "input": "x", "options": %s}', "invalid_message", "/options"),
    ('{"type": "start_run", "input": "x", "options": {"simulate_failure": %s}}',
     "invalid_message", "/options/simulate_failure"),
    ('{"type": "time_sync", "client_time_ms": %s}', "invalid_message", "/client_time_ms"),
    ('{"type": "cancel_run", "run_id": %s}', "invalid_message", "/run_id"),
    ('{"type": %s}', "unknown_type", None),
    ('{"type": "start_run", "input": "x", "extra": %s}', "invalid_message", "/extra"),
]


@pytest.mark.parametrize("depth", [1000, 1021])  # the parser's limit is 1024 levels, the message included
@pytest.mark.parametrize("template, code, path", NESTED, ids=[p or c for _, c, p in NESTED])
def test_deeply_nested_values_parse_to_their_documented_error(template, code, path, depth):
    for value in (nested(depth), nested_objects(depth), nested(depth // 2, "{\"a\":[", "]}")):
        frame = template % value
        parsed = parse_client_message(frame)
        if path == "/options" and value.startswith("{"):  # options is an open object: any object is valid
            assert isinstance(parsed, StartRun)
            continue
        assert isinstance(parsed, ProtocolError), parsed
        assert parsed.code == code
        message = parsed.to_message()
        assert not list(ERROR.iter_errors(message)), message
        if path is not None:
            assert message["details"]["path"] == path
        assert len(parsed.encode()) < 8192


def test_nesting_past_what_json_parsers_accept_is_invalid_json():
    assert parse_client_message('{"type": "start_run", "input": %s}' % nested(5000)).code == "invalid_json"


def test_nested_json_on_the_wire_gets_errors_no_traceback_and_no_log_growth():
    frames = [template % nested(1021) for template, _, _ in NESTED] * 25

    async def body():
        with server_log() as log:
            async with agent(**FAST) as server, connect(server.url) as ws:
                replies = []
                for frame in frames:
                    await ws.send(frame)
                    replies.append(await recv(ws))
                await ws.send(start_run("after"))
                runs, _ = await recv_until_completed(ws, ["after"])
            return replies, runs["after"], log

    replies, events, log = arun(body())
    expected = [code for _, code, _ in NESTED] * 25
    assert [reply["code"] for reply in replies] == expected
    check_well_formed(events)
    assert_no_traceback(log)
    warnings = [r.getMessage() for r in log.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 1, warnings  # 200 bad messages; at most one line in all


def test_repeated_internal_errors_are_rate_limited_one_line_each_and_no_traceback():
    def broken_factory():
        raise RuntimeError("factory exploded")

    async def body():
        with server_log() as log:
            async with agent(agent_factory=broken_factory, **FAST) as server, connect(server.url) as ws:
                codes = []
                for n in range(40):
                    await ws.send(start_run(f"r{n}"))
                    codes.append((await recv(ws))["code"])
            return codes, log

    codes, log = arun(body())
    assert codes == ["internal_error"] * 40
    assert_no_traceback(log)
    warnings = [line for line in log.lines() if not line.startswith("INFO ")]
    assert 1 <= len(warnings) <= 2, warnings
    assert "factory exploded" in warnings[0]


# -- 3. Authorization headers ------------------------------------------------------------

def raw_handshake(port: int, headers: list[tuple[str, str]], path: str = "/") -> tuple[int, bytes]:
    """The HTTP status of a hand-written upgrade request (any headers, repeated or odd)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
             *(f"{name}: {value}" for name, value in headers)]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received and len(received) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", received)
    assert match, f"no HTTP status line: {received[:200]!r}"
    return int(match.group(1)), received


BAD_AUTH = [
    [("Authorization", f"Bearer {TOKEN}"), ("Authorization", f"Bearer {TOKEN}")],
    [("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer wrong")],
    [("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {TOKEN}")],
    [("Authorization", "Bearer")],
    [("Authorization", "Bearer ")],
    [("Authorization", "")],
    [("Authorization", "Basic")],
    [("Authorization", "Bearer \u00ff\u00fe")],
    [("Authorization", "Bearer " + "x" * 4000)],
    [("Authorization", f"Bearer {TOKEN}"), ("authorization", f"bearer {TOKEN}")],
]


@pytest.mark.parametrize("headers", BAD_AUTH, ids=range(len(BAD_AUTH)))
def test_bad_or_repeated_authorization_headers_get_401_never_500(headers):
    async def body():
        with server_log() as log:
            async with agent(token=TOKEN, **FAST) as server:
                status, response = await asyncio.to_thread(raw_handshake, server.port, headers)
                good, _ = await asyncio.to_thread(
                    raw_handshake, server.port, [("Authorization", f"Bearer {TOKEN}")])
            return status, response, good, log

    status, response, good, log = arun(body())
    assert status == 401, response[:300]
    assert b"WWW-Authenticate: Bearer" in response
    assert good == 101
    assert_no_traceback(log)


@pytest.mark.parametrize("query", [f"token={TOKEN}&token={TOKEN}", f"token=wrong&token={TOKEN}", "token=",
                                   "token=%ff%fe", "token"])
def test_repeated_or_odd_token_parameters_get_401_never_500(query):
    async def body():
        with server_log() as log:
            async with agent(token=TOKEN, **FAST) as server:
                status, response = await asyncio.to_thread(raw_handshake, server.port, [], f"/?{query}")
            return status, response, log

    status, response, log = arun(body())
    assert status == 401, response[:300]
    assert_no_traceback(log)


def test_repeated_authorization_headers_are_harmless_without_a_token():
    async def body():
        async with agent(**FAST) as server:
            return await asyncio.to_thread(raw_handshake, server.port, [("Authorization", "a"), ("Authorization", "b")])

    assert arun(body())[0] == 101


# -- 4. server-generated run ids -----------------------------------------------------

async def collect_runs(ws, count: int, timeout: float = 10.0) -> tuple[dict[str, list[dict]], list[dict]]:
    """Events by run_id until ``count`` runs have completed, and the errors in between."""
    runs: dict[str, list[dict]] = {}
    errors: list[dict] = []
    completed = 0
    async with asyncio.timeout(timeout):
        while completed < count:
            message = await recv(ws)
            if message["type"] == "error":
                errors.append(message)
                completed += 1  # a refused start_run ends nothing, but is an answer
                continue
            runs.setdefault(message["run_id"], []).append(message)
            completed += message["type"] == "agent_completed"
    return runs, errors


def test_a_generated_run_id_never_collides_with_a_client_chosen_one_in_flight():
    async def body():
        async with agent(llm_delay_ms=400, max_runs_per_connection=8) as server, connect(server.url) as ws:
            await ws.send(start_run(None))
            first = (await recv(ws))["run_id"]
            prefix, number = first.rsplit("_", 1)
            guessed = [f"{prefix}_{int(number) + k}" for k in range(1, 4)]
            for run_id in guessed:  # a client takes the server's next ids for itself ...
                await ws.send(start_run(run_id))
            await ws.send(start_run(None))  # ... then asks the server for one
            runs, errors = await collect_runs(ws, 5)
            return first, guessed, runs, errors

    first, guessed, runs, errors = arun(body())
    assert errors == [], errors
    generated = set(runs) - {first, *guessed}
    assert len(runs) == 5 and len(generated) == 1, sorted(runs)
    for run_id, events in runs.items():
        if run_id != first:  # the first run's agent_started was read before collecting
            check_well_formed(events)


def test_generated_run_ids_skip_every_id_in_flight():
    async def body():
        async with agent(llm_delay_ms=400, max_runs_per_connection=16) as server, connect(server.url) as ws:
            await ws.send(start_run(None))
            first = (await recv(ws))["run_id"]
            prefix, number = first.rsplit("_", 1)
            taken = [f"{prefix}_{int(number) + k}" for k in (1, 2, 3, 5, 6, 9, 10)]
            for run_id in taken:
                await ws.send(start_run(run_id))
            for _ in range(5):
                await ws.send(start_run(None))
            runs, errors = await collect_runs(ws, 13)
            return first, taken, runs, errors

    first, taken, runs, errors = arun(body())
    assert errors == []
    assert len(runs) == 13 and set(taken) | {first} <= set(runs), sorted(runs)
    for run_id, events in runs.items():
        assert [e["type"] for e in events].count("agent_started") == (run_id != first), run_id


# -- 1. the goal extraction is linear --------------------------------------------------

class CountingPattern:
    """A compiled pattern that counts the characters it is handed (an operation count, not a time)."""

    def __init__(self, pattern: re.Pattern) -> None:
        self.pattern = pattern
        self.scanned = 0

    def __getattr__(self, name):
        method = getattr(self.pattern, name)

        def counted(*args, **kwargs):
            self.scanned += len(text_of(name, args)) - position_of(name, args, kwargs)
            return method(*args, **kwargs)
        return counted


def text_of(method: str, args: tuple) -> str:
    """The text a ``re.Pattern`` method scans (``sub(repl, string)`` takes it second)."""
    return args[1] if method in ("sub", "subn") else args[0]


def position_of(method: str, args: tuple, kwargs: dict) -> int:
    if method in ("match", "search", "fullmatch", "finditer", "findall") and len(args) > 1:
        return args[1]
    return kwargs.get("pos", 0)


def worst_case_requests(size: int) -> dict[str, str]:
    """Requests built to make a backtracking regex or a strip-until-stable loop work hard."""
    return {
        "spaces": "a" + " " * size + "b",
        "tabs and newlines": "a" + "\t \r" * (size // 3) + "b",
        "space before and": "x" + " " * size + "and y z",
        "and with long word": "x and " + "y" * size,
        "and runs": "x and " * (size // 6),
        "and and and": "x " + " and " * (size // 5) + "y z",
        "comma runs": ", " * (size // 2),
        "comma and": ",   and   " * (size // 10),
        "lead-ins": "also " * (size // 5) + "reduce costs",
        "please help": "please help me to " * (size // 18) + "reduce costs",
        "plan lead-ins": "create a plan to " * (size // 17) + "reduce costs",
        "long token": "a" * size,
        "many clauses": "a b. " * (size // 5),
        "tiny clauses": "a." * (size // 2),
        "newline runs": "\n" * size,
    }


def test_goal_extraction_scans_each_character_a_bounded_number_of_times(monkeypatch):
    """Operation count, no clock: the characters handed to the regexes grow linearly with the request."""
    counters = {}
    for name, value in list(vars(plans).items()):
        if isinstance(value, re.Pattern):
            counters[name] = CountingPattern(value)
            monkeypatch.setattr(plans, name, counters[name])
    small, large = 4096, 65536
    for shape in worst_case_requests(small):
        scanned = []
        for size in (small, large):
            request = worst_case_requests(size)[shape]
            for counter in counters.values():
                counter.scanned = 0
            plans.extract_goals.cache_clear() if hasattr(plans.extract_goals, "cache_clear") else None
            plans.extract_goals(request)
            scanned.append(sum(counter.scanned for counter in counters.values()))
            assert scanned[-1] <= 8 * len(request) + 1000, (shape, size, scanned[-1])
        assert scanned[1] <= 20 * max(scanned[0], 1), (shape, scanned)


def test_goal_extraction_regexes_never_meet_a_long_whitespace_run(monkeypatch):
    """The clause regexes backtrack on whitespace runs (issue #14: 16.7 s for 30,000 spaces); the
    text they see has no run of two or more, so each character is tried a bounded number of times."""
    seen: list[str] = []
    for name in ("_CLAUSE_SPLIT", "_LEAD_INS"):
        pattern = getattr(plans, name)

        class Spy:
            def __getattr__(self, attr, pattern=pattern):
                method = getattr(pattern, attr)

                def spied(*args, **kwargs):
                    seen.append(text_of(attr, args)[position_of(attr, args, kwargs):])
                    return method(*args, **kwargs)
                return spied
        monkeypatch.setattr(plans, name, Spy())
    for request in worst_case_requests(20_000).values():
        plans.extract_goals.cache_clear() if hasattr(plans.extract_goals, "cache_clear") else None
        plans.extract_goals(request)
    longest = max((len(run) for text in seen for run in re.findall(r"\s+", text)), default=0)
    assert longest <= 1


def test_goal_extraction_keeps_its_meaning():
    assert plans.extract_goals("Create an action plan to reduce cloud costs by 20% and improve API latency") == (
        "Reduce cloud costs by 20%", "Improve API latency")
    assert plans.extract_goals("reduce   cloud\tcosts,\n\nand   improve latency") == (
        "Reduce cloud costs", "Improve latency")
    assert plans.extract_goals("also also please help me to cut costs") == ("Cut costs",)
    assert plans.extract_goals(" " * 50_000) == ()
    goals = plans.extract_goals("cut costs. " * 10_000 + "fix bugs now")
    assert goals == ("Cut costs",) or goals[0] == "Cut costs"


# -- 5. file descriptors: the budget -------------------------------------------------

class FakeRlimit:
    def __init__(self, soft: int, hard: int, settable: bool = True) -> None:
        self.soft, self.hard, self.settable = soft, hard, settable

    def get(self, _which):
        return self.soft, self.hard

    def set(self, _which, limits):
        if not self.settable or limits[0] > self.hard:
            raise ValueError("not allowed")
        self.soft = limits[0]


def test_the_fd_budget_raises_the_soft_limit_when_the_hard_one_allows():
    limit = FakeRlimit(1024, 65536)
    budget = fds.fit(1024, 128, 100, in_use=10, rlimit=(limit.get, limit.set))
    assert (budget.max_connections, budget.max_pending_handshakes) == (1024, 128)
    assert limit.soft == budget.fd_limit == 1024 + 128 + 100 + 10 + fds.SERVER_FDS
    assert not budget.lowered and "raised" in budget.message


def test_the_fd_budget_lowers_the_limits_when_it_cannot_raise():
    for limit in (FakeRlimit(256, 256), FakeRlimit(256, 65536, settable=False), FakeRlimit(256, 512)):
        budget = fds.fit(1024, 128, 100, in_use=10, rlimit=(limit.get, limit.set))
        assert budget.lowered and "serving at most" in budget.message
        assert (budget.max_connections + budget.max_pending_handshakes + budget.backlog + 10 + fds.SERVER_FDS
                <= budget.fd_limit == limit.soft)
        assert budget.max_connections >= 1 and budget.max_pending_handshakes >= 1


def test_the_fd_budget_leaves_enough_alone():
    limit = FakeRlimit(100_000, 100_000)
    budget = fds.fit(1024, 128, 100, in_use=10, rlimit=(limit.get, limit.set))
    assert budget.message is None and budget.max_connections == 1024 and limit.soft == 100_000


# -- the documented limits are the real ones -------------------------------------------

def limit_rows(path: Path) -> dict[str, tuple[str, str]]:
    """``flag -> (default, what the client gets)`` from the limits table of a Markdown file."""
    rows = {}
    for line in path.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2].startswith("`--"):
            rows[cells[2].strip("`")] = (cells[1], cells[3])
    return rows


@pytest.mark.parametrize("document", ["README.md", "docs/reference-agent.md"])
def test_the_limits_tables_state_the_real_defaults_and_flags(document):
    import argparse

    from agent_events.conformance.commands import serve as serve_command

    parser = argparse.ArgumentParser()
    serve_command.add_arguments(parser)
    flags = {option for action in parser._actions for option in action.option_strings}
    rows = limit_rows(Path(__file__).resolve().parent.parent / document)
    assert len(rows) >= 9, rows
    defaults = ServerConfig()
    for flag, (default, outcome) in rows.items():
        assert flag in flags, flag
        value = getattr(defaults, flag[2:].replace("-", "_"))
        number = re.match(r"[\d.]+", default)
        if value is None:
            assert default == "none", (flag, default)
        else:
            assert number and float(number.group()) == value, (flag, default, value)
        assert outcome, flag


# -- runs left behind by dropped connections (1.1 resume) are bounded -------------------------

def test_dropped_connections_cannot_pile_up_runs_waiting_for_a_resume():
    """Start runs, drop the connection, again and again: the runs waiting for their client stay
    within what the live connections could hold (max_connections x max_runs_per_connection)."""
    async def body():
        async with agent(llm_delay_ms=5000, max_connections=1, max_runs_per_connection=4) as server:
            if server.resume is None:
                pytest.skip("this server keeps no runs for a resume")
            for cycle in range(4):
                async with connect(server.url, close_timeout=0.1) as ws:  # drop it, no goodbye
                    started = set()
                    for n in range(4):
                        await ws.send(start_run(f"c{cycle}r{n}"))
                    while len(started) < 4:
                        message = await recv(ws)
                        if message["type"] == "agent_started":
                            started.add(message["run_id"])
            await wait_for(lambda: server.stats()["connections"] == 0)
            await wait_for(lambda: server.stats()["runs_in_flight"] <= 4)
            return server.stats()["runs_in_flight"], len(server.resume)

    in_flight, kept = arun(body())
    assert in_flight <= 4 and kept <= 4
