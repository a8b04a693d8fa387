"""PMEmo training: windows through the service's preprocessing, the subject and song protocols,
music statistics from training folds only, k-means labels and their balance, and a short train +
export of the music fusion model that the service-side runner loads and runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

import affectstream.streaming.preprocess.pipeline as pipeline
import affectstream.training.datasets.pmemo_windows as pmemo_windows_module
from affectstream.models.contract import STIMULUS_TABLE, load_stimulus_table
from affectstream.service.cli import main
from affectstream.streaming.formats.pmemo import PmemoDataset, open_pmemo
from affectstream.streaming.ingest.windows import Window
from affectstream.streaming.preprocess.pipeline import WindowFeeder, source_rate_plan
from affectstream.streaming.synthetic.pmemo import write_synthetic_pmemo
from affectstream.training.datasets.pmemo_windows import (
    MUSIC_SOURCE_SYNTHETIC,
    RATES,
    STREAM_LABELS,
    NoWindowsError,
    pmemo_trial_streams,
    pmemo_windows,
)
from affectstream.training.datasets.windows import StimulusTable, WindowSet
from affectstream.training.labels import binarise, class_balance
from affectstream.training.presets import preset
from affectstream.training.protocols import make_folds
from affectstream.training.train import TrainConfig, fit, stimulus_norm_stats

SPEC = preset("rtcan1d-music", "pmemo").spec


@pytest.fixture(scope="module")
def tiny_pmemo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-pmemo")
    write_synthetic_pmemo(out, n_subjects=6, n_songs=6, seed=3)
    return out


@pytest.fixture(scope="module")
def dataset(tiny_pmemo: Path) -> PmemoDataset:
    return open_pmemo(tiny_pmemo)


@pytest.fixture(scope="module")
def windows(dataset: PmemoDataset) -> WindowSet:
    return pmemo_windows(dataset, SPEC, 2.0)


# ------------------------------------------------------------------------------ windows


def test_windows_come_from_the_services_preprocess_recording(
    dataset: PmemoDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the very function object the service imports, not a copy
    assert vars(pmemo_windows_module)["preprocess_recording"] is pipeline.preprocess_recording
    calls: list[tuple[float, float]] = []

    def spy(spec: Any, streams: Any, rates: Any, labels: Any, **kw: Any) -> Any:
        calls.append((spec.hop_s, rates["GSR"]))
        return pipeline.preprocess_recording(spec, streams, rates, labels, **kw)

    monkeypatch.setattr(pmemo_windows_module, "preprocess_recording", spy)
    song = dataset.music_ids[0]
    ws = pmemo_windows(dataset, SPEC, 2.0, music_ids=[song])
    n_recordings = len(np.unique(ws.subjects))
    assert len(calls) == n_recordings and set(calls) == {(2.0, 50.0)}  # stride as hop, 50 Hz


def test_windows_carry_provenance_ratings_and_the_songs_music(
    dataset: PmemoDataset, windows: WindowSet
) -> None:
    assert windows.X["eda"].shape == (len(windows), 3, 500)  # 20 s at 25 Hz
    assert windows.ratings.shape == (len(windows), 2)
    assert np.allclose(windows.t_end % 2.0, 0) and windows.t_end.min() >= 20.0
    assert set(windows.rating_sources.tolist()) == {"per-subject"}  # type: ignore[union-attr]
    trials = {(int(t.subject), t.music_id): t for t in dataset.trials(SPEC.window_s)}
    assert {(int(s), int(m)) for s, m in zip(windows.subjects, windows.trials, strict=True)} == set(
        trials
    )
    for i in range(0, len(windows), 37):
        t = trials[(int(windows.subjects[i]), int(windows.trials[i]))]
        assert tuple(windows.ratings[i]) == (t.valence, t.arousal)  # (valence, arousal) order
        assert windows.t_end[i] <= t.duration_s
    table = windows.stimulus
    assert table is not None and table.source == MUSIC_SOURCE_SYNTHETIC
    assert table.n_features == 6373 and list(table.ids) == sorted(dataset.features()[0])
    music = windows.stimulus_values(np.arange(len(windows)))
    for i in (0, len(windows) - 1):
        np.testing.assert_array_equal(music[i], dataset.feature_vector(int(windows.trials[i])))


def test_a_rate_that_does_not_divide_50_hz_is_resampled(dataset: PmemoDataset) -> None:
    """RTCAN-1D's 16 Hz does not divide PMEmo's 50 Hz: the stream is delivered at 50 Hz and
    resampled (8/25) by the preprocessing, offline as online, instead of being refused."""
    deap_spec = preset("rtcan1d").spec
    assert source_rate_plan(deap_spec, {"GSR": 50.0}) == {"GSR": 50.0}
    ws = pmemo_windows(dataset, deap_spec, 2.0)
    (n_samples,) = {x.shape[-1] for x in ws.X["eda"]}
    assert n_samples == round(deap_spec.inputs[0].window_s * 16)
    assert np.isfinite(ws.X["eda"]).all()
    np.testing.assert_array_equal(pmemo_trial_streams(np.arange(3.0))["GSR"], [[0], [1], [2]])


def test_training_windows_equal_the_online_pipelines(
    dataset: PmemoDataset, windows: WindowSet
) -> None:
    """One recording fed as the service feeds a session — consecutive aligned windows at the
    serving hop (0.2 s) into a WindowFeeder — gives the training windows (hop = stride, 2 s): the
    raw channel to float32 rounding (training stores float32), tonic and phasic to cvxEDA's
    tolerance (1e-3 of the range; measured ≤ 3.3e-4 against the exact optimum).

    The windows are cut by sample index rather than by a Windower over timestamps: at 50 Hz the
    sample times t0 + k/50 are not exact binary fractions, and that layer is tested on its own.
    """
    subject, song = int(windows.subjects[0]), int(windows.trials[0])
    (trial,) = list(dataset.trials(SPEC.window_s, [str(subject)], [song]))
    offline = {
        round(float(t), 6): windows.X["eda"][i]
        for i, t in enumerate(windows.t_end)
        if windows.subjects[i] == subject and windows.trials[i] == song
    }
    feeder, wspec = WindowFeeder.for_spec(SPEC, RATES, STREAM_LABELS)
    assert wspec.inputs[0].srate == RATES["GSR"] == 50.0  # the stream is taken at its own rate
    gsr = pmemo_trial_streams(trial.eda)["GSR"]
    n_window, n_hop = round(SPEC.window_s * 50), round(SPEC.hop_s * 50)
    compared = 0
    for end in range(n_window, len(gsr) + 1, n_hop):
        t_end = end / 50
        out = feeder.feed(Window(t_end - SPEC.window_s, t_end, {"GSR": gsr[end - n_window : end]}))
        assert out is not None
        ref = offline.get(round(t_end, 6))
        if ref is not None:
            span = np.ptp(ref[0])
            np.testing.assert_allclose(out["eda"][0], ref[0], rtol=1e-6, atol=1e-5 * span)
            np.testing.assert_allclose(out["eda"], ref, rtol=0, atol=1e-4 * span)
            compared += 1
    assert feeder.resets == 0
    assert compared == len(offline) >= 3


def test_no_recording_long_enough_is_a_clear_error(dataset: PmemoDataset) -> None:
    (eda,) = SPEC.inputs
    long_spec = dataclasses.replace(SPEC, inputs=(dataclasses.replace(eda, window_s=60.0),))
    with pytest.raises(NoWindowsError, match=r"no recording is long enough for one 60 s window"):
        pmemo_windows(dataset, long_spec, 2.0)


def test_window_cache_gives_the_same_windows(dataset: PmemoDataset, tmp_path: Path) -> None:
    song = dataset.music_ids[1]
    a = pmemo_windows(dataset, SPEC, 2.0, music_ids=[song], cache_dir=tmp_path)
    (cached,) = tmp_path.glob("pmemo-windows-*.npz")
    b = pmemo_windows(dataset, SPEC, 2.0, music_ids=[song], cache_dir=tmp_path)
    np.testing.assert_array_equal(a.X["eda"], b.X["eda"])
    for field in ("ratings", "subjects", "trials", "t_end", "rating_sources"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = pmemo_windows(dataset, SPEC, 4.0, music_ids=[song], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("pmemo-windows-*.npz"))) == 2 and len(c) < len(a)
    assert cached.is_file()


# ------------------------------------------------------------------------------ protocols, labels


@pytest.mark.parametrize(("protocol", "groups"), [("subject", "subjects"), ("song", "trials")])
def test_folds_never_share_a_subject_or_a_song(
    windows: WindowSet, protocol: str, groups: str
) -> None:
    g = getattr(windows, groups)
    folds = make_folds(protocol, windows.subjects, 3, seed=1, stimuli=windows.trials)
    tested: list[int] = []
    for f in folds:
        train, val, test = (set(g[i].tolist()) for i in (f.train, f.val, f.test))
        assert not train & test and not val & test and not train & val and val
        assert len(f.train) + len(f.val) + len(f.test) == len(windows)
        assert set(f.test_stimuli) == set(windows.trials[f.test].tolist())
        tested += sorted(test)
    assert sorted(tested) == sorted(np.unique(g).tolist())  # each group tested exactly once
    if protocol == "subject":  # stimulus leakage: the test songs were all heard in training
        for f in folds:
            assert set(f.test_stimuli) <= set(f.train_stimuli)


def test_song_protocol_needs_stimulus_ids(windows: WindowSet) -> None:
    with pytest.raises(ValueError, match="needs the stimulus"):
        make_folds("song", windows.subjects, 3, seed=0)


def test_music_statistics_come_from_the_training_fold_only(windows: WindowSet) -> None:
    fold = make_folds("song", windows.subjects, 3, seed=0, stimuli=windows.trials)[0]
    table = windows.stimulus
    assert table is not None
    # the training songs' vectors, weighted by their windows
    rows = table.rows(windows.trials[fold.train])
    expect_mean = table.values[rows].mean(axis=0)
    expect_std = table.values[rows].std(axis=0)
    mean, std = stimulus_norm_stats(windows, fold.train)
    np.testing.assert_allclose(mean, expect_mean, rtol=1e-9)
    np.testing.assert_allclose(std, expect_std, rtol=1e-9)
    # the statistics fit() uses do not move when the test fold's songs change
    test_rows = np.isin(table.ids, fold.test_stimuli)
    values = table.values.copy()
    values[test_rows] = values[test_rows] * 1000 + 1e6
    altered = dataclasses.replace(
        windows, stimulus=StimulusTable(table.ids, table.names, values, table.source)
    )
    cfg = TrainConfig(model="music-mlp", epochs=1, label_rule="kmeans", label_threshold=0.5)
    y, _ = binarise(windows.ratings, windows.subjects, "kmeans", 0.5, trials=windows.trials)
    norms = [
        fit(cfg, SPEC, ws, y, fold.train, fold.val, seed=0).norms["music"]
        for ws in (windows, altered)
    ]
    np.testing.assert_array_equal(norms[0][0], norms[1][0])
    np.testing.assert_array_equal(norms[0][1], norms[1][1])
    np.testing.assert_allclose(norms[0][0], expect_mean, rtol=1e-9)


def test_kmeans_counts_each_recording_once() -> None:
    # one recording (rating 0.4) yields 20 windows: it must not weigh 20 times in the midpoint
    ratings = np.array([[0.2, 0.2]] + [[0.4, 0.4]] * 20 + [[0.8, 0.8], [0.9, 0.9]])
    subjects = np.ones(len(ratings), dtype=np.int64)
    trials = np.array([1] + [2] * 20 + [3, 4])
    _, per_window = binarise(ratings, subjects, "kmeans", 0.5)
    y, per_recording = binarise(ratings, subjects, "kmeans", 0.5, trials=trials)
    # centres 0.3 and 0.85 (the description rounds to 4 decimals)
    assert per_recording["per_subject"]["1"] == [0.575, 0.575]
    assert per_window["per_subject"]["1"][0] == pytest.approx((8.2 / 21 + 0.85) / 2, abs=1e-4)
    keys = np.stack([subjects, trials], axis=1)
    assert class_balance(y)["valence"] == {"high": 2, "low": 21}
    assert class_balance(y, keys) == {
        "valence": {"high": 2, "low": 2},
        "arousal": {"high": 2, "low": 2},
    }


# ------------------------------------------------------------------------------ CLI: train, export


def test_cli_refuses_music_models_and_the_song_protocol_on_deap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for extra in (["--model", "rtcan1d-music"], ["--model", "rtcan1d", "--protocol", "song"]):
        code = main(["train", "--data", str(tmp_path), *extra, "--out", str(tmp_path / "r")])
        assert code == 2
    err = capsys.readouterr().err
    assert "only --dataset pmemo provides" in err and "needs stimulus ids" in err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_train_and_export_rtcan1d_music(tiny_pmemo: Path, tmp_path: Path) -> None:
    from affectstream.models.runner import ModelRunner

    run = tmp_path / "run"
    args = [
        "train",
        "--dataset",
        "pmemo",
        "--data",
        str(tiny_pmemo),
        "--model",
        "rtcan1d-music",
        "--folds",
        "2",
        "--epochs",
        "1",
        "--label-rule",
        "kmeans",
        "--out",
        str(run),
    ]
    assert main(args) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["protocol"] == "subject" and report["dataset"]["format"] == "PMEmo"
    assert report["label_rule"]["kind"] == "kmeans" and report["label_rule"]["per_subject"]
    for key in ("class_balance", "class_balance_recordings"):
        balance = report[key]
        assert set(balance) == {"valence", "arousal"} and balance["valence"]["high"] > 0
    assert sum(report["class_balance"]["arousal"].values()) == report["dataset"]["windows"]
    assert (
        sum(report["class_balance_recordings"]["arousal"].values())
        == (report["dataset"]["recordings"])
    )
    for fold in report["folds"]:
        assert not set(fold["test_subjects"]) & set(fold["train_subjects"] + fold["val_subjects"])
    md = (run / "report.md").read_text()
    assert "Synthetic data, not PMEmo" in md and "Stimulus leakage" in md
    assert "the song protocol (no song in both train and test) is the one that does" in md
    assert "valence" in md and "recordings (subject × song)" in md

    model_dir = tmp_path / "zoo" / "rtcan1d-music"
    assert main(["export", str(run), "--out", str(model_dir)]) == 0
    runner = ModelRunner(model_dir, providers=["CPUExecutionProvider"])
    stim = runner.contract.stimulus
    assert stim is not None and stim.name == "music" and stim.n_features == 6373
    assert stim.source == MUSIC_SOURCE_SYNTHETIC and stim.table == STIMULUS_TABLE
    assert stim.mean.shape == stim.std.shape == (6373,)
    # servable from a 50 Hz GSR stream (PMEmo's replay): decimated, not refused
    assert source_rate_plan(runner.contract.preprocess_spec(), {"GSR": 50.0}) == {"GSR": 50.0}
    ids, values = load_stimulus_table(model_dir, stim)
    dataset = open_pmemo(tiny_pmemo)
    assert set(ids) == {str(m) for m in dataset.features()[0]}  # every song, ids as strings
    song = dataset.music_ids[0]
    np.testing.assert_array_equal(values[ids[str(song)]], dataset.feature_vector(song))
    (trial, *_) = dataset.trials(20.0, music_ids=[song])
    streams = pmemo_trial_streams(trial.eda)
    _, features = next(pipeline.preprocess_recording(SPEC, streams, RATES, STREAM_LABELS))
    probs = runner.predict([{"eda": features["eda"], "music": values[ids[str(song)]]}])
    assert probs.shape == (1, 2) and ((probs >= 0) & (probs <= 1)).all()
    card = (model_dir / "README.md").read_text()
    assert "synthetic PMEmo-layout data" in card and "not on PMEmo" in card
    assert "Stimulus leakage" in card and "stimulus_features.npz" in card
    assert "50 Hz (PMEmo" in card


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_song_protocol_run_and_comparison(tiny_pmemo: Path, tmp_path: Path) -> None:
    runs = []
    for protocol in ("subject", "song"):
        run = tmp_path / f"music-mlp-{protocol}"
        args = [
            "train",
            "--dataset",
            "pmemo",
            "--data",
            str(tiny_pmemo),
            "--model",
            "music-mlp",
            "--protocol",
            protocol,
            "--folds",
            "2",
            "--epochs",
            "2",
            "--cv-only",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(run),
        ]
        assert main(args) == 0
        assert not (run / "final.pt").exists()
        runs.append(run)
    song = json.loads((runs[1] / "report.json").read_text())
    for fold in song["folds"]:
        assert not set(fold["test_stimuli"]) & set(fold["train_stimuli"] + fold["val_stimuli"])
    assert any("measures generalisation to new music" in c for c in song["caveats"])
    assert "| fold | test songs |" in (runs[1] / "report.md").read_text()
    out = tmp_path / "comparison"
    assert main(["train", "--compare", *map(str, runs), "--out", str(out)]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert [(r["model"], r["protocol"]) for r in doc["runs"]] == [
        ("music-mlp", "subject"),
        ("music-mlp", "song"),
    ]
    md = (out / "report.md").read_text()
    assert "SYNTHETIC DATA, NOT PMEMO" in md and "stimulus leakage" in md
    assert "$ affectstream synth --format pmemo" in md and "$ affectstream train --compare" in md
    assert (out / "comparison.png").stat().st_size < 60_000
