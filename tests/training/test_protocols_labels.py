"""Evaluation protocols keep their promise; label rules."""

from __future__ import annotations

import numpy as np
import pytest

from affectstream.training.labels import binarise, kmeans_midpoint
from affectstream.training.protocols import make_folds

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
