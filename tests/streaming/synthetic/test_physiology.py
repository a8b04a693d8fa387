"""Tests of the physiology shared by the synthetic generators (streaming/synthetic/physiology.py).

The generators' own tests measure the signals; these check the building blocks' contracts and
that the generators reach each other only through public names.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest

from affectstream.streaming.synthetic import physiology
from affectstream.streaming.synthetic.physiology import (
    MIN_CONDUCTANCE_US,
    SYNTHETIC_MARKER,
    FloatArray,
    draw_resting_scl_us,
    effect_shift,
    measured_conductance,
    onset_ramp,
    poisson_times,
    scr_events,
    scr_kernel,
    seeded_rng,
    write_marker,
)

SYNTHETIC_DIR = Path(physiology.__file__).parent


def test_seeded_rng_is_reproducible_and_keyed() -> None:
    a = seeded_rng((3, 1), (2, 0)).random(4)
    np.testing.assert_array_equal(a, seeded_rng([3, 1], [2, 0]).random(4))
    assert not np.array_equal(a, seeded_rng((3, 1), (2, 1)).random(4))


def test_poisson_times_are_sorted_inside_the_interval_at_the_rate() -> None:
    rng = seeded_rng((0,))
    times = poisson_times(rng, 30.0, -10.0, 590.0)  # 300 expected
    assert np.all(np.diff(times) >= 0) and times.min() >= -10.0 and times.max() < 590.0
    assert 240 < len(times) < 360


def test_onset_ramp_is_zero_before_the_onset_then_first_order() -> None:
    t = np.arange(0, 20, 0.5)
    ramp = onset_ramp(t, 3.0, 2.0)
    assert np.all(ramp[t < 3.0] == 0.0)
    assert ramp[t == 5.0][0] == pytest.approx(1 - math.exp(-1))


@pytest.mark.parametrize("smoothing_s", [0.0, 0.2])
def test_scr_kernel_peaks_at_one(smoothing_s: float) -> None:
    kernel = scr_kernel(128.0, 0.5, 4.0, 30.0, onset_smoothing_s=smoothing_s)
    assert kernel.shape == (3840,) and kernel.max() == pytest.approx(1.0)
    assert kernel[0] == pytest.approx(0.0, abs=1e-3)


def test_onset_smoothing_delays_the_peak() -> None:
    plain = scr_kernel(50.0, 0.7, 4.0, 20.0)
    smooth = scr_kernel(50.0, 0.7, 4.0, 20.0, onset_smoothing_s=0.2)
    assert np.argmax(smooth) > np.argmax(plain)


def test_scr_events_orienting_response_follows_the_onset() -> None:
    def events(orienting_probability: float) -> tuple[FloatArray, FloatArray]:
        return scr_events(
            seeded_rng((1,)),
            rest_rate_per_min=6.0,
            rest_amplitude_us=0.1,
            task_rate_per_min=0.0,  # only the orienting response after the onset
            task_amplitude_us=0.2,
            start_s=-20.0,
            onset_s=3.0,
            stop_s=63.0,
            orienting_probability=orienting_probability,
        )

    onsets, sizes = events(1.0)
    assert onsets.shape == sizes.shape and np.all(sizes > 0)
    assert 3.5 <= onsets[-1] <= 5.0 and np.all(onsets[:-1] < 3.0)
    without, _ = events(0.0)
    assert np.all(without < 3.0)


def test_effect_shift_is_linear_in_the_drive_without_noise() -> None:
    rng = seeded_rng((2,))
    assert effect_shift(rng, 0.15, 1.2, 2.0, 0.0) == pytest.approx(0.36)


def test_resting_scl_stays_in_range() -> None:
    rng = seeded_rng((4,))
    values = [draw_resting_scl_us(rng, 2.0) for _ in range(200)]
    assert min(values) >= 1.0 and max(values) <= 25.0


def test_measured_conductance_never_falls_below_the_floor() -> None:
    tonic = np.full(100, -1.0)
    out = measured_conductance(seeded_rng((5,)), tonic, np.zeros(100))
    assert np.all(out == MIN_CONDUCTANCE_US)


def test_write_marker_writes_json(tmp_path: Path) -> None:
    path = write_marker(tmp_path, {"synthetic": True, "seed": 3})
    assert path == tmp_path / SYNTHETIC_MARKER
    assert json.loads(path.read_text()) == {"synthetic": True, "seed": 3}


@pytest.mark.parametrize("module", ["deap", "pmemo", "physiology"])
def test_generators_import_no_private_names_from_each_other(module: str) -> None:
    tree = ast.parse((SYNTHETIC_DIR / f"{module}.py").read_text(encoding="utf-8"))
    private = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("affectstream.")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []
