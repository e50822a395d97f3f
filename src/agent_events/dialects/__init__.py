"""Dialects: judge the agents teams already have (AG-UI, home-grown shapes), not only ours.

``resolve(NAME_OR_FILE)`` gives a :class:`Dialect`: a built-in one by name (``agent-events``,
the default, and ``ag-ui``, pinned to AG-UI 1.1) or a dialect TOML file (see
:mod:`agent_events.dialects.toml_file`). ``make_checker`` gives the sans-I/O judge of a
dialect: our checker for ours, the paired-family judge for any other. Every entry point
(``check``, ``record``, ``validate``, ``load``, the Locust user, the pytest plugin) takes the
dialect from the one settings table (``dialect`` in :data:`agent_events.conformance.config.KEYS`).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from agent_events.dialects.builtin import AG_UI, AGENT_EVENTS, BUILTIN, DEFAULT
from agent_events.dialects.model import Dialect, Family, Runs
from agent_events.dialects.pointer import Pointer, PointerError


class DialectError(ValueError):
    """A dialect that cannot be used (unknown name, bad file): a usage error, exit code 2."""


def resolve(spec: "str | Path | Dialect | None") -> Dialect:
    """A built-in dialect by name, or a dialect file by path (``None``: the default, ours)."""
    if spec is None:
        return BUILTIN[DEFAULT]
    if isinstance(spec, Dialect):
        return spec
    text = str(spec)
    if text in BUILTIN:
        return BUILTIN[text]
    path = Path(text)
    if path.suffix == ".toml" or path.exists():
        from agent_events.dialects.toml_file import load

        return load(path)
    raise DialectError(f"unknown dialect {text!r}: a built-in name ({', '.join(BUILTIN)}) or a dialect file "
                       f"(.toml) path")


def make_checker(dialect: "Dialect | str | None", profile: Any = None, **kwargs: Any):
    """The sans-I/O judge of ``dialect``: :class:`~agent_events.conformance.core.checker.Checker` for ours."""
    from agent_events.conformance.core import profiles as _profiles

    dialect = resolve(dialect)
    profile = profile if profile is not None else _profiles.DEFAULT_PROFILE
    if dialect.is_ours:
        from agent_events.conformance.core.checker import Checker

        return Checker(profile, **kwargs)
    from agent_events.dialects.judge import DialectChecker

    kwargs.pop("timeline_runs", None)
    return DialectChecker(dialect, profile, **kwargs)


def start_message(dialect: Dialect, input_text: str = "Create an action plan", run_id: str | None = None,
                  thread_id: str | None = None) -> Any:
    """The dialect's start message with its placeholders filled in (``{run_id}``, ``{thread_id}``,
    ``{message_id}``, ``{input}``); ``None`` when the dialect names none."""
    if dialect.start is None:
        return None
    values = {"run_id": run_id or f"run-{uuid.uuid4().hex[:12]}", "thread_id": thread_id or f"thread-{uuid.uuid4().hex[:8]}",
              "message_id": f"msg-{uuid.uuid4().hex[:8]}", "input": input_text}

    def fill(node: Any) -> Any:
        if isinstance(node, str):
            for key, value in values.items():
                node = node.replace("{" + key + "}", value)
            return node
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        return node

    return fill(dict(dialect.start))


__all__ = ["AG_UI", "AGENT_EVENTS", "BUILTIN", "DEFAULT", "Dialect", "DialectError", "Family", "Pointer",
           "PointerError", "Runs", "make_checker", "resolve", "start_message"]
