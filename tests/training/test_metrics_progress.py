"""Training metrics from scikit-learn (balanced accuracy and ROC-AUC beside accuracy and F1) in the
fold results, the summary and the report files; ROC-AUC of a one-class fold is null, not a number;
the progress bars go to stderr only when it is a terminal, and never with ``--quiet``."""

from __future__ import annotations

import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

pytest.importorskip("torch")

from affectstream.service.cli import main
from affectstream.training.compare import compare_runs
from affectstream.training.protocols import Fold
from affectstream.training.report import write_report
from affectstream.training.train import (
    METRICS,
    FoldResult,
    binary_metrics,
    progress_bar,
    summarise,
)

# A test fold worked out by hand: 4 high windows, 6 low ones; predicted probability of high below.
Y_TRUE = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
Y_PROB = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.55, 0.4, 0.2, 0.1, 0.05])
Y_PRED = (Y_PROB > 0.5).astype(np.int64)
# tp 3 (0.9, 0.8, 0.7), fn 1 (0.3), fp 2 (0.6, 0.55), tn 4
ACCURACY = 7 / 10
BALANCED = (3 / 4 + 4 / 6) / 2  # mean of the recalls of high and low = 17/24
F1 = 2 * 3 / (2 * 3 + 2 + 1)
# of the 4 × 6 (high, low) pairs, the high window has the higher probability in 6 + 6 + 6 + 3
ROC_AUC = 21 / 24


def _old_metrics(y_true: NDArray[np.int64], y_pred: NDArray[np.int64]) -> dict[str, object]:
    """The hand-written metrics training used before scikit-learn (F1 of the high class)."""
    tp = int(((y_pred == 1) & (y_true == 1)).sum())
    tn = int(((y_pred == 0) & (y_true == 0)).sum())
    fp = int(((y_pred == 1) & (y_true == 0)).sum())
    fn = int(((y_pred == 0) & (y_true == 1)).sum())
    n = max(1, tp + tn + fp + fn)
    f1 = 2 * tp / max(1, 2 * tp + fp + fn)
    return {"accuracy": (tp + tn) / n, "f1": f1, "confusion": [[tn, fp], [fn, tp]]}


def test_metrics_of_a_fold_worked_out_by_hand() -> None:
    m = binary_metrics(Y_TRUE, Y_PRED, Y_PROB)
    assert m["confusion"] == [[4, 2], [1, 3]]
    assert m["accuracy"] == pytest.approx(ACCURACY, abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(BALANCED, abs=1e-12)
    assert m["f1"] == pytest.approx(F1, abs=1e-12)
    assert m["roc_auc"] == pytest.approx(ROC_AUC, abs=1e-12)
    assert set(m) == {*METRICS, "confusion"}


@pytest.mark.parametrize("seed", range(6))
def test_accuracy_f1_and_confusion_equal_the_former_hand_written_ones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    y_true = rng.integers(0, 2, n)
    y_pred = rng.integers(0, 2, n)
    if seed == 4:  # nothing high, nothing predicted high: F1 0 as before
        y_true[:], y_pred[:] = 0, 0
    if seed == 5:  # everything high and predicted high
        y_true[:], y_pred[:] = 1, 1
    m = binary_metrics(y_true, y_pred, rng.random(n))
    old = _old_metrics(y_true, y_pred)
    assert m["accuracy"] == old["accuracy"]
    assert m["f1"] == old["f1"]
    assert m["confusion"] == old["confusion"]


def test_one_class_fold_has_no_roc_auc_and_no_warning() -> None:
    y_true = np.ones(5, dtype=np.int64)
    y_pred = np.array([1, 1, 0, 1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = binary_metrics(y_true, y_pred, np.array([0.9, 0.8, 0.2, 0.7, 0.4]))
    assert m["roc_auc"] is None
    assert m["balanced_accuracy"] == pytest.approx(3 / 5)  # the recall of the only class
    assert m["accuracy"] == pytest.approx(3 / 5)
    with warnings.catch_warnings():  # one class, every window right
        warnings.simplefilter("error")
        m = binary_metrics(y_true, y_true, np.full(5, 0.9))
    assert m["roc_auc"] is None and m["balanced_accuracy"] == m["accuracy"] == 1.0


def test_no_test_windows_is_an_error_not_a_figure() -> None:
    empty = np.zeros(0, dtype=np.int64)
    with pytest.raises(ValueError, match="no test windows"):
        binary_metrics(empty, empty, np.zeros(0))


def _fold(k: int, test: list[int]) -> Fold:
    return Fold(
        k,
        np.array([9], dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        np.array(test, dtype=np.int64),
        (9,),
        (),
        tuple(test),
    )


def _results() -> list[FoldResult]:
    """Fold 0: the hand-made fold for both dimensions; fold 1: valence all high (no ROC-AUC)."""
    one_class = (np.ones(4, dtype=np.int64), np.array([1, 0, 1, 1]), np.array([0.7, 0.4, 0.8, 0.9]))
    other = (np.array([0, 1, 0, 1]), np.array([0, 1, 1, 1]), np.array([0.1, 0.9, 0.6, 0.2]))
    results = []
    for k in range(2):
        dims = (
            {"valence": (Y_TRUE, Y_PRED, Y_PROB), "arousal": (Y_TRUE, Y_PRED, Y_PROB)}
            if k == 0
            else {"valence": one_class, "arousal": other}
        )
        metrics, confusion = {}, {}
        for dim, (t, p, q) in dims.items():
            m = binary_metrics(t, p, q)
            confusion[dim] = m.pop("confusion")
            metrics[dim] = m
        history = {"train_loss": [0.7, 0.6], "val_loss": [], "val_accuracy": []}
        results.append(FoldResult(_fold(k, [k]), metrics, confusion, history, 2))
    return results


def test_summary_leaves_an_undefined_roc_auc_out_and_says_which_fold() -> None:
    s = summarise(_results())
    # arousal fold 1: confusion [[1, 1], [0, 2]] → recalls 1/2 and 1; AUC: 0.9 > 0.1, 0.6;
    # 0.2 > 0.1, < 0.6 → 3 of 4 pairs
    arousal_bal = [BALANCED, (1 / 2 + 1) / 2]
    assert s["arousal"]["balanced_accuracy"]["mean"] == pytest.approx(np.mean(arousal_bal))
    assert s["arousal"]["balanced_accuracy"]["std"] == pytest.approx(np.std(arousal_bal))
    assert s["arousal"]["roc_auc"]["mean"] == pytest.approx((ROC_AUC + 3 / 4) / 2)
    assert s["arousal"]["roc_auc"]["undefined_folds"] == []
    # valence fold 1 has one class: its ROC-AUC is left out, not replaced by a number
    assert s["valence"]["roc_auc"]["mean"] == pytest.approx(ROC_AUC)
    assert s["valence"]["roc_auc"]["std"] == 0.0
    assert s["valence"]["roc_auc"]["undefined_folds"] == [1]
    assert s["valence"]["balanced_accuracy"]["mean"] == pytest.approx((BALANCED + 3 / 4) / 2)
    assert s["valence"]["accuracy"]["mean"] == pytest.approx((ACCURACY + 3 / 4) / 2)


DATASET = {"name": "hand-made", "subjects": 3, "windows": 12, "synthetic": True, "stride_s": 2.0}
CONFIG = {"folds": 2, "epochs": 2, "patience": 1, "batch_size": 8, "lr": 1e-3, "seed": 0}
BALANCE = {"valence": {"high": 8, "low": 4}, "arousal": {"high": 6, "low": 6}}


def test_report_files_hold_balanced_accuracy_and_roc_auc(tmp_path: Path) -> None:
    results = _results()
    rule = {"kind": "threshold", "value": 5.0}
    doc = write_report(
        tmp_path,
        model="bimodal-lstm",
        protocol="subject",
        results=results,
        label_rule=rule,
        dataset=DATASET,
        config=CONFIG,
        class_balance=BALANCE,
    )
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(doc))
    fold0, fold1 = on_disk["folds"]
    assert fold0["metrics"]["valence"]["balanced_accuracy"] == pytest.approx(BALANCED)
    assert fold0["metrics"]["valence"]["roc_auc"] == pytest.approx(ROC_AUC)
    assert fold1["metrics"]["valence"]["roc_auc"] is None  # null in the JSON
    assert '"roc_auc": null' in (tmp_path / "report.json").read_text()
    assert on_disk["summary"]["valence"]["roc_auc"]["undefined_folds"] == [1]
    md = (tmp_path / "report.md").read_text()
    assert "| dimension | accuracy | balanced accuracy | F1 | ROC-AUC |" in md
    assert f"{ROC_AUC:.3f} ± 0.000 (without 1 fold)" in md
    assert "ROC-AUC undefined (test windows of one class) in valence: fold 1" in md
    assert "| n/a |" in md  # fold 1's valence ROC-AUC in the per-fold table

    # the comparison of runs carries them too
    other = tmp_path / "again"
    write_report(
        other,
        model="bimodal-lstm",
        protocol="segment",
        results=results,
        label_rule=rule,
        dataset=DATASET,
        config=CONFIG,
        class_balance=BALANCE,
    )
    cmp = compare_runs([tmp_path, other], tmp_path / "cmp")
    assert cmp["runs"][0]["summary"]["valence"]["balanced_accuracy"]["mean"] == pytest.approx(
        (BALANCED + 3 / 4) / 2
    )
    cmp_md = (tmp_path / "cmp" / "report.md").read_text()
    assert "| valence balanced accuracy | valence ROC-AUC |" in cmp_md
    assert "valence: fold 1" in cmp_md


# ------------------------------------------------------------------------------ progress bars


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    with progress_bar(3, "folds", "fold") as bar:
        assert bar.disable
        bar.update()
    assert captured.getvalue() == ""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress_bar(3, "folds", "fold") as bar:
        assert not bar.disable
        bar.update()
    out = terminal.getvalue()
    assert "folds" in out and "1/3" in out and "<" in out  # count and elapsed<remaining (ETA)
    with progress_bar(3, "folds", "fold", enabled=False) as bar:
        assert bar.disable


@pytest.fixture(scope="module")
def tiny_deap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from affectstream.streaming.synthetic.deap import write_synthetic_deap

    out = tmp_path_factory.mktemp("tiny-deap-progress")
    write_synthetic_deap(out, n_subjects=2, n_trials=2, seed=5)
    return out


def _train(data: Path, out: Path, *extra: str) -> int:
    args = ["train", "--data", str(data), "--model", "bimodal-lstm", "--folds", "2"]
    args += ["--epochs", "1", "--stride", "8", "--cv-only", "--out", str(out), *extra]
    return main(args)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_training_progress_bars_and_quiet(
    tiny_deap: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # captured stderr is no terminal: no bar; the per-fold lines and the results on stdout
    assert _train(tiny_deap, tmp_path / "a") == 0
    out, err = capsys.readouterr()
    assert "%|" not in err and "epoch" not in err
    assert "fold 1/2 done in" in out and " bal acc " in out and " auc " in out
    assert out.splitlines()[-1] == json.dumps({"report": str(tmp_path / "a" / "report.json")})
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert "quiet" not in report["config"]
    for fold in report["folds"]:
        for dim in ("valence", "arousal"):
            assert set(fold["metrics"][dim]) == set(METRICS)

    # on a terminal: the preprocessing, fold and epoch bars on stderr
    terminal = _Terminal()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stderr", terminal)
        assert _train(tiny_deap, tmp_path / "b") == 0
    bars = terminal.getvalue()
    for text in ("preprocessing", "fold 1/2", "fold 2/2 epochs", "subject/s", "epoch"):
        assert text in bars, text
    assert "fold 2/2 done in" in capsys.readouterr().out

    # --quiet: neither the bars (even on a terminal) nor the per-fold lines
    terminal = _Terminal()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stderr", terminal)
        assert _train(tiny_deap, tmp_path / "c", "--quiet") == 0
    assert terminal.getvalue() == ""
    out = capsys.readouterr().out
    assert "done in" not in out and "report:" in out
    same = [json.loads((tmp_path / r / "report.json").read_text())["summary"] for r in "abc"]
    assert same[0] == same[1] == same[2]  # the bars change nothing in the figures
