"""A load run as a report: the checker's findings, judged as usual, plus the load figures.

The verdict and the exit code are the ordinary report's (so ``--strict`` and
every gating flag work for ``load`` as for ``check``); the load figures ride
along as the JSON report's ``load`` object, and the text format leads with
them because that is what someone running a load test reads first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent_events.conformance.loadgen.engine import PERCENTILES, LoadResult
from agent_events.conformance.reporting.report import Policy, Report, Section
from agent_events.conformance.reporters.base import verdict_line

KIB = 1024.0
MIB = 1024.0 * 1024.0


@dataclass
class LoadReport(Report):
    """A :class:`~agent_events.conformance.reporting.report.Report` with the load figures (``to_dict()["load"]``)."""

    load: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["load"] = self.load
        return data


def build_report(result: LoadResult, policy: Policy, started_at: str) -> LoadReport:
    checker = result.checker
    section = Section.from_checker("load", checker, kind="stream", notes=result.notes)
    dialect = result.options.dialect
    foreign = dialect is not None and not dialect.is_ours
    extra = {"dialect": dialect, "protocol_version": dialect.version} if foreign else {}
    notes = ([f"judged as dialect {dialect.label}: no clock sync (receive times only)"] if foreign
             else [result.clock.describe()])
    return LoadReport(checker.profile, [section], policy, target={"kind": "url", "url": result.options.endpoint.url},
                      command="load", started_at=started_at, notes=notes, load=result.to_dict(), **extra)


def _ms(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _server_line(server: dict[str, Any]) -> str:
    if server.get("cpu_seconds") is None:
        return f"pid {server['pid']}: exited during the load"
    line = (f"pid {server['pid']}: CPU {server['cpu_percent']:.1f} % of one core ({server['cpu_seconds']:.2f} s); "
            f"RSS {server['rss_start_bytes'] / MIB:.1f} MiB -> peak {server['rss_peak_bytes'] / MIB:.1f} MiB")
    per_run = server.get("rss_growth_per_in_flight_run_bytes")
    if per_run is not None:
        line += f" ({per_run / KIB:.1f} KiB per in-flight run, {server['in_flight_peak']} in flight at most)"
    return line


def render_text(report: LoadReport) -> str:
    """The load table, violations by rule, notes and the verdict line."""
    load = report.load
    section = report.sections[0]
    judged = f", judged as dialect {report.dialect.label}" if report.foreign else ""
    out = [f"agent-events load {load['url']} - profile {report.profile.name}{judged}",
           f"  {load['connections_open']} connection(s) x {load['runs_per_connection']} run(s) in flight, "
           f"{'open loop at %g events/s' % load['target_rate'] if load['target_rate'] else 'closed loop'}, "
           f"{load['warmup_runs']} warm-up run(s) not measured", ""]
    out.append(f"  runs         {load['runs_completed']:,} completed of {load['runs_started']:,} started "
               f"({load['runs_refused']:,} refused, {load['runs_unfinished']:,} unfinished), {load['runs_per_s']:,.1f} runs/s")
    out.append(f"  events       {load['events']:,} in {load['elapsed_s']:.2f} s = {load['events_per_s']:,.0f} events/s")
    header = "".join(f"{'p%g' % p:>9}" for p in PERCENTILES)
    out.append(f"  latency ms   {'count':>9}{header}{'max':>9}")
    for label, key in (("delivery", "delivery"), ("first event", "first_event")):
        s = load["latency_ms"][key]
        values = "".join(f"{_ms(s['p%g' % p]):>9}" for p in PERCENTILES)
        out.append(f"  {label:<12} {s['count']:>9}{values}{_ms(s['max']):>9}")
    lag = load.get("generator_lag_ms") or {}
    if lag.get("count"):
        out.append(f"  generator    event loop lag p99 {_ms(lag['p99'])} ms, max {_ms(lag['max'])} ms "
                   "(how late the load generator itself ran)")
    if load.get("server"):
        out.append(f"  server       {_server_line(load['server'])}")
    counts = {rule: n for rule, n in section.violation_counts.items() if n}
    if not counts:
        out.append("  violations   none")
    else:
        first = {}
        for v in section.violations:
            first.setdefault(v.rule_id, v)
        out.append(f"  violations   {sum(counts.values()):,} ({report.policy.gate} and worse fail)")
        for rule_id, n in sorted(counts.items(), key=lambda item: -item[1]):
            v = first.get(rule_id)
            detail = f" - first: run {v.run_id!r}: expected {v.expected}; observed {v.observed}" if v else ""
            out.append(f"    {rule_id:<24} {n:>8} [{report.policy.severity(rule_id)}]{detail}"[:220])
    if section.errors_received:
        codes = ", ".join(f"{code} x{n}" for code, n in sorted(section.errors_received.items()))
        out.append(f"  errors       {codes}")
    for note in section.notes + report.notes:
        out.append(f"note: {note}")
    out.append("")
    out.append(f"{verdict_line(report)} - exit {report.exit_code()}")
    return "\n".join(out) + "\n"
