"""``--format html``: one self-contained page for people who would rather look than read.

No CDN, no script, no external file: the page is opened from a CI artifact
or an e-mail as is. It shows the verdict, the rule table per section, every
kept violation with its excerpt, the latency percentiles, and a per-run
timeline: each event placed on the run's time axis, with its delivery
latency, so a stall or a burst is visible at a glance.
"""

from __future__ import annotations

from html import escape

from agent_events.conformance import rules as _rules
from agent_events.conformance.latencies import DESCRIPTIONS
from agent_events.conformance.reporters.base import (
    SHOWN_PER_RULE, Reporter, budgets_line, claim_line, fmt_ms, latency_rows, policy_line, target_text,
    verdict_line, verdict_ok, where_parts,
)
from agent_events.conformance.violations import NOT_APPLICABLE

_CSS = """
:root{--fg:#1d2330;--bg:#fff;--mut:#667;--line:#e3e6ee;--pass:#1a7f37;--fail:#cf222e;--warn:#9a6700;--na:#8c959f;--info:#0969da}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--mut:#8b949e;--line:#30363d;--pass:#3fb950;--fail:#f85149;--warn:#d29922;--na:#6e7681;--info:#58a6ff}}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;color:var(--fg);background:var(--bg);margin:2rem auto;max-width:1100px;padding:0 1rem}
h1{font-size:1.4rem;margin:0 0 .3rem} h2{font-size:1.15rem;margin:2rem 0 .5rem;border-bottom:1px solid var(--line);padding-bottom:.3rem}
h3{font-size:1rem;margin:1.2rem 0 .4rem} .mut{color:var(--mut)} code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
table{border-collapse:collapse;width:100%;margin:.4rem 0} td,th{border-bottom:1px solid var(--line);padding:.25rem .5rem;text-align:left;vertical-align:top}
th{font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.st{font-weight:700;font-size:12px;padding:1px 6px;border-radius:4px;color:#fff;display:inline-block;min-width:2.6em;text-align:center}
.PASS{background:var(--pass)} .FAIL{background:var(--fail)} .WARN{background:var(--warn)} .NA{background:var(--na)} .INFO{background:var(--info)} .OFF{background:var(--na)}
.verdict{font-size:1.1rem;font-weight:700;padding:.6rem .8rem;border-radius:6px;margin:1rem 0;color:#fff}
.verdict.ok{background:var(--pass)} .verdict.ko{background:var(--fail)}
.v{border-left:4px solid var(--fail);padding:.3rem .7rem;margin:.6rem 0;background:rgba(127,127,127,.06)} .v.warning{border-color:var(--warn)}
.v pre{margin:.3rem 0 0;white-space:pre-wrap}
.tl{position:relative;height:12px;background:rgba(127,127,127,.12);border-radius:3px;min-width:200px}
.tl span{position:absolute;top:1px;width:10px;height:10px;margin-left:-5px;border-radius:50%;background:var(--info)}
.tl span.slow{background:var(--fail)} .tl span.agent_started,.tl span.agent_completed{background:var(--pass)}
details{margin:.4rem 0} summary{cursor:pointer}
.claim{padding:.5rem .8rem;border-radius:6px;margin:-.4rem 0 1rem;border:1px solid var(--line)} .claim.ok{border-color:var(--pass)}
.claim code{user-select:all;white-space:normal}
"""


def _status_class(status: str) -> str:
    return "NA" if status == NOT_APPLICABLE else status


class HtmlReporter(Reporter):
    name = "html"
    extension = ".html"
    media_type = "text/html"

    def render(self, report) -> str:
        policy = report.policy
        what = target_text(report)
        parts = [
            "<!doctype html><html lang=en><head><meta charset=utf-8>",
            "<meta name=viewport content='width=device-width,initial-scale=1'>",
            f"<title>agent-events report: {escape(what)}</title><style>{_CSS}</style></head><body>",
            "<h1>agent-events conformance report</h1>",
            f"<div class=mut>{escape(report.command or 'check')} {escape(what)} &middot; profile "
            f"<b>{escape(report.profile.name)}</b> &middot; protocol {escape(report.protocol_version)} &middot; "
            f"kit {escape(report.kit_version)} &middot; {escape(report.started_at)}</div>",
            f"<div class=mut>budgets: {escape(budgets_line(report.profile))}"
            f"{' &middot; strict' if policy.gate == 'warning' else ''}</div>",
            f"<div class='verdict {'ok' if verdict_ok(report) else 'ko'}'>{escape(verdict_line(report))} "
            f"&middot; exit {report.exit_code()}</div>",
        ]
        gating = policy_line(policy)
        if gating:
            parts.insert(-1, f"<div class=mut>{escape(gating)}</div>")
        claim = claim_line(report)
        if claim:
            eligible = report.claim().eligible
            parts.append(f"<div class='claim {'ok' if eligible else 'no'}'>"
                         + (f"<b>Conformance claim</b> (paste into release notes):<br><code>"
                            f"{escape(report.claim().statement)}</code>" if eligible else escape(claim))
                         + "</div>")
        for note in report.notes:
            parts.append(f"<p class=mut>{escape(note)}</p>")
        for section in report.sections:
            parts.append(self._section(section, policy, report.profile.delivery_ms))
        parts.append("</body></html>\n")
        return "".join(parts)

    def _section(self, section, policy, delivery_budget: float) -> str:
        s = section.stats
        out = [f"<h2>{escape(section.name)} <span class=mut>({escape(section.kind)})</span></h2>",
               f"<div class=mut>{s.get('runs', 0)} runs &middot; {s.get('events', 0)} events &middot; "
               f"{s.get('frames', 0)} frames</div>"]
        for note in section.notes:
            out.append(f"<p class=mut>{escape(note)}</p>")
        out.append("<table><tr><th>status</th><th>level</th><th>rule</th><th>title</th><th class=num>checked</th>"
                   "<th class=num>violations</th><th>note</th></tr>")
        for rule_id, outcome in section.outcomes.items():
            rule = _rules.get(rule_id)
            status = policy.status(outcome)
            out.append(
                f"<tr><td><span class='st {_status_class(status)}'>{status}</span></td><td>{rule.level.value}</td>"
                f"<td><code>{escape(rule_id)}</code></td><td>{escape(rule.title)}</td>"
                f"<td class=num>{outcome.checked}</td><td class=num>{outcome.violations}</td>"
                f"<td class=mut>{escape(outcome.reason or '')}</td></tr>")
        out.append("</table>")
        shown: dict[str, int] = {}
        violations = []
        for v in section.violations:
            if policy.severity(v.rule_id) == "off":
                continue
            shown[v.rule_id] = shown.get(v.rule_id, 0) + 1
            if shown[v.rule_id] <= SHOWN_PER_RULE:
                violations.append(v)
        if violations:
            out.append("<h3>Violations</h3>")
        for v in violations:
            severity = policy.severity(v.rule_id)
            where = " &middot; ".join(escape(x) for x in where_parts(v))
            out.append(
                f"<div class='v {escape(severity)}'><b><code>{escape(v.rule_id)}</code></b> [{escape(v.level)}] "
                f"<span class=mut>{where}</span><br>expected: {escape(v.expected)}<br>observed: {escape(v.observed)}"
                f"<pre>{escape(chr(10).join(v.excerpt))}</pre></div>")
        hidden = sum(section.violation_counts.values()) - len(violations)
        if hidden > 0:
            out.append(f"<p class=mut>{hidden} more violation(s) not shown (see the JSON report).</p>")
        rows = latency_rows(section.latencies)
        if rows:
            out.append("<h3>Latency (ms)</h3><table><tr><th>series</th><th class=num>count</th><th class=num>p50</th>"
                       "<th class=num>p95</th><th class=num>p99</th><th class=num>max</th><th>measured</th></tr>")
            for kind, summary in rows:
                out.append(f"<tr><td>{escape(kind)}</td><td class=num>{summary['count']}</td>"
                           + "".join(f"<td class=num>{fmt_ms(summary[k])}</td>" for k in ("p50", "p95", "p99", "max"))
                           + f"<td class=mut>{escape(DESCRIPTIONS.get(kind, ''))}</td></tr>")
            out.append("</table>")
        if section.timelines:
            out.append("<h3>Run timelines</h3>")
            for timeline in section.timelines:
                out.append(self._timeline(timeline, delivery_budget))
        return "".join(out)

    @staticmethod
    def _timeline(timeline: dict, delivery_budget: float) -> str:
        events = timeline["events"]
        times = [e["t_ms"] for e in events if e["t_ms"] is not None]
        span = max(times) if times and max(times) > 0 else 1.0
        flags = ", ".join(timeline["violations"]) or "no violations"
        kind = "fallback" if timeline.get("fallback") else "primary"
        if timeline.get("cancelled"):
            kind += ", cancelled"
        bad = bool(timeline["violations"])
        out = [f"<details{' open' if bad else ''}><summary><code>{escape(str(timeline['run_id']))}</code> "
               f"<span class=mut>conn {escape(timeline['conn'])} &middot; {len(events)} events &middot; {kind} &middot; "
               f"{'%.1f ms' % span if times else 'no timing'}</span> "
               f"<span class='st {'FAIL' if bad else 'PASS'}'>{escape(flags)}</span></summary>"]
        if times:
            dots = "".join(
                f"<span class='{escape(e['type'])}{' slow' if (e['delivery_ms'] or 0) > delivery_budget else ''}' "
                f"style='left:{100.0 * e['t_ms'] / span:.2f}%' title='{escape(e['label'])}'></span>"
                for e in events if e["t_ms"] is not None)
            out.append(f"<div class=tl>{dots}</div>")
        out.append("<table><tr><th class=num>#</th><th class=num>seq</th><th class=num>t (ms)</th>"
                   "<th class=num>delivery (ms)</th><th>event</th></tr>")
        for e in events:
            out.append(f"<tr><td class=num>{e['index']}</td><td class=num>{'' if e['seq'] is None else e['seq']}</td>"
                       f"<td class=num>{fmt_ms(e['t_ms'])}</td><td class=num>{fmt_ms(e['delivery_ms'])}</td>"
                       f"<td><code>{escape(e['label'])}</code></td></tr>")
        if timeline.get("truncated"):
            out.append("<tr><td colspan=5 class=mut>timeline truncated</td></tr>")
        out.append("</table></details>")
        return "".join(out)
