"""``agent_events.conformance.check(url, ...)``: the live check as a Python API (the CLI's engine).

Both variants build the same :class:`LiveOptions` and run the same
:class:`LiveCheck`; ``check`` only wraps ``check_async`` in its own event
loop, so it can be called from plain test code and from a thread.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from agent_events.conformance.core import profiles as _profiles
from agent_events.conformance.live.engine import DEFAULT_CONCURRENCY, DEFAULT_INPUT, MAX_MESSAGES, LiveCheck, LiveOptions
from agent_events.conformance.live.races import DEFAULT_TRIES as DEFAULT_RACE_TRIES
from agent_events.conformance.live.wire import DEFAULT_MAX_SIZE, ConnectError, Endpoint, check_url
from agent_events.conformance.core.profiles import Profile
from agent_events.conformance.reporting.report import DEFAULT_POLICY, Policy, Report, _now


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` -> ``("Name", "value")``; ``ValueError`` names what is wrong."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        raise ValueError(f"a header is 'Name: value', not {text!r}")
    if any(c in name for c in " \t\r\n") or any(c in value for c in "\r\n"):
        raise ValueError(f"invalid header {text!r}")
    return name, value


def build_headers(headers: Iterable[str | tuple[str, str]] | Mapping[str, str] = (),
                  token: str | None = None) -> tuple[tuple[str, str], ...]:
    """Handshake headers from ``--header`` values (or pairs) and a bearer ``--token``."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = [parse_header(h) if isinstance(h, str) else (str(h[0]), str(h[1])) for h in items]
    if token is not None:
        if not token or any(c in token for c in "\r\n"):
            raise ValueError("the token must be non-empty and on one line")
        pairs = [(n, v) for n, v in pairs if n.lower() != "authorization"] + [("Authorization", f"Bearer {token}")]
    return tuple(pairs)


def live_options(url: str, *, profile: "str | Profile" = _profiles.DEFAULT_PROFILE,
                 scenarios: Sequence[str] | None = None, input: str = DEFAULT_INPUT,
                 runs: int | None = None, concurrency: int = DEFAULT_CONCURRENCY,
                 first_event_ms: float | None = None, delivery_ms: float | None = None,
                 tool_gap_ms: float | None = None, deadline_s: float | None = None,
                 headers: Iterable[str | tuple[str, str]] | Mapping[str, str] = (), token: str | None = None,
                 cafile: str | os.PathLike | None = None, insecure: bool = False,
                 max_frame_bytes: int = DEFAULT_MAX_SIZE, open_timeout: float = 10.0,
                 record: str | os.PathLike | None = None, max_messages: int = MAX_MESSAGES,
                 progress: Callable[[str], None] | None = None,
                 race_tries: int = DEFAULT_RACE_TRIES) -> LiveOptions:
    """Validate the arguments of :func:`check` (``ValueError`` for a bad one)."""
    check_url(url)
    if cafile is not None and not Path(cafile).is_file():
        raise ValueError(f"--cafile {cafile}: no such file")
    if max_frame_bytes < 1024:
        raise ValueError(f"the frame limit must be at least 1024 bytes, not {max_frame_bytes}")
    resolved = _profiles.get(profile).with_budgets(first_event_ms=first_event_ms, delivery_ms=delivery_ms,
                                                   tool_gap_ms=tool_gap_ms, deadline_s=deadline_s)
    endpoint = Endpoint(url, build_headers(headers, token), str(cafile) if cafile else None, insecure,
                        max_size=max_frame_bytes, open_timeout=open_timeout)
    return LiveOptions(endpoint=endpoint, profile=resolved,
                       scenarios=tuple(scenarios) if scenarios else LiveOptions.scenarios,
                       input=input, runs=runs, concurrency=concurrency,
                       record=Path(record) if record is not None else None,
                       max_messages_per_connection=max_messages, progress=progress, race_tries=race_tries)


async def run_options(options: LiveOptions, policy: Policy = DEFAULT_POLICY, command: str = "api") -> Report:
    """Run a check from ready options (the CLI's entry point)."""
    started = _now()
    live = LiveCheck(options)
    sections = await live.run()
    return Report(options.profile, sections, policy, command=command, started_at=started,
                  target={"kind": "url", "url": options.endpoint.url, "scenarios": list(options.scenarios)},
                  notes=live.notes, protocol_version=live.protocol_version, features=live.features)


async def check_async(url: str, *, policy: Policy | None = None, strict: bool = False, **kwargs) -> Report:
    """Check the endpoint at ``url`` live and return the report.

    Keyword arguments: ``profile``, ``scenarios`` (default all), ``input``,
    ``runs``, ``concurrency``, the budgets ``first_event_ms``,
    ``delivery_ms``, ``tool_gap_ms``, ``deadline_s``, ``headers`` (``"Name:
    value"`` strings, pairs or a mapping), ``token``, ``cafile``,
    ``insecure``, ``max_frame_bytes``, ``open_timeout``, ``record`` (a
    transcript path), ``max_messages`` (per connection, a flood guard),
    ``progress`` (a callable given a status line a few times a second) and
    ``race_tries`` (tries of each race a scenario provokes, default 44).

    Raises :class:`ConnectError` when the endpoint cannot be reached or
    refuses the handshake (the CLI's exit code 3), ``ValueError`` for a bad
    argument. Everything the endpoint does once connected is a finding in
    the report, never an exception.
    """
    options = live_options(url, **kwargs)
    return await run_options(options, policy if policy is not None else Policy(strict=strict))


def check(url: str, **kwargs) -> Report:
    """The synchronous form of :func:`check_async` (runs its own event loop).

    Called where a loop is already running (an async test, a notebook), it
    runs the check on a loop in a worker thread instead of failing.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(check_async(url, **kwargs))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="agent-events-check") as pool:
        return pool.submit(asyncio.run, check_async(url, **kwargs)).result()


__all__ = ["check", "check_async", "ConnectError", "live_options", "parse_header"]
