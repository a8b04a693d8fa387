"""Tests of the PMEmo reader (training/datasets/pmemo.py), the synthetic PMEmo generator
(training/synthetic_pmemo.py) and ``affectstream synth --format pmemo``.

The generator's effects are measured from the written files with simple, independent detectors
(SCR count from the conductance slope, correlations of feature columns with the annotations);
the generator's latents are only used to check that values round-trip exactly.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import signal

from affectstream.streaming.formats.pmemo import (
    N_STATIC_FEATURES,
    SFREQ,
    SUBJECT_RATINGS_FILE,
    PmemoDataset,
    PmemoFormatError,
    open_pmemo,
)
from affectstream.streaming.synthetic.pmemo import (
    SYNTHETIC_MARKER,
    PmemoTruth,
    eda_signal,
    feature_model,
    pmemo_truth,
    song_features,
    song_latents,
    subject_traits,
    trial_latents,
    write_synthetic_pmemo,
)
from affectstream.training.commands import synth

FloatArray = NDArray[np.float64]

SEED = 0
UNANNOTATED = 34  # song index 11 (music id 3·11 + 1) has no annotation by design


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def default_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CLI's default set: 24 subjects × 30 songs (~9 MB, ~1 s)."""
    out = tmp_path_factory.mktemp("pmemo-default")
    write_synthetic_pmemo(out, n_subjects=24, n_songs=30, seed=SEED)
    return out


@pytest.fixture(scope="module")
def default_truth() -> PmemoTruth:
    return pmemo_truth(24, 30, SEED)


@pytest.fixture(scope="module")
def dataset(default_tree: Path) -> PmemoDataset:
    return open_pmemo(default_tree)


@pytest.fixture(scope="module")
def small_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 subjects × 12 songs (12 so that the unannotated song 34 is in it), written once."""
    out = tmp_path_factory.mktemp("pmemo-small")
    write_synthetic_pmemo(out, n_subjects=4, n_songs=12, seed=3)
    return out


@pytest.fixture
def small(small_source: Path, tmp_path: Path) -> Path:
    """A private copy of the small tree, for tests that break it."""
    return Path(shutil.copytree(small_source, tmp_path / "pmemo"))


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def set_cell(path: Path, line: int, column: int, value: str) -> None:
    """Overwrite one field (1-based line, 0-based column) of a CSV without quoted fields."""
    lines = path.read_text(encoding="utf-8").splitlines()
    fields = lines[line - 1].split(",")
    fields[column] = value
    lines[line - 1] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def error_of(root: Path, then: Callable[[PmemoDataset], object] | None = None) -> str:
    """The PmemoFormatError message of opening ``root`` (and then calling ``then``)."""
    try:
        ds = open_pmemo(root)
        if then is not None:
            then(ds)
    except PmemoFormatError as e:
        return str(e)
    pytest.fail(f"{root} opened without a PmemoFormatError")


# --------------------------------------------------------------------------------------------
# Reading: round trip of everything the generator wrote


def test_open_finds_songs_subjects_and_metadata(
    dataset: PmemoDataset, default_truth: PmemoTruth
) -> None:
    assert dataset.sfreq == SFREQ == 50.0
    assert dataset.music_ids == tuple(3 * k + 1 for k in range(30))  # numeric, not text, order
    assert dataset.subjects == tuple(str(100001 + j) for j in range(24))
    assert dataset.rating_source == "per-subject"
    assert "30 songs" in repr(dataset)
    for song in default_truth.songs:
        meta = dataset.songs[song.music_id]
        assert meta.file_name == f"{song.music_id}.mp3"
        assert meta.duration_s == pytest.approx(song.duration_s)
        assert meta.chorus_start_s == song.chorus_start_s
        assert meta.chorus_end_s == song.chorus_start_s + round(song.duration_s)
        assert "," in meta.album  # a quoted field survives


def test_static_annotations_are_valence_arousal_means_of_the_subject_ratings(
    dataset: PmemoDataset, default_truth: PmemoTruth
) -> None:
    assert UNANNOTATED not in dataset.static_annotations
    assert len(dataset.static_annotations) == 29
    for music_id, (valence, arousal) in dataset.static_annotations.items():
        raters = default_truth.raters(music_id)
        assert valence == pytest.approx(np.mean([t.rating_valence for t in raters]), abs=1e-6)
        assert arousal == pytest.approx(np.mean([t.rating_arousal for t in raters]), abs=1e-6)
        sd_v, sd_a = dataset.static_std[music_id]
        assert sd_v == pytest.approx(np.std([t.rating_valence for t in raters], ddof=1), abs=1e-6)
        assert sd_a == pytest.approx(np.std([t.rating_arousal for t in raters], ddof=1), abs=1e-6)
        for t in raters:
            assert dataset.subject_ratings[music_id, t.subject_id] == pytest.approx(
                (t.rating_valence, t.rating_arousal), abs=1e-6
            )


def test_dynamic_annotations_run_at_2_hz_from_15_5_s_around_the_static_mean(
    dataset: PmemoDataset,
) -> None:
    assert set(dataset.dynamic_annotations) == set(dataset.static_annotations)
    for music_id, frames in dataset.dynamic_annotations.items():
        assert frames.shape[1] == 3
        assert frames[0, 0] == 15.5
        np.testing.assert_allclose(np.diff(frames[:, 0]), 0.5)
        assert frames[-1, 0] <= dataset.songs[music_id].duration_s
        np.testing.assert_allclose(
            frames[:, 1:].mean(axis=0), dataset.static_annotations[music_id], atol=0.05
        )
        assert np.all(dataset.dynamic_std[music_id][:, 1:] >= 0)


def test_features_round_trip_with_6373_columns(dataset: PmemoDataset) -> None:
    ids, names, X = dataset.features()
    assert ids.tolist() == list(dataset.music_ids)
    assert len(names) == N_STATIC_FEATURES == 6373 and X.shape == (30, 6373)
    assert tuple(names) == feature_model(SEED).names
    expected = np.stack([song_features(song_latents(k, SEED), SEED) for k in range(30)])
    np.testing.assert_allclose(X, expected, rtol=1e-6)
    np.testing.assert_array_equal(dataset.feature_vector(7), X[2])
    with pytest.raises(ValueError, match="read-only"):
        X[0, 0] = 0.0
    with pytest.raises(KeyError, match="musicId 2 "):
        dataset.feature_vector(2)


def test_eda_round_trips_with_trailing_empty_cells_removed(
    dataset: PmemoDataset, default_truth: PmemoTruth
) -> None:
    early = 0
    for song in default_truth.songs[:12]:
        signals = dataset.eda(song.music_id)
        for traits in default_truth.subjects:
            trial = default_truth.trials.get((song.music_id, traits.subject_id))
            if trial is None or trial.listened_s == 0:
                assert traits.subject_id not in signals
                continue
            x = signals[traits.subject_id]
            assert x.dtype == np.float64 and np.isfinite(x).all()
            np.testing.assert_allclose(x, eda_signal(song, traits, trial, SEED), atol=5e-5)
            assert len(x) == round(trial.listened_s * SFREQ)
            early += len(x) < round(song.duration_s * SFREQ)
    assert early > 0, "no subject stopped early in the first 12 songs"


def test_an_all_empty_column_is_skipped_with_a_warning_and_counted(
    default_tree: Path, default_truth: PmemoTruth, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = open_pmemo(default_tree)  # fresh: the warning is given once per column
    absent = sorted(k for k, t in default_truth.trials.items() if t.listened_s == 0)
    assert absent, "seed 0 should have subjects who did not listen"
    music_id, subject = absent[0]
    assert subject in dataset.eda_subjects(music_id)  # the column exists …
    with caplog.at_level(logging.WARNING, logger="affectstream.streaming.formats.pmemo"):
        signals = dataset.eda(music_id)
    assert subject not in signals  # … but is left out,
    assert f"subject {subject}" in caplog.text and f"{music_id}_EDA.csv" in caplog.text  # logged
    assert (music_id, subject) in dataset.skipped.empty_columns  # and counted
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="affectstream.streaming.formats.pmemo"):
        dataset.eda(music_id)
    assert not caplog.text  # once


def test_trials_carry_per_subject_ratings_when_the_file_exists(dataset: PmemoDataset) -> None:
    trials = list(dataset.trials())
    assert len(trials) > 500
    assert all(t.rating_source == "per-subject" for t in trials)
    for t in trials:
        assert (t.valence, t.arousal) == dataset.subject_ratings[t.music_id, t.subject]
        assert t.duration_s >= 10.0
    assert UNANNOTATED not in {t.music_id for t in trials}
    assert dataset.skipped.songs_without_rating == {UNANNOTATED}
    assert dataset.skipped.empty_columns  # every all-empty column of the set was met
    assert "1 song(s) without a rating" in dataset.skipped.summary()
    means = list(dataset.trials(ratings="song-mean", music_ids=[1]))
    assert {t.rating_source for t in means} == {"song-mean"}
    assert all((t.valence, t.arousal) == dataset.static_annotations[1] for t in means)


def test_trials_fall_back_to_song_means_without_the_per_subject_file(small: Path) -> None:
    with_file = {(t.music_id, t.subject): t for t in open_pmemo(small).trials()}
    (small / SUBJECT_RATINGS_FILE).unlink()
    ds = open_pmemo(small)
    assert ds.rating_source == "song-mean" and not ds.subject_ratings
    trials = list(ds.trials())
    assert {(t.music_id, t.subject) for t in trials} == set(with_file)
    for t in trials:
        assert t.rating_source == "song-mean"
        assert (t.valence, t.arousal) == ds.static_annotations[t.music_id]
        np.testing.assert_array_equal(t.eda, with_file[t.music_id, t.subject].eda)
    assert any(t.valence != with_file[t.music_id, t.subject].valence for t in trials)
    assert ds.skipped.songs_without_rating == {UNANNOTATED}
    with pytest.raises(PmemoFormatError, match="needs annotations/subject_static_annotations"):
        ds.trials(ratings="per-subject")


def test_trials_can_be_restricted_and_count_short_recordings(small: Path) -> None:
    ds = open_pmemo(small)
    some = list(ds.trials(subjects=["100002"], music_ids=[4, 1]))
    assert [t.music_id for t in some] == [1, 4] and {t.subject for t in some} == {"100002"}
    assert not list(ds.trials(min_seconds=1000.0))
    assert len(ds.skipped.too_short) > 10
    with pytest.raises(KeyError, match="musicId 2 "):
        ds.trials(music_ids=[2])
    with pytest.raises(KeyError, match="999999"):
        ds.trials(subjects=["999999"])


def test_a_subject_without_a_per_subject_rating_is_skipped_and_counted(small: Path) -> None:
    path = small / SUBJECT_RATINGS_FILE
    lines = path.read_text().splitlines()
    dropped = lines.pop(1).split(",")
    path.write_text("\n".join(lines) + "\n")
    ds = open_pmemo(small)
    pair = (int(dropped[1]), dropped[0])
    assert pair not in {(t.music_id, t.subject) for t in ds.trials(min_seconds=0)}
    assert ds.skipped.without_subject_rating == {pair}


def test_documented_variants_are_accepted(small: Path) -> None:
    """BOM, spaces around header names, ``7.0`` ids, H:MM:SS and seconds, an ``eda`` folder."""
    static = small / "annotations/static_annotations.csv"
    static.write_text("\ufeff musicId , Arousal(mean) , Valence(mean) \n1.0,0.5,0.25\n")
    replace_once(small / "metadata.csv", ",02:", ",0:02:")
    (small / "EDA").rename(small / "eda")
    ds = open_pmemo(small)
    assert ds.static_annotations == {1: (0.25, 0.5)}
    assert ds.eda_dir.name == "eda"
    assert any(song.chorus_start_s >= 120 for song in ds.songs.values())
    replace_once(small / "metadata.csv", ",00:44,", ",170,")  # song 1's chorus start (seed 3)
    assert open_pmemo(small).songs[1].chorus_start_s == 170.0


# --------------------------------------------------------------------------------------------
# Reading: every malformed case gives an error naming file, place and expectation


def test_missing_root_is_named(tmp_path: Path) -> None:
    assert "not a folder" in error_of(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "name",
    [
        "metadata.csv",
        "annotations/static_annotations.csv",
        "annotations/static_annotations_std.csv",
        "annotations/dynamic_annotations.csv",
        "annotations/dynamic_annotations_std.csv",
        "features/static_features.csv",
    ],
)
def test_missing_required_file_is_named(small: Path, name: str) -> None:
    (small / name).unlink()
    assert f"missing {name}" in error_of(small)


def test_missing_eda_folder_is_named(small: Path) -> None:
    shutil.rmtree(small / "EDA")
    assert "missing the EDA/ folder" in error_of(small)


def test_wrong_header_names_the_expected_columns(small: Path) -> None:
    replace_once(small / "annotations/static_annotations.csv", "Arousal(mean)", "Arousal")
    message = error_of(small)
    assert "static_annotations.csv: line 1" in message
    assert "expected the header musicId,Valence(mean),Arousal(mean)" in message
    assert "missing 'Arousal(mean)'" in message and "unexpected 'Arousal'" in message


def test_non_numeric_value_names_line_and_column(small: Path) -> None:
    set_cell(small / "annotations/static_annotations.csv", 3, 2, "high")
    message = error_of(small)
    assert "static_annotations.csv: line 3, column 3 ('Valence(mean)')" in message
    assert "expected a number, got 'high'" in message


def test_wrong_number_of_fields_is_refused(small: Path) -> None:
    replace_once(small / "annotations/dynamic_annotations.csv", "\n1,16.0,", "\n1,16.0,0.5,")
    message = error_of(small)
    assert "dynamic_annotations.csv: line 3: 5 fields, expected 4" in message


def test_duplicate_music_id_is_refused(small: Path) -> None:
    path = small / "annotations/static_annotations.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    message = error_of(small)
    assert f"static_annotations.csv: line {len(lines) + 1}, column 1 ('musicId')" in message
    assert "duplicate musicId 1" in message


def test_duplicate_song_in_metadata_is_refused(small: Path) -> None:
    set_cell(small / "metadata.csv", 3, 0, "1")
    assert "metadata.csv: line 3, column 1 ('musicId'): duplicate musicId 1" in error_of(small)


def test_rating_outside_0_1_is_refused(small: Path) -> None:
    set_cell(small / "annotations/static_annotations.csv", 2, 1, "7.5")
    assert "expected a rating in [0, 1], got '7.5'" in error_of(small)


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_non_finite_annotation_is_refused(small: Path, value: str) -> None:
    set_cell(small / "annotations/dynamic_annotations_std.csv", 2, 3, value)
    message = error_of(small)
    assert "dynamic_annotations_std.csv: line 2, column 4 ('Valence(std)')" in message
    assert f"expected a finite number, got '{value}'" in message


def test_feature_header_with_the_wrong_count_is_refused(small: Path) -> None:
    replace_once(small / "features/static_features.csv", ",audspec_lengthL1norm_sma_amean", "")
    message = error_of(small)
    assert "static_features.csv: line 1: 6372 feature columns, expected 6373" in message


def test_feature_row_with_the_wrong_count_is_refused_when_read(small: Path) -> None:
    path = small / "features/static_features.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0]
    path.write_text("\n".join(lines) + "\n")
    message = error_of(small, lambda ds: ds.features())
    assert "static_features.csv: line 3: 6372 feature values, expected 6373" in message


def test_non_finite_feature_is_refused_when_read(small: Path) -> None:
    set_cell(small / "features/static_features.csv", 2, 5, "inf")
    message = error_of(small, lambda ds: ds.feature_vector(1))
    assert "line 2, column 6 ('audspec_lengthL1norm_sma_flatness')" in message
    assert "expected a finite number, got 'inf'" in message


def test_eda_for_a_song_without_metadata_is_refused(small: Path) -> None:
    shutil.copy(small / "EDA/1_EDA.csv", small / "EDA/2_EDA.csv")
    message = error_of(small)
    assert "2_EDA.csv: EDA for musicId 2, which has no row in metadata.csv" in message


def test_eda_file_with_a_bad_name_is_refused(small: Path) -> None:
    shutil.copy(small / "EDA/1_EDA.csv", small / "EDA/first_EDA.csv")
    assert "expected an EDA file named <musicId>_EDA.csv" in error_of(small)


def test_eda_column_without_a_subject_id_is_refused(small: Path) -> None:
    replace_once(small / "EDA/4_EDA.csv", "4_100001", "subject one")
    message = error_of(small)
    assert "4_EDA.csv: line 1, column 2 ('subject one')" in message
    assert "ends with a 6-digit subject id" in message


def test_eda_gap_inside_a_column_is_refused(small: Path) -> None:
    set_cell(small / "EDA/1_EDA.csv", 10, 1, "")
    message = error_of(small, lambda ds: ds.eda(1))
    assert "1_EDA.csv: line 10, column 2 ('1_100001')" in message
    assert "empty cell before the end of the column" in message


@pytest.mark.parametrize(("value", "expected"), [("nan", "a finite number"), ("1.2.3", "a number")])
def test_bad_eda_value_is_refused(small: Path, value: str, expected: str) -> None:
    set_cell(small / "EDA/1_EDA.csv", 5, 1, value)
    message = error_of(small, lambda ds: list(ds.trials()))
    assert "1_EDA.csv: line 5, column 2 ('1_100001')" in message
    assert f"expected {expected}" in message and repr(value) in message


def test_eda_row_with_the_wrong_number_of_fields_is_refused(small: Path) -> None:
    replace_once(small / "EDA/1_EDA.csv", "\n7,", "\n7,0.1,")
    assert "1_EDA.csv: line 9: " in error_of(small, lambda ds: ds.eda(1))


def test_per_subject_file_with_a_bad_subject_id_is_refused(small: Path) -> None:
    set_cell(small / SUBJECT_RATINGS_FILE, 2, 0, "1001")
    message = error_of(small)
    assert "subject_static_annotations.csv: line 2, column 1 ('subjectId')" in message
    assert "expected a 6-digit subject id, got '1001'" in message


def test_per_subject_file_with_a_duplicate_rating_is_refused(small: Path) -> None:
    path = small / SUBJECT_RATINGS_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    assert "duplicate rating of musicId" in error_of(small)


def test_text_that_is_not_utf8_is_refused(small: Path) -> None:
    (small / "metadata.csv").write_bytes(b"musicId,title\n1,caf\xe9\n")
    assert "metadata.csv: not UTF-8 text" in error_of(small)


def test_missing_metadata_column_is_refused(small: Path) -> None:
    replace_once(small / "metadata.csv", "chorus_end_time", "chorus_end")
    assert "missing 'chorus_end_time'" in error_of(small)


def test_bad_chorus_time_is_refused(small: Path) -> None:
    replace_once(small / "metadata.csv", ",00:44,", ",soon,")
    assert "expected a time as MM:SS or seconds, got 'soon'" in error_of(small)


# --------------------------------------------------------------------------------------------
# The generator: determinism and documented effects, measured from the files


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    first = write_synthetic_pmemo(tmp_path / "a", n_subjects=3, n_songs=4, seed=7)
    again = write_synthetic_pmemo(tmp_path / "b", n_subjects=3, n_songs=4, seed=7)
    other = write_synthetic_pmemo(tmp_path / "c", n_subjects=3, n_songs=4, seed=8)
    assert [p.relative_to(tmp_path / "a") for p in first] == [
        p.relative_to(tmp_path / "b") for p in again
    ]
    for a, b in zip(first, again, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    other_bytes = {p.relative_to(tmp_path / "c"): p.read_bytes() for p in other}
    for a in first:
        assert other_bytes.get(a.relative_to(tmp_path / "a")) != a.read_bytes(), a.name


def test_a_recording_does_not_depend_on_the_set_size() -> None:
    song, traits = song_latents(2, 5), subject_traits(1, 5)
    trial = trial_latents(song, traits, 5)
    assert trial is not None and trial == pmemo_truth(2, 3, 5).trials[7, "100002"]
    assert trial == pmemo_truth(9, 40, 5).trials[7, "100002"]
    np.testing.assert_array_equal(
        eda_signal(song, traits, trial, 5), eda_signal(song, traits, trial, 5)
    )
    np.testing.assert_array_equal(song_features(song, 5), song_features(song_latents(2, 5), 5))


def test_marker_says_synthetic(default_tree: Path) -> None:
    marker = json.loads((default_tree / SYNTHETIC_MARKER).read_text())
    assert marker["synthetic"] is True and "not PMEmo" in marker["note"]
    assert (marker["subjects"], marker["songs"], marker["seed"]) == (24, 30, SEED)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_subjects": 0}, "n_subjects"),
        ({"n_subjects": 1000}, "n_subjects"),
        ({"n_songs": 0}, "n_songs"),
        ({"n_songs": 795}, "n_songs"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_generator_arguments_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pmemo_truth(**kwargs)


def _r(x: FloatArray, y: FloatArray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


def test_some_music_features_carry_the_song_emotion_and_scales_differ(
    dataset: PmemoDataset,
) -> None:
    ids, _, X = dataset.features()
    rated = np.array([m in dataset.static_annotations for m in ids])
    va = np.array([dataset.static_annotations[m] for m in ids[rated]])
    Xr = X[rated]
    informative = feature_model(SEED).informative
    others = np.setdiff1d(np.arange(N_STATIC_FEATURES), informative)
    assert 30 <= len(informative) <= 60  # "a few dozen"
    best = np.array(
        [max(abs(_r(Xr[:, j], va[:, 0])), abs(_r(Xr[:, j], va[:, 1]))) for j in informative]
    )
    rest = np.array([abs(_r(Xr[:, j], va[:, 1])) for j in others[:500]])
    assert np.median(best) > 0.35, np.round(best, 2)  # 0.42-0.53 for seeds 0-4
    assert np.median(rest) < 0.2
    assert np.max(best) < 0.95  # noisy: no feature is the label
    spread = np.log10(X.std(axis=0))
    assert spread.max() - spread.min() > 5  # raw scales differ: z-scoring matters


def scr_per_min(eda: FloatArray) -> float:
    """SCRs per minute: peaks of the 1 Hz low-passed conductance slope above 0.02 µS/s."""
    lowpass = signal.butter(2, 1.0, fs=SFREQ, output="sos")
    slope = np.gradient(signal.sosfiltfilt(lowpass, eda)) * SFREQ
    peaks, _ = signal.find_peaks(slope, height=0.02, prominence=0.015, distance=int(SFREQ))
    return len(peaks) * 60.0 * SFREQ / len(eda)


def test_scr_rate_follows_felt_arousal_including_what_the_music_cannot_know(
    dataset: PmemoDataset,
) -> None:
    trials = list(dataset.trials())
    subject = np.array([t.subject for t in trials])
    arousal = np.array([t.arousal for t in trials])
    song_mean = np.array([dataset.static_annotations[t.music_id][1] for t in trials])
    rate = np.array([scr_per_min(t.eda) for t in trials])
    within = rate.copy()
    for s in np.unique(subject):
        m = subject == s
        within[m] = (rate[m] - rate[m].mean()) / rate[m].std()
    r = _r(within, arousal)
    assert 0.3 < r < 0.8, f"SCR rate vs felt arousal: r = {r:+.2f}"
    r_dev = _r(within, arousal - song_mean)  # the per-(subject, song) part
    assert r_dev > 0.1, f"SCR rate vs arousal minus song mean: r = {r_dev:+.2f}"
    high = arousal > np.median(arousal)
    order = high[np.argsort(rate)]
    below = np.concatenate([[0], np.cumsum(order)])
    k = np.arange(len(order) + 1)
    accuracy = ((k - below) + (order.sum() - below)) / len(order)
    assert max(accuracy.max(), 1 - accuracy.min()) < 0.85  # nothing separates perfectly


# --------------------------------------------------------------------------------------------
# CLI verb


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="affectstream synth")
    synth.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_pmemo_writes_a_tree_the_reader_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse(
        "--format",
        "pmemo",
        "--out",
        str(tmp_path / "out"),
        "--subjects",
        "3",
        "--trials",
        "5",
        "--seed",
        "2",
    )
    assert synth.run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0].endswith("metadata.csv") and "MB" in lines[0]
    assert "3 subject(s), 5 song(s)" in lines[-1] and "(synthetic data, not PMEmo)" in lines[-1]
    ds = open_pmemo(tmp_path / "out")
    assert len(ds.music_ids) == 5 and ds.subjects == ("100001", "100002", "100003")


def test_cli_pmemo_defaults_through_the_console_entry_point(
    tmp_path: Path, cli: Callable[..., list[str]], cli_env: dict[str, str]
) -> None:
    done = subprocess.run(
        cli("synth", "--format", "pmemo", "--out", tmp_path),
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "24 subject(s), 30 song(s)" in done.stdout.splitlines()[-1]
    assert "not PMEmo" in done.stdout
    assert (tmp_path / SYNTHETIC_MARKER).exists() and len(open_pmemo(tmp_path).music_ids) == 30


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--subjects", "0"), "--subjects must be 1-999"),
        (("--subjects", "1000"), "--subjects must be 1-999"),
        (("--trials", "0"), "--trials must be 1-794"),
        (("--trials", "795"), "--trials must be 1-794"),
        (("--seed", "-1"), "--seed"),
    ],
)
def test_cli_pmemo_refuses_out_of_range_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    assert synth.run(_parse("--format", "pmemo", "--out", str(tmp_path), *argv)) == 2
    err = capsys.readouterr().err
    assert message in err and "error" in err
    assert not list(tmp_path.iterdir())


def test_cli_pmemo_accepts_more_subjects_than_deap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert synth.run(_parse("--out", str(tmp_path / "d"), "--subjects", "100")) == 2
    assert "--subjects must be 1-99" in capsys.readouterr().err
    args = _parse(
        "--format", "pmemo", "--out", str(tmp_path / "p"), "--subjects", "100", "--trials", "1"
    )
    assert synth.run(args) == 0
    assert len(open_pmemo(tmp_path / "p").subjects) > 50


def test_synthetic_pmemo_is_known_without_its_sidecar(tmp_path: Path) -> None:
    """A copy of a synthetic PMEmo folder that lost SYNTHETIC.json is still synthetic: every
    song of metadata.csv is titled "Synthetic song …"; a real-looking metadata is not."""
    from affectstream.streaming.synthetic.pmemo import is_synthetic_pmemo

    write_synthetic_pmemo(tmp_path / "a", n_subjects=2, n_songs=3, seed=1)
    assert is_synthetic_pmemo(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    (tmp_path / "copy" / "SYNTHETIC.json").unlink()
    assert is_synthetic_pmemo(tmp_path / "copy")
    meta = tmp_path / "copy" / "metadata.csv"
    lines = meta.read_text().splitlines()
    lines[1] = lines[1].replace("Synthetic song", "Bohemian Rhapsody", 1)
    meta.write_text("\n".join(lines) + "\n")
    assert not is_synthetic_pmemo(tmp_path / "copy")
    assert not is_synthetic_pmemo(tmp_path / "nothing-here")
