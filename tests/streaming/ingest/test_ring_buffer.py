"""Ring buffer: examples, then property tests against a plain list as oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from affectstream.streaming.ingest.ring_buffer import RingBuffer


def _chunk(start: int, n: int, ch: int = 2) -> tuple[np.ndarray, np.ndarray]:
    values = np.arange(start, start + n, dtype=np.float64)
    return np.repeat(values[:, None], ch, axis=1), values / 10.0


def test_empty_buffer_reads_nothing() -> None:
    rb = RingBuffer(8, 2)
    data, ts = rb.read_range(-1e9, 1e9)
    assert data.shape == (0, 2) and ts.shape == (0,)
    assert rb.time_span() is None and len(rb) == 0 and rb.count == 0


def test_wrap_keeps_the_newest_samples_in_order() -> None:
    rb = RingBuffer(5, 2)
    for start in range(0, 12, 3):
        rb.write(*_chunk(start, 3))
    data, _ = rb.read_range(-1.0, 100.0)
    assert data[:, 0].tolist() == [7, 8, 9, 10, 11]
    assert rb.count == 12 and len(rb) == 5
    assert rb.time_span() == (0.7, 1.1)


def test_chunk_larger_than_capacity_keeps_its_tail() -> None:
    rb = RingBuffer(4, 2)
    rb.write(*_chunk(0, 10))
    assert rb.latest(10)[0][:, 0].tolist() == [6, 7, 8, 9]
    assert rb.count == 10


def test_time_range_is_half_open() -> None:
    rb = RingBuffer(16, 1)
    rb.write(*_chunk(0, 10, ch=1))
    data, _ = rb.read_range(0.2, 0.5)
    assert data[:, 0].tolist() == [2, 3, 4]


def test_read_from_counts_samples() -> None:
    rb = RingBuffer(6, 1)
    rb.write(*_chunk(0, 9, ch=1))
    assert rb.read_from(0.45, 2)[0][:, 0].tolist() == [5, 6]
    assert rb.read_from(0.0, 100)[0][:, 0].tolist() == [3, 4, 5, 6, 7, 8]


def test_refuses_time_going_backwards_and_wrong_shapes() -> None:
    rb = RingBuffer(8, 2)
    rb.write(*_chunk(5, 2))
    with pytest.raises(ValueError, match="at or before the newest"):
        rb.write(*_chunk(6, 2))
    with pytest.raises(ValueError, match="strictly increasing"):
        rb.write(np.zeros((2, 2)), np.array([9.0, 9.0]))
    with pytest.raises(ValueError, match=r"expected \(2, 2\)"):
        rb.write(np.zeros((2, 3)), np.array([9.0, 9.1]))


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 40),
    chunks=st.lists(st.integers(0, 90), max_size=25),
    query=st.tuples(st.floats(-5, 300), st.floats(-5, 300)),
    n_latest=st.integers(0, 60),
)
def test_matches_a_list_oracle(
    capacity: int, chunks: list[int], query: tuple[float, float], n_latest: int
) -> None:
    rb = RingBuffer(capacity, 3)
    oracle: list[float] = []
    start = 0
    for n in chunks:
        data, ts = _chunk(start, n, ch=3)
        rb.write(data, ts * 10)  # timestamps = sample numbers
        oracle.extend(ts * 10)
        start += n
    held = oracle[-capacity:] if capacity else []
    assert rb.count == len(oracle) and len(rb) == len(held)
    lo, hi = query
    data, ts = rb.read_range(lo, hi)
    expected = [v for v in held if lo <= v < hi]
    assert ts.tolist() == expected
    assert data[:, 0].tolist() == expected and data[:, 2].tolist() == expected
    data, ts = rb.latest(n_latest)
    assert ts.tolist() == (held[-n_latest:] if n_latest else [])
    data, ts = rb.read_from(lo, n_latest)
    assert ts.tolist() == [v for v in held if v >= lo][:n_latest]
