"""Clock offset between harness and endpoint, estimated NTP-style from time_sync.

Why: ``latency.delivery`` compares the server's ``emitted_at`` with the
client's receive time. Across two machines their clocks differ by far more
than the 100 ms budget, so the harness estimates the offset first. With one
server timestamp per exchange the best estimate is the midpoint of the round
trip; its error is at most half the round-trip delay, so the sample with the
smallest delay wins (as in NTP's clock filter).

Pure functions, beside the client core that feeds them (it records the samples): the live layer
sends and times the exchanges. (``agent_events.conformance.live.clock_sync``, its old path, still
imports it.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SyncSample:
    """One exchange: client send time, server time, client receive time (epoch ms)."""

    sent_at: float
    server_time: float
    received_at: float

    @property
    def delay(self) -> float:
        return self.received_at - self.sent_at

    @property
    def offset(self) -> float:
        """Server clock minus client clock, assuming a symmetric path."""
        return self.server_time - (self.sent_at + self.received_at) / 2.0


@dataclass(frozen=True)
class ClockEstimate:
    """What the report states about clocks: the offset used, and how it was obtained."""

    offset_ms: float
    #: Half the best round trip: the offset is right to within this.
    uncertainty_ms: float | None
    samples: int
    #: ``False`` when the endpoint never answered and the clocks are assumed equal.
    measured: bool

    def describe(self) -> str:
        if not self.measured:
            return ("the endpoint did not answer time_sync: clocks assumed equal (offset 0 ms); "
                    "delivery latency is only right if both run on synchronised clocks")
        return (f"clock offset {self.offset_ms:+.3f} ms (server minus client), "
                f"+/- {self.uncertainty_ms:.3f} ms, best of {self.samples} time_sync samples")


ASSUMED_SAME_CLOCK = ClockEstimate(0.0, None, 0, False)


def estimate(samples: list[SyncSample]) -> ClockEstimate:
    """The offset of the sample with the smallest round trip (ties: the earliest)."""
    usable = [s for s in samples if s.delay >= 0]
    if not usable:
        return ASSUMED_SAME_CLOCK
    best = min(usable, key=lambda s: s.delay)
    return ClockEstimate(best.offset, best.delay / 2.0, len(usable), True)
