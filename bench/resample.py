"""Resampling cost: CPU time per stream-second of the rate conversion the preprocessing applies
to a stream whose rate is not the model's (:mod:`affectstream.streaming.preprocess.resample`).

For each case (channels, rate in → rate out) one hour-long-enough signal is fed in consecutive
hops (0.5 s, the shipped models' order of hop) through a fresh converter, timed with
``time.process_time``; the best of ``repeats`` runs is kept (the least disturbed by other work on
the machine). The converter is the one the pipeline would use: the :class:`Decimator` for a whole
factor (256 → 128), the polyphase :class:`Resampler` otherwise.

Used by ``affectstream bench`` (section ``resample``, JSON key ``resample_cost``).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from affectstream.streaming.preprocess.filters import Decimator
from affectstream.streaming.preprocess.resample import Resampler

__all__ = ["CASES", "measure", "measure_all"]

CASES: tuple[tuple[str, int, float, float], ...] = (
    ("EEG 32 ch 256 → 128 Hz", 32, 256.0, 128.0),
    ("EEG 32 ch 512 → 128 Hz", 32, 512.0, 128.0),
    ("EEG 32 ch 250 → 128 Hz", 32, 250.0, 128.0),
    ("EEG 32 ch 500 → 128 Hz", 32, 500.0, 128.0),
    ("EDA 1 ch 50 → 16 Hz", 1, 50.0, 16.0),
    ("EDA 1 ch 51.2 → 16 Hz", 1, 51.2, 16.0),
    ("BVP 1 ch 64 → 32 Hz", 1, 64.0, 32.0),
)
"""(label, channels, rate in, rate out): the device rates of the supported sensors."""


def _converter(rate_in: float, rate_out: float) -> Decimator | Resampler:
    k = rate_in / rate_out
    if k >= 1 and math.isclose(k, round(k), abs_tol=1e-9):
        return Decimator(round(k), rate_in)
    return Resampler(rate_in, rate_out)


def measure(
    channels: int,
    rate_in: float,
    rate_out: float,
    *,
    seconds: float = 60.0,
    hop_s: float = 0.5,
    repeats: int = 5,
) -> dict[str, Any]:
    """CPU seconds per stream-second (best of ``repeats``) and the converter used."""
    x = np.random.default_rng(0).normal(size=(round(seconds * rate_in), channels))
    bounds = [math.ceil(k * hop_s * rate_in - 1e-9) for k in range(int(seconds / hop_s) + 1)]
    best = math.inf
    kind = ""
    for _ in range(repeats):
        conv = _converter(rate_in, rate_out)
        kind = type(conv).__name__
        t0 = time.process_time()
        for a, b in itertools.pairwise(bounds):
            conv.process(x[a:b])
        best = min(best, (time.process_time() - t0) / seconds)
    return {
        "channels": channels,
        "rate_in_hz": rate_in,
        "rate_out_hz": rate_out,
        "converter": kind,
        "cpu_ms_per_stream_s": round(best * 1e3, 4),
    }


def measure_all(
    cases: Sequence[tuple[str, int, float, float]] = CASES, *, quick: bool = False
) -> dict[str, Any]:
    """Every case; ``quick``: 10 s of signal, 2 repeats (a smoke run, not a figure to quote)."""
    seconds, repeats = (10.0, 2) if quick else (60.0, 5)
    return {
        "hop_s": 0.5,
        "method": f"best of {repeats} runs over {seconds:g} s of signal, process CPU time",
        "by_case": {
            label: measure(ch, a, b, seconds=seconds, repeats=repeats) for label, ch, a, b in cases
        },
    }
