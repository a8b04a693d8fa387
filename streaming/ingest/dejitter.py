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

The work is vectorised over the chunk: the running weighted sums (``S_j = λ·S_{j−1} + a_j``) are
computed in closed form with numpy (:class:`_Forgetting`); the Python loop runs once per
discontinuity, not per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Dejitter", "DejitterPolicy", "Dejittered"]


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


class _Forgetting:
    """Running sums with exponential forgetting, ``S_j = lam·S_{j−1} + a_j``, for a whole chunk
    at once: ``S_j = (lam·S_{−1} + Σ_{i≤j} a_i·lam^{−i}) · lam^j``. Blocks are short enough that
    ``lam^{−i}`` stays below 2^30 (it grows fastest at low rates)."""

    def __init__(self, lam: float) -> None:
        self.lam = lam
        block = 4096 if lam == 1.0 else int(30.0 / -math.log2(lam))
        i = np.arange(max(1, min(4096, block)), dtype=np.float64)
        self._grow = lam**-i  # lam^{−i}
        self._shrink = lam**i  # lam^{i}
        self.block = len(i)

    def last(self, a: NDArray[np.float64], prev: float) -> float:
        """The sum after the last sample of ``a`` (k,), k ≤ :attr:`block`, from ``prev``."""
        k = len(a)
        return float(self.lam**k * prev + np.dot(a, self._shrink[k - 1 :: -1]))

    def run(self, a: NDArray[np.float64], prev: NDArray[np.float64]) -> NDArray[np.float64]:
        """``a`` (r, k) → (r, k + 1): ``prev`` (r,), then the sums after each sample."""
        r, k = a.shape
        out = np.empty((r, k + 1))
        out[:, 0] = prev
        b = len(self._grow)
        if k <= b:  # one block (the usual case)
            acc = out[:, 1:]
            np.multiply(a, self._grow[:k], out=acc)
            np.cumsum(acc, axis=1, out=acc)
            acc += self.lam * prev[:, None]
            acc *= self._shrink[:k]
            return out
        for s in range(0, k, b):
            n = min(b, k - s)
            acc = out[:, s + 1 : s + 1 + n]
            np.cumsum(a[:, s : s + n] * self._grow[:n], axis=1, out=acc)
            acc += self.lam * out[:, s : s + 1]
            acc *= self._shrink[:n]
        return out


_EPS = 1e-9  # a vanishing prior on the intercept: an empty line predicts its anchor
_REBASE_AT = 1 << 16  # sample index at which the index origin moves (keeps the sums small)


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
        self._fit = _Forgetting(2.0 ** (-1.0 / (nominal_srate * p.halftime_s)))
        self._jit = _Forgetting(2.0 ** (-1.0 / (nominal_srate * p.jitter_halftime_s)))
        self._floor = p.gap_intervals * self.interval
        n_r = max(2.0, p.slope_prior_s * nominal_srate)
        self._rho_min = n_r**3 / 12.0  # Σ(x − x̄)² of n_r evenly spaced samples
        # the line: t = anchor + slope0·x + α + δ·x, x = sample index since the anchor
        self._anchored = False
        self._anchor = 0.0
        self._slope0 = self.interval
        self._rho = self._rho_min
        self._x_next = 0
        self._sums = np.zeros(5)  # weighted Σ1, Σx, Σx², Σy, Σxy (y = t − anchor − slope0·x)
        w0 = p.jitter_prior_weight_s * nominal_srate
        self._res = np.array([w0 * p.jitter_prior_s**2, w0])  # weighted Σr², Σ1
        self._last_out = -math.inf
        self._lead_ref = -math.inf
        self._ar = np.arange(self._fit.block, dtype=np.float64)
        self._ones = np.ones(self._jit.block)

    @property
    def slope(self) -> float:
        """The fitted sample interval, seconds (the nominal one before any data)."""
        _, delta = self._line(self._sums[:, None])
        return self._slope0 + float(delta[0])

    @property
    def jitter(self) -> float:
        """The recent RMS residual of the raw timestamps around the line, seconds."""
        return math.sqrt(self._res[0] / self._res[1])

    def _line(self, sums: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(α, δ) of the weighted least-squares line for each column of ``sums`` (5, k)."""
        s0 = sums[0] + _EPS
        s1 = sums[1]
        s2 = sums[2] + self._rho
        det = s0 * s2 - s1 * s1
        alpha = (sums[3] * s2 - s1 * sums[4]) / det
        delta = (s0 * sums[4] - s1 * sums[3]) / det
        return alpha, delta

    def _reanchor(self, t: float) -> None:
        if self._anchored:  # carry the slope, weighted by the data that estimated it
            s0 = self._sums[0] + _EPS
            spread = self._sums[2] - self._sums[1] ** 2 / s0
            self._slope0 = self.slope
            self._rho = max(self._rho_min, float(spread))
        self._anchored = True
        self._anchor = t
        self._x_next = 0
        self._sums = np.zeros(5)
        self._last_out = -math.inf
        self._lead_ref = -math.inf

    def _rebase(self) -> None:
        """Move the index origin to the next sample (same line, smaller sums)."""
        c = float(self._x_next)
        s0, s1, s2, sy, sxy = self._sums
        self._sums = np.array([s0, s1 - c * s0, s2 - 2 * c * s1 + c * c * s0, sy, sxy - c * sy])
        self._anchor += self._slope0 * c
        self._x_next = 0

    def process(self, timestamps: NDArray[np.float64], arrival: float | None = None) -> Dejittered:
        """Smooth one chunk of raw timestamps (oldest first, on the local LSL clock).

        ``arrival`` is when the chunk was received (:func:`local_clock`); without it, every jump
        ahead is taken as a gap. Returns the smoothed timestamps (same length) and the counts.
        """
        t = np.asarray(timestamps, dtype=np.float64)
        m = len(t)
        out = np.empty(m)
        gaps = missing = back = ahead = 0
        lead = None if arrival is None else t - arrival
        i = 0
        while i < m:
            if not self._anchored:
                self._reanchor(float(t[i]))
            if self._x_next >= self.rebase_at:
                self._rebase()
            k = m - i
            ar = self._ar[:k] if k <= len(self._ar) else np.arange(k, dtype=np.float64)
            x = ar + self._x_next
            y = t[i:] - self._anchor
            y -= self._slope0 * x
            a = np.empty((5, k))
            a[0] = 1.0
            a[1] = x
            np.multiply(x, x, out=a[2])
            a[3] = y
            np.multiply(x, y, out=a[4])
            sums = self._fit.run(a, self._sums)  # column j: the sums before sample j
            alpha, delta = self._line(sums)  # column j: the line through samples < j
            r = y - (alpha[:-1] + delta[:-1] * x)  # residual against the line before
            r2 = r * r
            if k <= self._jit.block and r2.max() <= self._floor**2:
                # every residual within the tolerance's floor: only the final jitter sums matter
                d = k
                q, w = self._res
                self._res = np.array([self._jit.last(r2, q), self._jit.last(self._ones[:k], w)])
            else:
                sq = np.empty((2, k))
                sq[0] = r2
                sq[1] = 1.0
                res = self._jit.run(sq, self._res)
                tol = np.maximum(
                    self._floor, self.policy.jitter_sigmas * np.sqrt(res[0, :-1] / res[1, :-1])
                )
                bad = np.abs(r) > tol
                d = int(np.argmax(bad)) if bad.any() else k
                self._res = res[:, d].copy()
            if d:  # samples 0..d-1 of this run are on the line (through each of them)
                xd = x[:d]
                fit = self._anchor + self._slope0 * xd + alpha[1 : d + 1] + delta[1 : d + 1] * xd
                step = 0.5 * self.interval  # the line's output always increases
                if fit[0] < self._last_out + step or (d > 1 and (fit[1:] - fit[:-1]).min() < step):
                    ramp = step * (ar[:d] + 1.0)
                    fit = np.maximum.accumulate(np.maximum(fit - ramp, self._last_out)) + ramp
                out[i : i + d] = fit
                self._last_out = float(fit[-1])
                self._sums = sums[:, d].copy()
                self._x_next += d
                if lead is not None:
                    self._lead_ref = max(self._lead_ref, float(lead[i : i + d].max()))
                i += d
            if d == k:
                break
            # sample i is a discontinuity
            if r[d] < 0:
                back += 1
                self._reanchor(float(t[i]))
                continue
            tol_d = float(tol[d])
            margin = max(tol_d, self.policy.future_margin_s)
            if lead is not None and lead[i] > max(self._lead_ref, 0.0) + margin:
                ahead += 1
                self._reanchor(float(t[i]))
                continue
            slope = self._slope0 + float(delta[d])
            if not 0.5 * self.interval <= slope <= 2.0 * self.interval:
                ahead += 1  # a line this far off the nominal rate cannot count samples: restart
                self._reanchor(float(t[i]))
                continue
            n_missing = max(1, round(float(r[d]) / slope))
            gaps += 1
            missing += n_missing
            self._x_next += n_missing
        return Dejittered(out, gaps, missing, back, ahead)
