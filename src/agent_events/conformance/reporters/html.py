"""``--format html``: one self-contained page for people who would rather look than read.

No CDN, no script, no external file: the page is opened from a CI artifact
or an e-mail as is. What a reader needs first comes first:

* the verdict, then an **overview matrix** (sections x rules, as Autobahn's
  test suite shows agents x cases): one coloured cell per rule and section,
  each a link to that rule's row;
* per section, the **rule table**, folded away when nothing in it needs
  attention, the **violation cards** and the latency percentiles;
* per kept run, a **timeline**: an SVG with a real time axis and a legend,
  one lane per kind of event, tool calls drawn as bars from
  ``tool_executing`` to ``tool_completed``, the primary and fallback
  attempts shaded, and every violation marked on the frame where it was
  found. Events that arrive in the same millisecond (a server that batches
  its writes) are laid out in arrival order and tied to their true time on
  the axis by a leader line, so ten events in one millisecond are ten marks,
  not one.

Links go both ways with plain anchors: matrix cell -> rule row -> first
violation card <-> the violation's mark in the timeline -> the event's row.
"""

from __future__ import annotations

import math
from html import escape

from agent_events.conformance.core import rules as _rules
from agent_events.conformance.core.latencies import DESCRIPTIONS
from agent_events.conformance.reporters.base import (
    SHOWN_PER_RULE, Reporter, budgets_line, claim_line, fmt_ms, latency_rows, policy_line, target_text,
    verdict_line, verdict_ok, where_parts,
)
from agent_events.conformance.core.violations import FAIL, INFO, NOT_APPLICABLE, OFF, PASS, STATUSES, WARN

_CSS = """
:root{--fg:#1d2330;--bg:#fff;--mut:#667;--line:#e3e6ee;--pass:#1a7f37;--fail:#cf222e;--warn:#9a6700;--na:#8c959f;--info:#0969da;
--think:#8250df;--tool:#0969da;--prog:#57606a;--prim:rgba(9,105,218,.07);--fb:rgba(191,135,0,.13);--hl:rgba(255,212,59,.45)}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--mut:#8b949e;--line:#30363d;--pass:#3fb950;--fail:#f85149;--warn:#d29922;--na:#6e7681;--info:#58a6ff;
--think:#bc8cff;--tool:#58a6ff;--prog:#8b949e;--prim:rgba(88,166,255,.09);--fb:rgba(210,153,34,.16);--hl:rgba(187,128,9,.45)}}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;color:var(--fg);background:var(--bg);margin:2rem auto;max-width:1100px;padding:0 1rem}
a{color:var(--info)} h1{font-size:1.4rem;margin:0 0 .3rem}
h2{font-size:1.15rem;margin:2rem 0 .5rem;border-bottom:1px solid var(--line);padding-bottom:.3rem}
h3{font-size:1rem;margin:1.2rem 0 .4rem} .mut{color:var(--mut)} code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
table{border-collapse:collapse;width:100%;margin:.4rem 0} td,th{border-bottom:1px solid var(--line);padding:.25rem .5rem;text-align:left;vertical-align:top}
th{font-weight:600} td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.st{font-weight:700;font-size:12px;padding:1px 6px;border-radius:4px;color:#fff;display:inline-block;min-width:2.6em;text-align:center}
.PASS{background:var(--pass)} .FAIL{background:var(--fail)} .WARN{background:var(--warn)} .NA{background:var(--na)} .INFO{background:var(--info)} .OFF{background:var(--na)} .INCONCLUSIVE{background:var(--think)}
.verdict{font-size:1.1rem;font-weight:700;padding:.6rem .8rem;border-radius:6px;margin:1rem 0;color:#fff}
.verdict.ok{background:var(--pass)} .verdict.ko{background:var(--fail)}
.v{border-left:4px solid var(--fail);padding:.3rem .7rem;margin:.6rem 0;background:rgba(127,127,127,.06)} .v.warning{border-color:var(--warn)}
.v pre{margin:.3rem 0 0;white-space:pre-wrap} .v .links{float:right;font-size:12px}
:target{background:var(--hl);outline:2px solid var(--warn);outline-offset:2px}
svg :target{outline:none} svg a:target .vm{stroke:var(--fg);stroke-width:2.5}
details{margin:.4rem 0} summary{cursor:pointer}
.claim{padding:.5rem .8rem;border-radius:6px;margin:-.4rem 0 1rem;border:1px solid var(--line)} .claim.ok{border-color:var(--pass)}
.claim code{user-select:all;white-space:normal}
.scroll{overflow-x:auto} .matrix{width:auto;border-collapse:separate;border-spacing:2px;margin:.6rem 0}
.matrix td,.matrix th{border:0;padding:0}
.matrix th.r{height:9.5rem;vertical-align:bottom;width:20px;max-width:20px;font:11px/1 ui-monospace,SFMono-Regular,Menlo,monospace;font-weight:400}
.matrix th.r>div{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;margin:0 auto}
.matrix .g{padding-left:7px}
.matrix th.s{text-align:right;padding-right:.5rem;font-weight:400;max-width:260px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.matrix td a{display:block;width:20px;height:20px;line-height:20px;text-align:center;color:#fff;text-decoration:none;font-size:12px;font-weight:700;border-radius:3px}
.matrix td a:hover{outline:2px solid var(--fg)}
.legend{font-size:12px;color:var(--mut);margin:.2rem 0 .6rem} .legend span{display:inline-block;margin-right:.9rem}
.legend i{display:inline-block;width:11px;height:11px;border-radius:2px;vertical-align:-1px;margin-right:3px}
.legend i.dot{border-radius:50%} .legend i.bar{height:7px;width:18px;vertical-align:1px}
.tl{margin:.3rem 0} .tl svg{width:100%;height:auto;display:block;overflow:visible}
.tl text{font:11px system-ui,-apple-system,Segoe UI,sans-serif;fill:var(--mut)} .tl text.tn{fill:var(--fg);font-size:10px}
.tl .lane{stroke:var(--line)} .tl .axis{stroke:var(--mut)} .tl .lead{stroke:var(--na);stroke-width:.6;opacity:.7}
.tl .prim{fill:var(--prim)} .tl .fb{fill:var(--fb)}
.tl .ev{stroke:var(--bg);stroke-width:1} .tl .slow{stroke:var(--warn);stroke-width:2.5} .tl .bad{stroke:var(--fail);stroke-width:2.5}
.tl .life{fill:var(--pass)} .tl .think{fill:var(--think)} .tl .prog{fill:var(--prog)} .tl .other{fill:var(--fail)}
.tl .call{fill:var(--tool)} .tl .call.error{fill:var(--fail)} .tl .call.open{fill:none;stroke:var(--tool);stroke-dasharray:3 2}
.tl .vm{fill:var(--fail);stroke:var(--bg);stroke-width:1} .tl .vm.warning{fill:var(--warn)}
.tl a:hover circle,.tl a:hover rect{stroke:var(--fg);stroke-width:2}
tr.bad td{background:rgba(207,34,46,.07)}
"""

#: What a cell of the overview matrix shows for a status (the colour says the rest).
_CELL = {PASS: "\u2713", FAIL: "\u2717", WARN: "!", INFO: "i", NOT_APPLICABLE: "\u00b7", OFF: "\u2013", "INCONCLUSIVE": "?"}
#: Statuses that need a reader's attention, worst first (any status not listed here or below counts too).
_ATTENTION = (FAIL, WARN, INFO)
_QUIET = (PASS, NOT_APPLICABLE, OFF)

#: Timeline lanes, top to bottom, and which event types go on each.
_LANES = (("lifecycle", ("agent_started", "agent_completed")), ("thinking", ("agent_thinking",)),
          ("tools", ("tool_executing", "tool_completed")), ("progress", ("progress",)))
_LANE_OF = {t: name for name, types in _LANES for t in types}
_DOT_CLASS = {"lifecycle": "life", "thinking": "think", "progress": "prog", "other": "other"}

# Timeline geometry (SVG user units; the SVG scales to the page width).
_W, _X0, _X1 = 1000.0, 92.0, 985.0
_ROW, _PAD, _MAX_GAP = 13.0, 4.0, 36.0


def _status_class(status: str) -> str:
    return "NA" if status == NOT_APPLICABLE else status


def _rank(status: str) -> int:
    return _ATTENTION.index(status) if status in _ATTENTION else len(_ATTENTION)


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
            f"<b>{escape(report.profile.name)}</b> &middot; "
            + (f"judged as dialect {escape(report.dialect.label)}" if getattr(report, "foreign", False)
               else f"protocol {escape(report.protocol_version)}") + " &middot; "
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
        if report.sections:
            parts.append(_matrix(report.sections, policy, report.rules))
        # One timeline open as an example when no run broke anything; otherwise the runs that did.
        example = next((i for i, section in enumerate(report.sections) if section.timelines), None)
        for number, section in enumerate(report.sections):
            parts.append(_Section(section, number, policy, report.profile.delivery_ms).render(number == example))
        parts.append("</body></html>\n")
        return "".join(parts)


def _matrix(sections, policy, rules=_rules.RULES) -> str:
    """Sections x rules, one linked cell each, rules grouped by the family their id starts with."""
    rule_ids = [rule.id for rule in rules]
    first = {r for i, r in enumerate(rule_ids) if i and r.split(".", 1)[0] != rule_ids[i - 1].split(".", 1)[0]}
    out = ["<h2 id=overview>Overview</h2><div class=scroll><table class=matrix><tr><th></th>"]
    out.extend(f"<th class='r{' g' if r in first else ''}' title='{escape(_rules.get(r).title)}'><div>{escape(r)}</div></th>"
               for r in rule_ids)
    out.append("</tr>")
    for number, section in enumerate(sections):
        statuses = section.statuses(policy)
        out.append(f"<tr><th class=s title='{escape(section.name)}'><a href='#s{number}'>{escape(section.name)}</a></th>")
        for rule_id in rule_ids:
            status = statuses.get(rule_id)
            if status is None:
                out.append(f"<td{' class=g' if rule_id in first else ''}></td>")
                continue
            outcome = section.outcomes[rule_id]
            detail = f"{outcome.violations} violation(s)" if outcome.violations else (
                outcome.reason or f"checked {outcome.checked}")
            out.append(f"<td{' class=g' if rule_id in first else ''}><a class={_status_class(status)} href='#s{number}-r-{rule_id}' "
                       f"title='{escape(section.name)} / {rule_id}: {status} ({escape(detail)})'>{_CELL.get(status, '?')}</a></td>")
        out.append("</tr>")
    out.append("</table></div><div class=legend>")
    out.extend(f"<span><i class={_status_class(s)}></i>{_CELL.get(s, '?')} {s}</span>" for s in STATUSES)
    out.append("<span>each cell links to the rule's row below</span></div>")
    return "".join(out)


class _Section:
    """One section's HTML, with the ids that tie its rule rows, violation cards and timelines together."""

    def __init__(self, section, number: int, policy, delivery_budget: float) -> None:
        self.section = section
        self.n = number
        self.policy = policy
        self.delivery_budget = delivery_budget
        shown: dict[str, int] = {}
        #: the violations shown as cards, each with its number (its id is s{n}-v{k})
        self.cards: list = []
        for v in section.violations:
            if policy.severity(v.rule_id) == "off":
                continue
            shown[v.rule_id] = shown.get(v.rule_id, 0) + 1
            if shown[v.rule_id] <= SHOWN_PER_RULE:
                self.cards.append(v)
        self.first_card = {}
        for k, v in enumerate(self.cards):
            self.first_card.setdefault(v.rule_id, k)
        # Each kept frame's id, by (timeline number, index); the timeline where a (conn, index) is.
        self.frame_ids: dict[tuple, str] = {}
        self.frame_timeline: dict[tuple, int] = {}
        frame = 0
        for t, timeline in enumerate(section.timelines):
            for e in timeline["events"]:
                self.frame_ids[(t, e["index"])] = f"s{number}-f{frame}"
                self.frame_timeline.setdefault((timeline["conn"], e["index"]), t)
                frame += 1
        #: card number -> (timeline number, id of its mark there)
        self.marks: dict[int, tuple[int, str]] = {}
        for k, v in enumerate(self.cards):
            t = self._timeline_of(v)
            if t is not None:
                self.marks[k] = (t, f"s{number}-m{k}")

    def _timeline_of(self, v) -> int | None:
        if v.index is not None:
            return self.frame_timeline.get((v.conn, v.index))
        for t, timeline in enumerate(self.section.timelines):  # found at the end: mark the run's end
            if timeline["conn"] == v.conn and v.run_id is not None and timeline["run_id"] == v.run_id:
                return t
        return None

    def render(self, open_example: bool = False) -> str:
        section, n, policy = self.section, self.n, self.policy
        s = section.stats
        statuses = section.statuses(policy)
        bad = [r for r, st in statuses.items() if st not in _QUIET]
        head = min((statuses[r] for r in bad), key=_rank, default=PASS)
        out = [f"<h2 id=s{n}><span class='st {head}'>{head}</span> {escape(section.name)} "
               f"<span class=mut>({escape(section.kind)})</span></h2>",
               f"<div class=mut>{s.get('runs', 0)} runs &middot; {s.get('events', 0)} events &middot; "
               f"{s.get('frames', 0)} frames &middot; <a href='#overview'>overview</a></div>"]
        for note in section.notes:
            out.append(f"<p class=mut>{escape(note)}</p>")
        out.append(self._rules(statuses, bad))
        out.append(self._cards())
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
            out.append(f"<h3>Run timelines <span class=mut>({len(section.timelines)} kept)</span></h3>")
            any_bad = any(tl["violations"] for tl in section.timelines) or bool(self.marks)
            for t, timeline in enumerate(section.timelines):
                out.append(self._timeline(t, timeline, open_=(open_example and not any_bad and t == 0)))
        return "".join(out)

    def _rules(self, statuses, bad) -> str:
        """The rules that need attention in the open; the others (all of them when none does) folded away."""
        section = self.section

        def tally(ids) -> str:
            counts: dict[str, int] = {}
            for rule_id in ids:
                counts[statuses[rule_id]] = counts.get(statuses[rule_id], 0) + 1
            return ", ".join(f"{c} {st}" for st, c in counts.items())

        shown = sorted((r for r in section.outcomes if r in bad), key=lambda r: _rank(statuses[r]))
        folded = [r for r in section.outcomes if r not in bad]
        out = []
        if shown:
            out.append(f"<h3>Rules <span class=mut>({len(statuses)}: {escape(tally(statuses))})</span></h3>")
            out.append(self._rule_table(shown, statuses))
        if folded:
            summary = (f"the other {len(folded)} rules <span class=mut>({escape(tally(folded))})</span>" if shown
                       else f"<b>Rules</b> <span class=mut>({len(folded)}: {escape(tally(folded))})</span>")
            out.append(f"<details><summary>{summary}</summary>{self._rule_table(folded, statuses)}</details>")
        return "".join(out)

    def _rule_table(self, rule_ids, statuses) -> str:
        n, section = self.n, self.section
        out = ["<table><tr><th>status</th><th>level</th><th>rule</th><th>title</th><th class=num>checked</th>"
               "<th class=num>violations</th><th>note</th></tr>"]
        for rule_id in rule_ids:
            outcome = section.outcomes[rule_id]
            rule = _rules.get(rule_id)
            status = statuses[rule_id]
            count = str(outcome.violations)
            if rule_id in self.first_card:
                count = f"<a href='#s{n}-v{self.first_card[rule_id]}'>{count}</a>"
            out.append(
                f"<tr id='s{n}-r-{rule_id}'><td><span class='st {_status_class(status)}'>{status}</span></td>"
                f"<td>{rule.level.value}</td><td><code>{escape(rule_id)}</code></td><td>{escape(rule.title)}</td>"
                f"<td class=num>{outcome.checked}</td><td class=num>{count}</td>"
                f"<td class=mut>{escape(outcome.reason or '')}</td></tr>")
        out.append("</table>")
        return "".join(out)

    def _cards(self) -> str:
        n, section, policy = self.n, self.section, self.policy
        out = ["<h3>Violations</h3>"] if self.cards else []
        for k, v in enumerate(self.cards):
            severity = policy.severity(v.rule_id)
            where = " &middot; ".join(escape(x) for x in where_parts(v))
            links = [f"<a href='#s{n}-r-{v.rule_id}'>rule</a>"]
            if k in self.marks:
                links.append(f"<a href='#{self.marks[k][1]}'>in the timeline</a>")
            out.append(
                f"<div class='v {escape(severity)}' id=s{n}-v{k}><span class=links>{' &middot; '.join(links)}</span>"
                f"<b><code>{escape(v.rule_id)}</code></b> [{escape(v.level)}] "
                f"<span class=mut>{where}</span><br>expected: {escape(v.expected)}<br>observed: {escape(v.observed)}"
                f"<pre>{escape(chr(10).join(v.excerpt))}</pre></div>")
        hidden = sum(section.violation_counts.values()) - len(self.cards)
        if hidden > 0:
            out.append(f"<p class=mut>{hidden} more violation(s) not shown (see the JSON report).</p>")
        return "".join(out)

    # -- one run's timeline -----------------------------------------------------------

    def _timeline(self, t: int, timeline: dict, open_: bool) -> str:
        events = timeline["events"]
        conn = timeline["conn"]
        marks = [(k, self.cards[k]) for k, (tl, _) in self.marks.items() if tl == t]
        times = [e["t_ms"] for e in events if e["t_ms"] is not None]
        span = max(times) if times else 0.0
        flags = ", ".join(timeline["violations"]) or "no violations"
        kind = "fallback" if timeline.get("fallback") else "primary"
        if timeline.get("cancelled"):
            kind += ", cancelled"
        bad = bool(timeline["violations"]) or bool(marks)
        out = [f"<details{' open' if bad or open_ else ''}><summary><code>{escape(str(timeline['run_id']))}</code> "
               f"<span class=mut>conn {escape(conn)} &middot; {len(events)} events &middot; {kind} &middot; "
               f"{'%s ms' % fmt_ms(span) if times else 'no timing'}</span> "
               f"<span class='st {'FAIL' if bad else 'PASS'}'>{escape(flags)}</span></summary>"]
        if events:
            out.append(f"<div class=tl>{self._svg(t, timeline, marks)}</div>")
            out.append(_LEGEND)
        bad_frames: dict[int, list[int]] = {}
        for k, v in marks:
            if v.index is not None:
                bad_frames.setdefault(v.index, []).append(k)
        out.append(f"<details{' open' if bad else ''}><summary class=mut>events ({len(events)})</summary>"
                   "<table><tr><th class=num>#</th><th class=num>seq</th><th class=num>t (ms)</th>"
                   "<th class=num>delivery (ms)</th><th>event</th><th>violations</th></tr>")
        for e in events:
            ks = bad_frames.get(e["index"], [])
            links = " ".join(f"<a href='#s{self.n}-v{k}'>{escape(self.cards[k].rule_id)}</a>" for k in ks)
            out.append(f"<tr id={self.frame_ids[(t, e['index'])]}{' class=bad' if ks else ''}>"
                       f"<td class=num>{e['index']}</td><td class=num>{'' if e['seq'] is None else e['seq']}</td>"
                       f"<td class=num>{fmt_ms(e['t_ms'])}</td><td class=num>{fmt_ms(e['delivery_ms'])}</td>"
                       f"<td><code>{escape(e['label'])}</code></td><td>{links}</td></tr>")
        if timeline.get("truncated"):
            out.append("<tr><td colspan=6 class=mut>timeline truncated</td></tr>")
        out.append("</table></details></details>")
        return "".join(out)

    def _svg(self, t: int, timeline: dict, marks: list) -> str:
        events = timeline["events"]
        count = len(events)
        timed = any(e["t_ms"] is not None for e in events)
        # Where each event belongs on the time axis: its receive time since the run's start.
        true_t: list[float] = []
        last = 0.0
        for i, e in enumerate(events):
            value = e["t_ms"] if timed else float(i)
            last = max(last, value) if value is not None else last
            true_t.append(last if value is None else value)
        span = max(true_t) if true_t else 0.0
        span = span if span > 0 else 1.0
        width = _X1 - _X0
        axis_x = [_X0 + width * v / span for v in true_t]
        gap = min(_MAX_GAP, width / max(count, 1))
        xs = _spread(axis_x, gap, _X0, _X1)

        # Lanes and their rows: a row per concurrent tool call, one row for every other lane.
        calls = _tool_calls(events, xs)
        tool_rows = _rows(calls)
        lanes = []
        if marks:
            lanes.append(("violations", 1))
        lanes.extend((name, max(1, tool_rows) if name == "tools" else 1) for name, _ in _LANES)
        if any(_LANE_OF.get(e["type"]) is None for e in events):
            lanes.append(("other", 1))
        top = {}
        y = 16.0
        for name, rows in lanes:
            top[name] = y
            y += rows * _ROW + 2 * _PAD
        lanes_bottom = y
        fan = 12.0
        axis_y = lanes_bottom + fan
        height = axis_y + 26.0

        def mid(name: str) -> float:
            return top[name] + _PAD + _ROW / 2

        parts = [f"<svg viewBox='0 0 {_W:g} {height:.0f}' role=img aria-label='timeline of run "
                 f"{escape(str(timeline['run_id']))}' xmlns='http://www.w3.org/2000/svg'>"]
        # Attempts: shade from each agent_started to the next one (or the end).
        starts = [(i, e.get("attempt") or "primary") for i, e in enumerate(events) if e["type"] == "agent_started"]
        for j, (i, attempt) in enumerate(starts):
            x_from = max(_X0 - 6, xs[i] - gap / 2)
            x_to = xs[starts[j + 1][0]] - gap / 2 if j + 1 < len(starts) else min(_X1 + 6, xs[-1] + gap / 2)
            cls = "fb" if attempt == "fallback" else "prim"
            parts.append(f"<rect class={cls} x='{x_from:.1f}' y='4' width='{max(x_to - x_from, 2):.1f}' "
                         f"height='{lanes_bottom - 4:.1f}'><title>{escape(attempt)} attempt</title></rect>"
                         f"<text x='{x_from + 3:.1f}' y='13'>{escape(attempt)}</text>")
        for name, rows in lanes:
            y0 = top[name] + rows * _ROW + 2 * _PAD
            parts.append(f"<text x='4' y='{mid(name) + 4:.1f}'>{name}</text>"
                         f"<line class=lane x1='{_X0 - 6:g}' x2='{_X1:g}' y1='{y0:.1f}' y2='{y0:.1f}'/>")
        # Leader lines: each mark down to its true time on the axis.
        for x, ax in zip(xs, axis_x):
            parts.append(f"<line class=lead x1='{x:.1f}' y1='{lanes_bottom:.1f}' x2='{ax:.1f}' y2='{axis_y:.1f}'/>")
        parts.append(_axis(span if timed else 0.0, axis_y, count))

        bad_index = {}
        for k, v in marks:
            if v.index is not None:
                bad_index.setdefault(v.index, v)
        budget = self.delivery_budget
        for i, e in enumerate(events):
            lane = _LANE_OF.get(e["type"], "other")
            if lane == "tools":
                continue
            cls = "ev"
            if e["index"] in bad_index:
                cls = "bad"
            elif (e["delivery_ms"] or 0) > budget:
                cls = "slow"
            r = 5.5 if lane == "lifecycle" else 4.5
            shape = (f"<rect class='{_DOT_CLASS[lane]} {cls}' x='{xs[i] - r:.1f}' y='{mid(lane) - r:.1f}' "
                     f"width='{2 * r:g}' height='{2 * r:g}'>" if lane == "other" else
                     f"<circle class='{_DOT_CLASS[lane]} {cls}' cx='{xs[i]:.1f}' cy='{mid(lane):.1f}' r='{r:g}'>")
            closing = "</rect>" if lane == "other" else "</circle>"
            parts.append(f"<a href='#{self.frame_ids[(t, e['index'])]}'>{shape}<title>{escape(_tip(e))}</title>"
                         f"{closing}</a>")
        for call in calls:
            y_call = top["tools"] + _PAD + call["row"] * _ROW + 2
            x_a, x_b = call["x0"], call["x1"]
            status = call["status"]
            cls = "call" + (" error" if status == "error" else "") + (" open" if call["end"] is None else "")
            if any(e_i in bad_index for e_i in call["indexes"]):
                cls += " bad"
            tip = (f"{call['name']} ({call['id']}): "
                   + (f"{status or 'completed'}, {fmt_ms(call['ms'])} ms" if call["end"] is not None else "never completed")
                   + " \u00b7 " + " / ".join(_tip(events[i]) for i in call["positions"]))
            target = self.frame_ids[(t, events[call["positions"][0]]["index"])]
            parts.append(f"<a href='#{target}'><rect class='{cls}' x='{x_a - 3:.1f}' y='{y_call:.1f}' "
                         f"width='{max(x_b - x_a, 0) + 6:.1f}' height='{_ROW - 4:g}' rx='2'>"
                         f"<title>{escape(tip, quote=False)}</title></rect></a>"
                         + _label(x_a, x_b, y_call + _ROW - 5, call["name"]))
        position = {e["index"]: i for i, e in enumerate(events)}
        ym = mid("violations") if marks else 0.0
        labelled: dict[str, tuple[float, float]] = {}  # one name per rule, after its marks
        for k, v in marks:
            mark_id = self.marks[k][1]
            x = xs[position[v.index]] if v.index in position else min(_X1, xs[-1] + gap)
            parts.append(f"<a id={mark_id} href='#s{self.n}-v{k}'><path class='vm {escape(v.severity)}' "
                         f"d='M{x - 6:.1f} {ym - 6:.1f}h12l-6 11z'><title>{escape(v.rule_id)}: {escape(v.observed)}"
                         f"</title></path></a>")
            first, last = labelled.get(v.rule_id, (x, x))
            labelled[v.rule_id] = (min(first, x), max(last, x))
        for rule_id, (first, last) in labelled.items():
            parts.append(_label(first - 4, last + 4, ym + 3, rule_id))
        parts.append("</svg>")
        return "".join(parts)


_LEGEND = (
    "<div class=legend>"
    "<span><i class=dot style='background:var(--pass)'></i>started / completed</span>"
    "<span><i class=dot style='background:var(--think)'></i>thinking</span>"
    "<span><i class=bar style='background:var(--tool)'></i>tool call, executing &rarr; completed</span>"
    "<span><i class=bar style='background:var(--fail)'></i>tool error</span>"
    "<span><i class=dot style='background:var(--prog)'></i>progress</span>"
    "<span><i style='background:var(--prim);border:1px solid var(--line)'></i>primary attempt</span>"
    "<span><i style='background:var(--fb);border:1px solid var(--line)'></i>fallback attempt</span>"
    "<span><i class=dot style='border:2px solid var(--warn)'></i>delivery over budget</span>"
    "<span><i style='background:var(--fail);clip-path:polygon(0 0,100% 0,50% 100%)'></i>violation (links to it)</span>"
    "<span>events in the same millisecond are drawn side by side in arrival order; "
    "the thin lines lead to their time on the axis</span></div>")


def _fits_after(x: float, text: str) -> bool:
    return x + 10 + 5.6 * len(text) <= _W


def _label(x_a: float, x_b: float, y: float, text: str) -> str:
    """A bar's name after it, or before it where it would run off the right edge."""
    if _fits_after(x_b, text):
        return f"<text class=tn x='{x_b + 6:.1f}' y='{y:.1f}'>{escape(text)}</text>"
    return f"<text class=tn x='{x_a - 6:.1f}' y='{y:.1f}' text-anchor=end>{escape(text)}</text>"


def _tip(e: dict) -> str:
    seq = "" if e["seq"] is None else f" seq {e['seq']}"
    return (f"#{e['index']}{seq} at {fmt_ms(e['t_ms'])} ms, delivered in {fmt_ms(e['delivery_ms'])} ms: {e['label']}")


def _spread(targets: list[float], gap: float, lo: float, hi: float) -> list[float]:
    """Positions as close as possible to ``targets`` (in order) with at least ``gap`` between neighbours.

    Isotonic regression (pool adjacent violators) of ``target[i] - i * gap``: ties and near-ties
    fan out evenly around their time instead of hiding each other.
    """
    blocks: list[list[float]] = []  # [sum, count]
    for i, target in enumerate(targets):
        blocks.append([target - i * gap, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    out: list[float] = []
    for total, count in blocks:
        level = total / count
        for _ in range(int(count)):
            out.append(level + len(out) * gap)
    last = len(out) - 1
    return [min(max(x, lo + i * gap), hi - (last - i) * gap) for i, x in enumerate(out)]


def _tool_calls(events: list[dict], xs: list[float]) -> list[dict]:
    """Each tool call: its executing and completed events (by position), x extent and duration."""
    calls: list[dict] = []
    open_calls: dict[str, dict] = {}
    for i, e in enumerate(events):
        call_id = e.get("tool_call_id")
        if e["type"] == "tool_executing":
            call = {"id": call_id or "?", "name": e.get("tool_name") or "?", "start": i, "end": None, "status": None,
                    "positions": [i], "indexes": [e["index"]]}
            calls.append(call)
            if call_id is not None:
                open_calls[call_id] = call
        elif e["type"] == "tool_completed":
            call = open_calls.pop(call_id, None) if call_id is not None else None
            if call is None:  # a completion with no start: a zero-length bar of its own
                call = {"id": call_id or "?", "name": e.get("tool_name") or "?", "start": i, "end": None,
                        "status": None, "positions": [], "indexes": []}
                calls.append(call)
            call["end"] = i
            call["status"] = e.get("status")
            call["positions"].append(i)
            call["indexes"].append(e["index"])
    for call in calls:
        start, end = call["start"], call["end"]
        call["x0"] = xs[start]
        call["x1"] = xs[end] if end is not None else xs[-1]
        t0, t1 = events[start]["t_ms"], events[end]["t_ms"] if end is not None else None
        call["ms"] = (t1 - t0) if t0 is not None and t1 is not None else None
    return calls


def _rows(calls: list[dict]) -> int:
    """Give each call the first row where it (and its name after it) does not overlap; return the row count."""
    ends: list[float] = []
    for call in calls:
        text = 10 + 5.6 * len(call["name"])
        if _fits_after(call["x1"], call["name"]):  # the name goes after the bar (as _label places it), else before it
            start, reach = call["x0"] - 3, call["x1"] + text
        else:
            start, reach = call["x0"] - text, call["x1"] + 3
        for row, end in enumerate(ends):
            if start > end:
                ends[row] = reach
                call["row"] = row
                break
        else:
            call["row"] = len(ends)
            ends.append(reach)
    return len(ends)


def _axis(span: float, y: float, count: int) -> str:
    """The time axis, with round ticks; an order axis when nothing was timed."""
    width = _X1 - _X0
    out = [f"<line class=axis x1='{_X0:g}' x2='{_X1:g}' y1='{y:.1f}' y2='{y:.1f}'/>"]
    if span <= 0:
        out.append(f"<text x='{_X0:g}' y='{y + 16:.1f}'>no receive times: events in arrival order (1 to {count})</text>")
        return "".join(out)
    raw = span / 6
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    value = 0.0
    while value <= span * (1 + 1e-9):
        x = _X0 + width * value / span
        out.append(f"<line class=axis x1='{x:.1f}' x2='{x:.1f}' y1='{y:.1f}' y2='{y + 4:.1f}'/>"
                   f"<text x='{x:.1f}' y='{y + 16:.1f}' text-anchor=middle>{value:.{decimals}f}</text>")
        value += step
    out.append(f"<text x='4' y='{y + 16:.1f}'>ms since start</text>")
    return "".join(out)
