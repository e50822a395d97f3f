"""Clock offset estimation (NTP-style) and the live options' validation: pure functions, no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from agent_events.conformance.live.clock_sync import SyncSample, estimate
from agent_events.conformance.live.engine import LiveOptions
from agent_events.conformance.live.wire import Endpoint
from agent_events.conformance.core.profiles import PROFILES


def test_the_sample_with_the_smallest_round_trip_wins():
    samples = [SyncSample(1000.0, 6010.0, 1030.0),   # delay 30: offset 4995 +/- 15
               SyncSample(2000.0, 7001.0, 2002.0),   # delay 2: offset 5000 +/- 1
               SyncSample(3000.0, 8050.0, 3100.0)]   # delay 100
    result = estimate(samples)
    assert result.measured and result.samples == 3
    assert result.offset_ms == 5000.0 and result.uncertainty_ms == 1.0
    assert "+5000.000 ms" in result.describe()


def test_no_answer_assumes_one_clock_and_says_so():
    result = estimate([])
    assert not result.measured and result.offset_ms == 0.0
    assert "assumed equal" in result.describe()


@given(offset=st.floats(-1e7, 1e7), out=st.floats(0, 500), back=st.floats(0, 500), start=st.floats(0, 1e12))
def test_the_true_offset_is_within_the_stated_uncertainty(offset, out, back, start):
    # server clock = client clock + offset; the reply is stamped on arrival, `out` ms after sending
    sample = SyncSample(start, start + out + offset, start + out + back)
    result = estimate([sample])
    assert abs(result.offset_ms - offset) <= result.uncertainty_ms + 1e-6 * max(1.0, abs(offset), start)


def test_options_reject_what_cannot_run():
    endpoint = Endpoint("ws://127.0.0.1:1/")
    with pytest.raises(ValueError, match="unknown scenario"):
        LiveOptions(endpoint, PROFILES["generic"], scenarios=("primary", "nope"))
    with pytest.raises(ValueError, match="runs"):
        LiveOptions(endpoint, PROFILES["generic"], runs=0)
    options = LiveOptions(endpoint, PROFILES["generic"], scenarios=("latency", "primary", "primary"))
    assert options.scenarios == ("primary", "latency")
    assert options.runs_for("latency") == 20 and options.runs_for("primary") == 1
