"""Cutting a window into the consecutive steps that step features (DE, statistics) work on."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["split_steps"]


def split_steps(x: NDArray[np.floating], fs: float, step_s: float) -> NDArray[np.float64]:
    """(n_samples, n_channels) → (n_steps, step_samples, n_channels), float64.

    Raises ``ValueError`` unless n_samples is a whole, non-zero number of steps.
    """
    x = np.asarray(x, dtype=np.float64)
    step = round(step_s * fs)
    n_steps, rest = divmod(len(x), step)
    if n_steps == 0 or rest:
        raise ValueError(
            f"{len(x)} samples is not a whole number of {step_s:g} s steps at {fs:g} Hz"
        )
    return x.reshape(n_steps, step, x.shape[1])
