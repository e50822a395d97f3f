"""The options every checking command shares: profile, budgets, policy, outputs, config.

``check``, ``validate``, ``load`` (and the pytest plugin) call
:func:`add_check_options` to declare them and :func:`settings_from_args` to
resolve them, so a flag means the same everywhere and the precedence is
written once: command-line flag, then the config file's command sub-table,
then its top level, then the profile's defaults.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import config as _config
from conformance import profiles as _profiles
from conformance.profiles import BUDGETS, Profile
from conformance.report import Policy

#: flag -> (budget field, metavar, help)
BUDGET_FLAGS = {
    "--first-event-ms": ("first_event_ms", "MS", "budget for agent_started after start_run (default 100)"),
    "--delivery-ms": ("delivery_ms", "MS", "budget for receipt after emitted_at, clock-corrected (default 100)"),
    "--tool-gap-ms": ("tool_gap_ms", "MS", "budget for a fast tool from executing to completed (default 5)"),
    "--deadline-s": ("deadline_s", "S", "run deadline in seconds (default 30)"),
}
assert {dest for dest, _, _ in BUDGET_FLAGS.values()} == set(BUDGETS)


@dataclass(frozen=True)
class Settings:
    """Everything a checking command needs to know besides its own arguments."""

    profile: Profile
    policy: Policy = Policy()
    format: str | None = "text"
    reports: list[tuple[str, Path]] = field(default_factory=list)
    #: True / False, or None for "when stdout is a terminal"
    color: bool | None = None
    config: _config.Config = field(default_factory=_config.Config)
    #: the merged raw config values, for command-specific keys
    config_values: dict[str, Any] = field(default_factory=dict)


def positive_float(text: str) -> float:
    """argparse type of every budget-like flag: a number > 0, with a message naming the bad text."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _report_spec(text: str) -> tuple[str, Path]:
    from conformance.reporters import REPORTERS

    fmt, sep, path = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected FORMAT=PATH, got {text!r}")
    if fmt not in REPORTERS:
        raise argparse.ArgumentTypeError(f"unknown format {fmt!r} in {text!r}; known: {', '.join(REPORTERS)}")
    return fmt, Path(path)


def add_check_options(parser: argparse.ArgumentParser, *, outputs: bool = True) -> None:
    """Declare the shared options (``outputs=False`` for a command that prints no report)."""
    from conformance.reporters import REPORTERS

    group = parser.add_argument_group("conformance options")
    group.add_argument("--profile", choices=list(_profiles.PROFILES), default=None,
                       help=f"expectations to check against (default {_profiles.DEFAULT_PROFILE})")
    for flag, (dest, metavar, help_) in BUDGET_FLAGS.items():
        group.add_argument(flag, dest=dest, type=positive_float, metavar=metavar, default=None, help=help_)
    group.add_argument("--strict", action="store_true", default=None,
                       help="fail on SHOULD violations too, not only on MUST ones")
    group.add_argument("--config", type=Path, metavar="PATH", default=None,
                       help=f"config file (default: ./{_config.CONFIG_FILE}, else [tool.{_config.TOOL_TABLE}] "
                            f"in ./{_config.PYPROJECT})")
    if outputs:
        group.add_argument("--format", choices=list(REPORTERS), default=None,
                           help="format printed on stdout (default text)")
        group.add_argument("--report", dest="reports", action="append", type=_report_spec, default=None,
                           metavar="FORMAT=PATH", help="also write a report in FORMAT to PATH (repeatable)")
        group.add_argument("--color", choices=("auto", "always", "never"), default=None,
                           help="colour the text report (default auto: only on a terminal)")


def settings_from_args(args: argparse.Namespace, command: str | None = None) -> Settings:
    """Resolve the shared options; a bad config file raises ``UsageError`` (exit 2)."""
    from conformance.cli import UsageError

    try:
        config = _config.load(getattr(args, "config", None))
    except _config.ConfigError as exc:
        raise UsageError(str(exc)) from None
    values = config.for_command(command if command is not None else getattr(args, "command", None))

    def pick(name: str, default: Any = None) -> Any:
        given = getattr(args, name, None)
        if given is not None:
            return given
        return values.get(name, default)

    profile = _profiles.get(pick("profile", _profiles.DEFAULT_PROFILE))
    profile = profile.with_budgets(**{name: pick(name) for name in BUDGETS})
    policy = Policy(strict=bool(pick("strict", False)))
    reports = [(fmt, Path(path)) for fmt, path in values.get("reports", [])]
    reports += list(getattr(args, "reports", None) or [])
    color = {"always": True, "never": False, "auto": None}[pick("color", "auto")]
    return Settings(profile=profile, policy=policy, format=pick("format", "text"), reports=reports,
                    color=color, config=config, config_values=values)
