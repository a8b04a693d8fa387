"""Evaluation protocols keep their promise; label rules."""

from __future__ import annotations

import numpy as np
import pytest

from affectstream.training.labels import binarise, kmeans2d_midpoint, kmeans_midpoint
from affectstream.training.protocols import LEAKY_PROTOCOLS, PROTOCOLS, make_folds

SUBJECTS = np.repeat(np.arange(1, 11), 30)  # 10 subjects × 30 windows


@pytest.mark.parametrize("protocol", ["subject", "loso"])
def test_subject_folds_never_share_a_subject(protocol: str) -> None:
    folds = make_folds(protocol, SUBJECTS, 5, seed=3)
    assert len(folds) == (5 if protocol == "subject" else 10)
    tested = []
    for f in folds:
        tr, va, te = (set(SUBJECTS[i].tolist()) for i in (f.train, f.val, f.test))
        assert not tr & te and not va & te and not tr & va
        assert tr | va | te == set(range(1, 11))
        assert te == set(f.test_subjects) and tr == set(f.train_subjects)
        assert len(va) >= 1
        tested += sorted(te)
    assert sorted(tested) == list(range(1, 11))  # every subject tested exactly once


def test_segment_split_is_disjoint_in_windows_only() -> None:
    folds = make_folds("segment", SUBJECTS, 4, seed=0)
    seen = np.concatenate([f.test for f in folds])
    assert sorted(seen.tolist()) == list(range(len(SUBJECTS)))
    for f in folds:
        assert not set(f.train) & set(f.test) and not set(f.val) & set(f.test)
        # leaky: the same subjects on both sides
        assert set(SUBJECTS[f.train]) & set(SUBJECTS[f.test])


def test_folds_are_reproducible() -> None:
    a, b = make_folds("subject", SUBJECTS, 5, 7), make_folds("subject", SUBJECTS, 5, 7)
    assert [f.test_subjects for f in a] == [f.test_subjects for f in b]
    c = make_folds("subject", SUBJECTS, 5, 8)
    assert [f.test_subjects for f in a] != [f.test_subjects for f in c]


def test_bad_protocols() -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        make_folds("random", SUBJECTS, 5, 0)
    with pytest.raises(ValueError, match="folds need"):
        make_folds("subject", SUBJECTS, 11, 0)


def test_threshold_rule() -> None:
    r = np.array([[5.0, 5.1], [7.0, 2.0]])
    y, rule = binarise(r, np.array([1, 1]))
    assert y.tolist() == [[0, 1], [1, 0]] and rule == {"kind": "threshold", "value": 5.0}


def test_kmeans_rule_adapts_per_subject() -> None:
    # subject 1 rates everything high: 6-ish vs 8-ish; subject 2 low: 2-ish vs 4-ish
    r = np.array(
        [
            [6.0, 6.1],
            [6.2, 8.0],
            [8.1, 6.0],
            [7.9, 8.2],
            [2.0, 2.2],
            [2.1, 4.0],
            [4.1, 2.0],
            [3.9, 4.2],
        ]
    )
    s = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    y, rule = binarise(r, s, "kmeans")
    assert y[:, 0].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert rule["per_subject"]["1"][0] == pytest.approx(7.05)
    assert kmeans_midpoint(np.array([3.0, 3.0])) is None


# RTCAN-1D's rule. Subject 1's pairs, worked by hand: the farthest pair is (2, 1)–(5, 9)
# (9 + 64 = 73), so k-means starts there; (9, 2) is nearer (2, 1) (50 < 65) and (3, 8) nearer
# (5, 9) (5 < 50); centres (5.5, 1.5) and (4, 8.5), which keep their points: midpoint (4.75, 5).
# 1-D on valence alone [2, 3, 5, 9]: centres 10/3 and 9, midpoint 37/6 ≈ 6.1667.
PAIRS = np.array([[2.0, 1.0], [9.0, 2.0], [3.0, 8.0], [5.0, 9.0]])


def test_kmeans2d_thresholds_are_the_midpoint_of_the_2d_centres() -> None:
    y, rule = binarise(PAIRS, np.ones(4, dtype=np.int64), "kmeans2d")
    assert rule["kind"] == "kmeans2d"
    assert rule["per_subject"]["1"] == pytest.approx([4.75, 5.0])
    assert y.tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]
    assert kmeans2d_midpoint(PAIRS) == pytest.approx((4.75, 5.0))


def test_kmeans2d_differs_from_the_per_dimension_rule() -> None:
    y1, rule1 = binarise(PAIRS, np.ones(4, dtype=np.int64), "kmeans")
    assert rule1["per_subject"]["1"] == pytest.approx([37 / 6, 5.0], abs=1e-4)
    y2, _ = binarise(PAIRS, np.ones(4, dtype=np.int64), "kmeans2d")
    # the valence of (5, 9) is high in the plane (> 4.75) but low on its own (< 6.17)
    assert y1[3, 0] == 0 and y2[3, 0] == 1
    assert (y1[:, 1] == y2[:, 1]).all()


def test_kmeans2d_per_subject_one_rating_per_trial_and_fallbacks() -> None:
    # subject 1: PAIRS, each trial twice (windows); subject 2: all equal → the fixed threshold;
    # subject 3: arousal all equal → its arousal falls back, valence splits at the centres' mid
    ratings = np.concatenate(
        [np.repeat(PAIRS, 2, axis=0), np.full((2, 2), 6.0), [[1.0, 7.0], [3.0, 7.0]]]
    )
    subjects = np.array([1] * 8 + [2, 2, 3, 3])
    trials = np.array([0, 0, 1, 1, 2, 2, 3, 3, 0, 1, 0, 1])
    y, rule = binarise(ratings, subjects, "kmeans2d", threshold=5.0, trials=trials)
    assert rule["per_subject"]["1"] == pytest.approx([4.75, 5.0])
    assert rule["per_subject"]["2"] == [5.0, 5.0]
    assert rule["per_subject"]["3"] == pytest.approx([2.0, 5.0])
    assert y[8:].tolist() == [[1, 1], [1, 1], [0, 1], [1, 1]]
    assert kmeans2d_midpoint(np.full((3, 2), 4.0)) is None


def test_random70_is_one_leaky_split_of_the_windows() -> None:
    (fold,) = make_folds("random70", SUBJECTS, 5, seed=2)  # --folds does not apply
    assert len(fold.test) == 90  # 30 % of 300
    sides = [set(fold.train.tolist()), set(fold.val.tolist()), set(fold.test.tolist())]
    assert not sides[0] & sides[2] and not sides[1] & sides[2] and not sides[0] & sides[1]
    assert sides[0] | sides[1] | sides[2] == set(range(len(SUBJECTS)))
    assert set(fold.train_subjects) & set(fold.test_subjects)  # leaky: subjects on both sides
    (again,) = make_folds("random70", SUBJECTS, 5, seed=2)
    assert (again.test == fold.test).all()
    assert "random70" in LEAKY_PROTOCOLS and "leaky" in PROTOCOLS["random70"]
    with pytest.raises(ValueError, match="too few"):
        make_folds("random70", np.array([1, 1]), 2, seed=0)


def test_segment_protocol_is_k_fold_over_windows_with_ten_folds() -> None:
    folds = make_folds("segment", SUBJECTS, 10, seed=0)
    assert len(folds) == 10 and all(len(f.test) == 30 for f in folds)
    assert "segment" in LEAKY_PROTOCOLS
