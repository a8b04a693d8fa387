"""Inputs several models of a session compute the same way are computed once (#16): the shipped
rtcan1d and rtcan1d-eda-bvp read the same online cvxEDA of the skin conductance, cnn-lstm and
cnn-lstm-lab the same EEG grid. With a session's :class:`SharedInputs` each model gets exactly
the features it gets on its own, while the shared input is pushed once per window end; a model
that restarts joins the shared state; one far behind gets no features until it has caught up."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from affectstream.models.contract import load_contract
from affectstream.streaming.formats.deap import CHANNELS, SFREQ
from affectstream.streaming.ingest.ring_buffer import RingBuffer
from affectstream.streaming.ingest.windows import Window, Windower
from affectstream.streaming.preprocess.pipeline import SHARED_KEEP, SharedInputs, WindowFeeder
from affectstream.streaming.preprocess.spec import PreprocessSpec
from affectstream.streaming.replay.deap import REPLAY_STREAMS, deap_trial_streams
from affectstream.streaming.synthetic.deap import generate_subject

ZOO = Path(__file__).resolve().parents[3] / "models" / "zoo"
LABELS = {s.type: tuple(CHANNELS[i].name for i in s.channels) for s in REPLAY_STREAMS}
RATES = {s.type: SFREQ for s in REPLAY_STREAMS}
T0 = 7000.0


def _spec(name: str) -> PreprocessSpec:
    return load_contract(ZOO / name)[0].preprocess_spec()


@pytest.fixture(scope="module")
def trial() -> dict[str, np.ndarray]:
    data, _ = generate_subject(1, n_trials=1, seed=5)
    return {k: v[: int(45 * SFREQ)] for k, v in deap_trial_streams(data[0]).items()}


class Model:
    """One model's windower and feeder over the session's buffers, as a session holds them."""

    def __init__(
        self, name: str, sources: Any, shared: SharedInputs | None, catch_up: int | None = 8
    ) -> None:
        self.catch_up = catch_up  # the session's bound on the windows cut in one poll
        spec = _spec(name)
        self.feeder, wspec = WindowFeeder.for_spec(
            spec, {s: RATES[s] for s in spec.streams}, LABELS, shared
        )
        self.windower = Windower(wspec, sources.get, tails=True)
        self.out: dict[float, dict[str, np.ndarray]] = {}
        self.none: list[float] = []

    def poll(self) -> None:
        for w in self.windower.poll(self.catch_up):
            features = self.feeder.feed(w)
            if features is not None:
                self.out[round(w.t_end - T0, 6)] = features
            else:
                self.none.append(round(w.t_end - T0, 6))
            if self.feeder.wants_whole:  # what the session does (Session._collect)
                self.feeder.wants_whole = False
                self.windower.restart()
                break


def _play(
    trial: dict[str, np.ndarray],
    names: list[str],
    shared: SharedInputs | None,
    *,
    skip: dict[str, tuple[float, float]] | None = None,
    gap: tuple[str, float, float] | None = None,
    catch_up: int | None = 8,
) -> dict[str, Model]:
    """Stream the trial into ring buffers in random chunks; poll every model after each chunk,
    except a model in ``skip`` (not polled between those seconds: it falls behind); ``gap``:
    (stream, from, to) seconds of NaN in that stream."""
    if gap is not None:
        trial = dict(trial)
        stream, lo, hi = gap
        trial[stream] = trial[stream].copy()
        trial[stream][int(lo * SFREQ) : int(hi * SFREQ)] = np.nan
    sources = {
        kind: SimpleNamespace(
            buffer=RingBuffer(int(60 * SFREQ), x.shape[1]),
            stream=SimpleNamespace(nominal_srate=RATES[kind]),
        )
        for kind, x in trial.items()
    }
    models = {n: Model(n, sources, shared, catch_up) for n in names}
    rng = np.random.default_rng(11)
    n = len(trial["EEG"])
    ts = T0 + np.arange(n) / SFREQ
    k = 0
    while k < n:
        step = int(rng.integers(1, 40))
        for kind, src in sources.items():
            src.buffer.write(trial[kind][k : k + step], ts[k : k + step])
        k += step
        now = k / SFREQ
        for name in rng.permutation(names):  # models reach a window end in any order
            m = models[name]
            lo, hi = (skip or {}).get(name, (np.inf, np.inf))
            if lo <= now < hi:
                continue
            m.poll()
    return models


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """The same features up to floating-point rounding: the compiled cvxEDA's last bits depend
    on where its arrays lie in memory (two computations of one segment differ by ~1e-12)."""
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and np.allclose(a[k], b[k], rtol=1e-9, atol=1e-9) for k in a
    )


@pytest.mark.parametrize(
    ("pair", "states"),
    [
        # one cvxEDA of the skin conductance for both, the pulse input of the second
        (("rtcan1d", "rtcan1d-eda-bvp"), 2),
        # one EEG grid for both; their peripheral inputs differ (channel order, optional AUX)
        (("cnn-lstm", "cnn-lstm-lab"), 3),
    ],
)
def test_models_in_step_get_their_own_features_and_the_shared_input_is_computed_once(
    trial: dict[str, np.ndarray], pair: tuple[str, str], states: int
) -> None:
    alone = {n: _play(trial, [n], None)[n] for n in pair}
    shared = SharedInputs()
    both = _play(trial, list(pair), shared)
    for n in pair:
        assert both[n].out.keys() == alone[n].out.keys() and len(alone[n].out) > 20
        assert all(_same(both[n].out[t], alone[n].out[t]) for t in alone[n].out)
        assert both[n].none == alone[n].none and both[n].feeder.resets == 0
    pushes = {n: both[n].windower.emitted for n in pair}
    n_inputs = {n: len(_spec(n).inputs) for n in pair}
    assert shared.reused > 0 and shared.missed == 0 and shared.private == 0
    assert shared.started == states  # each distinct input started once
    # every input of both models is pushed once per window end it reaches: the shared one once
    # for both, so the pushes into shared states fall short of the sum by the reads
    assert shared.computed + shared.reused == sum(pushes[n] * n_inputs[n] for n in pair)
    assert shared.reused >= min(pushes.values()) - 1


def test_the_cvxeda_of_two_models_runs_once_per_window_end(trial: dict[str, np.ndarray]) -> None:
    from affectstream.streaming.preprocess import eda

    calls = []
    update = eda.OnlineCvxEda.update

    def counting(self: Any, x: Any) -> Any:
        calls.append(len(x))
        return update(self, x)

    eda.OnlineCvxEda.update = counting  # type: ignore[method-assign]
    try:
        calls.clear()
        _play(trial, ["rtcan1d", "rtcan1d-eda-bvp"], None)
        alone = len(calls)
        calls.clear()
        both = _play(trial, ["rtcan1d", "rtcan1d-eda-bvp"], SharedInputs())
        together = len(calls)
    finally:
        eda.OnlineCvxEda.update = update  # type: ignore[method-assign]
    ends = max(m.windower.emitted for m in both.values())
    assert together == ends and alone >= 2 * ends - 2, (alone, together, ends)


@pytest.mark.parametrize("catch_up", [8, None])
def test_a_model_far_behind_is_served_again_from_the_shared_state(
    trial: dict[str, np.ndarray], catch_up: int | None
) -> None:
    # rtcan1d-eda-bvp is not polled for 8 s (32 hops > SHARED_KEEP)
    assert SHARED_KEEP < 8.0 / 0.25
    shared = SharedInputs()
    skip = {"rtcan1d-eda-bvp": (25.0, 33.0)}
    models = _play(trial, ["rtcan1d", "rtcan1d-eda-bvp"], shared, skip=skip, catch_up=catch_up)
    lead, lag = models["rtcan1d"], models["rtcan1d-eda-bvp"]
    warm = 20.0 + 3.0  # its bvp input standardises over its first 3 s: no features before
    served_none = [t for t in lag.none if t >= warm]
    if catch_up is not None:
        # as the session polls: the windows older than its catch-up are skipped, the first cut
        # is whole and ends among the window ends the shared state keeps: read, not computed
        assert lag.windower.skipped and served_none == [] and lag.feeder.resets == 1
        assert shared.missed == 0 and shared.private == 0
    else:
        # every window cut: the first continues from an end the shared state no longer keeps
        # (no features, the rest of that burst dropped), the next comes whole at the newest end
        # and joins the shared state there
        assert len(served_none) == 1 and 25.0 <= served_none[0] < 33.0
        assert shared.missed == 1 and shared.private == 0 and lag.feeder.resets == 1
    back = [t for t in lag.out if t > 34.0]
    assert len(back) > 30 and all(t in lead.out for t in back)
    assert all(np.array_equal(lag.out[t]["eda"], lead.out[t]["eda"]) for t in back)
    # the model that kept going was not disturbed: as on its own
    alone = _play(trial, ["rtcan1d"], None)["rtcan1d"]
    assert lead.out.keys() == alone.out.keys()
    assert all(_same(lead.out[t], alone.out[t]) for t in alone.out)


def _two_specs() -> tuple[PreprocessSpec, PreprocessSpec]:
    """Two models sharing a raw GSR input (32 Hz from a 64 Hz stream, 5 s window, 3 s
    calibration); the second also reads PPG (see :func:`_run_two` for its lag)."""
    from affectstream.streaming.preprocess.spec import ChannelRef, FeatureInput, FeatureKind

    gsr = FeatureInput("x", FeatureKind.RAW, (ChannelRef("GSR", "GSR"),), 32.0, 5.0, baseline_s=3.0)
    ppg = FeatureInput("y", FeatureKind.RAW, (ChannelRef("PPG", "PPG"),), 32.0, 5.0)
    return PreprocessSpec((gsr,), 0.25), PreprocessSpec((gsr, ppg), 0.25)


def _run_two(
    a: PreprocessSpec, b: PreprocessSpec, lag_s: float, shared: SharedInputs | None
) -> dict[str, dict[float, dict[str, np.ndarray]]]:
    """60 s of random walks at 64 Hz into ring buffers, the PPG ``lag_s`` after the GSR; both
    models polled after every 16 samples as the session does; their features by window end."""
    rate, n = 64.0, (60 * 64)
    ts = T0 + np.arange(n) / rate
    rng = np.random.default_rng(1)
    x = {s: np.cumsum(rng.normal(size=(n, 1)), axis=0) for s in ("GSR", "PPG")}
    src = {
        s: SimpleNamespace(
            buffer=RingBuffer(int(90 * rate), 1), stream=SimpleNamespace(nominal_srate=rate)
        )
        for s in x
    }
    models = {}
    for name, spec in (("A", a), ("B", b)):
        feeder, wspec = WindowFeeder.for_spec(
            spec, dict.fromkeys(spec.streams, rate), {s: (s,) for s in spec.streams}, shared
        )
        models[name] = (feeder, Windower(wspec, src.get, tails=True), {})
    late = int(lag_s * rate)
    for k in range(0, n + late, 16):
        if k < n:
            src["GSR"].buffer.write(x["GSR"][k : k + 16], ts[k : k + 16])
        if 0 <= k - late < n:
            src["PPG"].buffer.write(
                x["PPG"][k - late : k - late + 16], ts[k - late : k - late + 16]
            )
        for feeder, windower, out in models.values():
            for w in windower.poll(8):
                features = feeder.feed(w)
                if features is not None:
                    out[round(w.t_end - T0, 6)] = features
                if feeder.wants_whole:
                    feeder.wants_whole = False
                    windower.restart()
                    break
    return {name: out for name, (_, _, out) in models.items()}


@pytest.mark.parametrize("lag_s", [0.0, 1.0, 5.0])
def test_a_model_whose_own_stream_lags_gets_every_window(lag_s: float) -> None:
    """A stream only one of the models reads arrives late (a buffering relay): that model's
    windows trail the other's by as much. Within what the shared state keeps it reads the
    outputs; beyond (5 s = 20 hops) it computes on a state of its own — every window served."""
    a, b = _two_specs()
    alone = _run_two(a, b, lag_s, None)  # (without a registry each model computes its own)
    shared = SharedInputs()
    both = _run_two(a, b, lag_s, shared)
    for name in ("A", "B"):
        assert both[name].keys() == alone[name].keys() and len(alone[name]) > 150
        assert all(_same(both[name][t], alone[name][t]) for t in alone[name])
    assert shared.missed == 0
    assert (shared.private == 1) if lag_s > SHARED_KEEP * 0.25 else (shared.reused > 150)


def test_a_model_restarting_joins_the_shared_state_as_it_is(trial: dict[str, np.ndarray]) -> None:
    # half a second of NaN in the pulse stream, which rtcan1d-eda-bvp reads and rtcan1d does not:
    # its windows over the gap are withheld, then it restarts from a whole window, and its cvxEDA
    # input joins the state rtcan1d kept current; rtcan1d's features do not change
    shared = SharedInputs()
    gap = ("PPG", 21.0, 21.5)
    models = _play(trial, ["rtcan1d", "rtcan1d-eda-bvp"], shared, gap=gap)
    alone = _play(trial, ["rtcan1d"], None, gap=gap)["rtcan1d"]
    lead, other = models["rtcan1d"], models["rtcan1d-eda-bvp"]
    assert lead.out.keys() == alone.out.keys()
    assert all(_same(lead.out[t], alone.out[t]) for t in alone.out)
    assert other.windower.skipped and other.feeder.resets == 1 and shared.missed == 0
    # started afresh: the cvxEDA once (the first window), the pulse input twice (nobody else
    # kept it current over the gap)
    assert shared.started == 3
    after = [t for t in other.out if t > 41.5]
    assert after and all(t in lead.out for t in after)
    assert all(np.array_equal(other.out[t]["eda"], lead.out[t]["eda"]) for t in after)
    # on its own it would have restarted its cvxEDA from that window instead
    on_its_own = _play(trial, ["rtcan1d-eda-bvp"], None, gap=gap)["rtcan1d-eda-bvp"]
    assert on_its_own.feeder.resets == 1 and on_its_own.out.keys() == other.out.keys()


def test_without_a_session_registry_nothing_is_shared_and_push_is_refused_with_one() -> None:
    spec = _spec("rtcan1d")
    feeder, _ = WindowFeeder.for_spec(spec, {"GSR": SFREQ}, LABELS, SharedInputs())
    with pytest.raises(RuntimeError, match="push_window"):
        feeder.pre.push({"GSR": np.zeros((32, 1))})
    lone, _ = WindowFeeder.for_spec(spec, {"GSR": SFREQ}, LABELS)
    x = np.linspace(1.0, 2.0, int(20 * SFREQ))[:, None]
    assert lone.feed(Window(0.0, 20.0, {"GSR": x})) is not None


def test_a_model_restarting_ahead_of_a_lagging_one_fills_in_the_hops_it_lacks() -> None:
    """Two models of one spec (mlstm-fcn-periph: 10 s windows, 3 s calibration); B trails A by
    three hops (a stream of its arrives later) and keeps the shared state going while A skips
    five windows (a gap in a stream only A reads) and restarts: A pushes the hops the shared
    state lacks from its whole window instead of starting it afresh, so B's features are those
    it has on its own, all of them."""
    spec = _spec("mlstm-fcn-periph")
    rate = 128.0
    rates, labels = dict.fromkeys(spec.streams, rate), {s: (s,) for s in spec.streams}
    rng = np.random.default_rng(0)
    n = int(60 * rate)
    ts = np.arange(n) / rate
    x = {s: rng.normal(size=(n, 1)) + 5 for s in spec.streams}
    shared = SharedInputs()
    a, wspec = WindowFeeder.for_spec(spec, rates, labels, shared)
    b, _ = WindowFeeder.for_spec(spec, rates, labels, shared)
    alone, _ = WindowFeeder.for_spec(spec, rates, labels)

    def window(k: int) -> Window:
        t_end = k * spec.hop_s
        i0 = int(np.searchsorted(ts, t_end - wspec.window_s - 1e-6))
        m = round(wspec.window_s * rate)
        return Window(t_end - wspec.window_s, t_end, {s: x[s][i0 : i0 + m] for s in spec.streams})

    differ = []
    for k in range(40, 200):
        if not 120 <= k < 125:
            a.feed(window(k))
        if k - 3 >= 40:
            fb, fa = b.feed(window(k - 3)), alone.feed(window(k - 3))
            if (fb is None) != (fa is None) or (
                fb is not None and fa is not None and not _same(fb, fa)
            ):
                differ.append(k - 3)
    assert a.resets == 1 and differ == [] and shared.missed == 0 and shared.private == 0
    assert shared.started == len(spec.inputs)  # once each, at the first window


def _raw_pair() -> tuple[PreprocessSpec, dict[str, float], dict[str, tuple[str, ...]]]:
    """A raw GSR input (32 Hz from 64 Hz, 5 s window, no calibration) and its session."""
    from affectstream.streaming.preprocess.spec import ChannelRef, FeatureInput, FeatureKind

    gsr = FeatureInput("x", FeatureKind.RAW, (ChannelRef("GSR", "GSR"),), 32.0, 5.0)
    return PreprocessSpec((gsr,), 0.25), {"GSR": 64.0}, {"GSR": ("GSR",)}


def _gsr_window(k: int, spec: PreprocessSpec, window_s: float) -> Window:
    """The whole window ending at hop ``k`` of a 64 Hz random walk (the same at every call)."""
    x = np.cumsum(np.random.default_rng(3).normal(size=(64 * 120, 1)), axis=0)
    end = round(k * spec.hop_s * 64)
    n = round(window_s * 64)
    return Window(k * spec.hop_s - window_s, k * spec.hop_s, {"GSR": x[end - n : end]})


def test_a_shared_output_is_one_read_only_array_for_every_model() -> None:
    """The models reading a shared input get the very same array (no copy per model): it is
    read-only, so one model (or what it hands its features to) writing into it cannot change the
    other's features."""
    spec, rates, labels = _raw_pair()
    shared = SharedInputs()
    a, wspec = WindowFeeder.for_spec(spec, rates, labels, shared)
    b, _ = WindowFeeder.for_spec(spec, rates, labels, shared)
    alone, _ = WindowFeeder.for_spec(spec, rates, labels)
    for k in range(20, 30):
        fa = a.feed(_gsr_window(k, spec, wspec.window_s))
        fb = b.feed(_gsr_window(k, spec, wspec.window_s))
        ref = alone.feed(_gsr_window(k, spec, wspec.window_s))
    assert fa is not None and fb is not None and ref is not None
    assert shared.reused == 10 and shared.computed == 10
    assert fa["x"] is fb["x"]  # computed once (by a), read by b
    before = fa["x"].copy()
    for features in (fa, fb):
        with pytest.raises(ValueError, match="read-only"):
            features["x"][0, 0] = 1e9
        with pytest.raises(ValueError, match="read-only"):
            features["x"] *= 2.0
    np.testing.assert_array_equal(fb["x"], before)
    np.testing.assert_array_equal(fa["x"], ref["x"])
    # a copy is the consumer's own; a model's unshared features stay writeable as before
    mine = fb["x"].copy()
    mine[0, 0] = 1e9
    ref["x"][0, 0] = 1e9


def test_a_linked_input_keeps_no_state_of_its_own_unless_it_computes_alone() -> None:
    """An input linked to a shared state computes on it or reads its outputs: it carries no
    state of its own (none made at construction nor at a reset). Only while another model keeps
    the shared state going where it cannot join does it compute on a state of its own, which it
    drops once it follows the shared state again."""
    spec, rates, labels = _raw_pair()
    shared = SharedInputs()
    a, wspec = WindowFeeder.for_spec(spec, rates, labels, shared)
    b, _ = WindowFeeder.for_spec(spec, rates, labels, shared)
    alone, _ = WindowFeeder.for_spec(spec, rates, labels)
    assert a.pre._states == [None] and b.pre._states == [None]
    assert alone.pre._states[0] is not None  # (not linked: its own, as ever)
    # what a state of a linked input would tell is told from the shared one
    assert b.pre.delays_s() == alone.pre.delays_s() and b.pre.coverage() == {}

    def feed(f: WindowFeeder, k: int) -> dict[str, np.ndarray] | None:
        out = f.feed(_gsr_window(k, spec, wspec.window_s))
        link = f.pre._links[0]
        assert link is not None and (f.pre._states[0] is not None) == link.private
        return out

    for k in range(20, 60):  # a runs 24 hops ahead of b (more than the shared state keeps)
        feed(a, k)
    assert feed(b, 35) is not None  # whole (first window): a keeps the state going elsewhere
    assert shared.private == 1 and b.pre._states[0] is not None
    for k in range(36, 60 - SHARED_KEEP):
        assert feed(b, k) is not None  # on its own state, window after window
        assert b.pre._states[0] is not None
    for k in range(60 - SHARED_KEEP, 60):  # ends a computed (and the shared state keeps)
        assert feed(b, k) is not None  # b follows the shared state again: its own is dropped
        assert b.pre._states[0] is None
    assert shared.private == 1 and shared.reused == SHARED_KEEP
    assert feed(b, 60) is not None  # the shared state's next window end: b pushes it
    assert b.pre._states[0] is None and a.pre._states[0] is None
    b.pre.reset()  # a reset makes no state for the linked input either
    assert b.pre._states == [None]


def test_linked_inputs_make_no_cvxeda_of_their_own(trial: dict[str, np.ndarray]) -> None:
    """Two models sharing the online cvxEDA construct only the shared state's, even when one of
    them resets (a gap in a stream only it reads), not one more per model and per reset that
    would never be used."""
    from affectstream.streaming.preprocess import eda

    made = []
    init = eda.OnlineCvxEda.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        made.append(1)
        init(self, *args, **kwargs)

    eda.OnlineCvxEda.__init__ = counting  # type: ignore[method-assign]
    try:
        shared = SharedInputs()
        models = _play(trial, ["rtcan1d", "rtcan1d-eda-bvp"], shared, gap=("PPG", 21.0, 21.5))
    finally:
        eda.OnlineCvxEda.__init__ = init  # type: ignore[method-assign]
    assert models["rtcan1d-eda-bvp"].feeder.resets == 1 and shared.private == 0
    # the shared state's: made as the first model links, made afresh at the first window end
    # (shared.started); before, each model made one more at its start and at each reset (7)
    assert len(made) == 2
