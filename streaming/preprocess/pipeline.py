"""One preprocessing path for training and serving.

A :class:`PreprocessSpec` says what a model needs: its inputs (:class:`FeatureInput`: which
channels of which streams, at which rate, through which filters, over which window, as which
feature), and the hop. A :class:`Preprocessor` holds the state for one spec: it is fed
consecutive, hop-sized chunks of every stream (:meth:`Preprocessor.push`) and, once it holds a
full window, returns the model's inputs (:meth:`Preprocessor.features`).

- **Training** calls :func:`preprocess_recording` on a whole recording (a DEAP trial converted with
  :func:`affectstream.streaming.replay.deap.deap_trial_streams`): it pushes the recording hop by hop
  and collects the features after each hop.
- **Serving** feeds the same object from the aligned windows of
  :mod:`affectstream.streaming.ingest.windows` (:class:`WindowFeeder`: the tail hop of each window;
  a skipped window resets the state).

Both end in the same calls, so offline and online features agree to floating-point rounding
(``tests/streaming/preprocess/test_pipeline.py`` proves it on a synthetic DEAP trial).

Rates: a stream is brought to the feature's rate by a stateful anti-aliasing
:class:`~affectstream.streaming.preprocess.filters.Decimator` when its rate is an integer multiple
of it, used as is when equal; otherwise the windowing layer delivers it at the feature rate (linear
interpolation, see :mod:`affectstream.streaming.ingest.windows`), which is only accepted for
upsampling.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.ingest.windows import InputSpec, Window, WindowSpec
from affectstream.streaming.preprocess.eeg import Standardizer, eeg_band_de, eeg_grid
from affectstream.streaming.preprocess.filters import CausalFilter, Decimator
from affectstream.streaming.preprocess.peripheral import periph_stats
from affectstream.streaming.preprocess.spec import FeatureInput, FeatureKind, PreprocessSpec

__all__ = [
    "Preprocessor",
    "WindowFeeder",
    "preprocess_recording",
    "source_rate_plan",
]

FloatArray = NDArray[np.float64]


def source_rate_plan(spec: PreprocessSpec, stream_rates: Mapping[str, float]) -> dict[str, float]:
    """The rate at which the windowing layer must deliver each stream for ``spec``.

    A stream is delivered at its own rate when every feature using it runs at that rate or an
    integer fraction of it (then decimated here, with anti-aliasing); otherwise at the one feature
    rate it feeds, by interpolation, which is refused if it would downsample (aliasing).
    """
    plan: dict[str, float] = {}
    for stream in spec.streams:
        native = float(stream_rates[stream])
        rates = {i.srate for i in spec.inputs if stream in i.streams}
        if all(_integer_ratio(native, r) for r in rates):
            plan[stream] = native
        elif len(rates) == 1 and next(iter(rates)) > native:
            plan[stream] = next(iter(rates))
        else:
            raise ValueError(
                f"stream {stream} at {native:g} Hz cannot feed features at {sorted(rates)} Hz: "
                "the rate must be an integer fraction of the stream's (decimation) or above it"
            )
    return plan


def _integer_ratio(native: float, target: float) -> bool:
    k = native / target
    return k >= 1 and math.isclose(k, round(k), rel_tol=0, abs_tol=1e-9)


# -- per-input state -----------------------------------------------------------------------------


@dataclass
class _InputState:
    spec: FeatureInput
    indices: dict[str, list[int]]  # stream → channel indices within that stream's chunk
    decimators: dict[str, Decimator]
    filters: list[CausalFilter]
    history: FloatArray  # (n_window, n_channels) trailing window at the feature rate
    filled: int = 0
    calibration: list[FloatArray] = field(default_factory=list)
    calibrated: Standardizer | None = None
    cvx: Any = None  # OnlineCvxEda for EDA_CVX3
    _cvx_last: Any = None  # its latest decomposition

    def push(self, chunks: Mapping[str, FloatArray]) -> None:
        parts = []
        for stream, idx in self.indices.items():
            x = np.asarray(chunks[stream], dtype=np.float64)[:, idx]
            dec = self.decimators.get(stream)
            parts.append(dec.process(x) if dec is not None else x)
        x = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        for f in self.filters:
            x = f.process(x)
        x = self._calibrate(x)
        if self.cvx is not None and len(x):
            self._cvx_last = self.cvx.update(x[:, 0])
        n = len(x)
        if n >= len(self.history):
            self.history[:] = x[-len(self.history) :]
        elif n:
            self.history[:-n] = self.history[n:]  # window-sized, not buffer-sized: a few kB
            self.history[-n:] = x
        self.filled = min(len(self.history), self.filled + n)

    def _calibrate(self, x: FloatArray) -> FloatArray:
        """Collect the calibration period, then standardise with its statistics."""
        n_cal = round(self.spec.baseline_s * self.spec.srate)
        if n_cal == 0:
            return x
        if self.calibrated is None:
            have = sum(len(c) for c in self.calibration)
            take = min(len(x), n_cal - have)
            self.calibration.append(x[:take])
            x = x[take:]
            if have + take < n_cal:
                return x
            self.calibrated = Standardizer.fit(np.concatenate(self.calibration), axis=0)
            self.calibration.clear()
        return self.calibrated.transform(x)

    @property
    def full(self) -> bool:
        return self.filled >= len(self.history)

    def feature(self) -> FloatArray:
        s, h = self.spec, self.history
        if s.kind == FeatureKind.RAW:
            return h.copy()
        if s.kind == FeatureKind.EEG_DE:
            return eeg_band_de(h, s.srate, step_s=s.step_s)
        if s.kind == FeatureKind.EEG_GRID:
            return eeg_grid(h, [c.label for c in s.channels])
        if s.kind == FeatureKind.PERIPH_STATS:
            return periph_stats(h, s.srate, step_s=s.step_s)
        if s.kind == FeatureKind.EDA_CVX3:
            from affectstream.streaming.preprocess.eda import rtcan_channels

            return np.asarray(rtcan_channels(h[:, 0], self._cvx_last), dtype=np.float64)
        raise AssertionError(s.kind)


@dataclass
class Preprocessor:
    """Stateful preprocessing of one spec; see the module docstring.

    Parameters
    ----------
    spec : what the model needs
    stream_rates : the rate at which each stream is pushed (see :func:`source_rate_plan`)
    stream_labels : channel labels of each stream, in the order of the pushed columns
    """

    spec: PreprocessSpec
    stream_rates: Mapping[str, float]
    stream_labels: Mapping[str, tuple[str, ...]]
    _states: list[_InputState] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._states = [self._make_state(i) for i in self.spec.inputs]

    def _make_state(self, inp: FeatureInput) -> _InputState:
        indices: dict[str, list[int]] = {}
        for ref in inp.channels:
            labels = self.stream_labels.get(ref.stream)
            if labels is None:
                raise ValueError(f"{inp.name}: no stream {ref.stream!r} in this session")
            if ref.label not in labels:
                raise ValueError(f"{inp.name}: stream {ref.stream} has no channel {ref.label!r}")
            indices.setdefault(ref.stream, []).append(labels.index(ref.label))
        decimators = {}
        for stream in indices:
            rate = float(self.stream_rates[stream])
            if not math.isclose(rate, inp.srate):
                if not _integer_ratio(rate, inp.srate):
                    raise ValueError(
                        f"{inp.name}: {stream} pushed at {rate:g} Hz, not a "
                        f"multiple of {inp.srate:g} Hz"
                    )
                decimators[stream] = Decimator(round(rate / inp.srate), rate)
        filters = [CausalFilter.from_spec(f, inp.srate) for f in inp.filters]
        cvx = None
        if inp.kind == FeatureKind.EDA_CVX3:
            from affectstream.streaming.preprocess.eda import OnlineCvxEda

            options: dict[str, Any] = dict(inp.options)
            cvx = OnlineCvxEda(inp.srate, inp.window_s, **options)
        history = np.zeros((inp.n_window, len(inp.channels)))
        return _InputState(inp, indices, decimators, filters, history, cvx=cvx)

    def reset(self) -> None:
        """Forget all state (after a gap in the data)."""
        self._states = [self._make_state(i) for i in self.spec.inputs]

    def push(self, chunks: Mapping[str, FloatArray]) -> None:
        """Feed the next chunk of every stream the spec uses (same time span for all).

        chunks : stream type → ndarray, shape (n_samples, n_channels) at ``stream_rates``
        """
        for st in self._states:
            st.push(chunks)

    @property
    def ready(self) -> bool:
        return all(st.full for st in self._states)

    def features(self) -> dict[str, FloatArray]:
        """The model inputs for the trailing window (only when :attr:`ready`)."""
        if not self.ready:
            raise RuntimeError("not enough data yet for a full window")
        return {st.spec.name: st.feature() for st in self._states}


def preprocess_recording(
    spec: PreprocessSpec,
    streams: Mapping[str, FloatArray],
    stream_rates: Mapping[str, float],
    stream_labels: Mapping[str, tuple[str, ...]],
    *,
    stride_s: float | None = None,
) -> Iterator[tuple[float, dict[str, FloatArray]]]:
    """Training's entry point: push a whole recording hop by hop, yield (t_end, features).

    streams : stream type → ndarray, shape (n_samples, n_channels), all starting at t = 0
    stride_s : yield only windows whose end is a multiple of it (a multiple of the hop); the
        state still advances hop by hop, so each yielded window equals the online one
    yields the end time of each window (seconds from the recording's start) and its features,
    for every hop (or stride) once a full window is available
    """
    every = 1 if stride_s is None else round(stride_s / spec.hop_s)
    if every < 1 or not math.isclose(every * spec.hop_s, stride_s or spec.hop_s):
        raise ValueError(f"stride_s {stride_s} is not a multiple of hop_s {spec.hop_s}")
    pre = Preprocessor(spec, stream_rates, stream_labels)
    hops = {s: round(spec.hop_s * stream_rates[s]) for s in spec.streams}
    n_hops = min(len(streams[s]) // hops[s] for s in spec.streams)
    for k in range(n_hops):
        pre.push({s: streams[s][k * hops[s] : (k + 1) * hops[s]] for s in spec.streams})
        if pre.ready and (k + 1) % every == 0:
            yield (k + 1) * spec.hop_s, pre.features()


@dataclass
class WindowFeeder:
    """Serving's entry point: feed a :class:`Preprocessor` from consecutive aligned windows.

    Each window contributes its newest ``hop_s`` of every stream; a window that does not follow
    the previous one by exactly one hop (first window, or windows skipped over a gap) resets the
    state and feeds the whole window, so the features restart from clean filter state.
    """

    pre: Preprocessor
    last_end: float | None = None
    resets: int = 0

    @classmethod
    def for_spec(
        cls,
        spec: PreprocessSpec,
        native_rates: Mapping[str, float],
        stream_labels: Mapping[str, tuple[str, ...]],
    ) -> tuple[WindowFeeder, WindowSpec]:
        """The feeder and the :class:`~affectstream.streaming.ingest.windows.WindowSpec` that must
        feed it."""
        plan = source_rate_plan(spec, native_rates)
        window_spec = WindowSpec(
            spec.window_s, spec.hop_s, tuple(InputSpec(s, r) for s, r in plan.items())
        )
        return cls(Preprocessor(spec, plan, stream_labels)), window_spec

    def feed(self, window: Window) -> dict[str, FloatArray] | None:
        """Push one window; the model inputs once a full window of state is there."""
        hop = self.pre.spec.hop_s
        follows = self.last_end is not None and math.isclose(
            window.t_end - self.last_end, hop, abs_tol=1e-6
        )
        if follows:
            chunks = {
                s: x[len(x) - round(hop * self.pre.stream_rates[s]) :]
                for s, x in window.data.items()
            }
        else:
            if self.last_end is not None:
                self.resets += 1
            self.pre.reset()
            chunks = dict(window.data)
        self.pre.push(chunks)
        self.last_end = window.t_end
        return self.pre.features() if self.pre.ready else None
