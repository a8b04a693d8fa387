"""Timestamp smoothing for regular streams that keeps discontinuities visible.

liblsl's own dejitter (``proc_dejitter``) re-stamps every sample on one running regression line
(recursive least squares over sample index → time, forgetting half its weight every 90 s). A line
fitted through a hole or a clock step smears it over the following samples: a dropped run never
shows as a jump, a step backwards never shows as a timestamp going back, and after a step ahead the
samples are spaced wider than nominal until the fit converges (docs/lsl.md#timestamps). The inlets
therefore take liblsl's clock synchronisation only, and :class:`Dejitter` does the smoothing here.

The model is liblsl's: timestamp = intercept + slope × sample index, fitted by exponentially
weighted least squares (the weights halve every ``halftime_s``; liblsl's recursive least squares
with a forgetting factor computes the same fit sample by sample). Each sample is re-stamped on the
line fitted through it and every sample before it, so the output does not depend on how the
samples were chunked. What differs is that a sample the line does not explain starts over instead
of bending the line. Its residual (raw timestamp − the line's prediction from the samples before
it) is compared with a tolerance of ``max(gap_intervals nominal intervals, jitter_sigmas × the
stream's recent RMS residual)``:

- **within the tolerance**: jitter; the sample is re-stamped on the line;
- **ahead by more**: either a dropped run or a clock step forwards. Timestamps alone cannot tell
  them apart; the arrival time sometimes can: no sample arrives before it was stamped (on a
  synchronised clock), so a sample stamped *later* than its arrival comes from a clock that stepped
  ahead. If the sample's lead (timestamp − arrival of its chunk) exceeds both 0 and the largest
  lead seen since the line was anchored, by more than ``max(tolerance, future_margin_s)``, it is a
  **clock step** (counted in ``steps_ahead``) and the line is re-anchored on it. A step too small
  to put the timestamps ahead of their arrival is counted as a gap. Comparing with the leads of
  earlier samples alone would not do: a consumer that fell behind pulls the samples before and
  after a hole in one chunk, where a hole looks exactly like a step.
  Otherwise it is a **gap** (counted in ``gaps``): ``round(residual / slope)`` samples are counted
  as ``missing`` and the sample index skips them, so the line goes on through the hole and the
  jump is kept in the output;
- **behind by more**: a **clock step backwards** (``steps_back``): the line is re-anchored on the
  sample, so the output goes back in time as the clock did (the acquisition layer then drops and
  counts the samples that do not come after the ones it stored).

Re-anchoring starts a new line through the sample; the slope (the device's rate) is carried over
with the weight of the data that estimated it, so only the intercept is learnt anew. A stream
starts with the nominal slope, weighted as ``slope_prior_s`` seconds of data. The RMS residual
that scales the tolerance starts at ``jitter_prior_s`` (weighted as ``jitter_prior_weight_s``
seconds) and then follows the stream (halving its memory every ``jitter_halftime_s``), so a
stream whose timestamps are jittery by nature (chunks stamped on arrival) widens its own
tolerance, and a clean stream gets the ``gap_intervals`` floor. Output timestamps of one line
always increase (by at least half a nominal interval per sample).

The work is one pass over the chunk's samples, each updating the running weighted sums
(``S_j = λ·S_{j−1} + a_j``) and the line through them: :func:`_dejitter_chunk`, compiled with numba
when this module is imported (from numba's disk cache once warm: beside this file, or under
``NUMBA_CACHE_DIR``). A chunk then costs a few microseconds, where the numpy version (vectorised
over the chunk, ~40 numpy calls) cost 50-150 µs whatever the chunk's length: the acquisition
layer's largest cost per chunk (#16). Taken sample by sample, the output does not depend on how
the samples were chunked (the arrival time aside). Without numba, or if compiling fails, the same
function runs as plain Python: the same output, slower.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Dejitter", "DejitterPolicy", "Dejittered", "is_compiled"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DejitterPolicy:
    """The dejitter's constants (see the module docstring)."""

    halftime_s: float = 30.0
    """Memory of the line fit: a sample's weight halves every this many seconds (liblsl: 90 s)."""
    gap_intervals: float = 2.5
    """Tolerance floor in nominal intervals (the ingest layer's gap rule)."""
    jitter_sigmas: float = 6.0
    """Tolerance: this many times the recent RMS residual, when that is above the floor."""
    jitter_halftime_s: float = 5.0
    """Memory of the RMS residual."""
    jitter_prior_s: float = 0.01
    """RMS residual assumed before the stream has shown its own."""
    jitter_prior_weight_s: float = 1.0
    """… weighted as this many seconds of samples (then forgotten like them)."""
    slope_prior_s: float = 1.0
    """The nominal rate counts as this many seconds of data when the slope is first estimated."""
    future_margin_s: float = 0.02
    """How far past its arrival (at least) a sample must be stamped to be a clock step ahead."""

    def __post_init__(self) -> None:
        for name in (
            "halftime_s",
            "gap_intervals",
            "jitter_sigmas",
            "jitter_halftime_s",
            "jitter_prior_weight_s",
            "slope_prior_s",
            "future_margin_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"DejitterPolicy.{name} must be > 0")
        if not self.jitter_prior_s >= 0:
            raise ValueError("DejitterPolicy.jitter_prior_s must be ≥ 0")


@dataclass(frozen=True, slots=True)
class Dejittered:
    """One chunk's output: the timestamps and the discontinuities found in it."""

    timestamps: NDArray[np.float64]
    gaps: int = 0
    """Forward jumps taken as dropped runs."""
    missing: int = 0
    """Samples missing over those gaps (jump / fitted sample interval, rounded)."""
    steps_back: int = 0
    """Clock steps backwards (the line was re-anchored)."""
    steps_ahead: int = 0
    """Clock steps forwards, told from gaps by the arrival time (the line was re-anchored)."""


_EPS = 1e-9  # a vanishing prior on the intercept: an empty line predicts its anchor
_REBASE_AT = 1 << 16  # sample index at which the index origin moves (keeps the sums small)

# The state of one stream's line, one float64 array (the kernel updates it in place):
# anchored (0/1), anchor, slope0, rho, next sample index, last output, largest lead since the
# anchor, then the weighted sums Σ1, Σx, Σx², Σy, Σxy (y = t − anchor − slope0·x) and the jitter
# sums Σr², Σ1.
_ANCHORED, _ANCHOR, _SLOPE0, _RHO, _X_NEXT, _LAST_OUT, _LEAD_REF = range(7)
_S, _R, _STATE_LEN = 7, 12, 14
# The constants, one float64 array.
_INTERVAL, _LAM_FIT, _LAM_JIT, _FLOOR, _SIGMAS, _FUTURE, _RHO_MIN, _REBASE = range(8)


def _dejitter_chunk(
    t: NDArray[np.float64],
    arrival: float,
    has_arrival: bool,
    st: NDArray[np.float64],
    c: NDArray[np.float64],
    out: NDArray[np.float64],
) -> tuple[int, int, int, int]:
    """Re-stamp the samples of ``t`` into ``out``, updating the state ``st`` (constants ``c``);
    returns (gaps, missing, steps back, steps ahead). One sample at a time, as the module docstring
    says: its residual against the line through the samples before it, the tolerance from the
    jitter sums before it; then either the sample joins the line and is re-stamped on the line
    through it, or it is a discontinuity (re-anchor on it, or skip the missing samples and look at
    it again). The line is ``t = anchor + slope0·x + α + δ·x`` (x: sample index since the anchor),
    (α, δ) the weighted least-squares fit with the prior ``rho`` on δ."""
    gaps = 0
    missing = 0
    back = 0
    ahead = 0
    step = 0.5 * c[_INTERVAL]  # output timestamps increase by at least this
    lam_f = c[_LAM_FIT]
    lam_j = c[_LAM_JIT]
    reanchor = st[_ANCHORED] == 0.0
    i = 0
    n = len(t)
    while i < n:
        ti = t[i]
        if reanchor:  # a new line through this sample, the slope carried over with its weight
            if st[_ANCHORED] != 0.0:
                s0 = st[_S] + _EPS
                s1 = st[_S + 1]
                s2 = st[_S + 2] + st[_RHO]
                delta = (s0 * st[_S + 4] - s1 * st[_S + 3]) / (s0 * s2 - s1 * s1)
                st[_SLOPE0] = st[_SLOPE0] + delta
                st[_RHO] = max(c[_RHO_MIN], st[_S + 2] - s1 * s1 / s0)
            st[_ANCHORED] = 1.0
            st[_ANCHOR] = ti
            st[_X_NEXT] = 0.0
            for j in range(5):
                st[_S + j] = 0.0
            st[_LAST_OUT] = -np.inf
            st[_LEAD_REF] = -np.inf
            reanchor = False
        if st[_X_NEXT] >= c[_REBASE]:  # move the index origin here: same line, smaller sums
            k = st[_X_NEXT]
            s0, s1, sy = st[_S], st[_S + 1], st[_S + 3]
            st[_S + 1] = s1 - k * s0
            st[_S + 2] = st[_S + 2] - 2 * k * s1 + k * k * s0
            st[_S + 4] = st[_S + 4] - k * sy
            st[_ANCHOR] = st[_ANCHOR] + st[_SLOPE0] * k
            st[_X_NEXT] = 0.0
        x = st[_X_NEXT]
        y = ti - st[_ANCHOR]
        y -= st[_SLOPE0] * x
        s0 = st[_S] + _EPS
        s1 = st[_S + 1]
        s2 = st[_S + 2] + st[_RHO]
        det = s0 * s2 - s1 * s1
        alpha = (st[_S + 3] * s2 - s1 * st[_S + 4]) / det
        delta = (s0 * st[_S + 4] - s1 * st[_S + 3]) / det
        r = y - (alpha + delta * x)  # residual against the line through the samples before
        tol = max(c[_FLOOR], c[_SIGMAS] * math.sqrt(st[_R] / st[_R + 1]))
        if abs(r) <= tol:  # jitter: the sample joins the line
            st[_R] = lam_j * st[_R] + r * r
            st[_R + 1] = lam_j * st[_R + 1] + 1.0
            st[_S] = lam_f * st[_S] + 1.0
            st[_S + 1] = lam_f * st[_S + 1] + x
            st[_S + 2] = lam_f * st[_S + 2] + x * x
            st[_S + 3] = lam_f * st[_S + 3] + y
            st[_S + 4] = lam_f * st[_S + 4] + x * y
            s0 = st[_S] + _EPS
            s1 = st[_S + 1]
            s2 = st[_S + 2] + st[_RHO]
            det = s0 * s2 - s1 * s1
            alpha = (st[_S + 3] * s2 - s1 * st[_S + 4]) / det
            delta = (s0 * st[_S + 4] - s1 * st[_S + 3]) / det
            fit = st[_ANCHOR] + st[_SLOPE0] * x + alpha + delta * x
            fit = max(fit, st[_LAST_OUT] + step)
            out[i] = fit
            st[_LAST_OUT] = fit
            st[_X_NEXT] = x + 1.0
            if has_arrival:
                st[_LEAD_REF] = max(st[_LEAD_REF], ti - arrival)
            i += 1
        elif r < 0:  # a clock step backwards
            back += 1
            reanchor = True
        elif has_arrival and ti - arrival > max(st[_LEAD_REF], 0.0) + max(tol, c[_FUTURE]):
            ahead += 1  # stamped after its arrival: the clock stepped ahead
            reanchor = True
        elif not step <= st[_SLOPE0] + delta <= 2.0 * c[_INTERVAL]:
            ahead += 1  # a line this far off the nominal rate cannot count samples: restart
            reanchor = True
        else:  # a dropped run: skip the missing samples, keep the jump
            n_missing = max(1, int(np.rint(r / (st[_SLOPE0] + delta))))
            gaps += 1
            missing += n_missing
            st[_X_NEXT] = x + n_missing
    return gaps, missing, back, ahead


_Kernel = Callable[
    [
        NDArray[np.float64],
        float,
        bool,
        NDArray[np.float64],
        NDArray[np.float64],
        NDArray[np.float64],
    ],
    tuple[int, int, int, int],
]
_SIGNATURE = (
    "UniTuple(int64, 4)(float64[::1], float64, boolean, float64[::1], float64[::1], float64[::1])"
)


def _compile() -> tuple[_Kernel, bool]:
    """The kernel compiled with numba (now: loaded from numba's disk cache when warm, ~1 s
    otherwise), or the plain function without numba or when compiling fails."""
    try:
        import numba
    except ImportError:
        log.info("numba is not installed: the dejitter runs as plain Python")
        return _dejitter_chunk, False
    try:
        compiled: Any = numba.njit(_SIGNATURE, cache=True)(_dejitter_chunk)
    except Exception:  # e.g. no writable cache: compile without one
        try:
            compiled = numba.njit(_SIGNATURE)(_dejitter_chunk)
        except Exception:
            log.exception("compiling the dejitter failed; it runs as plain Python")
            return _dejitter_chunk, False
    kernel: _Kernel = compiled
    return kernel, True


_kernel, _compiled = _compile()


def is_compiled() -> bool:
    """Whether the dejitter runs compiled (numba) rather than as plain Python."""
    return _compiled


class Dejitter:
    """Smooth the timestamps of one regular stream, chunk by chunk (see the module docstring).

    Parameters
    ----------
    nominal_srate : the stream's nominal rate, Hz (> 0: irregular streams are not smoothed)
    policy : the constants
    """

    rebase_at: int = _REBASE_AT

    def __init__(self, nominal_srate: float, policy: DejitterPolicy | None = None) -> None:
        if not nominal_srate > 0 or not math.isfinite(nominal_srate):
            raise ValueError(f"dejitter needs a regular nominal rate, got {nominal_srate!r}")
        self.policy = policy or DejitterPolicy()
        p = self.policy
        self.interval = 1.0 / nominal_srate
        n_r = max(2.0, p.slope_prior_s * nominal_srate)
        self._const = np.array(
            [
                self.interval,
                2.0 ** (-1.0 / (nominal_srate * p.halftime_s)),
                2.0 ** (-1.0 / (nominal_srate * p.jitter_halftime_s)),
                p.gap_intervals * self.interval,
                p.jitter_sigmas,
                p.future_margin_s,
                n_r**3 / 12.0,  # Σ(x − x̄)² of n_r evenly spaced samples
                float(self.rebase_at),
            ]
        )
        w0 = p.jitter_prior_weight_s * nominal_srate
        st = np.zeros(_STATE_LEN)
        st[_SLOPE0] = self.interval
        st[_RHO] = self._const[_RHO_MIN]
        st[_LAST_OUT] = st[_LEAD_REF] = -np.inf
        st[_R : _R + 2] = (w0 * p.jitter_prior_s**2, w0)
        self._state = st

    @property
    def slope(self) -> float:
        """The fitted sample interval, seconds (the nominal one before any data)."""
        st = self._state
        s0 = st[_S] + _EPS
        s1 = st[_S + 1]
        s2 = st[_S + 2] + st[_RHO]
        delta = (s0 * st[_S + 4] - s1 * st[_S + 3]) / (s0 * s2 - s1 * s1)
        return float(st[_SLOPE0] + delta)

    @property
    def jitter(self) -> float:
        """The recent RMS residual of the raw timestamps around the line, seconds."""
        return math.sqrt(self._state[_R] / self._state[_R + 1])

    def process(self, timestamps: NDArray[np.float64], arrival: float | None = None) -> Dejittered:
        """Smooth one chunk of raw timestamps (oldest first, on the local LSL clock).

        ``arrival`` is when the chunk was received (:func:`local_clock`); without it, every jump
        ahead is taken as a gap. Returns the smoothed timestamps (same length) and the counts.
        """
        t = np.ascontiguousarray(timestamps, dtype=np.float64)
        out = np.empty(len(t))
        self._const[_REBASE] = self.rebase_at  # a test moves it per instance
        gaps, missing, back, ahead = _kernel(
            t,
            math.nan if arrival is None else float(arrival),
            arrival is not None,
            self._state,
            self._const,
            out,
        )
        return Dejittered(out, int(gaps), int(missing), int(back), int(ahead))
