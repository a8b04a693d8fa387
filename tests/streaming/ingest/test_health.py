"""Stream health state machine (pure: time is passed in)."""

from __future__ import annotations

from affectstream.streaming.ingest.health import HealthPolicy, StreamHealth, StreamState


def test_connecting_ok_stale_recovered_ok() -> None:
    h = StreamHealth(128.0, HealthPolicy(stale_intervals=8, stale_min_s=0.25, recovered_hold_s=2))
    assert h.state == StreamState.CONNECTING
    assert h.on_samples(4, 0.0, 0.03, now=0.03) == StreamState.OK
    assert h.tick(0.2) == StreamState.OK
    assert h.tick(0.3) == StreamState.STALE  # 0.27 s silent > max(0.25, 8/128)
    assert h.on_samples(4, 1.0, 1.03, now=1.03) == StreamState.RECOVERED
    assert h.on_samples(4, 1.04, 1.07, now=1.5) == StreamState.RECOVERED
    assert h.on_samples(4, 1.08, 1.11, now=3.1) == StreamState.OK


def test_stale_then_lost_by_silence_and_reconnect_counted() -> None:
    h = StreamHealth(4.0, HealthPolicy(lost_after_s=5.0))
    h.on_samples(1, 0.0, 0.0, now=0.0)
    assert h.tick(1.0) == StreamState.OK  # 8 intervals at 4 Hz = 2 s
    assert h.tick(2.1) == StreamState.STALE
    assert h.tick(5.2) == StreamState.LOST
    h.on_reconnect()
    assert h.on_samples(1, 9.0, 9.0, now=9.0) == StreamState.RECOVERED
    snap = h.snapshot()
    assert snap["reconnects"] == 1 and snap["state"] == "recovered" and snap["samples"] == 2


def test_irregular_streams_never_go_stale() -> None:
    h = StreamHealth(0.0)
    h.on_samples(1, 0.0, 0.0, now=0.0)
    assert h.tick(1e6) == StreamState.OK


def test_measured_rate() -> None:
    h = StreamHealth(128.0)
    for k in range(0, 128 * 5, 16):
        h.on_samples(16, k / 128, (k + 15) / 128, now=(k + 15) / 128)
    assert h.measured_srate is not None and abs(h.measured_srate - 128.0) < 1.0


def test_gaps_and_clock_steps_are_counted_as_reported() -> None:
    # the dejitter finds them (tests/streaming/ingest/test_dejitter.py); health adds them up
    h = StreamHealth(128.0)
    h.on_samples(4, 0.0, 0.03, now=0.03)
    h.on_gaps(2, 57)
    h.on_gaps(1, 3)
    h.on_clock_steps(1)
    snap = h.snapshot()
    assert (snap["gaps"], snap["missing"], snap["clock_steps"]) == (3, 60, 1)
