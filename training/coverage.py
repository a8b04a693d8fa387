"""Accuracy of an exported grid model against EEG montage coverage, on held-out subjects.

:func:`evaluate_coverage` runs a model folder (``model.onnx`` + ``model.json``, through ONNX
Runtime as the service runs it) on the windows of subjects it was not trained on, with its EEG
grid reduced to partial montages:

- at each coverage c (default 1, 0.5, 0.25, 0.125) a random subset of round(c · n) of the
  model's n EEG electrodes, one subset per held-out subject (a session keeps its headset), drawn
  ``repeats`` times; the cells of the other electrodes are 0, as the service leaves the cells of
  absent electrodes (docs/shipped-models.md);
- named montages: a four-electrode headband. Its positions (TP9, AF7, AF8, TP10) are not in the
  DEAP-format data, so the evaluation uses the nearest DEAP electrodes (:data:`HEADBAND_PROXY`)
  twice: on their own cells (what a model trained on the DEAP montage can do with four lateral
  electrodes) and moved onto the headband's own cells (where the service puts a real headband's
  channels: cells the model never saw filled in training);
- optional streams (a contract's ``optional_streams``, e.g. the lab CNN-LSTM's AUX): the full
  montage and the headband stand-in once more with each optional stream absent, its columns
  zeros before normalisation — exactly what the service's Preprocessor feeds a session without
  that stream (``tests/streaming/preprocess/test_optional_streams.py`` shows the other columns
  are unchanged).

Metrics per dimension (valence, arousal): accuracy and balanced accuracy (0.5 for a constant
answer), mean ± SD over the repeats; the held-out class balance is in the document too. The
figures are those of the data given: on ``affectstream synth`` data they are synthetic-data
figures, never DEAP results, and the document says so. Whether the data is synthetic comes from
the data folder's marker file; whether the *model* was trained on synthetic data comes from the
model itself (its contract and ONNX metadata, :attr:`ModelRunner.synthetic`), so a copy of the
data that lost its marker still yields a document that says the model is a synthetic-data one.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from affectstream.models.contract import InputContract, ModelContract
from affectstream.models.runner import ModelRunner
from affectstream.streaming.formats.deap import subject_number
from affectstream.streaming.preprocess.montage import grid_cell
from affectstream.streaming.preprocess.pipeline import column_streams
from affectstream.streaming.preprocess.spec import FeatureKind
from affectstream.streaming.synthetic.deap import SYNTHETIC_MARKER, is_synthetic_deap
from affectstream.training.augment import electrode_cells, montage_mask
from affectstream.training.datasets.deap import deap_windows
from affectstream.training.labels import binarise

__all__ = [
    "COVERAGES",
    "COVERAGE_FILE",
    "HEADBAND",
    "HEADBAND_PROXY",
    "coverage_markdown",
    "evaluate_coverage",
    "with_coverage_section",
]

COVERAGE_FILE = "coverage.json"
COVERAGES = (1.0, 0.5, 0.25, 0.125)
HEADBAND = ("TP9", "AF7", "AF8", "TP10")
"""A four-electrode consumer headband's positions (10-10)."""
HEADBAND_PROXY = {"TP9": "T7", "AF7": "F7", "AF8": "F8", "TP10": "T8"}
"""The DEAP electrode standing in for each headband position. AF7 lies on the outer ring of the
10-10 system halfway between Fp1 and F7, TP9 below the ring halfway between T7 and P7; the ties
go to the lateral (F7) and temporal (T7) electrode, like the headband's own lateral placement."""

_START, _END = "<!-- coverage:start -->", "<!-- coverage:end -->"


def _grid_input(contract: ModelContract) -> InputContract:
    grids = [i for i in contract.inputs if i.feature.kind == FeatureKind.EEG_GRID]
    if len(grids) != 1:
        raise ValueError(f"{contract.id}: {len(grids)} eeg_grid inputs; a grid model has one")
    return grids[0]


def _scores(y: NDArray[np.int64], probs: NDArray[np.float32]) -> dict[str, dict[str, float]]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    pred = (probs > 0.5).astype(np.int64)
    return {
        dim: {
            "accuracy": float(accuracy_score(y[:, k], pred[:, k])),
            "balanced_accuracy": float(balanced_accuracy_score(y[:, k], pred[:, k])),
        }
        for k, dim in enumerate(("valence", "arousal"))
    }


def _summary(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    return {
        dim: {
            m: {
                "mean": float(np.mean([r[dim][m] for r in runs])),
                "std": float(np.std([r[dim][m] for r in runs])),
            }
            for m in ("accuracy", "balanced_accuracy")
        }
        for dim in ("valence", "arousal")
    }


def evaluate_coverage(
    model_dir: Path,
    files: Sequence[Path],
    *,
    coverages: Sequence[float] = COVERAGES,
    repeats: int = 5,
    seed: int = 0,
    stride_s: float = 2.0,
    batch: int = 512,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Accuracy of the grid model in ``model_dir`` against EEG coverage on ``files`` (DEAP-format
    subject files the model was not trained on). Returns the document that
    :func:`coverage_markdown` renders (module docstring)."""
    runner = ModelRunner(Path(model_dir), providers=["CPUExecutionProvider"])
    contract = runner.contract
    grid = _grid_input(contract)
    labels = [c.label for c in grid.feature.channels]
    cells = electrode_cells(grid.feature)
    rule = contract.label_rule
    if rule.get("kind") != "threshold":
        raise ValueError(f"{contract.id}: label rule {rule}; the coverage curve needs a threshold")
    ws = deap_windows(files, contract.preprocess_spec(), stride_s)
    y, _ = binarise(ws.ratings[:, :2], ws.subjects, "threshold", float(rule["value"]))
    x = {i.name: i.normalise(ws.X[i.name]) for i in contract.inputs}
    subjects = np.unique(ws.subjects)

    def run(
        masks: dict[int, NDArray[np.float32]], inputs: dict[str, NDArray[np.float32]] | None = None
    ) -> dict[str, dict[str, float]]:
        feed = x if inputs is None else inputs
        grid_x = feed[grid.name] * np.stack([masks[int(s)] for s in ws.subjects])[:, None]
        probs = np.concatenate(
            [
                runner.run(
                    {n: (grid_x if n == grid.name else v)[a : a + batch] for n, v in feed.items()}
                )
                for a in range(0, len(ws), batch)
            ]
        )
        return _scores(y, probs)

    rng = np.random.default_rng(seed)
    curve: list[dict[str, Any]] = []
    for c in coverages:
        k = max(1, round(c * len(labels)))
        runs = []
        for _ in range(1 if k == len(labels) else repeats):
            masks = {
                int(s): montage_mask(grid.feature, rng.choice(labels, k, replace=False))
                for s in subjects
            }
            runs.append(run(masks))
        curve.append(
            {
                "coverage": k / len(labels),
                "electrodes": k,
                "repeats": len(runs),
                "metrics": _summary(runs),
                "runs": runs,
            }
        )
        if progress is not None:
            progress(f"coverage {k}/{len(labels)}: {_line(curve[-1]['metrics'])}")
    named: list[dict[str, Any]] = []
    proxy = [HEADBAND_PROXY[h] for h in HEADBAND]
    if all(p in labels for p in proxy):
        own = montage_mask(grid.feature, proxy)
        named.append(
            {
                "name": "headband proxy on DEAP cells",
                "electrodes": proxy,
                "coverage": len(proxy) / len(labels),
                "cells": "the DEAP electrodes' own cells",
                "metrics": run(dict.fromkeys((int(s) for s in subjects), own)),
            }
        )
        try:
            target = [grid_cell(h) for h in HEADBAND]
        except ValueError:  # the montage has no 10-10 cells for the headband yet
            target = []
        if target:
            named.append(
                {
                    "name": "headband proxy on the headband's cells",
                    "electrodes": proxy,
                    "placed_as": list(HEADBAND),
                    "coverage": len(proxy) / len(labels),
                    "cells": {h: list(cell) for h, cell in zip(HEADBAND, target, strict=True)},
                    "metrics": _moved(runner, x, grid, cells, labels, proxy, target, y, batch),
                }
            )
    full = dict.fromkeys((int(s) for s in subjects), montage_mask(grid.feature, labels))
    headband = (
        dict.fromkeys((int(s) for s in subjects), montage_mask(grid.feature, proxy))
        if all(p in labels for p in proxy)
        else None
    )
    for stream in contract.preprocess_spec().optional_streams:
        without = {i.name: i.normalise(_without(ws.X[i.name], i, stream)) for i in contract.inputs}
        montages = [("all 32", labels, full)]
        if headband is not None:
            montages.append(("headband proxy on DEAP cells", proxy, headband))
        for what, electrodes, masks in montages:
            named.append(
                {
                    "name": f"{what}, without {stream}",
                    "electrodes": list(electrodes),
                    "coverage": len(electrodes) / len(labels),
                    "cells": "the DEAP electrodes' own cells",
                    "without_stream": stream,
                    "metrics": run(masks, without),
                }
            )
    for entry in named:
        if progress is not None:
            progress(f"{entry['name']}: {_line(entry['metrics'])}")
    synthetic = bool(files) and is_synthetic_deap(files[0])  # sidecar or watermark
    marker = Path(files[0]).parent / SYNTHETIC_MARKER if files else None
    return {
        "model": contract.id,
        "model_synthetic": runner.synthetic,
        "input": grid.name,
        "n_electrodes": len(labels),
        "data": {
            "name": "synthetic DEAP-format data (affectstream synth)" if synthetic else "DEAP",
            "synthetic": synthetic,
            "generator": json.loads(marker.read_text())
            if marker is not None and marker.is_file()
            else None,
            "held_out_subjects": [int(s) for s in subjects],
            "files": [Path(f).name for f in files],
            "windows": len(ws),
            "stride_s": stride_s,
            "class_balance": {
                dim: {"high": int(y[:, k].sum()), "low": int(len(y) - y[:, k].sum())}
                for k, dim in enumerate(("valence", "arousal"))
            },
        },
        "method": "per coverage, one random subset of round(coverage × n) electrodes per held-out "
        "subject, drawn `repeats` times; absent electrodes' cells are 0; mean ± SD over the "
        "repeats of the metrics over all held-out windows; ONNX Runtime on the exported model",
        "headband_note": "TP9, AF7, AF8, TP10 are not in the DEAP-format data: the nearest DEAP "
        f"electrodes stand in ({', '.join(f'{h} → {p}' for h, p in HEADBAND_PROXY.items())})",
        "seed": seed,
        "curve": curve,
        "named_montages": named,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _without(x: NDArray[Any], inp: InputContract, stream: str) -> NDArray[Any]:
    """An input's raw features with the channels of ``stream`` zero (as served without it)."""
    if stream not in inp.feature.optional_streams:
        return x
    layout = column_streams(inp.feature)
    out = np.array(x, copy=True)
    out[..., [k for k, s in enumerate(layout) if s == stream]] = 0.0
    return out


def _moved(
    runner: ModelRunner,
    x: dict[str, NDArray[np.float32]],
    grid: InputContract,
    cells: list[tuple[int, int]],
    labels: list[str],
    proxy: list[str],
    target: list[tuple[int, int]],
    y: NDArray[np.int64],
    batch: int,
) -> dict[str, dict[str, float]]:
    """Metrics with the ``proxy`` electrodes' values moved onto the ``target`` cells, every other
    cell 0."""
    src = x[grid.name]
    moved = np.zeros_like(src)
    for name, (r, c) in zip(proxy, target, strict=True):
        sr, sc = cells[labels.index(name)]
        moved[:, :, r, c] = src[:, :, sr, sc]
    probs = np.concatenate(
        [
            runner.run({n: (moved if n == grid.name else v)[a : a + batch] for n, v in x.items()})
            for a in range(0, len(moved), batch)
        ]
    )
    return _scores(y, probs)


def _line(m: dict[str, dict[str, Any]]) -> str:
    def fmt(v: Any) -> str:
        return f"{v['mean']:.3f}" if isinstance(v, dict) else f"{v:.3f}"

    return ", ".join(
        f"{d} acc {fmt(m[d]['accuracy'])} bal {fmt(m[d]['balanced_accuracy'])}"
        for d in ("valence", "arousal")
    )


def _cell(v: Any) -> str:
    if isinstance(v, dict):
        return f"{v['mean']:.3f} ± {v['std']:.3f}" if v["std"] > 0 else f"{v['mean']:.3f}"
    return f"{float(v):.3f}"


def coverage_markdown(doc: dict[str, Any]) -> str:
    """The measured curve as a Markdown section (labelled synthetic when the data is)."""
    data = doc["data"]
    gen = data.get("generator") or {}
    model_note = (
        " The data folder has no synthetic-data marker, but the model was trained on synthetic "
        "data (its contract and ONNX metadata say so): these are not real-data figures."
        if doc.get("model_synthetic") and not data["synthetic"]
        else ""
    )
    what = (
        "**synthetic DEAP-format data** (`affectstream synth --subjects "
        f"{gen.get('subjects')} --trials {gen.get('trials')} --seed {gen.get('seed')}`), not DEAP"
        if data["synthetic"]
        else "DEAP"
    )
    lines = [
        "## Partial EEG montages: accuracy against coverage (measured)",
        "",
        f"Held-out subjects {', '.join(map(str, data['held_out_subjects']))} of {what}: "
        f"{data['windows']} windows (one every {data['stride_s']:g} s), never seen in training. "
        f"Coverage = fraction of the {doc['n_electrodes']} EEG electrodes present; the absent "
        "ones' grid cells are 0. One random montage per subject, mean ± SD over "
        f"{max(e['repeats'] for e in doc['curve'])} draws; ONNX Runtime on this folder's model. "
        "Balanced accuracy is 0.5 for a constant answer. Class balance (high/low windows): "
        + ", ".join(f"{d} {b['high']}/{b['low']}" for d, b in data["class_balance"].items())
        + "."
        + model_note,
        "",
        "| montage | electrodes | coverage | valence acc | valence bal. acc | arousal acc | "
        "arousal bal. acc |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in doc["curve"]:
        m = e["metrics"]
        lines.append(
            f"| random | {e['electrodes']} | {e['coverage']:.3f} | "
            f"{_cell(m['valence']['accuracy'])} | {_cell(m['valence']['balanced_accuracy'])} | "
            f"{_cell(m['arousal']['accuracy'])} | {_cell(m['arousal']['balanced_accuracy'])} |"
        )
    for e in doc.get("named_montages", []):
        m = e["metrics"]
        where = "on " + ", ".join(e["placed_as"]) + " cells" if "placed_as" in e else "own cells"
        names = ", ".join(e["electrodes"]) if len(e["electrodes"]) <= 8 else "all"
        lines.append(
            f"| {e['name']} | {names} ({where}) | {e['coverage']:.3f} | "
            f"{_cell(m['valence']['accuracy'])} | {_cell(m['valence']['balanced_accuracy'])} | "
            f"{_cell(m['arousal']['accuracy'])} | {_cell(m['arousal']['balanced_accuracy'])} |"
        )
    lines += ["", doc["headband_note"] + "."]
    absent = sorted(
        {e["without_stream"] for e in doc.get("named_montages", []) if "without_stream" in e}
    )
    if absent:
        lines += [
            "Rows *without* a stream: the model may use "
            + ", ".join(absent)
            + " (`optional_streams`); there its channels are zeros before normalisation, exactly "
            "what the service feeds a session that has no such stream.",
        ]
    if any("placed_as" in e for e in doc.get("named_montages", [])):
        lines += [
            "The headband's own cells never hold an electrode in the DEAP-format training data, "
            "so the last row measures what the model makes of a real headband's channels placed "
            "where the service places them; serving a headband well needs training data with "
            "electrodes on those cells.",
        ]
    lines += ["", f"Data: `training/{COVERAGE_FILE}`."]
    return "\n".join(lines)


def with_coverage_section(card: str, doc: dict[str, Any]) -> str:
    """``card`` (a model card) with the coverage section put in, or replaced if it has one."""
    block = f"{_START}\n{coverage_markdown(doc)}\n{_END}"
    if _START in card and _END in card:
        head, rest = card.split(_START, 1)
        return head + block + rest.split(_END, 1)[1]
    marker = "\n## Architecture and choices"
    if marker in card:
        head, tail = card.split(marker, 1)
        return head.rstrip("\n") + "\n\n" + block + "\n" + marker + tail
    return card.rstrip("\n") + "\n\n" + block + "\n"


def held_out_files(data_dir: Path, subjects: Sequence[int]) -> list[Path]:
    """``sNN.dat`` files of ``subjects`` in ``data_dir``; ``FileNotFoundError`` naming a missing
    one."""
    files = []
    for s in subjects:
        f = Path(data_dir) / f"s{s:02d}.dat"
        if not f.is_file() or subject_number(f) != s:
            raise FileNotFoundError(f"{f}: no such subject file")
        files.append(f)
    return files
