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

A feature that cannot be computed as trained is not hidden: when the online cvxEDA of an
``EDA_CVX3`` input falls back (flat segment, both solvers failing: tonic = signal, phasic = 0),
:meth:`Preprocessor.fallbacks` names that input and the reason for the current window.

Rates (docs/resampling.md): :func:`source_rate_plan` says at which rate the windowing layer
delivers each stream. A stream is delivered at its own rate whenever it runs at or above every
feature rate it feeds, and brought down here, with carried state: as is when equal, by the
anti-aliasing :class:`~affectstream.streaming.preprocess.filters.Decimator` for a whole factor (the
path every shipped model was trained on, unchanged), by the polyphase
:class:`~affectstream.streaming.preprocess.resample.Resampler` for any other ratio (256 → 128 is a
whole factor; 250 → 128, 500 → 128, 50 → 16 and 51.2 → 16 are not). A stream slower than the one
feature rate it feeds is delivered at that rate by the windowing layer (linear interpolation on
the timestamps, see :mod:`affectstream.streaming.ingest.windows`); a stream slower than some of
several feature rates is delivered at its own rate and brought up here by the
:class:`~affectstream.streaming.preprocess.resample.Resampler` as well.

A stream that restarts at another rate changes the plan: :meth:`WindowFeeder.needs_replan` says
so, :meth:`WindowFeeder.replan` rebuilds the state for the new rates (counted, with the reason
kept) and returns the window spec the windowing layer must use from then on.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.ingest.channels import SINGLE_CHANNEL_TYPES
from affectstream.streaming.ingest.windows import InputSpec, Window, WindowSpec
from affectstream.streaming.preprocess.eeg import (
    Standardizer,
    baseline_chunk,
    de_bands,
    eeg_band_de,
    eeg_grid,
    subtract_chunk,
)
from affectstream.streaming.preprocess.filters import CausalFilter, Decimator
from affectstream.streaming.preprocess.montage import canonical_electrode, grid_cell
from affectstream.streaming.preprocess.peripheral import hrv_series, periph_stats
from affectstream.streaming.preprocess.resample import Resampler
from affectstream.streaming.preprocess.spec import (
    OPT_BASELINE_SUBTRACT,
    OPT_DE_GAMMA_HI,
    PREPROCESS_OPTIONS,
    FeatureInput,
    FeatureKind,
    PreprocessSpec,
)

__all__ = [
    "Preprocessor",
    "SharedInputs",
    "WindowFeeder",
    "column_streams",
    "delivery_window_s",
    "hop_bounds",
    "preprocess_recording",
    "source_rate_plan",
]

FloatArray = NDArray[np.float64]


def source_rate_plan(spec: PreprocessSpec, stream_rates: Mapping[str, float]) -> dict[str, float]:
    """The rate at which the windowing layer must deliver each stream for ``spec``.

    - at its own rate when every feature using it runs at that rate or below (brought down here
      with anti-aliasing: whole factors by the Decimator, any other ratio by the Resampler);
    - at the feature rate when it feeds one feature rate, above its own (the windowing layer
      interpolates on the timestamps);
    - at its own rate when it feeds several feature rates, some above it (the Resampler brings
      it up and down here).

    An optional stream (:attr:`PreprocessSpec.optional_streams`) missing from ``stream_rates`` is
    not in the plan (the session has none: its channels are zeros).

    Never refuses a rate; raises ``ValueError`` only for a rate that is not finite and > 0, or a
    needed stream missing from ``stream_rates``.
    """
    plan: dict[str, float] = {}
    optional = spec.optional_streams
    for stream in spec.streams:
        if stream not in stream_rates:
            if stream in optional:
                continue
            raise ValueError(f"no {stream} stream: the model needs one")
        native = float(stream_rates[stream])
        if not (math.isfinite(native) and native > 0):
            raise ValueError(f"stream {stream}: rate {native} Hz is not finite and > 0")
        rates = {i.srate for i in spec.inputs if stream in i.streams}
        if len(rates) == 1 and not _at_or_below(min(rates), native):
            plan[stream] = next(iter(rates))
        else:
            plan[stream] = native
    return plan


def column_streams(feature: FeatureInput) -> tuple[str, ...]:
    """The stream of each channel column of ``feature``'s samples as the :class:`Preprocessor`
    lays them out: stream by stream in order of first use, each stream's channels in contract
    order (a ``RAW`` feature's columns; an HRV column, if any, comes after them). Training's
    stream dropout zeroes columns by this layout."""
    order = tuple(dict.fromkeys(c.stream for c in feature.channels))
    return tuple(s for s in order for c in feature.channels if c.stream == s)


def _at_or_below(target: float, native: float) -> bool:
    return target < native or math.isclose(target, native, rel_tol=1e-9)


def _integer_ratio(native: float, target: float) -> bool:
    k = native / target
    return k >= 1 and math.isclose(k, round(k), rel_tol=0, abs_tol=1e-9)


def hop_bounds(k: int, hop_s: float, rate: float) -> int:
    """Samples of a stream at ``rate`` before ``k × hop_s`` (the first at t = 0):
    ``ceil(k × hop_s × rate)``, so hop *k* is samples ``[hop_bounds(k - 1), hop_bounds(k))``. A
    hop need not be a whole number of samples (0.5 s at 51.2 Hz is 25.6): the hops then alternate
    between 25 and 26 samples and never drift."""
    return math.ceil(k * hop_s * rate - 1e-9)


# -- which column is which channel ----------------------------------------------------------------

_GRID = FeatureKind.EEG_GRID


def channel_index(
    stream: str, label: str, labels: tuple[str, ...] | list[str], *, by_cell: bool = False
) -> int | None:
    """The column of ``labels`` (a stream's labels in column order) that is channel ``label``.

    Exact spelling first; a one-channel stream of a modality (GSR, PPG, RESP, ECG) is that
    channel whatever its label; EEG electrodes match by name ignoring case and the old names
    (T3 = T7 …), and with ``by_cell`` (grid inputs) by their cell on the 9×9 grid, so that an
    electrode of a 10-10 montage stands in for the model's electrode at that place. ``None`` when
    no column matches.
    """
    labels = tuple(labels)
    if label in labels:
        return labels.index(label)
    if stream in SINGLE_CHANNEL_TYPES and len(labels) == 1:
        return 0
    if stream != "EEG":
        return None
    want = canonical_electrode(label)
    if want is None:
        return None
    names = [canonical_electrode(x) for x in labels]
    if want in names:
        return names.index(want)
    if by_cell:
        cell = grid_cell(want)
        for i, name in enumerate(names):
            if name is not None and grid_cell(name) == cell:
                return i
    return None


# -- per-input state -----------------------------------------------------------------------------


@dataclass
class _InputState:
    spec: FeatureInput
    indices: dict[str, list[int]]  # stream → channel indices within that stream's chunk
    decimators: dict[str, Decimator | Resampler]  # per stream whose rate is not the feature's
    filters: list[CausalFilter]
    history: FloatArray  # (n_window, n_channels) trailing window at the feature rate
    filled: int = 0
    calibration: list[FloatArray] = field(default_factory=list)
    calibrated: Standardizer | None = None
    base_chunk: FloatArray | None = None  # the baseline_subtract option's mean 1 s chunk
    phase: int = 0  # position within its second of the next sample (baseline_subtract)
    cvx: Any = None  # OnlineCvxEda for EDA_CVX3
    _cvx_last: Any = None  # its latest decomposition
    absent: dict[str, NDArray[np.bool_]] = field(default_factory=dict)  # grid cells with no data
    missing: dict[str, int] = field(default_factory=dict)  # optional stream absent → its columns

    def push(self, chunks: Mapping[str, FloatArray]) -> None:
        parts: dict[str, FloatArray] = {}
        for stream, idx in self.indices.items():
            x = np.asarray(chunks[stream], dtype=np.float64)[:, idx]
            if stream in self.absent:
                x[:, self.absent[stream]] = 0.0  # an electrode the montage lacks: its cell is 0
            dec = self.decimators.get(stream)
            parts[stream] = dec.process(x) if dec is not None else x
        if self.missing:  # an optional stream the session lacks: zeros, as in stream dropout
            n = len(next(iter(parts.values())))
            parts.update({s: np.zeros((n, k)) for s, k in self.missing.items()})
            order = dict.fromkeys(c.stream for c in self.spec.channels)
            cols = [parts[s] for s in order]
        else:
            cols = list(parts.values())
        x = np.concatenate(cols, axis=1) if len(cols) > 1 else cols[0]
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
        """Collect the calibration period, then standardise with its statistics, or (option
        ``baseline_subtract``) subtract its mean one-second chunk from every later second."""
        n_cal = round(self.spec.baseline_s * self.spec.srate)
        if n_cal == 0:
            return x
        subtract = bool(dict(self.spec.options).get(OPT_BASELINE_SUBTRACT))
        if self.calibrated is None and self.base_chunk is None:
            have = sum(len(c) for c in self.calibration)
            take = min(len(x), n_cal - have)
            self.calibration.append(x[:take])
            x = x[take:]
            if have + take < n_cal:
                return x
            period = np.concatenate(self.calibration)
            if subtract:
                self.base_chunk = baseline_chunk(period, self.spec.srate)
            else:
                self.calibrated = Standardizer.fit(period, axis=0)
            self.calibration.clear()
        if self.base_chunk is not None:
            out = subtract_chunk(x, self.base_chunk, self.phase)
            self.phase = (self.phase + len(x)) % len(self.base_chunk)
            return out
        assert self.calibrated is not None
        return self.calibrated.transform(x)

    @property
    def ppg_column(self) -> int:
        """The history column of the input's PPG channel (columns go stream by stream)."""
        col = 0
        for stream in dict.fromkeys(c.stream for c in self.spec.channels):
            if stream == "PPG":
                return col
            col += sum(c.stream == stream for c in self.spec.channels)
        raise AssertionError("no PPG channel")  # FeatureInput checks the hrv option

    @property
    def full(self) -> bool:
        return self.filled >= len(self.history)

    def feature(self) -> FloatArray:
        s, h = self.spec, self.history
        if s.kind == FeatureKind.RAW:
            if s.hrv:
                return np.column_stack([h, hrv_series(h[:, self.ppg_column], s.srate)])
            return h.copy()
        if s.kind == FeatureKind.EEG_DE:
            gamma_hi = dict(s.options).get(OPT_DE_GAMMA_HI, 45.0)
            return eeg_band_de(h, s.srate, step_s=s.step_s, bands=de_bands(gamma_hi))
        if s.kind == FeatureKind.EEG_GRID:
            return eeg_grid(h, [c.label for c in s.channels])
        if s.kind == FeatureKind.PERIPH_STATS:
            return periph_stats(h, s.srate, step_s=s.step_s)
        if s.kind == FeatureKind.EDA_CVX3:
            from affectstream.streaming.preprocess.eda import rtcan_channels

            return np.asarray(rtcan_channels(h[:, 0], self._cvx_last), dtype=np.float64)
        raise AssertionError(s.kind)

    @property
    def fallback(self) -> str | None:
        """Why the online cvxEDA of an ``EDA_CVX3`` input fell back on its latest update (the
        decomposition :meth:`feature` returns), e.g. ``"flat-segment: …; tonic = signal, phasic =
        driver = 0"``; ``None`` when it solved, and for every other kind."""
        last = self._cvx_last
        if last is None or last.ok:
            return None
        return str(last.fallback or "cvxEDA fell back")


SHARED_KEEP = 16
"""Outputs a shared input keeps (the newest, by window end): a model up to this many hops behind
the one that computed them reads them instead of computing its own (4 s at a 0.25 s hop)."""


@dataclass
class _Shared:
    """One input's state as several models of a session compute it, and its latest outputs."""

    state: _InputState
    pos: float | None = None  # the end of the newest window pushed
    done: dict[float, tuple[FloatArray | None, str | None]] = field(default_factory=dict)
    """window end (rounded, :func:`_end_key`) → (feature, or ``None`` before a full window;
    fallback), the newest :data:`SHARED_KEEP`; each feature is read-only (every model reading it
    gets this very array)"""
    links: weakref.WeakSet[_Link] = field(default_factory=weakref.WeakSet)
    """The models' links to it (gone with their preprocessors)."""


@dataclass(eq=False)
class _Link:
    """A model's use of a shared input: it reads and pushes the shared state, or (``private``)
    computes on a state of its own until it can follow the shared one again."""

    entry: _Shared
    private: bool = False
    last: float | None = None  # the window end it last read or pushed in the shared state
    out: tuple[FloatArray | None, str | None] | None = None  # the current window's, if shared


def _end_key(t_end: float) -> float:
    return round(t_end, 6)


class SharedInputs:
    """The inputs that several models of one session compute the same way, computed once
    (serving; :class:`WindowFeeder` with ``shared``).

    Two models' inputs are the same computation when they have the same feature (name, kind,
    channels, rate, window, step, filters, options, calibration period, optional streams; the
    partial-montage allowance aside), read the same streams at the same delivered rates with the
    same channel labels, and have the same hop: cnn-lstm and cnn-lstm-lab compute the same EEG
    grid, rtcan1d and rtcan1d-eda-bvp the same online cvxEDA of the skin conductance. Their
    windows end on the same grid (a session's phase), so the first model to reach a window end
    pushes its hop into the shared state and the others read its output (kept for
    :data:`SHARED_KEEP` window ends).

    A model restarting its state (a gap in one of *its* streams, a rebuild) with a whole window:

    - joins the shared state as it is when that state is one hop behind (pushing the window's
      last hop) or a few hops behind within the window (pushing each hop it lacks, from the
      window): the input's own streams had no gap, so its state keeps going for everyone;
    - starts the shared state afresh from the window when no other model is at the state's
      newest window end (nobody is keeping it going);
    - otherwise (another model keeps the state going where this one cannot join: it is ahead of
      this window beyond what is kept, or a hop is not a whole number of samples) computes on a
      state of its own, counted in ``private``.

    A model on a state of its own goes back to the shared one at the first window end the shared
    state has computed or is one hop behind. A model continuing from a window end whose
    successor the shared state will not compute (the state moved past it: started afresh ahead
    of it, or it fell more than :data:`SHARED_KEEP` hops behind) gets no features for that
    window and restarts from its next window, cut whole (:attr:`WindowFeeder.wants_whole`;
    counted in ``missed``).

    The output of a shared input is one array for every model that reads it (the model that
    computed it included), so it is read-only: a consumer writing into it would change the other
    models' features (numpy raises ``ValueError``); one that must change it works on a copy.

    Counters: ``computed`` (hops pushed into shared states), ``reused`` (outputs read instead of
    computed), ``started`` (shared states started afresh), ``private``, ``missed``. States no
    model links to any more are dropped when a model links.
    """

    def __init__(self) -> None:
        self._entries: dict[Any, _Shared] = {}
        self.started = 0
        self.computed = 0
        self.reused = 0
        self.private = 0
        self.missed = 0

    def link(self, key: Any, make: Any) -> _Link:
        for old in [k for k, e in self._entries.items() if not e.links]:
            del self._entries[old]  # (a model rebuilt or re-planned with other streams)
        found = self._entries.get(key)
        if found is None:
            found = self._entries[key] = _Shared(make())
        link = _Link(found)
        found.links.add(link)
        return link

    def counters(self) -> dict[str, int]:
        """What ``GET /sessions/{id}`` shows: the shared states and the counters above."""
        return {
            "states": len(self._entries),
            "started": self.started,
            "computed": self.computed,
            "reused": self.reused,
            "private": self.private,
            "missed": self.missed,
        }

    def advance(self, e: _Shared, chunks: Mapping[str, FloatArray], t_end: float) -> None:
        e.state.push(chunks)
        e.pos = t_end
        feature = e.state.feature() if e.state.full else None
        if feature is not None:
            # every model reading this window end gets this array: none may change it for the
            # others (a flag, no copy; feature() returns a new array each time, never a view of
            # the state)
            feature.flags.writeable = False
        e.done[_end_key(t_end)] = (feature, e.state.fallback)
        if len(e.done) > SHARED_KEEP:
            del e.done[min(e.done)]
        self.computed += 1


@dataclass
class Preprocessor:
    """Stateful preprocessing of one spec; see the module docstring.

    Parameters
    ----------
    spec : what the model needs
    stream_rates : the rate at which each stream is pushed (see :func:`source_rate_plan`)
    stream_labels : channel labels of each stream, in the order of the pushed columns; a stream
        the spec may use (:attr:`PreprocessSpec.optional_streams`) that is not here is absent:
        its channels are zeros, and :meth:`push` needs no chunk of it
    """

    spec: PreprocessSpec
    stream_rates: Mapping[str, float]
    stream_labels: Mapping[str, tuple[str, ...]]
    shared: SharedInputs | None = None
    """Serving: compute the inputs other models of the session compute the same way once
    (:class:`SharedInputs`; fed through :meth:`push_window`)."""
    _states: list[_InputState | None] = field(init=False, repr=False)
    """Input ``i``'s state of its own: always for an input not linked to a shared one; for a
    linked input only while it computes alone (``_links[i].private``), ``None`` otherwise (see
    :meth:`_new_states`)."""
    _links: list[_Link | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.shared is not None:  # before linking: a model its streams cannot serve links none
            for inp in self.spec.inputs:  # (a linked input makes no state, which would raise)
                self._channel_map(inp)
        self._links = self._link_all()
        self._states = self._new_states()

    def _new_states(self) -> list[_InputState | None]:
        """Fresh states for the inputs not linked to a shared one; ``None`` for linked ones.

        A linked input computes on the shared state, or reads its outputs; a state of its own
        would never be pushed while it does. The only path that computes alone (another model
        keeps the shared state going where this one cannot join it, :meth:`_push_linked`) makes
        a fresh state from that window on, and drops it when the input follows the shared state
        again, so none is kept (nor rebuilt at every :meth:`reset`) in advance."""
        return [
            self._make_state(inp) if link is None else None
            for inp, link in zip(self.spec.inputs, self._links, strict=True)
        ]

    def _own(self, i: int) -> _InputState:
        """Input ``i``'s state of its own (not linked, or linked and computing alone)."""
        st = self._states[i]
        assert st is not None  # (a linked input following the shared state has none)
        return st

    def _state_of(self, i: int) -> _InputState:
        """The state input ``i`` is computed on now: its own, or the shared one it follows (for
        what depends on the input's channels and rates only: the same for both)."""
        st, link = self._states[i], self._links[i]
        if st is not None:
            return st
        assert link is not None
        return link.entry.state

    def _link_all(self) -> list[_Link | None]:
        shared = self.shared
        if shared is None:
            return [None] * len(self.spec.inputs)
        links: list[_Link | None] = []
        for inp in self.spec.inputs:
            key = (
                dataclasses.replace(inp, min_channels=None),  # (which montages it accepts)
                self.spec.hop_s,
                tuple(
                    (s, float(self.stream_rates[s]), tuple(self.stream_labels[s]))
                    for s in inp.streams
                    if s in self.stream_labels
                ),
            )
            links.append(shared.link(key, lambda inp=inp: self._make_state(inp)))
        return links

    def _channel_map(
        self, inp: FeatureInput
    ) -> tuple[dict[str, list[int]], dict[str, NDArray[np.bool_]], dict[str, int]]:
        """Where ``inp``'s channels are in the session's streams: stream → column of each of its
        channels (0 for one the montage lacks), stream → which of them it lacks (streams that
        lack some only), optional stream the session has none of → its number of channels.
        Raises ``ValueError`` (with the fix) when the streams cannot serve ``inp``."""
        indices: dict[str, list[int]] = {}
        absent: dict[str, list[bool]] = {}
        missing: list[str] = []
        lacking: dict[str, int] = {}  # optional streams the session has none of
        for ref in inp.channels:
            labels = self.stream_labels.get(ref.stream)
            if labels is None and ref.stream in inp.optional_streams:
                lacking[ref.stream] = lacking.get(ref.stream, 0) + 1
                continue
            if labels is None:
                raise ValueError(f"{inp.name}: no stream {ref.stream!r} in this session")
            index = channel_index(ref.stream, ref.label, labels, by_cell=inp.kind == _GRID)
            if index is None:
                missing.append(ref.label)
            indices.setdefault(ref.stream, []).append(0 if index is None else index)
            absent.setdefault(ref.stream, []).append(index is None)
        present = len(inp.channels) - len(missing)
        least = inp.min_channels
        if missing and least is not None and present >= least:
            pass  # a partial montage the model was trained for: absent channels are zeros
        elif missing and least is not None and present > 0:
            raise ValueError(
                f"{inp.name}: the streams give {present} of its {len(inp.channels)} channels, "
                f"it needs at least {least} (missing: " + ", ".join(repr(m) for m in missing) + ")"
            )
        elif missing:
            stream = inp.channels[0].stream
            labels = self.stream_labels.get(stream, ())
            given = ", ".join(labels) or "none"
            electrodes = bool(labels) and all(canonical_electrode(x) for x in labels)
            if stream == "EEG" and electrodes and present:
                # a partial montage of real electrodes, for a model trained on all of them
                fix = (
                    f"; the model needs all {len(inp.channels)} (it was not trained for partial "
                    "montages)"
                )
            elif stream == "EEG" and inp.kind == _GRID and electrodes:
                # real electrodes, none on a cell of the model's (a headband): no label fixes it
                fix = "; none of its electrodes is at a place of the model's montage"
            elif stream == "EEG":
                fix = '; give the labels in column order in the session\'s "channels"'
            else:
                fix = ""
            raise ValueError(
                f"{inp.name}: stream {stream} has no channel "
                + ", ".join(repr(m) for m in missing)
                + f" (its labels: {given})"
                + fix
            )
        holes = {s: np.array(a) for s, a in absent.items() if any(a)}
        return indices, holes, lacking

    def _make_state(self, inp: FeatureInput) -> _InputState:
        indices, holes, lacking = self._channel_map(inp)
        decimators: dict[str, Decimator | Resampler] = {}
        for stream in indices:
            rate = float(self.stream_rates[stream])
            if math.isclose(rate, inp.srate, rel_tol=1e-9):
                continue
            if _integer_ratio(rate, inp.srate):  # bit for bit the path models were trained on
                decimators[stream] = Decimator(round(rate / inp.srate), rate)
            else:
                decimators[stream] = Resampler(rate, inp.srate)
        filters = [CausalFilter.from_spec(f, inp.srate) for f in inp.filters]
        cvx = None
        if inp.kind == FeatureKind.EDA_CVX3:
            from affectstream.streaming.preprocess.eda import OnlineCvxEda

            options: dict[str, Any] = {k: v for k, v in inp.options if k not in PREPROCESS_OPTIONS}
            cvx = OnlineCvxEda(inp.srate, inp.window_s, **options)
        history = np.zeros((inp.n_window, len(inp.channels)))
        return _InputState(
            inp, indices, decimators, filters, history, cvx=cvx, absent=holes, missing=lacking
        )

    @property
    def streams(self) -> tuple[str, ...]:
        """The spec's streams this preprocessor reads (pushed chunks must hold each of them):
        every needed one and the optional ones the session has."""
        return tuple(s for s in self.spec.streams if s in self.stream_labels)

    def absent_optional(self) -> tuple[str, ...]:
        """The optional streams the session lacks (fed as zeros); empty when it has them all."""
        return tuple(s for s in self.spec.optional_streams if s not in self.stream_labels)

    def coverage(self) -> dict[str, float]:
        """Stream → the fraction of the spec's channels of that stream the session provides,
        for the streams of grid inputs that lack electrodes (a partial montage); empty when every
        channel is there."""
        out: dict[str, float] = {}
        for i in range(len(self.spec.inputs)):
            for stream, holes in self._state_of(i).absent.items():
                have = 1.0 - float(np.mean(holes))
                out[stream] = min(out.get(stream, 1.0), round(have, 4))
        return out

    def fallbacks(self) -> dict[str, str]:
        """Input name → reason, for the inputs whose features for the trailing window (those
        :meth:`features` returns now) come from a documented fallback rather than the computation
        the model was trained on; empty when there is none.

        Today only ``EDA_CVX3`` inputs have one: when the online cvxEDA meets a flat segment or
        both solvers fail, the window's tonic is the signal and its phasic is 0
        (:class:`~affectstream.streaming.preprocess.eda.EdaDecomposition`, docs/cvxeda.md
        "Fallbacks"). Ask after each :meth:`push` (in serving, after
        :meth:`WindowFeeder.feed`) and report it with the window's prediction, or withhold it.
        """
        out: dict[str, str] = {}
        for i, inp in enumerate(self.spec.inputs):
            read = self._read(i)
            f = self._own(i).fallback if read is None else read[1]
            if f is not None:
                out[inp.name] = f
        return out

    def reset(self) -> None:
        """Forget all state (after a gap in the data); a shared input's state is the session's
        (:class:`SharedInputs`: the next :meth:`push_window` decides), and an input linked to
        one gets no state of its own (:meth:`_new_states`)."""
        self._links = self._link_all()
        self._states = self._new_states()

    def replan(self, stream_rates: Mapping[str, float]) -> None:
        """Take the streams at new rates from now on (a stream restarted at another rate): the
        resampling is designed anew and all state is forgotten, as after :meth:`reset`."""
        self.stream_rates = dict(stream_rates)
        self.reset()

    def delays_s(self) -> dict[str, dict[str, float]]:
        """Input name → stream → delay (s) of the rate conversion of that stream for that input
        (0 when pushed at the feature rate). The Resampler's is exact (linear phase), the
        Decimator's is its group delay at 0 Hz. Not compensated: the features of a window ending
        at t describe the signal up to about t minus this (docs/resampling.md#delay)."""
        states = [self._state_of(i) for i in range(len(self.spec.inputs))]
        return {
            st.spec.name: {
                s: (st.decimators[s].delay_s if s in st.decimators else 0.0) for s in st.indices
            }
            for st in states
        }

    def push(self, chunks: Mapping[str, FloatArray]) -> None:
        """Feed the next chunk of every stream the spec uses (same time span for all).

        chunks : stream type → ndarray, shape (n_samples, n_channels) at ``stream_rates``
        """
        if self.shared is not None:
            raise RuntimeError("a preprocessor with shared inputs is fed by push_window")
        for i in range(len(self._states)):
            self._own(i).push(chunks)

    def push_window(self, chunks: Mapping[str, FloatArray], t_end: float, whole: bool) -> bool:
        """Serving with :attr:`shared`: push the window ending at ``t_end`` — ``chunks`` is its
        last hop of every stream, or with ``whole`` (after :meth:`reset`) the whole window.
        Inputs shared with other models are pushed once per window end (see
        :class:`SharedInputs`). ``False`` when a shared input cannot continue from this hop (the
        shared state will not compute it): no features for this window; the caller resets and
        feeds the next window whole."""
        ok = True
        for i, link in enumerate(self._links):
            if link is None:
                self._own(i).push(chunks)
            elif not self._push_linked(i, link, chunks, t_end, whole):
                ok = False
        return ok

    def _push_linked(
        self, i: int, link: _Link, chunks: Mapping[str, FloatArray], t_end: float, whole: bool
    ) -> bool:
        shared, e, hop, inp = self.shared, link.entry, self.spec.hop_s, self.spec.inputs[i]
        assert shared is not None
        link.out = e.done.get(_end_key(t_end))
        if link.out is not None:  # another model computed this window end: read it
            link.private, link.last = False, t_end
            self._states[i] = None  # (a state of its own, if it had one, is not used again)
            shared.reused += 1
            return True
        if e.pos is not None and math.isclose(t_end - e.pos, hop, abs_tol=1e-6):
            # the shared state's next window end: push this hop (a model restarting, or on a
            # state of its own, joins it as it is with its window's last hop)
            tail = chunks if not whole else self._last_hop(inp, chunks, 1)
            if tail is not None:
                self._advance(i, link, tail, t_end)
                return True
        if link.private:
            self._own(i).push(chunks)
            return True
        if not whole:
            shared.missed += 1  # the shared state will not compute this window end
            return False
        if e.pos is not None and t_end - inp.window_s - 1e-6 <= e.pos < t_end:
            k = round((t_end - e.pos) / hop)
            hops = [self._last_hop(inp, chunks, j) for j in range(k, 0, -1)]
            if math.isclose(e.pos + k * hop, t_end, abs_tol=1e-6) and all(
                h is not None for h in hops
            ):  # a few hops behind, within this window: push each hop it lacks
                for j, h in zip(range(k, 0, -1), hops, strict=True):
                    assert h is not None
                    self._advance(i, link, h, t_end - (j - 1) * hop)
                return True
        if e.pos is None or not any(
            other is not link and not other.private and other.last == e.pos for other in e.links
        ):  # nobody keeps it going: afresh from this window
            e.state = self._make_state(inp)
            shared.started += 1
            self._advance(i, link, chunks, t_end)
            return True
        # others keep it going where this one cannot: a state of its own, from this window on
        own = self._states[i] = self._make_state(inp)
        own.push(chunks)
        link.private, link.last = True, None
        shared.private += 1
        return True

    def _advance(self, i: int, link: _Link, chunks: Mapping[str, FloatArray], t_end: float) -> None:
        assert self.shared is not None
        self.shared.advance(link.entry, chunks, t_end)
        link.private, link.last = False, t_end
        link.out = link.entry.done[_end_key(t_end)]
        self._states[i] = None  # (a state of its own, if it had one, is not used again)

    def _last_hop(
        self, inp: FeatureInput, chunks: Mapping[str, FloatArray], back: int
    ) -> dict[str, FloatArray] | None:
        """Hop ``back`` from the end (1: the last) of each of ``inp``'s streams in whole-window
        ``chunks``; ``None`` when a hop is not a whole number of samples of one of them, or the
        window does not hold it."""
        out: dict[str, FloatArray] = {}
        for s in inp.streams:
            if s not in chunks:
                continue
            n = self.spec.hop_s * float(self.stream_rates[s])
            if abs(n - round(n)) > 1e-9 or back * round(n) > len(chunks[s]):
                return None
            end = len(chunks[s]) - (back - 1) * round(n)
            out[s] = chunks[s][end - round(n) : end]
        return out

    def _read(self, i: int) -> tuple[FloatArray | None, str | None] | None:
        """Input ``i``'s output for the current window from the shared state — ``(None, None)``
        when it has none — or ``None`` when the input is computed by this preprocessor's own
        state (not shared, or private meanwhile)."""
        link = self._links[i]
        if link is None or link.private:
            return None
        return link.out or (None, None)

    def _full(self, i: int) -> bool:
        read = self._read(i)
        return self._own(i).full if read is None else read[0] is not None

    @property
    def ready(self) -> bool:
        return all(self._full(i) for i in range(len(self._states)))

    def features(self) -> dict[str, FloatArray]:
        """The model inputs for the trailing window (only when :attr:`ready`). The arrays of
        inputs read from a shared state (:class:`SharedInputs`) are read-only: other models of
        the session hold the same arrays."""
        if not self.ready:
            raise RuntimeError("not enough data yet for a full window")
        out: dict[str, FloatArray] = {}
        for i, inp in enumerate(self.spec.inputs):
            read = self._read(i)
            feature = self._own(i).feature() if read is None else read[0]
            assert feature is not None  # (ready)
            out[inp.name] = feature
        return out


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
    rates = {s: float(stream_rates[s]) for s in pre.streams}
    n_hops = min(math.floor(len(streams[s]) / (spec.hop_s * rates[s]) + 1e-9) for s in pre.streams)
    for k in range(n_hops):
        pre.push(
            {
                s: streams[s][hop_bounds(k, spec.hop_s, r) : hop_bounds(k + 1, spec.hop_s, r)]
                for s, r in rates.items()
            }
        )
        if pre.ready and (k + 1) % every == 0:
            yield (k + 1) * spec.hop_s, pre.features()


def delivery_window_s(window_s: float, rates: Iterable[float]) -> float:
    """The shortest window of at least ``window_s`` that holds a whole number of samples at every
    rate (the windowing layer cuts whole samples): ``window_s`` itself almost always; 10 s at
    51.2 Hz is 512 samples, but 1 s at 51.2 Hz becomes 1.015625 s (52 samples). The longer window
    only adds warm-up on the first window and after a reset: features still cover ``window_s``."""
    rates = list(rates)
    if all(abs(window_s * r - round(window_s * r)) <= 1e-6 for r in rates):
        return window_s
    fractions = [Fraction(r).limit_denominator(10**6) for r in rates]
    period = Fraction(
        math.lcm(*(f.denominator for f in fractions)), math.gcd(*(f.numerator for f in fractions))
    )  # the shortest duration that is a whole number of samples at every rate
    longer = math.ceil(Fraction(window_s).limit_denominator(10**6) / period) * period
    if longer > 4 * window_s:
        raise ValueError(
            f"no window near {window_s:g} s holds whole samples at {sorted(rates)} Hz "
            f"(the shortest is {float(longer):g} s)"
        )
    return float(longer)


@dataclass
class WindowFeeder:
    """Serving's entry point: feed a :class:`Preprocessor` from consecutive aligned windows.

    Each window contributes its newest ``hop_s`` of every stream; a window that does not follow
    the previous one by exactly one hop (first window, or windows skipped over a gap) resets the
    state and feeds the whole window, so the features restart from clean filter state.

    When a hop is not a whole number of samples of a stream delivered at its own rate (0.5 s at
    51.2 Hz is 25.6 samples), the hop holds 25 or 26 new samples depending on where the stream's
    samples fall on the hop grid. A window delivered at the stream's own rate holds the stored
    samples untouched, so the count is the shift (25 or 26) under which the window continues the
    previous one exactly; a window that continues it under neither resets the state (counted in
    :attr:`resets`). Should both fit (a signal constant over the whole window), the count that
    keeps the total closest to ``hop × rate`` per hop wins.

    ``native_rates``: the streams' own rates the plan was made for; :meth:`needs_replan` and
    :meth:`replan` handle a stream that comes back at another rate.
    """

    pre: Preprocessor
    last_end: float | None = None
    resets: int = 0
    native_rates: dict[str, float] = field(default_factory=dict)
    replans: int = 0
    last_replan: str = ""
    """Why the latest :meth:`replan` happened, e.g. ``"GSR 50 → 51.2 Hz"``."""
    wants_whole: bool = False
    """Set when an input shared with other models could not continue from the window's hop
    (:class:`SharedInputs`): the window gave no features and the next must be cut whole
    (:meth:`~affectstream.streaming.ingest.windows.Windower.restart`); the caller clears it."""
    _previous: dict[str, FloatArray] = field(default_factory=dict, init=False, repr=False)
    _drift: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def for_spec(
        cls,
        spec: PreprocessSpec,
        native_rates: Mapping[str, float],
        stream_labels: Mapping[str, tuple[str, ...]],
        shared: SharedInputs | None = None,
    ) -> tuple[WindowFeeder, WindowSpec]:
        """The feeder and the :class:`~affectstream.streaming.ingest.windows.WindowSpec` that must
        feed it; with ``shared`` (a session's :class:`SharedInputs`), inputs other models of the
        session compute the same way are computed once."""
        plan = source_rate_plan(spec, native_rates)
        rates = {s: float(native_rates[s]) for s in spec.streams if s in native_rates}
        feeder = cls(Preprocessor(spec, plan, stream_labels, shared), native_rates=rates)
        return feeder, feeder.window_spec()

    @property
    def plan(self) -> dict[str, float]:
        """Stream → the rate it is delivered at (:func:`source_rate_plan`)."""
        return {s: float(self.pre.stream_rates[s]) for s in self.pre.streams}

    def window_spec(self) -> WindowSpec:
        """What the windowing layer must cut for the current plan."""
        spec, plan = self.pre.spec, self.plan
        window_s = delivery_window_s(spec.window_s, plan.values())
        return WindowSpec(window_s, spec.hop_s, tuple(InputSpec(s, r) for s, r in plan.items()))

    def needs_replan(self, native_rates: Mapping[str, float]) -> bool:
        """Whether streams now at ``native_rates`` need :meth:`replan` (a changed delivery plan).

        A changed rate that leaves the plan as it is (4 → 2 Hz EDA, delivered at the feature
        rate by interpolation either way) needs nothing: the windowing layer reads each stream's
        rate as it cuts.
        """
        rates = {s: float(native_rates[s]) for s in self.pre.streams}
        if all(math.isclose(r, self.native_rates.get(s, -1.0)) for s, r in rates.items()):
            return False
        try:
            return source_rate_plan(self.pre.spec, rates) != self.plan
        except ValueError:
            return True  # replan() raises the reason

    def replan(self, native_rates: Mapping[str, float]) -> WindowSpec:
        """Re-plan for streams now at ``native_rates``: new rate conversions, state forgotten
        (the next window starts afresh), counted in :attr:`replans` with the reason in
        :attr:`last_replan`. Returns the window spec to cut from now on (a new
        :class:`~affectstream.streaming.ingest.windows.Windower` over it).

        Raises ``ValueError`` (nothing changed) if a rate is not finite and > 0.
        """
        rates = {s: float(native_rates[s]) for s in self.pre.streams}
        plan = source_rate_plan(self.pre.spec, rates)
        delivery_window_s(self.pre.spec.window_s, plan.values())  # raises before any change
        changed = [
            f"{s} {self.native_rates[s]:g} → {r:g} Hz"
            if s in self.native_rates
            else f"{s} {r:g} Hz"
            for s, r in rates.items()
            if not math.isclose(r, self.native_rates.get(s, -1.0))
        ]
        self.pre.replan(plan)
        self.native_rates = rates
        self.replans += 1
        self.last_replan = ", ".join(changed) or "same rates"
        self.last_end = None
        self._previous.clear()
        self._drift.clear()
        return self.window_spec()

    def feed(self, window: Window) -> dict[str, FloatArray] | None:
        """Push one window; the model inputs once a full window of state is there."""
        hop = self.pre.spec.hop_s
        follows = self.last_end is not None and math.isclose(
            window.t_end - self.last_end, hop, abs_tol=1e-6
        )
        if window.tail and not follows:
            raise ValueError(
                f"a tail window ending at {window.t_end} does not follow the previous window "
                f"(ended {self.last_end}): a tail can only continue"
            )
        if window.tail:  # the windower cut only the new samples
            chunks: dict[str, FloatArray] | None = dict(window.data)
        else:
            chunks = self._new_samples(window) if follows else None
        whole = chunks is None
        if chunks is None:
            if self.last_end is not None:
                self.resets += 1
            self.pre.reset()
            self._drift.clear()
            chunks = dict(window.data)
        if self.pre.shared is None:
            self.pre.push(chunks)
        elif not self.pre.push_window(chunks, window.t_end, whole):
            self.resets += 1  # restarts from the next window, cut whole
            self.last_end = None
            self._previous.clear()
            self._drift.clear()
            self.wants_whole = True
            return None
        if not window.tail:  # what _new_samples compares the next whole window with
            self._previous = dict(window.data)
        self.last_end = window.t_end
        return self.pre.features() if self.pre.ready else None

    def _new_samples(self, window: Window) -> dict[str, FloatArray] | None:
        """The samples of each stream newer than the previous window (one hop earlier); ``None``
        if a stream does not continue it (see the class docstring)."""
        out: dict[str, FloatArray] = {}
        for s, x in window.data.items():
            n, expected = len(x), self.pre.spec.hop_s * self.pre.stream_rates[s]
            if abs(expected - round(expected)) <= 1e-9:
                out[s] = x[n - round(expected) :]
                continue
            prev = self._previous.get(s)
            if prev is None or prev.shape != x.shape:
                return None
            low = math.floor(expected)
            fits = [m for m in (low, low + 1) if m <= n and np.array_equal(prev[m:], x[: n - m])]
            if not fits:
                return None
            drift = self._drift.get(s, 0.0)
            m = min(fits, key=lambda m: abs(drift + expected - m))
            self._drift[s] = drift + expected - m
            out[s] = x[n - m :]
        return out
