"""The paired families' part of the judge: one event of a family, a tool call's span, and what a run's
end leaves open. A mixin of :class:`agent_events.dialects.judge.DialectChecker` (its state and
``_flag`` / ``_check``), kept apart so each module stays small; the rule ids come from the family's
:class:`agent_events.run_rules.Family` row (``breaches``)."""

from __future__ import annotations

from collections import deque

from agent_events.dialects.fast_paths import CLOSE, OPEN
from agent_events.dialects.model import Family


class FamilyJudging:
    """Family events per run: pairing by key or by name in order, reopening, attribution, spans."""

    def _family_event(self, fam: Family, type_: str, event: dict, run, at, c, index, ref, out) -> None:
        plan = self._plans.get(type_)
        if plan is not None:  # id pairing, one-member pointers (agent_events.dialects.fast_paths)
            role, key_tok, name_tok, attr_tok, orphan, duplicate = plan
            items = run.open.get(fam.name)
            if items is None:
                items = run.open[fam.name] = {}
            key = event.get(key_tok)
            attribution = event.get(attr_tok) if attr_tok is not None else None
            if role == OPEN:
                if duplicate:
                    self._check(duplicate)
                    if key in items:
                        out.append(self._flag(duplicate, c, run.run_id, index, at, ref,
                                              f"no {type_} for a {fam.key.text} that is still open",
                                              f"{type_} of {key!r} while it is open"))
                        return
                items[key] = (at, attribution, event.get(name_tok) if name_tok is not None else None)
                return
            opened = items.get(key)
            if opened is not None and (attribution is None or not fam.attribution_rule):
                self._check(orphan)
                if role == CLOSE:
                    del items[key]
                    if fam.tool:
                        self._span(fam, opened, opened[2], run, at, c, index, ref, out)
                return
            # an orphan, or an attribution to compare: the general path below
        key_tok, name_tok, attr_tok = self._tokens[fam.name]
        breaches = self._rows[fam.name].breaches  # the family's row of the run-rules table: its rule per breach
        orphan, duplicate = breaches.orphan, breaches.duplicate
        name = (event.get(name_tok) if name_tok is not None else fam.name_pointer.resolve(event, None)) \
            if fam.name_pointer is not None else None
        attribution = (event.get(attr_tok) if attr_tok is not None else fam.attribution.resolve(event, None)) \
            if fam.attribution is not None else None
        if fam.pairing == "name-in-order":
            queues = run.by_name.setdefault(fam.name, {})
            if type_ in fam.opens:
                queues.setdefault(name, deque()).append((at, attribution, name))
                return
            self._check(orphan)
            queue = queues.get(name)
            if not queue:
                out.append(self._flag(orphan, c, run.run_id, index, at, ref,
                                      f"a {type_} only after an open {' or '.join(fam.opens)} of the same name",
                                      f"{type_} of {name!r} with none open"))
                return
            if type_ in fam.closes:
                opened = queue.popleft()
                if not queue:
                    del queues[name]
                self._span(fam, opened, name, run, at, c, index, ref, out)
            return
        key = (event.get(key_tok) if key_tok is not None else fam.key.resolve(event, None)) if fam.key is not None else None
        items = run.open.get(fam.name)
        if items is None:
            items = run.open[fam.name] = {}
        if type_ in fam.opens:
            if duplicate:
                self._check(duplicate)
                if key in items:
                    out.append(self._flag(duplicate, c, run.run_id, index, at, ref,
                                          f"no {type_} for a {fam.key.text} that is still open",
                                          f"{type_} of {key!r} while it is open"))
                    return
            items[key] = (at, attribution, name)
            return
        self._check(orphan)
        opened = items.get(key)
        if opened is None:
            out.append(self._flag(orphan, c, run.run_id, index, at, ref,
                                  f"a {type_} only for an open {' or '.join(fam.opens)} with the same "
                                  f"{fam.key.text if fam.key else 'key'}",
                                  f"No active {fam.name.replace('_', ' ')} found with ID {key!r}: {type_} with none open"))
            return
        if fam.attribution_rule and attribution is not None:
            self._check(fam.attribution_rule)
            if opened[1] is not None and attribution != opened[1]:
                out.append(self._flag(fam.attribution_rule, c, run.run_id, index, at, ref,
                                      f"{fam.attribution.text} {opened[1]!r}, as its {fam.opens[0]}",
                                      f"{type_} of {key!r} with {fam.attribution.text} {attribution!r}: it does not match"))
            elif opened[1] is None:
                items[key] = (opened[0], attribution, opened[2])
        if type_ in fam.closes:
            del items[key]
            self._span(fam, opened, opened[2], run, at, c, index, ref, out)

    def _span(self, fam: Family, opened: tuple, name, run, at, c, index, ref, out) -> None:
        """A tool call's span, on receive times (``latency.tool_gap``, for the profile's fast tools)."""
        if not fam.tool or at is None or opened[0] is None or "latency.tool_gap" not in self._judged:
            return
        if name not in self._fast_tools:
            return
        self._check("latency.tool_gap")
        gap = at - opened[0]
        self.latencies["tool_gap"].add(gap)
        if gap > self.profile.tool_gap_ms:
            self._late(out, gap, self.profile.tool_gap_ms, opened[0], "latency.tool_gap", c, run.run_id, index, at,
                       ref, f"{name} within {self.profile.tool_gap_ms:g} ms", f"{gap:.1f} ms (receive times)")

    def _close_families(self, run, c, index, at, ref, out: list, why: str) -> None:
        self.closings += 1  # each family's unclosed rule checked once more (see _derived_checks)
        if not run.open and not run.by_name:
            return
        for fam in self.dialect.families:
            left = list(run.open.get(fam.name, {}))
            left += [n for n, q in run.by_name.get(fam.name, {}).items() for _ in q]
            if left:
                shown = ", ".join(repr(k) for k in left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
                out.append(self._flag(self._rows[fam.name].breaches.unclosed, c, run.run_id, index, at, ref,
                                      f"every {fam.name.replace('_', ' ')} closed ({' or '.join(fam.closes)}) first",
                                      f"{why} while {fam.name.replace('_', ' ')}(s) {shown} still open"))
            run.open.pop(fam.name, None)
            run.by_name.pop(fam.name, None)

