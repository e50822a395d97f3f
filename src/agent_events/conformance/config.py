"""The config file: a team's standing choices, so CI lines stay short.

Looked up in the current directory: ``agent-events.toml`` (top-level keys),
else the ``[tool.agent-events]`` table of ``pyproject.toml``; ``--config
PATH`` names either kind explicitly. A sub-table named after a command
(``[tool.agent-events.validate]``) overrides the top level for that command.
Command-line flags override the file.

Keys are declared once, in ``KEYS`` (data: name, what it holds, how it is
checked), so an unknown or ill-typed key is an error that names the file, the
key and what was expected, instead of being silently ignored. The same table
validates what the command line and the pytest plugin give
(:func:`agent_events.conformance.cli_options.settings_from_options`), so a key
means the same, and fails the same way, wherever it is set; nothing registers
keys at import time, so every entry point sees all of them.
"""

from __future__ import annotations

import datetime
import difflib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

CONFIG_FILE = "agent-events.toml"
PYPROJECT = "pyproject.toml"
TOOL_TABLE = "agent-events"
#: Sub-tables that hold per-command overrides.
COMMANDS = ("check", "validate", "load", "record", "demo", "serve", "proxy")


class ConfigError(ValueError):
    """A config file that cannot be used; the CLI turns it into exit code 2."""


class InvalidValue(ValueError):
    """Raised by a converter whose message is a whole explanation, not "what was expected"
    (an unknown rule id and the id it probably meant)."""


@dataclass(frozen=True)
class KeySpec:
    description: str
    #: returns the normalised value or raises ValueError with what was expected
    convert: Callable[[Any], Any]


def _positive_number(value: Any) -> float:
    # TOML has inf and nan: neither is a budget (an infinite one is "no budget", which is --off)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError("a positive finite number")
    return float(value)


def _one_of(value: Any, choices, expected: str) -> str:
    """``value`` if it is one of the string ``choices``; the type is checked first, because
    ``choices`` may be a dict and a TOML list or table is unhashable."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(expected)
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def _profile(value: Any) -> str:
    from agent_events.conformance.core.profiles import PROFILES

    return _one_of(value, PROFILES, f"one of {', '.join(PROFILES)}")


def _format(value: Any) -> str:
    from agent_events.conformance.reporters import REPORTERS

    return _one_of(value, REPORTERS, f"one of {', '.join(REPORTERS)}")


def _reports(value: Any) -> list[tuple[str, str]]:
    """``{html = "report.html", junit = "junit.xml"}`` or ``["html=report.html", ...]``."""
    pairs: list[tuple[str, Any]]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value):
        pairs = [tuple(v.split("=", 1)) for v in value]  # type: ignore[misc]
    else:
        raise ValueError('a table of FORMAT = "PATH", or a list of "FORMAT=PATH"')
    from agent_events.conformance.reporters import REPORTERS

    result = []
    for fmt, path in pairs:
        if not isinstance(path, str) or not path:
            raise ValueError(f"a path for format {fmt!r}")
        if fmt not in REPORTERS:
            raise InvalidValue(f"unknown format {fmt!r} in {fmt}={path}; known: {', '.join(REPORTERS)}")
        result.append((fmt, path))
    return result


def _color(value: Any) -> str:
    return _one_of(value, ("auto", "always", "never"), '"auto", "always" or "never"')


def _severities(value: Any) -> dict[str, str]:
    """``{ "order.thinking" = "error", "latency.tool_gap" = "off" }``: per-rule severities."""
    from agent_events.conformance.reporting.gating import GatingError, check_rule_id, check_severity

    if not isinstance(value, dict):
        raise ValueError('a table of rule id = "error", "warning", "info" or "off"')
    try:
        return {check_rule_id(k): check_severity(v, k) for k, v in _dotted(value)}
    except GatingError as exc:
        raise InvalidValue(str(exc)) from None


def _dotted(table: dict, prefix: str = ""):
    """(id, value) pairs of a table, rejoining ids that TOML split at their dots:
    unquoted ``order.thinking = "error"`` is the table ``{order = {thinking = "error"}}``."""
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _dotted(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _rule_ids(value: Any) -> list[str]:
    """``["latency.tool_gap"]`` (or one id): rules turned off."""
    from agent_events.conformance.reporting.gating import GatingError, check_rule_id

    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError("a list of rule ids")
    try:
        return [check_rule_id(i) for i in items]
    except GatingError as exc:
        raise InvalidValue(str(exc)) from None


def _fail_on(value: Any) -> str:
    from agent_events.conformance.reporting.gating import FAIL_ON

    return _one_of(value, FAIL_ON, " or ".join(f'"{v}"' for v in FAIL_ON))


def integer_at_least(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    """Config-value converter of a count key: an integer (not a bool) >= ``minimum`` (<= ``maximum``)."""
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"an integer >= {minimum}" if maximum is None else f"an integer {minimum}..{maximum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"an integer {minimum}..{maximum}")
        return value

    return convert


_count = integer_at_least(0)


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a file path")
    return value


#: Upper bounds of the count keys (and their flags): far above what any check or load needs,
#: low enough that no setting can make a command start runs or open sockets without end.
MAX_RUNS = 100_000
MAX_CONNECTIONS = 10_000


def _scenario_list(value: Any) -> list[str]:
    from agent_events.conformance.live.scenarios import SCENARIOS

    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n in SCENARIOS for n in names):
        raise ValueError(f"a list of scenario names among {', '.join(SCENARIOS)}")
    return names


def _dialect(value: Any):
    """A built-in dialect's name or a dialect file's path: resolved now, so a bad dialect file is the
    same usage error (naming its line and key) wherever it was named."""
    from agent_events.dialects import DialectError, resolve
    from agent_events.dialects.toml_file import DialectFileError

    from pathlib import Path as _Path

    from agent_events.dialects import BUILTIN

    if not isinstance(value, str) or not value or (
            value not in BUILTIN and not value.endswith(".toml") and not _Path(value).exists()):
        raise ValueError(f"a built-in dialect name ({', '.join(BUILTIN)}) or a dialect file (.toml) path")
    try:
        return resolve(value)
    except (DialectError, DialectFileError) as exc:
        raise InvalidValue(str(exc)) from None


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a non-empty string")
    return value


def _resume_store(value: Any) -> str:
    from agent_events.reference_agent.resume_store import check_url

    if not isinstance(value, str):
        raise ValueError("a resume store URL redis://HOST:PORT/DB")
    return check_url(value)


KEYS: dict[str, KeySpec] = {
    "profile": KeySpec("profile to check against", _profile),
    "dialect": KeySpec("the wire format judged: agent-events (ours, the default), ag-ui, or a dialect file", _dialect),
    "first_event_ms": KeySpec("budget: agent_started after start_run, ms", _positive_number),
    "delivery_ms": KeySpec("budget: receipt after emitted_at, ms", _positive_number),
    "tool_gap_ms": KeySpec("budget: fast tool executing -> completed, ms", _positive_number),
    "deadline_s": KeySpec("budget: run deadline, s", _positive_number),
    "strict": KeySpec("fail on SHOULD violations too", _boolean),
    "format": KeySpec("format printed on stdout", _format),
    "reports": KeySpec("report files to write, by format", _reports),
    "color": KeySpec("colour on stdout", _color),
    "rules": KeySpec("per-rule severities (like --rule ID=SEVERITY)", _severities),
    "off": KeySpec("rules turned off (like --off ID)", _rule_ids),
    "allow_lowering_must": KeySpec("allow lowering MUST rules (then no conformance claim)", _boolean),
    "fail_on": KeySpec("lowest severity that fails the check (strict = true is fail_on = \"warning\")", _fail_on),
    "max_warnings": KeySpec("fail when more warning-severity violations than this", _count),
    "group": KeySpec("text report: one line per rule with a count, no details", _boolean),
    "badge": KeySpec("write an SVG conformance badge to this path", _path),
    "baseline": KeySpec("known failures (JSON): the gate fails only on new ones and on stale entries", _path),
    # the commands that connect to an endpoint (check, record, load, the pytest plugin)
    "scenarios": KeySpec("scenarios a check runs (default all)", _scenario_list),
    "runs": KeySpec("runs per multi-run scenario", integer_at_least(1, MAX_RUNS)),
    "concurrency": KeySpec("connections of the concurrency scenario", integer_at_least(1, MAX_CONNECTIONS)),
    "race_tries": KeySpec("tries of each race the cancel, multiplex and reconnect scenarios provoke",
                          integer_at_least(1, MAX_RUNS)),
    "input": KeySpec("the request sent in start_run", _string),
    # agent-events serve
    "resume_store": KeySpec("serve: the shared run log for resume across workers and machines "
                            "(like --resume-store)", _resume_store),
}


def validate(key: str, value: Any, where: str) -> Any:
    """``value`` converted by ``key``'s entry of :data:`KEYS`, or :class:`ConfigError` naming ``where``
    (a file, a flag): the one validation of a setting, whichever layer gave it."""
    return _check(where, key, value)


@dataclass
class Config:
    """Validated settings from one file (or none)."""

    source: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_command(self, command: str | None) -> dict[str, Any]:
        """Top-level values overlaid with the command's sub-table."""
        merged = dict(self.values)
        if command is not None:
            merged.update(self.commands.get(command, {}))
        return merged


def discover(cwd: Path | None = None) -> Path | None:
    """The config file of ``cwd``: agent-events.toml, else a pyproject.toml with our table."""
    cwd = Path.cwd() if cwd is None else cwd
    candidate = cwd / CONFIG_FILE
    if candidate.is_file():
        return candidate
    pyproject = cwd / PYPROJECT
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return pyproject  # let load() report the problem with the file named
        if TOOL_TABLE in data.get("tool", {}):
            return pyproject
    return None


def load(path: Path | str | None = None, cwd: Path | None = None) -> Config:
    """Read and validate a config file (``path``, or the one discovered in ``cwd``)."""
    explicit = path is not None
    path = Path(path) if path is not None else discover(cwd)
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if path.name == PYPROJECT:
        table = data.get("tool", {}).get(TOOL_TABLE)
        if table is None:
            if explicit:
                raise ConfigError(f"{path} has no [tool.{TOOL_TABLE}] table")
            return Config()
        where = f"{path} [tool.{TOOL_TABLE}]"
    else:
        table, where = data, str(path)
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    config = Config(source=path)
    for key, value in table.items():
        if key in COMMANDS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key} must be a table of settings for the {key} command "
                                  f"([{key}]), not {_shown(value)}")
            config.commands[key] = {k: _check(f"{where} [{key}]", k, v) for k, v in value.items()}
        else:
            config.values[key] = _check(where, key, value)
    return config


def _check(where: str, key: str, value: Any) -> Any:
    spec = KEYS.get(key)
    if spec is None:
        close = difflib.get_close_matches(key, list(KEYS) + list(COMMANDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: unknown key {key!r}{hint}; known keys: {', '.join(KEYS)}")
    try:
        return spec.convert(value)
    except InvalidValue as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: {key} must be {exc}, not {_shown(value)}") from None


def _shown(value: Any) -> str:
    """A TOML value as the reader wrote it (``true``, a date-time), not as Python prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return f"the {type(value).__name__.replace('datetime', 'date-time')} {value.isoformat()}"
    if isinstance(value, dict):
        return f"a table {_short(value)}" if value else "an empty table"
    if isinstance(value, list):
        return f"an array {_short(value)}" if value else "an empty array"
    return repr(value)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
