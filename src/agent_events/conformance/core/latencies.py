"""Latency samples with flat memory: exact while small, a histogram once large.

A check of a few runs should report exact percentiles (a reader compares
them with the excerpt's times), while validating a 1 GB transcript must not
keep a float per event. So each series keeps its first samples exactly and
also counts every sample in log-spaced buckets (0.5 % wide): past
``EXACT_CAP`` samples the percentiles come from the buckets, within 0.5 %.
"""

from __future__ import annotations

import math
from bisect import bisect_left
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
    """Bucket ``k`` holds ``[e**(k/B), e**((k+1)/B))`` (B buckets per e-fold, each 0.5 % wide)."""
    return math.floor(_log(ms if ms > _FLOOR_MS else _FLOOR_MS) * _BUCKETS_PER_E)


class Samples:
    """One latency series, in milliseconds.

    :meth:`add` only appends (every event adds a sample or two, so it is on the hot path); the
    figures are made from a batch of samples at a time, when ``EXACT_CAP`` of them wait or a
    figure is read: sorted once, the batch gives its count, sum, minimum, maximum and negatives
    from C builtins, and its histogram counts with one bisection per bucket, not a logarithm
    per sample.
    """

    __slots__ = ("_count", "_total", "_min", "_max", "_negative", "_exact", "_buckets", "_pending")

    def __init__(self) -> None:
        #: samples below zero (clocks that disagree by more than the offset estimate says)
        self._negative = 0
        self._count = 0
        self._total = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._exact: list[float] = []
        self._buckets: dict[int, int] = {}
        self._pending: list[float] = []

    def add(self, ms: float) -> None:
        if ms - ms != 0.0:  # inf or nan (from a decoded value such as emitted_at=-inf): no latency to keep
            return
        pending = self._pending
        pending.append(ms)
        if len(pending) >= EXACT_CAP:
            self._fold()

    def _fold(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        pending.sort()
        count = self._count = self._count + len(pending)
        self._total += math.fsum(pending)
        if pending[0] < self._min:
            self._min = pending[0]
        if pending[-1] > self._max:
            self._max = pending[-1]
        self._negative += bisect_left(pending, 0.0)
        if count <= EXACT_CAP:
            self._exact.extend(pending)  # exact while few: the buckets are built once they are needed
            return
        if self._exact:
            _count_into(self._buckets, sorted(self._exact))
            self._exact = []
        _count_into(self._buckets, pending)

    @property
    def count(self) -> int:
        return self._count + len(self._pending)

    @property
    def total(self) -> float:
        self._fold()
        return self._total

    @property
    def min(self) -> float:
        self._fold()
        return self._min

    @property
    def max(self) -> float:
        self._fold()
        return self._max

    @property
    def negative(self) -> int:
        self._fold()
        return self._negative

    def __len__(self) -> int:
        return self.count

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile (``p`` in 0..100); ``None`` without samples."""
        self._fold()
        if not self._count:
            return None
        rank = self._rank(p)
        if self._count <= EXACT_CAP:
            return sorted(self._exact)[rank - 1]
        seen = 0
        for key in sorted(self._buckets):
            seen += self._buckets[key]
            if seen >= rank:
                # the bucket's upper edge, clamped to what was really seen
                return min(max(math.exp((key + 1) / _BUCKETS_PER_E), self._min), self._max)
        return self._max  # pragma: no cover - unreachable: the buckets hold every sample

    def _rank(self, p: float) -> int:
        """The nearest rank (1-based) of percentile ``p`` among ``count`` samples."""
        return max(1, math.ceil(p / 100.0 * self._count))

    def summary(self) -> dict[str, float | int | None]:
        self._fold()
        if not self._count:
            return {"count": 0, "min": None, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
        exact = sorted(self._exact) if self._count <= EXACT_CAP else None

        def pct(p: float) -> float:
            if exact is not None:
                return exact[self._rank(p) - 1]
            return self.percentile(p)  # type: ignore[return-value]

        return {
            "count": self._count,
            "min": round(self._min, 3),
            "mean": round(self._total / self._count, 3),
            "p50": round(pct(50), 3),
            "p95": round(pct(95), 3),
            "p99": round(pct(99), 3),
            "max": round(self._max, 3),
        }


def _count_into(buckets: dict[int, int], values: list[float]) -> None:
    """Add sorted ``values`` to the histogram: per bucket, one logarithm and one bisection for
    where its upper edge falls (latencies cluster, so a batch spans few buckets)."""
    i, n = 0, len(values)
    while i < n:
        key = _bucket(values[i])
        j = bisect_left(values, math.exp((key + 1) / _BUCKETS_PER_E), i)
        if j <= i:  # the edge rounded onto this very value: it is the bucket's last
            j = i + 1
        buckets[key] = buckets.get(key, 0) + (j - i)
        i = j


class Latencies:
    """The latency series of one check, by kind (see ``KINDS``)."""

    __slots__ = KINDS
    # declared as well: a compiled class keeps each in a slot of its own (tests/test_native.py holds
    # them to KINDS)
    first_event: Samples
    delivery: Samples
    tool_gap: Samples
    run: Samples

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
