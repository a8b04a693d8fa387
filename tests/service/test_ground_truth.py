"""Ground truth from markers: the rating scale travels in the marker, no dataset is special."""

from __future__ import annotations

from typing import Any

import pytest

from affectstream.service.sessions import Score, marker_ratings


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"valence": 7.5, "arousal": 2.0, "rating_scale": [1, 9]}, (7.5, 2.0, 5.0)),
        ({"valence": 0.61, "arousal": 0.4, "rating_scale": [0, 1]}, (0.61, 0.4, 0.5)),
        ({"valence": 30, "arousal": -10, "rating_scale": [-50, 50]}, (30.0, -10.0, 0.0)),
    ],
)
def test_midpoint_comes_from_the_marker_scale(
    payload: dict[str, Any], expected: tuple[float, float, float]
) -> None:
    assert marker_ratings(payload) == pytest.approx(expected)


@pytest.mark.parametrize(
    "payload",
    [
        {"valence": 7.5, "arousal": 2.0},  # no scale: no ground truth (no dataset guess)
        {"valence": 7.5, "arousal": 2.0, "rating_scale": [9, 1]},  # inverted
        {"valence": 7.5, "arousal": 2.0, "rating_scale": [1]},  # not a pair
        {"valence": 7.5, "arousal": 2.0, "rating_scale": "1-9"},
        {"valence": 10.0, "arousal": 2.0, "rating_scale": [1, 9]},  # outside the scale
        {"valence": float("nan"), "arousal": 2.0, "rating_scale": [1, 9]},
        {"arousal": 2.0, "rating_scale": [1, 9]},
    ],
)
def test_incomplete_or_inconsistent_ratings_give_no_ground_truth(payload: dict[str, Any]) -> None:
    assert marker_ratings(payload) is None


def test_score_compares_with_the_given_midpoint() -> None:
    score = Score()
    score.add((0.9, 0.1), (0.61, 0.4), 0.5)  # PMEmo-like: both right
    score.add((0.9, 0.9), (6.0, 4.0), 5.0)  # DEAP-like: valence right, arousal wrong
    assert score.as_dict() == {"windows": 2, "valence_accuracy": 1.0, "arousal_accuracy": 0.5}
