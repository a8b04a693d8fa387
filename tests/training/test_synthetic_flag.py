"""The coverage document takes the model's synthetic flag from the model, not only from the data
folder's marker file."""

from __future__ import annotations

import json
from pathlib import Path

from affectstream.training.coverage import coverage_markdown

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo"


def test_unmarked_data_under_a_synthetic_model_is_not_called_real() -> None:
    doc = json.loads((ZOO / "cnn-lstm-lab" / "training" / "coverage.json").read_text())
    doc["data"] = {**doc["data"], "synthetic": False, "generator": None}  # the marker was lost
    doc["model_synthetic"] = False  # as far as this document knows
    assert "trained on synthetic data" not in coverage_markdown(doc)
    doc["model_synthetic"] = True
    assert "the model was trained on synthetic data" in coverage_markdown(doc)
    doc["data"]["synthetic"] = True
    assert "has no synthetic-data marker" not in coverage_markdown(doc)
