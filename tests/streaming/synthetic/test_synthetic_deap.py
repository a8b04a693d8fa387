"""Tests of the synthetic DEAP-format generator (streaming/synthetic/deap.py) and its CLI verb.

Label effects are measured from the signals with simple, independent detectors (SCR count from
the conductance slope, heart rate from PPG peaks, breathing rate from the respiration spectrum,
EEG band power by Welch, zEMG RMS), never read from the generator's latents.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import signal, stats

from affectstream.streaming.formats.deap import (
    BASELINE_SAMPLES,
    EEG_NAMES,
    N_CHANNELS,
    N_SAMPLES,
    SFREQ,
    channel,
    gsr_ohm_to_microsiemens,
    read_deap,
    write_deap,
)
from affectstream.streaming.synthetic.deap import (
    generate_subject,
    subject_latents,
    write_synthetic_deap,
)
from affectstream.training.commands import synth

FloatArray = NDArray[np.float64]

SEED = 0
SUBJECTS = (1, 2, 3)  # 120 trials: enough for r > 0.3 to be clear, ~5 s to generate and measure
B = BASELINE_SAMPLES
GSR = channel("GSR").index
PPG = channel("Plethysmograph").index
RESP = channel("Respiration").index
ZEMG = channel("zEMG").index
F3, F4 = EEG_NAMES.index("F3"), EEG_NAMES.index("F4")
EEG = slice(0, len(EEG_NAMES))


# --------------------------------------------------------------------------------------------
# Independent detectors (one trial at a time, on the 60 s after the baseline unless stated)


def scr_per_min(resistance_ohm: FloatArray) -> float:
    """SCRs per minute: peaks of the 1 Hz low-passed conductance slope above 0.03 µS/s."""
    conductance = gsr_ohm_to_microsiemens(resistance_ohm[B:])
    lowpass = signal.butter(2, 1.0, fs=SFREQ, output="sos")
    slope = np.gradient(signal.sosfiltfilt(lowpass, conductance)) * SFREQ
    peaks, _ = signal.find_peaks(slope, height=0.03, prominence=0.02, distance=int(SFREQ))
    return len(peaks) * 60.0 * SFREQ / len(conductance)


def heart_rate_bpm(ppg: FloatArray) -> float:
    """Mean heart rate from systolic peaks (prominence half the 5-95 % range: skips diastolic)."""
    highpass = signal.butter(2, 0.5, btype="highpass", fs=SFREQ, output="sos")
    x = signal.sosfiltfilt(highpass, ppg[B:])
    span = np.percentile(x, 95) - np.percentile(x, 5)
    peaks, _ = signal.find_peaks(x, distance=int(0.3 * SFREQ), prominence=0.5 * span)
    return float(60.0 * SFREQ / np.mean(np.diff(peaks)))


def breathing_per_min(resp: FloatArray) -> float:
    """Breathing rate: the peak of the (zero-padded) respiration spectrum within 6-30 /min."""
    f, p = signal.welch(resp[B:], fs=SFREQ, nperseg=N_SAMPLES - B, nfft=2**16, detrend="linear")
    band = (f > 0.1) & (f < 0.5)
    return float(60.0 * f[band][np.argmax(p[band])])


def band_power(eeg: FloatArray, lo_hz: float, hi_hz: float, nperseg: int = 256) -> FloatArray:
    """Mean Welch power in [lo, hi] Hz per channel, shape (n_channels,)."""
    f, p = signal.welch(eeg, fs=SFREQ, nperseg=nperseg, axis=-1)
    power: FloatArray = p[:, (f >= lo_hz) & (f <= hi_hz)].mean(axis=1)
    return power


def trial_features(trial: FloatArray) -> dict[str, float]:
    """All measured features of one trial, shape (40, 8064) → name → value."""
    eeg = trial[EEG, B:]
    alpha, beta = band_power(eeg, 8, 13), band_power(eeg, 14, 30)
    base = trial[EEG, :B]
    base_alpha, base_beta = band_power(base, 8, 13, 128), band_power(base, 14, 30, 128)
    return {
        "scr_rate": scr_per_min(trial[GSR]),
        "heart_rate": heart_rate_bpm(trial[PPG]),
        "breathing_rate": breathing_per_min(trial[RESP]),
        "alpha": float(np.log(alpha.mean())),
        "beta": float(np.log(beta.mean())),
        "beta_alpha": float(np.log(beta.mean() / alpha.mean())),
        "frontal_asymmetry": float(np.log(alpha[F4]) - np.log(alpha[F3])),
        "zemg_rms": float(np.log(np.sqrt(np.mean(trial[ZEMG, B:] ** 2)))),
        "scl": float(gsr_ohm_to_microsiemens(trial[GSR, B:]).mean()),
        "eeg_power": float(np.log(np.mean(eeg**2))),
        "baseline_beta_alpha": float(np.log(base_beta.mean() / base_alpha.mean())),
    }


@dataclass(frozen=True)
class Measured:
    subject: NDArray[np.int64]  # (n,)
    labels: FloatArray  # (n, 4)
    features: dict[str, FloatArray]  # name → (n,)

    def within(self, name: str) -> FloatArray:
        """The feature z-scored within each subject (removes subject offsets and scales)."""
        x = self.features[name].copy()
        for s in np.unique(self.subject):
            m = self.subject == s
            x[m] = (x[m] - x[m].mean()) / x[m].std()
        return x


def measure(subjects: tuple[int, ...], seed: int = SEED) -> Measured:
    """Generate 40 trials per subject and measure every trial."""
    rows, labels, ids = [], [], []
    for s in subjects:
        data, lab = generate_subject(s, 40, seed)  # one subject (~100 MB) at a time
        rows += [trial_features(trial) for trial in data]
        labels.append(lab)
        ids += [s] * len(lab)
    features = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    return Measured(np.array(ids), np.concatenate(labels), features)


@pytest.fixture(scope="module")
def measured() -> Measured:
    return measure(SUBJECTS)


def label(m: Measured, name: str) -> FloatArray:
    """The valence or arousal ratings, shape (n,)."""
    return m.labels[:, {"valence": 0, "arousal": 1}[name]]


def best_threshold_accuracy(x: FloatArray, high: NDArray[np.bool_]) -> float:
    """Best accuracy of any single threshold on ``x`` (either direction) for the binary ``high``."""
    ordered = high[np.argsort(x)]
    below_high = np.concatenate([[0], np.cumsum(ordered)])  # highs at or below each cut
    k = np.arange(len(x) + 1)
    acc = ((k - below_high) + (ordered.sum() - below_high)) / len(x)  # low below, high above
    return float(max(acc.max(), (1 - acc).max()))


# --------------------------------------------------------------------------------------------
# Determinism and format


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    first = write_synthetic_deap(tmp_path / "a", n_subjects=2, n_trials=2, seed=7)
    again = write_synthetic_deap(tmp_path / "b", n_subjects=2, n_trials=2, seed=7)
    other = write_synthetic_deap(tmp_path / "c", n_subjects=2, n_trials=2, seed=8)
    assert [p.name for p in first] == ["s01.dat", "s02.dat"]
    for a, b, c in zip(first, again, other, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()


def test_subject_alone_is_byte_identical_to_subject_in_a_set(tmp_path: Path) -> None:
    in_set = write_synthetic_deap(tmp_path / "set", n_subjects=3, n_trials=2, seed=5)
    alone = write_deap(tmp_path / "s02.dat", *generate_subject(2, n_trials=2, seed=5))
    assert alone.read_bytes() == in_set[1].read_bytes()
    # written alone by number (what the demo does with a subject outside the training set)
    (by_number,) = write_synthetic_deap(
        tmp_path / "one", n_subjects=1, n_trials=2, seed=5, first_subject=3
    )
    assert by_number.name == "s03.dat"
    assert by_number.read_bytes() == in_set[2].read_bytes()


def test_fewer_trials_are_a_prefix_of_more() -> None:
    few, few_labels = generate_subject(4, n_trials=2, seed=3)
    more, more_labels = generate_subject(4, n_trials=5, seed=3)
    np.testing.assert_array_equal(few, more[:2])
    np.testing.assert_array_equal(few_labels, more_labels[:2])


def test_files_round_trip_through_read_deap(tmp_path: Path) -> None:
    data, labels = generate_subject(1, n_trials=3, seed=0)
    (path,) = write_synthetic_deap(tmp_path, n_subjects=1, n_trials=3, seed=0)
    subject = read_deap(path)
    assert subject.data.shape == (3, N_CHANNELS, N_SAMPLES)
    assert subject.data.dtype == subject.labels.dtype == np.float64
    assert subject.subject == 1
    np.testing.assert_array_equal(subject.data, data)
    np.testing.assert_array_equal(subject.labels, labels)


def test_labels_are_continuous_dependent_ratings_on_1_to_9() -> None:
    labels = np.concatenate([subject_latents(s, 40, SEED).labels for s in range(1, 9)])
    assert labels.min() >= 1.0 and labels.max() <= 9.0
    assert np.mean(labels != np.round(labels)) > 0.9  # continuous, not integer steps
    r = np.corrcoef(labels.T)
    assert r[0, 3] > 0.5  # valence ~ liking
    assert r[1, 2] > 0.4  # arousal ~ dominance
    assert abs(r[0, 1]) < 0.3  # valence and arousal cover all four quadrants
    high = (labels[:, :2] > 5).mean(axis=0)
    assert np.all((high > 0.35) & (high < 0.65))
    from affectstream.streaming.synthetic.deap import watermark_labels

    # the file's ratings are the latent ones with the synthetic watermark (< 1e-9 apart)
    np.testing.assert_array_equal(
        generate_subject(2, 3, SEED)[1], watermark_labels(subject_latents(2, 3, SEED).labels)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subject": 0}, "subject"),
        ({"subject": 1, "n_trials": 0}, "n_trials"),
        ({"subject": 1, "n_trials": 41}, "n_trials"),
        ({"subject": 1, "seed": -1}, "seed"),
    ],
)
def test_invalid_arguments_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_subject(**kwargs)


def test_signals_are_physiologically_plausible() -> None:
    data, _ = generate_subject(5, n_trials=3, seed=SEED)
    eeg = data[:, EEG]
    np.testing.assert_allclose(eeg.sum(axis=1), 0.0, atol=1e-9)  # common average reference
    rms = np.sqrt(np.mean(eeg**2, axis=-1))
    assert np.all((rms > 3) & (rms < 60)), "EEG should be tens of µV"
    f, p = signal.welch(eeg, fs=SFREQ, nperseg=512, axis=-1)
    outside = p[..., (f < 3) | (f > 47)].sum(axis=-1) / p.sum(axis=-1)
    assert outside.max() < 0.01, "EEG should be band-passed 4-45 Hz"
    conductance = gsr_ohm_to_microsiemens(data[:, GSR])
    assert conductance.min() > 0.5 and conductance.max() < 30
    for trial in data:
        assert 45 < heart_rate_bpm(trial[PPG]) < 120
        assert 8 < breathing_per_min(trial[RESP]) < 28


# --------------------------------------------------------------------------------------------
# Label effects, measured from the signals


EXPECTED_EFFECTS = [
    ("scr_rate", "arousal", +1),
    ("heart_rate", "arousal", +1),
    ("breathing_rate", "arousal", +1),
    ("beta_alpha", "arousal", +1),
    ("alpha", "arousal", -1),
    ("beta", "arousal", +1),
    ("frontal_asymmetry", "valence", +1),
    ("zemg_rms", "valence", +1),
]


@pytest.mark.parametrize(("feature", "label_name", "sign"), EXPECTED_EFFECTS)
def test_feature_follows_its_label_within_subjects(
    measured: Measured, feature: str, label_name: str, sign: int
) -> None:
    r = np.corrcoef(measured.within(feature), label(measured, label_name))[0, 1]
    assert sign * r > 0.3, f"{feature} vs {label_name}: r = {r:+.2f}"
    assert sign * r < 0.8, f"{feature} vs {label_name}: r = {r:+.2f} is unrealistically strong"


@pytest.mark.parametrize(("feature", "label_name", "sign"), EXPECTED_EFFECTS)
def test_feature_ignores_the_other_label(
    measured: Measured, feature: str, label_name: str, sign: int
) -> None:
    other = "valence" if label_name == "arousal" else "arousal"
    r = np.corrcoef(measured.within(feature), label(measured, other))[0, 1]
    assert abs(r) < 0.25, f"{feature} vs {other}: r = {r:+.2f}"


def test_no_single_feature_separates_high_from_low(measured: Measured) -> None:
    for name, x in measured.features.items():
        for label_name in ("valence", "arousal"):
            high = label(measured, label_name) > 5
            pooled = best_threshold_accuracy(x, high)
            assert pooled < 0.95, f"{name} separates {label_name}: accuracy {pooled:.2f}"
            for s in SUBJECTS:
                m = measured.subject == s
                alone = best_threshold_accuracy(x[m], high[m])
                assert alone < 0.95, f"{name}, subject {s}: {label_name} accuracy {alone:.2f}"


def test_effects_start_after_the_baseline(measured: Measured) -> None:
    arousal = label(measured, "arousal")
    during = np.corrcoef(measured.within("beta_alpha"), arousal)[0, 1]
    before = np.corrcoef(measured.within("baseline_beta_alpha"), arousal)[0, 1]
    assert during > 0.3
    assert abs(before) < 0.2, f"baseline beta/alpha already tracks arousal: r = {before:+.2f}"


@pytest.mark.parametrize("feature", ["scl", "heart_rate", "eeg_power"])
def test_subjects_differ_more_than_trials_within_a_subject(
    measured: Measured, feature: str
) -> None:
    x = measured.features[feature]
    groups = [x[measured.subject == s] for s in SUBJECTS]
    f_stat, p = stats.f_oneway(*groups)
    assert p < 1e-6, f"{feature}: subject means {[round(g.mean(), 2) for g in groups]}, F={f_stat}"


def test_subject_offsets_blur_effects_when_subjects_are_pooled(measured: Measured) -> None:
    # Resting levels differ between subjects, so raw features pooled over subjects correlate less
    # with the labels than the same features normalised within each subject: on average.
    gaps = [
        sign * np.corrcoef(measured.within(f), label(measured, lab))[0, 1]
        - abs(np.corrcoef(measured.features[f], label(measured, lab))[0, 1])
        for f, lab, sign in EXPECTED_EFFECTS
    ]
    assert np.mean(gaps) > 0.05, f"within-subject minus pooled raw r: {np.round(gaps, 2)}"


def _lda_predict(
    X_train: FloatArray, y_train: NDArray[np.bool_], X_test: FloatArray
) -> NDArray[np.bool_]:
    """Shrunk linear discriminant on standardised features (a deliberately simple model)."""
    mu, sd = X_train.mean(axis=0), X_train.std(axis=0)
    X_train, X_test = (X_train - mu) / sd, (X_test - mu) / sd
    m1, m0 = X_train[y_train].mean(axis=0), X_train[~y_train].mean(axis=0)
    w = np.linalg.solve(np.cov(X_train.T) + 0.1 * np.eye(X_train.shape[1]), m1 - m0)
    prior = np.log(y_train.mean() / (1 - y_train.mean()))
    high: NDArray[np.bool_] = X_test @ w - w @ (m1 + m0) / 2 + prior > 0
    return high


def _loso_accuracy(X: FloatArray, y: NDArray[np.bool_], subject: NDArray[np.int64]) -> float:
    """Leave-one-subject-out accuracy, averaged over subjects."""
    return float(
        np.mean(
            [
                np.mean(
                    _lda_predict(X[subject != s], y[subject != s], X[subject == s])
                    == y[subject == s]
                )
                for s in np.unique(subject)
            ]
        )
    )


def _within_accuracy(X: FloatArray, y: NDArray[np.bool_], subject: NDArray[np.int64]) -> float:
    """5-fold (interleaved trials) accuracy within each subject, averaged over subjects."""
    accuracies = []
    for s in np.unique(subject):
        Xs, ys = X[subject == s], y[subject == s]
        fold = np.arange(len(ys)) % 5
        pred = np.empty_like(ys)
        for k in range(5):
            pred[fold == k] = _lda_predict(Xs[fold != k], ys[fold != k], Xs[fold == k])
        accuracies.append(np.mean(pred == ys))
    return float(np.mean(accuracies))


@pytest.mark.slow
def test_subject_independent_model_is_above_chance_but_below_within_subject() -> None:
    m = measure(tuple(range(1, 9)))
    names = (
        "scr_rate",
        "heart_rate",
        "breathing_rate",
        "beta_alpha",
        "frontal_asymmetry",
        "zemg_rms",
    )
    X = np.stack([m.features[k] for k in names], axis=1)
    for label_name in ("valence", "arousal"):
        y = label(m, label_name) > 5
        loso, within = _loso_accuracy(X, y, m.subject), _within_accuracy(X, y, m.subject)
        chance = max(y.mean(), 1 - y.mean())
        assert chance + 0.05 < loso < 0.9, f"{label_name}: LOSO accuracy {loso:.2f}"
        assert loso < within, f"{label_name}: LOSO {loso:.2f} vs within-subject {within:.2f}"


# --------------------------------------------------------------------------------------------
# CLI verb


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="affectstream synth")
    synth.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_writes_files_and_reports_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse("--out", str(tmp_path / "out"), "--subjects", "2", "--trials", "1", "--seed", "3")
    assert synth.run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [Path(line.split()[0]).name for line in lines[:2]] == ["s01.dat", "s02.dat"]
    assert "MB" in lines[0] and "not DEAP" in lines[-1] and len(lines) == 3
    assert read_deap(tmp_path / "out" / "s02.dat").n_trials == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--subjects", "0"), "--subjects"),
        (("--subjects", "100"), "--subjects"),
        (("--trials", "0"), "--trials"),
        (("--trials", "41"), "--trials"),
        (("--seed", "-1"), "--seed"),
        (("--first-subject", "0"), "--first-subject"),
        (("--subjects", "2", "--first-subject", "99"), "--first-subject"),
        (("--format", "pmemo", "--first-subject", "3"), "--first-subject"),
    ],
)
def test_cli_refuses_out_of_range_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    assert synth.run(_parse("--out", str(tmp_path), *argv)) == 2
    err = capsys.readouterr().err
    assert message in err and "error" in err
    assert not list(tmp_path.iterdir())


def test_cli_format_defaults_to_deap_and_refuses_unknown_formats() -> None:
    assert _parse("--out", "x").format == "deap"
    assert _parse("--out", "x", "--format", "pmemo").format == "pmemo"
    with pytest.raises(SystemExit):
        _parse("--out", "x", "--format", "amigos")


def test_the_synthetic_flag_travels_inside_the_file(tmp_path: Path) -> None:
    """A copy that lost SYNTHETIC.json is still known as synthetic: the ratings carry a
    watermark in their lowest mantissa bits (the DEAP format has no room for a flag), which moves
    them by less than 1e-9 and which real ratings do not carry."""
    import shutil

    from affectstream.streaming.synthetic.deap import (
        has_watermark,
        is_synthetic_deap,
        subject_latents,
        watermark_labels,
    )

    (path,) = write_synthetic_deap(tmp_path / "set", n_subjects=1, n_trials=2, seed=3)
    labels = read_deap(path).labels
    assert has_watermark(labels)
    assert np.abs(labels - subject_latents(1, 2, seed=3).labels).max() < 1e-9
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(path, copy / "s01.dat")  # the sidecar stays behind
    assert not (copy / "SYNTHETIC.json").exists()
    assert is_synthetic_deap(copy) and is_synthetic_deap(copy / "s01.dat")
    # ratings as DEAP has them (continuous mouse ratings) carry no watermark
    rng = np.random.default_rng(0)
    real = rng.uniform(1, 9, size=(40, 4))
    assert not has_watermark(real)
    assert has_watermark(watermark_labels(real)) and not has_watermark(np.empty((0, 4)))
    # a DEAP file whose ratings are not watermarked is not taken for synthetic without a sidecar
    (tmp_path / "real").mkdir()
    write_deap(tmp_path / "real" / "s01.dat", read_deap(path).data, real[:2])
    assert not is_synthetic_deap(tmp_path / "real")
