"""pytest plugin of agent-events (registered through the ``pytest11`` entry point).

Two uses, both opt-in:

* a contract gate: ``pytest --agent-events-url ws://...`` collects the
  conformance suite as test items, one per scenario and rule (generated from
  the rule registry), so CI shows each rule as a test and a failure shows
  what was expected, what was observed and the messages around it. The live
  check runs once, on the first item, and every item reads its verdict;
* fixtures for a team's own tests: ``reference_agent`` (the URL of a running
  reference agent, to test a client against) and ``agent_events_check`` (a
  callable that runs a check and returns the report), layered on
  ``agent_events_url`` and ``agent_events_options`` so that a conftest can
  override any one of them; ``agent_events_proxy`` starts a fault-injecting
  proxy (``agent_events.proxy``) in front of it, to test a client against a
  broken stream.

Without ``--agent-events-url`` it adds no items and changes nothing: the
options exist, the fixtures wait to be asked for, no module of the live
check is even imported.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import pytest

from agent_events.conformance.core import rules as _rules

#: Violations shown per failing item; the rest are counted.
SHOWN = 5
_STATE_KEY = "_agent_events_state"


class AgentEventsWarning(UserWarning):
    """A rule failed below the gate (a SHOULD rule, unless --agent-events-strict or --agent-events-fail-on)."""


PREFIX = "--agent-events-"
DEST = "agent_events_"


def options() -> list[tuple[str, dict[str, Any]]]:
    """Every option of the plugin as ``(flag, addoption keyword arguments)``, declared once
    (the docs' CLI reference and tests read the flags from here)."""
    from agent_events.conformance.cli_options import (
        BUDGET_FLAGS, CLAIM_ARGUMENTS, GATING_ARGUMENTS, MAX_CONNECTIONS, MAX_RUNS, integer_at_least, positive_float,
    )

    declared: list[tuple[str, dict[str, Any]]] = [
        ("--agent-events-url", dict(default=None, metavar="URL",
                                    help="check this ws:// or wss:// endpoint and collect one test per scenario and rule")),
        ("--agent-events-profile", dict(default=None, metavar="NAME",
                                        help="profile to check against: actions-agent (default) or generic")),
        ("--agent-events-dialect", dict(default=None, metavar="NAME|FILE",
                                        help="the wire format judged: agent-events (ours, the default), ag-ui "
                                             "(AG-UI 1.1), or a dialect file (.toml); a foreign dialect's items "
                                             "are its live scenarios (run, concurrency, tool, bad_input, drop)")),
        ("--agent-events-scenario", dict(action="append", default=None, metavar="NAME",
                                         help="run only this scenario (repeatable; default all, see "
                                              "`agent-events check --help`)")),
        ("--agent-events-token", dict(default=None, metavar="TOKEN", help="bearer token for the endpoint")),
        ("--agent-events-header", dict(action="append", default=[], metavar="'NAME: VALUE'",
                                       help="extra handshake header (repeatable)")),
        ("--agent-events-cafile", dict(default=None, metavar="PEM", help="CA certificate(s) for wss://")),
        ("--agent-events-insecure", dict(action="store_true", default=False,
                                         help="do not verify the wss:// certificate")),
        ("--agent-events-runs", dict(type=integer_at_least(1, MAX_RUNS), default=None, metavar="N",
                                     help=f"runs per multi-run scenario, at most {MAX_RUNS}")),
        ("--agent-events-concurrency", dict(type=integer_at_least(1, MAX_CONNECTIONS), default=None, metavar="N",
                                            help=f"connections of the concurrency scenario, at most {MAX_CONNECTIONS} "
                                                 "(default 10)")),
    ]
    # The budgets and the gating flags are the CLI's own declarations, prefixed: one meaning everywhere.
    for flag, (dest, metavar, help_) in BUDGET_FLAGS.items():
        declared.append((PREFIX + flag[2:], dict(dest=DEST + dest, type=positive_float, default=None, metavar=metavar,
                                                 help=help_)))
    for flag, kwargs in GATING_ARGUMENTS + CLAIM_ARGUMENTS:
        declared.append((PREFIX + flag[2:], {**kwargs, "dest": DEST + kwargs["dest"]}))
    declared += [
        ("--agent-events-config", dict(default=None, metavar="PATH",
                                       help="config file (default: agent-events.toml or [tool.agent-events] "
                                            "in pyproject.toml)")),
        ("--agent-events-record", dict(default=None, metavar="FILE", help="write the check's JSONL transcript to FILE")),
        ("--agent-events-report", dict(action="append", default=[], metavar="FORMAT=PATH",
                                       help="also write the check's report in FORMAT (text, json, junit, html, ...) "
                                            "to PATH")),
    ]
    return declared


def option_names() -> list[str]:
    return [flag for flag, _ in options()]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agent-events", "agent-events conformance (collects the suite only with --agent-events-url)")
    for flag, kwargs in options():
        group.addoption(flag, **kwargs)


def _settings(config: pytest.Config):
    """Profile, budgets and gating exactly as ``agent-events check`` resolves them (config file included)."""
    from agent_events.conformance.cli_options import BUDGET_FLAGS, CLAIM_ARGUMENTS, GATING_ARGUMENTS, settings_from_options

    dests = ["profile", "dialect", "config", "runs", "concurrency", *(dest for dest, _, _ in BUDGET_FLAGS.values()),
             *(kwargs["dest"] for _, kwargs in GATING_ARGUMENTS + CLAIM_ARGUMENTS)]
    given = {dest: config.getoption(DEST + dest) for dest in dests}
    scenarios = config.getoption("agent_events_scenario")
    given["reports"] = list(config.getoption("agent_events_report") or [])  # "FORMAT=PATH", checked there
    given["format"] = None
    cwd = config.invocation_params.dir
    dialect = settings_from_options({"dialect": given["dialect"], "config": given["config"]}, "check", cwd=cwd,
                                    flag_prefix=PREFIX).dialect
    if dialect is None or dialect.is_ours:
        given["scenarios"] = scenarios
        return settings_from_options(given, "check", cwd=cwd, flag_prefix=PREFIX)
    # A foreign dialect's scenarios are its live check's own (agent_events.dialects.live), not ours:
    # the flag names them; our scenario names (flag or config file) are one usage error.
    from dataclasses import replace

    from agent_events.conformance.cli import UsageError
    from agent_events.dialects.live import SCENARIOS as DIALECT_SCENARIOS

    settings = settings_from_options(given, "check", cwd=cwd, flag_prefix=PREFIX)
    chosen = scenarios if scenarios else settings.scenarios
    unknown = [s for s in chosen or () if s not in DIALECT_SCENARIOS]
    if unknown:
        where = f"{PREFIX}scenario" if scenarios else "the config file's scenarios"
        raise UsageError(f"{where} {unknown[0]!r}: a {dialect.label} check runs its own scenarios: "
                         f"{', '.join(DIALECT_SCENARIOS)}")
    return replace(settings, scenarios=tuple(chosen) if chosen else None)


def _resolved(config: pytest.Config):
    """The settings of this session, resolved (and validated) once, in :func:`pytest_configure`."""
    state = getattr(config, _STATE_KEY, None)
    if state is None:
        state = {}
        setattr(config, _STATE_KEY, state)
    if "settings" not in state:
        state["settings"] = _settings(config)
    return state["settings"]


def check_options(config: pytest.Config, settings=None) -> dict[str, Any]:
    """``agent_events.conformance.check`` keyword arguments from the --agent-events-* options and the config file
    (``settings``: :func:`_settings` already resolved, so the config file is not read again)."""
    if settings is None:
        settings = _settings(config)
    get = config.getoption
    options = {
        "profile": settings.profile,
        "policy": settings.policy,
        "scenarios": settings.scenarios,
        "token": get("agent_events_token"),
        "headers": list(get("agent_events_header") or []),
        "cafile": get("agent_events_cafile"),
        "insecure": get("agent_events_insecure") or None,
        "runs": settings.runs,
        "concurrency": settings.concurrency,
        "race_tries": settings.race_tries,
        "input": settings.input,
    }
    return {k: v for k, v in options.items() if v not in (None, [])}


# -- the suite, collected only with --agent-events-url -----------------------------------

def _scenario_names() -> tuple[str, ...]:
    from agent_events.conformance.live.scenarios import SCENARIOS

    return tuple(SCENARIOS)


def _foreign(config: pytest.Config):
    """The session's dialect when it is not ours (its items are the dialect's live scenarios), else None."""
    dialect = _resolved(config).dialect
    return dialect if dialect is not None and not dialect.is_ours else None


def _scenarios_of(config: pytest.Config) -> tuple[str, ...]:
    selected = _resolved(config).scenarios
    if _foreign(config) is not None:
        from agent_events.dialects.live import SCENARIOS as DIALECT_SCENARIOS

        return tuple(s for s in DIALECT_SCENARIOS if not selected or s in selected)
    return tuple(s for s in _scenario_names() if not selected or s in selected)


def _dialect_rules_of(scenario: str, dialect) -> list[str]:
    """A foreign dialect's items of one scenario: the rules its judge reports (judged, or declared N/A),
    in registry order, without the bad-input probe outside its own scenario (it could only skip there)."""
    from agent_events.dialects.live import BAD_INPUT_RULE

    wanted = set(dialect.rules) | set(dialect.not_applicable)
    if scenario == "bad_input":
        wanted.add(BAD_INPUT_RULE)
    else:
        wanted.discard(BAD_INPUT_RULE)
    return [r.id for r in _rules.ALL_RULES if r.id in wanted]


def _rules_of(scenario: str, profile: str | None) -> list[str]:
    """The rules a scenario's items cover: every registry rule, except other scenarios' live probes
    and other profiles' rules (those could only ever be skipped there)."""
    from agent_events.conformance.live.scenarios import SCENARIOS
    from agent_events.conformance.core.profiles import DEFAULT_PROFILE

    profile = profile or DEFAULT_PROFILE
    focus = set(SCENARIOS[scenario].focus)
    chosen = []
    for rule in _rules.RULES:
        if rule.deprecated or (rule.profile is not None and rule.profile != profile):
            continue
        if rule.scope == "live" and rule.id not in focus:
            continue
        chosen.append(rule.id)
    return chosen


def pytest_configure(config: pytest.Config) -> None:
    url = config.getoption("agent_events_url", None)
    if url:
        config.addinivalue_line("markers", "agent_events: a conformance test item generated by agent-events")
        from agent_events.conformance.live.wire import check_url

        try:  # the CLI's own URL check: one usage error now, not a ValueError in every item
            check_url(url)
        except ValueError as exc:
            raise pytest.UsageError(f"--agent-events-url: {exc}") from None
        from agent_events.conformance.cli import UsageError

        try:  # any bad setting (flag or config file) stops the session now, before anything connects
            settings = _resolved(config)
        except UsageError as exc:
            raise pytest.UsageError(str(exc)) from None
        dialect = settings.dialect
        if dialect is not None and not dialect.is_ours:
            if dialect.start is None:
                raise pytest.UsageError(f"dialect {dialect.label} names no start message ([start] message = ...): "
                                        f"it cannot be checked live")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Append the suite before -k / -m deselection runs, so those select among its items too."""
    if not config.getoption("agent_events_url", None):
        return
    suite = ConformanceSuite.from_parent(session, name="agent-events", nodeid="agent-events")
    for scenario in suite.collect():
        items.extend(scenario.collect())


class ConformanceSuite(pytest.Collector):
    def collect(self):
        # The profile as the check will resolve it (flag, else config file, else default), so the
        # items are the rules the check will judge, not another profile's (which could only skip).
        profile = _resolved(self.config).profile.name
        dialect = _foreign(self.config)
        return [ScenarioCollector.from_parent(self, name=name, profile=profile, dialect=dialect)
                for name in _scenarios_of(self.config)]


class ScenarioCollector(pytest.Collector):
    def __init__(self, *, profile: str, dialect: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.profile = profile
        self.dialect = dialect

    def collect(self):
        rule_ids = (_dialect_rules_of(self.name, self.dialect) if self.dialect is not None
                    else _rules_of(self.name, self.profile))
        return [RuleItem.from_parent(self, name=rule_id, scenario=self.name, rule_id=rule_id) for rule_id in rule_ids]


class RuleFailure(Exception):
    """A rule failed in a scenario; the message is the report's own account of it."""


class RuleItem(pytest.Item):
    def __init__(self, *, scenario: str, rule_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.rule_id = rule_id
        self.add_marker("agent_events")
        rule = _rules.get(rule_id)
        self.user_properties.append(("rule", rule_id))
        self.user_properties.append(("level", rule.level.value))

    def runtest(self) -> None:
        from agent_events.conformance.core.violations import FAIL, INCONCLUSIVE, INFO, NOT_APPLICABLE, OFF, WARN

        report = _session_report(self.config)
        section = next((s for s in report.sections if s.name == self.scenario), None)
        if section is None or self.rule_id not in section.outcomes:
            pytest.skip(f"scenario {self.scenario} was not run")
        outcome = section.outcomes[self.rule_id]
        status = report.policy.status(outcome)
        if status == INCONCLUSIVE:
            pytest.skip(f"{self.rule_id}: {outcome.inconclusive_text()}")
        if status in (NOT_APPLICABLE, OFF):
            pytest.skip(f"{self.rule_id}: {outcome.reason or 'off'}")
        comparison = report.baseline_comparison()  # --agent-events-baseline: known failures xfail, stale entries fail
        if comparison is not None:
            stale = [e for e in comparison.stale if e.matches(self.scenario, self.rule_id)]
            if stale:
                raise RuleFailure(f"stale baseline entry: {stale[0]} is listed in {report.baseline.name} but no longer "
                                  f"fails; remove it (or run with --agent-events-update-baseline)")
        if status in (FAIL, WARN, INFO):
            message = _describe(self.rule_id, section, outcome)
            policy = report.policy
            if policy.fails(policy.severity(self.rule_id)):  # --agent-events-strict / -fail-on / -rule
                entry = next((e for e in report.baseline.entries if e.matches(self.scenario, self.rule_id)),
                             None) if comparison is not None else None
                if entry is not None:
                    pytest.xfail(f"known failure, in baseline {report.baseline.name}"
                                 + (f": {entry.comment}" if entry.comment else ""))
                raise RuleFailure(message)
            if status == WARN and policy.max_warnings is not None and report.warnings > policy.max_warnings:
                raise RuleFailure(f"{message}\n{report.warnings} warnings exceed --agent-events-max-warnings "
                                  f"{policy.max_warnings}")
            warnings.warn(AgentEventsWarning(message))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, RuleFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return "agent-events", None, f"{self.scenario}: {self.rule_id}"


def _describe(rule_id: str, section, outcome) -> str:
    rule = _rules.get(rule_id)
    lines = [f"{rule.level.value} {rule_id}: {rule.title}",
             f"scenario {section.name}: {outcome.violations} violation(s) in {outcome.checked} check(s)"]
    shown = [v for v in section.violations if v.rule_id == rule_id][:SHOWN]
    for v in shown:
        where = ", ".join(x for x in (f"run {v.run_id!r}" if v.run_id else "", f"conn {v.conn}",
                                      f"frame #{v.index}" if v.index is not None else "") if x)
        lines += ["", f"  at {where}", f"  expected: {v.expected}", f"  observed: {v.observed}"]
        lines += [f"    {line}" for line in v.excerpt]
    if outcome.violations > len(shown):
        lines.append(f"  ... and {outcome.violations - len(shown)} more")
    return "\n".join(lines)


#: pytest's exit status when the endpoint cannot be reached: the session is interrupted (2), as by
#: Ctrl-C, since nothing could be judged; the CLI's own "could not connect" (3) would read as
#: pytest's INTERNAL_ERROR.
CONNECT_EXIT_STATUS = pytest.ExitCode.INTERRUPTED


def _session_report(config: pytest.Config):
    """The one live check of this session, run on first use. An endpoint that cannot be reached
    ends the session with one message naming the URL and the cause, not one failure per item."""
    from agent_events.conformance.live.wire import ConnectError
    from agent_events.dialects.live import LiveConnectError

    state = getattr(config, _STATE_KEY)
    if "report" not in state:
        url = config.getoption("agent_events_url")
        try:
            state["report"] = _run_session_check(config)
        except (ConnectError, LiveConnectError) as exc:
            pytest.exit(f"agent-events: cannot connect to {url}: {exc}", returncode=CONNECT_EXIT_STATUS)
    return state["report"]


def _run_session_check(config: pytest.Config):
    from agent_events.conformance.live.api import check
    from agent_events.conformance.reporters import write_outputs

    settings = _resolved(config)
    if _foreign(config) is not None:
        report = _run_dialect_check(config, settings)
    else:
        options = check_options(config, settings)
        report = check(config.getoption("agent_events_url"), record=config.getoption("agent_events_record"), **options)
    from agent_events.conformance.reporting.baseline import settle

    settle(report, settings)
    if settings.reports:
        write_outputs(report, None, settings.reports, group=settings.group)
    return report


def _run_dialect_check(config: pytest.Config, settings):
    """A foreign dialect's live check (:func:`agent_events.dialects.live.check_live`), as
    ``agent-events check --dialect`` runs it: the same options, the same report."""
    import asyncio

    from agent_events.dialects.live import SCENARIOS, LiveOptions, check_live

    url = config.getoption("agent_events_url")
    get = config.getoption
    from agent_events.conformance.live.api import build_headers

    try:
        headers = dict(build_headers(list(get("agent_events_header") or []), get("agent_events_token")))
    except ValueError as exc:
        raise pytest.UsageError(f"--agent-events-header: {exc}") from None
    path = get("agent_events_record")
    stream = record = None
    if path:
        from agent_events.conformance.offline.transcript import TranscriptWriter

        try:
            stream = open(path, "wb")
        except OSError as exc:
            raise pytest.UsageError(f"--agent-events-record: cannot write {path}: {exc.strerror or exc}") from None
        record = TranscriptWriter(stream)
        record.header(url=url, dialect=settings.dialect.name)
    options = LiveOptions(url, settings.dialect, settings.profile, scenarios=_scenarios_of(config) or SCENARIOS,
                          concurrency=settings.concurrency or 3, input=settings.input or "Create an action plan",
                          headers=headers, record=record)
    try:
        return asyncio.run(check_live(options, settings.policy))
    finally:
        if stream is not None:
            stream.close()


# -- fixtures ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def reference_agent():
    """The ws:// URL of a reference agent running for this test session (override to point elsewhere)."""
    from agent_events import reference_agent as _reference_agent

    server = _reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0)
    try:
        yield server.url
    finally:
        server.stop(timeout=2)


@pytest.fixture
def agent_events_url(request: pytest.FixtureRequest) -> str:
    """The endpoint ``agent_events_check`` checks by default: ``--agent-events-url``, else ``reference_agent``."""
    url = request.config.getoption("agent_events_url")
    return url if url else request.getfixturevalue("reference_agent")


@pytest.fixture
def agent_events_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Default ``agent_events.conformance.check`` keyword arguments (from the --agent-events-* options)."""
    return check_options(request.config, _resolved(request.config))


@pytest.fixture
def agent_events_check(agent_events_url: str, agent_events_options: dict[str, Any]) -> Callable[..., Any]:
    """``agent_events_check(url=None, **kwargs) -> Report``: run a live check from a test.

    Arguments override ``agent_events_options``; the URL defaults to ``agent_events_url``.
    """
    def run(url: str | None = None, **kwargs: Any):
        from agent_events.conformance.live.api import check

        return check(url or agent_events_url, **{**agent_events_options, **kwargs})

    return run


@pytest.fixture
def agent_events_proxy(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``agent_events_proxy(upstream=None, faults=(), **options) -> ProxyThread``: a fault-injecting proxy.

    Starts :func:`agent_events.proxy.run_in_thread` in front of ``upstream``
    (default ``agent_events_url``); point the client under test at ``.url``,
    read the faults applied in ``.applied``. Stopped when the test ends.
    """
    started: list[Any] = []

    def start(upstream: str | None = None, faults: Any = (), **options: Any):
        from agent_events.proxy import run_in_thread

        proxy = run_in_thread(upstream or request.getfixturevalue("agent_events_url"), faults, **options)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
