"""Cutting a window into the consecutive steps that step features (DE, statistics) work on."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["split_steps"]


def split_steps(x: NDArray[np.floating[Any]], fs: float, step_s: float) -> NDArray[np.float64]:
    """(n_samples, n_channels) → (n_steps, step_samples, n_channels), float64.

    Raises ``ValueError`` unless n_samples is a whole, non-zero number of steps.
    """
    x64 = np.asarray(x, dtype=np.float64)
    step = round(step_s * fs)
    n_steps, rest = divmod(len(x64), step)
    if n_steps == 0 or rest:
        raise ValueError(
            f"{len(x64)} samples is not a whole number of {step_s:g} s steps at {fs:g} Hz"
        )
    out: NDArray[np.float64] = x64.reshape(n_steps, step, x64.shape[1])
    return out
