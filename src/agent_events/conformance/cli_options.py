"""The options every checking command shares: profile, budgets, policy, outputs, config.

``check``, ``validate``, ``load`` (and the pytest plugin) call
:func:`add_check_options` to declare them and :func:`settings_from_args` to
resolve them, so a flag means the same everywhere and the precedence is
written once: command-line flag, then the config file's command sub-table,
then its top level, then the profile's defaults.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_events.conformance import config as _config
from agent_events.conformance.reporting import gating as _gating
from agent_events.conformance.core import profiles as _profiles
from agent_events.conformance.core.profiles import BUDGETS, Profile
from agent_events.conformance.reporting.report import FAIL_ON, SEVERITIES, Policy

#: flag -> (budget field, metavar, help)
BUDGET_FLAGS = {
    "--first-event-ms": ("first_event_ms", "MS", "budget for agent_started after start_run (default 100)"),
    "--delivery-ms": ("delivery_ms", "MS", "budget for receipt after emitted_at, clock-corrected (default 100)"),
    "--tool-gap-ms": ("tool_gap_ms", "MS", "budget for a fast tool from executing to completed (default 5)"),
    "--deadline-s": ("deadline_s", "S", "run deadline in seconds (default 30)"),
}
assert {dest for dest, _, _ in BUDGET_FLAGS.values()} == set(BUDGETS)

MAX_RUNS = _config.MAX_RUNS
MAX_CONNECTIONS = _config.MAX_CONNECTIONS


@dataclass(frozen=True)
class Settings:
    """Everything a checking command needs to know besides its own arguments."""

    profile: Profile
    policy: Policy = Policy()
    #: the wire format judged (:mod:`agent_events.dialects`); ``None`` = ours, the default
    dialect: Any = None
    format: str | None = "text"
    reports: list[tuple[str, Path]] = field(default_factory=list)
    #: True / False, or None for "when stdout is a terminal"
    color: bool | None = None
    config: _config.Config = field(default_factory=_config.Config)
    #: the merged raw config values, for command-specific keys
    config_values: dict[str, Any] = field(default_factory=dict)
    #: text format: one line per rule with a count instead of each violation
    group: bool = False
    #: where the SVG badge is written (also listed in ``reports`` as ``("badge", path)``)
    badge: Path | None = None
    #: the live keys (check, record, load, the plugin): ``None`` = the command's default
    scenarios: list[str] | None = None
    runs: int | None = None
    concurrency: int | None = None
    race_tries: int | None = None
    input: str | None = None
    #: ``--baseline`` read (or, with ``--update-baseline``, to be written): apply it with
    #: :func:`agent_events.conformance.reporting.baseline.settle`
    baseline: Any = None
    update_baseline: bool = False


def positive_float(text: str) -> float:
    """argparse type of every budget-like flag: a finite number > 0, with a message naming the bad text.

    Finite because ``inf`` (or ``1e400``, which is ``inf`` as a float) would
    turn a budget into "wait for ever".
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number: {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _report_spec(text: str) -> tuple[str, Path]:
    from agent_events.conformance.reporters import REPORTERS

    fmt, sep, path = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected FORMAT=PATH, got {text!r}")
    if fmt not in REPORTERS:
        raise argparse.ArgumentTypeError(f"unknown format {fmt!r} in {text!r}; known: {', '.join(REPORTERS)}")
    return fmt, Path(path)


def _rule_arg(text: str) -> tuple[str, str]:
    try:
        return _gating.parse_rule_spec(text)
    except _gating.GatingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _off_arg(text: str) -> tuple[str, str]:
    try:
        return _gating.check_rule_id(text.strip()), "off"
    except _gating.GatingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def integer_at_least(minimum: int, maximum: int | None = None):
    """argparse type of a count flag (``--max-warnings``, ``--runs``): an integer >= ``minimum``
    (and <= ``maximum`` when given)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}: {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}" if maximum is None else f"integer {minimum}..{maximum}"
    return parse


GATING_DESCRIPTION = (
    "What makes the exit code 1 (not conformant); otherwise it is 0. Each rule counts at a severity: "
    "error for MUST rules, warning for SHOULD rules, info for MAY rules, unless --rule or --off changes it "
    "(config file: rules = { ID = SEVERITY }, off = [ID]). A violation fails the check when its severity "
    "reaches --fail-on: error (the default: every MUST rule must pass), warning (the same as --strict: "
    "every SHOULD rule too) or none (report only). --max-warnings N also fails a check with more than N "
    "violations at severity warning. Lowering a MUST rule below error needs --allow-lowering-must, and "
    "the report then says the result is not a conformance claim. An unknown rule id, or a MUST rule "
    "lowered without that flag, is a usage error: exit code 2."
)

#: The gating flags as (flag, argparse keyword arguments), declared once: the CLI adds them as they are,
#: the pytest plugin with its ``--agent-events-`` prefix (see :func:`settings_from_options`).
GATING_ARGUMENTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--strict", dict(dest="strict", action="store_true", default=None,
                      help="fail on SHOULD violations too: the shorthand of --fail-on warning")),
    ("--fail-on", dict(dest="fail_on", choices=FAIL_ON, default=None,
                       help="lowest severity that fails the check: error (default), warning, or none "
                            "(no violation fails; only --max-warnings can)")),
    ("--max-warnings", dict(dest="max_warnings", type=integer_at_least(0), default=None, metavar="N",
                            help="also fail when more than N violations have severity warning")),
    ("--rule", dict(dest="rule_overrides", action="append", type=_rule_arg, default=None, metavar="ID=SEVERITY",
                    help=f"count rule ID at SEVERITY ({', '.join(SEVERITIES)}), e.g. --rule order.thinking=error "
                         f"(repeatable; the last one for an ID wins)")),
    ("--off", dict(dest="rule_overrides", action="append", type=_off_arg, default=None, metavar="ID",
                   help="turn rule ID off: the same as --rule ID=off (repeatable)")),
    ("--allow-lowering-must", dict(dest="allow_lowering_must", action="store_true", default=None,
                                   help="allow --rule / --off to lower a MUST rule below error; the report then "
                                        "says the result is not a conformance claim")),
    ("--baseline", dict(dest="baseline", type=Path, default=None, metavar="FILE",
                        help="known failures (JSON, see the CI guide): fail only on a failure the file does not "
                             "list, and on an entry that was judged and no longer fails (stale)")),
    ("--update-baseline", dict(dest="update_baseline", action="store_true", default=None,
                               help="write the baseline FILE from this run's failures (comments kept, stale "
                                    "entries removed, entries of sections not run kept), then gate on it")),
)
#: The output flags that come with gating, in the same form (for the CLI and the pytest plugin).
CLAIM_ARGUMENTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--group", dict(dest="group", action="store_true", default=None,
                     help="text format: one line per rule with its violation count, without each violation "
                          "(for huge streams)")),
    ("--badge", dict(dest="badge", type=Path, default=None, metavar="PATH",
                     help="write an SVG conformance badge to PATH (the same as --report badge=PATH): "
                          "'conformant' when the check passed with default severities")),
)


def add_check_options(parser: argparse.ArgumentParser, *, outputs: bool = True) -> None:
    """Declare the shared options (``outputs=False`` for a command that prints no report)."""
    from agent_events.conformance.reporters import REPORTERS

    group = parser.add_argument_group("conformance options")
    group.add_argument("--profile", choices=list(_profiles.PROFILES), default=None,
                       help=f"expectations to check against (default {_profiles.DEFAULT_PROFILE})")
    group.add_argument("--dialect", default=None, metavar="NAME|FILE",
                       help="the wire format judged: agent-events (ours, the default), ag-ui (AG-UI 1.1), or a "
                            "dialect file (.toml) for a home-grown shape")
    for flag, (dest, metavar, help_) in BUDGET_FLAGS.items():
        group.add_argument(flag, dest=dest, type=positive_float, metavar=metavar, default=None, help=help_)
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
        for flag, kwargs in CLAIM_ARGUMENTS:
            group.add_argument(flag, **kwargs)
    gating = parser.add_argument_group("gating", GATING_DESCRIPTION)
    for flag, kwargs in GATING_ARGUMENTS:
        gating.add_argument(flag, **kwargs)


def settings_from_args(args: argparse.Namespace, command: str | None = None) -> Settings:
    """Resolve the shared options; a bad config file or gating setting raises ``UsageError`` (exit 2)."""
    return settings_from_options(vars(args), command if command is not None else getattr(args, "command", None))


def settings_from_options(given: dict[str, Any], command: str | None, *, cwd: Path | None = None,
                          flag_prefix: str = "--") -> Settings:
    """Resolve options given as a mapping of the CLI's ``dest`` names (``None`` = not given).

    This is what the pytest plugin calls with its own options, so a key means
    the same there: ``profile``, the budgets, ``strict``, ``fail_on``,
    ``max_warnings``, ``rule_overrides`` (``(id, severity)`` pairs, in order),
    ``allow_lowering_must``, ``format``, ``reports`` (``(format, path)``
    pairs), ``color``, ``group``, ``badge``, the live keys ``scenarios``,
    ``runs``, ``concurrency`` and ``input``, and ``config`` (a path). The config
    file is ``config``, else the one discovered in ``cwd``. Every value goes
    through the config file's key table (:data:`agent_events.conformance.config.KEYS`), so a
    bad one is the same usage error, naming the flag (``flag_prefix`` + name), before anything
    connects.
    """
    from agent_events.conformance.cli import UsageError

    try:
        config = _config.load(given.get("config"), cwd=cwd)
    except _config.ConfigError as exc:
        raise UsageError(str(exc)) from None
    values = config.for_command(command)

    def pick(name: str, default: Any = None) -> Any:
        value = given.get(name)
        if value is None:
            return values.get(name, default)
        if name in _config.KEYS and not isinstance(value, Path):  # one validation, whichever layer gave it
            try:
                return _config.validate(name, value, f"{flag_prefix}{name.replace('_', '-')}")
            except _config.ConfigError as exc:
                raise UsageError(str(exc)) from None
        return value

    source = str(config.source) if config.source else "the config file"
    layers = [_gating.Layer.from_config(config.values, source),
              _gating.Layer.from_config(config.commands.get(command, {}) if command else {}, f"{source} [{command}]"),
              _gating.Layer(list(given.get("rule_overrides") or []), given.get("strict"), given.get("fail_on"),
                            given.get("max_warnings"), given.get("allow_lowering_must"))]
    try:
        policy = _gating.policy_from_layers(layers)
    except _gating.GatingError as exc:
        raise UsageError(str(exc)) from None
    profile = _profiles.get(pick("profile", _profiles.DEFAULT_PROFILE))
    profile = profile.with_budgets(**{name: pick(name) for name in BUDGETS})
    reports = [(fmt, Path(path)) for fmt, path in values.get("reports", [])]
    for spec in given.get("reports") or []:  # (format, path) from argparse, "FORMAT=PATH" from the plugin
        if isinstance(spec, str):
            try:
                (spec,) = _config.validate("reports", [spec], f"{flag_prefix}report")
            except _config.ConfigError as exc:
                raise UsageError(str(exc)) from None
        reports.append((spec[0], Path(spec[1])))
    badge = pick("badge")
    if badge is not None:
        badge = Path(badge)
        reports.append(("badge", badge))
    color = {"always": True, "never": False, "auto": None}[pick("color", "auto")]
    from_file = f"{source}: baseline: " if given.get("baseline") is None and values.get("baseline") else ""
    baseline, update_baseline = _baseline(pick("baseline"), bool(given.get("update_baseline")), flag_prefix, from_file)
    return Settings(profile=profile, policy=policy, dialect=pick("dialect"), format=pick("format", "text"), reports=reports,
                    color=color, config=config, config_values=values, group=bool(pick("group", False)),
                    badge=badge, scenarios=pick("scenarios"), runs=pick("runs"), concurrency=pick("concurrency"),
                    race_tries=pick("race_tries"), input=pick("input"), baseline=baseline, update_baseline=update_baseline)


def _baseline(path: Any, update: bool, flag_prefix: str = "--", where: str = ""):
    """The baseline to gate on, read now so that a bad file is a usage error before anything runs;
    with ``update``, the file to rewrite (empty if it does not exist yet). ``where``: the config
    file that named it, as a prefix of the error message."""
    from agent_events.conformance.reporting.baseline import Baseline, BaselineError
    from agent_events.conformance.cli import UsageError

    if path is None:
        if update:
            raise UsageError(f"{flag_prefix}update-baseline needs {flag_prefix}baseline FILE "
                             f"(or baseline = \"FILE\" in the config file)")
        return None, False
    path = Path(path)
    if update and not path.exists():
        return Baseline(path=path), True
    try:
        return Baseline.load(path), update
    except BaselineError as exc:
        raise UsageError(f"{where}{exc}") from None
