"""Latency samples with flat memory: exact while small, a histogram once large.

A check of a few runs should report exact percentiles (a reader compares
them with the excerpt's times), while validating a 1 GB transcript must not
keep a float per event. So each series keeps its first samples exactly and
also counts every sample in log-spaced buckets (0.5 % wide): past
``EXACT_CAP`` samples the percentiles come from the buckets, within 0.5 %.
"""

from __future__ import annotations

import math
from typing import Iterator

EXACT_CAP = 4096
_BUCKETS_PER_E = 1.0 / math.log1p(0.005)
#: Values below this (ms) share the lowest bucket; sub-microsecond detail is noise.
_FLOOR_MS = 0.001

#: The series a checker measures, in report order.
KINDS = ("first_event", "delivery", "tool_gap", "run")
DESCRIPTIONS = {
    "first_event": "start_run sent -> agent_started received",
    "delivery": "emitted_at (clock-corrected) -> received",
    "tool_gap": "fast tool: emitted_at of tool_executing -> of tool_completed (the server's clock)",
    "run": "start_run sent (or first event received) -> agent_completed received",
}


_log = math.log


def _bucket(ms: float) -> int:
    return int(_log(ms if ms > _FLOOR_MS else _FLOOR_MS) * _BUCKETS_PER_E)


class Samples:
    """One latency series, in milliseconds."""

    __slots__ = ("count", "total", "min", "max", "negative", "_exact", "_buckets")

    def __init__(self) -> None:
        #: samples below zero (clocks that disagree by more than the offset estimate says)
        self.negative = 0
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self._exact: list[float] = []
        self._buckets: dict[int, int] = {}

    def add(self, ms: float) -> None:
        if ms - ms != 0.0:  # inf or nan (from a decoded value such as emitted_at=-inf): no latency to keep
            return
        count = self.count = self.count + 1
        self.total += ms
        if ms < self.min:
            self.min = ms
        if ms > self.max:
            self.max = ms
        if ms < 0.0:
            self.negative += 1
        if count <= EXACT_CAP:
            # exact while few; the buckets are built from these once they are needed
            self._exact.append(ms)
            return
        buckets = self._buckets
        if count == EXACT_CAP + 1:
            for value in self._exact:
                key = _bucket(value)
                buckets[key] = buckets.get(key, 0) + 1
        key = int(_log(ms if ms > _FLOOR_MS else _FLOOR_MS) * _BUCKETS_PER_E)  # _bucket(ms), inlined
        buckets[key] = buckets.get(key, 0) + 1

    def __len__(self) -> int:
        return self.count

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile (``p`` in 0..100); ``None`` without samples."""
        if not self.count:
            return None
        rank = self._rank(p)
        if self.count <= EXACT_CAP:
            return sorted(self._exact)[rank - 1]
        seen = 0
        for key in sorted(self._buckets):
            seen += self._buckets[key]
            if seen >= rank:
                # the bucket's upper edge, clamped to what was really seen
                return min(max(math.exp((key + 1) / _BUCKETS_PER_E), self.min), self.max)
        return self.max  # pragma: no cover - unreachable: the buckets hold every sample

    def _rank(self, p: float) -> int:
        """The nearest rank (1-based) of percentile ``p`` among ``count`` samples."""
        return max(1, math.ceil(p / 100.0 * self.count))

    def summary(self) -> dict[str, float | int | None]:
        if not self.count:
            return {"count": 0, "min": None, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
        exact = sorted(self._exact) if self.count <= EXACT_CAP else None

        def pct(p: float) -> float:
            if exact is not None:
                return exact[self._rank(p) - 1]
            return self.percentile(p)  # type: ignore[return-value]

        return {
            "count": self.count,
            "min": round(self.min, 3),
            "mean": round(self.total / self.count, 3),
            "p50": round(pct(50), 3),
            "p95": round(pct(95), 3),
            "p99": round(pct(99), 3),
            "max": round(self.max, 3),
        }


class Latencies:
    """The latency series of one check, by kind (see ``KINDS``)."""

    __slots__ = KINDS

    def __init__(self) -> None:
        for kind in KINDS:
            setattr(self, kind, Samples())

    def __getitem__(self, kind: str) -> Samples:
        if kind not in KINDS:
            raise KeyError(kind)
        return getattr(self, kind)

    def __iter__(self) -> Iterator[str]:
        return iter(KINDS)

    def items(self):
        return ((kind, getattr(self, kind)) for kind in KINDS)

    def summary(self) -> dict[str, dict]:
        return {kind: samples.summary() for kind, samples in self.items()}
