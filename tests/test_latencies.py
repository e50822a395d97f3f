"""Latency series: batched folding gives the figures a sample-by-sample count gives.

:class:`agent_events.conformance.core.latencies.Samples` appends on the hot path and makes its
figures a batch at a time (sorted, one bisection per histogram bucket). Whatever the values
(negative, below the floor, huge, not finite) and however they fall across batches, its count,
sum, extremes, negatives and histogram must equal the plain per-sample computation, and a
percentile must be exact while few samples, within one 0.5 % bucket above the exact one after.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_events.conformance.core import latencies

VALUES = st.lists(st.one_of(
    st.floats(min_value=-50, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.2, max_value=5.0),  # the common cluster: many samples share buckets
    st.sampled_from([0.0, 1e-9, latencies._FLOOR_MS, 1.0, math.inf, -math.inf, math.nan])), max_size=300)


def exact_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100.0 * len(ordered))) - 1]


@settings(max_examples=200, deadline=None)
@given(VALUES, st.integers(1, 40), st.booleans())
def test_batched_figures_equal_the_sample_by_sample_ones(values, cap, read_midway):
    finite = [v for v in values if math.isfinite(v)]
    saved = latencies.EXACT_CAP
    latencies.EXACT_CAP = cap  # small: many folds, and the switch to the histogram, in one example
    try:
        samples = latencies.Samples()
        for n, value in enumerate(values):
            samples.add(value)
            if read_midway and n % 7 == 3:
                samples.summary()  # reading a figure folds early: no figure may change for it
        assert samples.count == len(samples) == len(finite)
        if not finite:
            assert samples.summary()["count"] == 0 and samples.percentile(50) is None
            return
        assert math.isclose(samples.total, math.fsum(finite), rel_tol=1e-9, abs_tol=1e-6)
        assert (samples.min, samples.max) == (min(finite), max(finite))
        assert samples.negative == sum(1 for v in finite if v < 0)
        if len(finite) > cap:
            reference: dict[int, int] = {}
            for v in finite:
                key = latencies._bucket(v)
                reference[key] = reference.get(key, 0) + 1
            assert samples._buckets == reference
        for p in (1, 50, 95, 99, 100):
            exact, got = exact_rank(finite, p), samples.percentile(p)
            if len(finite) <= cap:
                assert got == exact
            else:  # the upper edge of the exact value's bucket, within what was seen
                assert samples.min <= got <= samples.max
                edge = max(exact, latencies._FLOOR_MS) * 1.0051
                assert got <= edge and (got >= exact or exact < latencies._FLOOR_MS), (p, got, exact)
    finally:
        latencies.EXACT_CAP = saved
