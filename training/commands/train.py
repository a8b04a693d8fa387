"""Train a model on DEAP (or synthetic DEAP-format data) with an honest evaluation protocol.

``--dataset pmemo`` trains on a PMEmo folder (or synthetic PMEmo-layout data) instead: RTCAN-1D on
EDA (``rtcan1d``), on EDA + the song's music features (``rtcan1d-music``), or on the music alone
(``music-mlp``), under the subject-independent (default) or the song-independent (``--protocol
song``) split. ``--compare RUN [RUN …] --out DIR`` writes one side-by-side report of finished runs.

Paper-faithful options (training/options.py, training/tasks.py), each recorded in the report
(``config["paper_options"]`` and a line in report.md): ``--baseline yang`` (Yang et al.'s
per-second baseline subtraction, computed the same way live and stored in the exported contract),
``--de-gamma-hi 50`` (Tang et al.'s 31–50 Hz γ), ``--label-rule kmeans2d`` (RTCAN-1D's 2-D
k-means), ``--optimizer sgd-rtcan`` / ``sgd-rtcan-code`` (RTCAN-1D's SGD), ``--protocol random70``
(athar70's leaky 70/30 split) and ``--task quadrant`` / ``nine-class`` (the 4-class quadrant score
from the two binary outputs; athar70's 9-class task, offline only, never exported).

Progress goes to stderr as tqdm bars with ETA (preprocessing: one step per subject or song;
training: folds and epochs), shown only when stderr is a terminal; ``--quiet`` hides them and the
per-fold lines. Stdout keeps the results: window count, class balance, one line per fold, the
summary and a last line of JSON with the report's path.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from affectstream.training.augment import ElectrodeDropout
    from affectstream.training.datasets.windows import WindowSet
    from affectstream.training.presets import Preset
    from affectstream.training.train import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=["deap", "pmemo"], default="deap")
    parser.add_argument(
        "--data", type=Path, help="DEAP: folder with s01.dat … sNN.dat; PMEmo: the PMEmo2019 folder"
    )
    parser.add_argument(
        "--model",
        help="architecture name (see models/registry.py) or a preset variant of one "
        "(training/presets.py: cnn-lstm-lab, mlstm-fcn-periph, rtcan1d-eda-bvp)",
    )
    parser.add_argument(
        "--protocol",
        choices=["subject", "loso", "segment", "random70", "song"],
        default="subject",
        help="subject-independent k-fold (default), leave-one-subject-out, the leaky "
        "segment-level random k-fold (for comparison with papers: --folds 10 is the sources' "
        "10-fold over segments), the leaky random 70/30 window split (athar70), or (PMEmo) "
        "song-independent k-fold: no song in both train and test",
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--epochs", type=int, default=None, help="default 30 (sgd-rtcan-code: 300, as its source)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: the optimiser's (adam 64)"
    )
    parser.add_argument("--lr", type=float, default=None, help="default: the optimiser's")
    parser.add_argument(
        "--weight-decay", type=float, default=None, help="default: the optimiser's (adam 1e-4)"
    )
    parser.add_argument(
        "--optimizer",
        choices=["adam", "sgd-rtcan", "sgd-rtcan-code"],
        default="adam",
        help="adam (default: lr 1e-3, weight decay 1e-4, batch 64); sgd-rtcan: RTCAN-1D's paper "
        "(SGD momentum 0.9, lr 1e-3 × 0.9 every 15 epochs, batch 256); sgd-rtcan-code: its "
        "public DEAP code (SGD momentum 0.9, lr 0.1, weight decay 1e-3, batch 300, 300 epochs)",
    )
    parser.add_argument(
        "--baseline",
        choices=["zscore", "yang"],
        default="zscore",
        help="zscore (default): each channel standardised by the 3 s calibration period; yang: "
        "Yang et al.'s DEAP correction, the period's mean 1 s chunk subtracted from every second "
        "(live: the session's first 3 s; stored in the exported contract)",
    )
    parser.add_argument(
        "--de-gamma-hi",
        type=float,
        choices=[45.0, 50.0],
        default=45.0,
        help="upper edge of the γ band of differential-entropy inputs: 45 Hz (default; DEAP's "
        "EEG is band-passed 4–45 Hz) or Tang et al.'s 50",
    )
    parser.add_argument(
        "--task",
        choices=["binary", "quadrant", "nine-class"],
        default="binary",
        help="binary (default); quadrant: also score the 4 valence-arousal quadrants from the two "
        "binary outputs (gupta-ayushi's task); nine-class: athar70's rounded 1–9 ratings with a "
        "9-class head per dimension, offline only (no final model, nothing to export)",
    )
    parser.add_argument("--patience", type=int, default=6, help="early-stopping patience, epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--label-rule",
        choices=["threshold", "kmeans", "kmeans2d"],
        default=None,
        help="fixed threshold; a per-subject k-means midpoint, 1-D per dimension (kmeans); or "
        "RTCAN-1D's rule, one 2-D k-means per subject on the (valence, arousal) pairs "
        "(kmeans2d) (default: threshold for DEAP, kmeans for PMEmo)",
    )
    parser.add_argument(
        "--label-threshold",
        type=float,
        default=None,
        help="the fixed threshold (and k-means fallback); default 5 for DEAP (1–9), 0.5 for PMEmo",
    )
    parser.add_argument("--subjects", type=int, default=None, help="use the first N subjects only")
    parser.add_argument("--songs", type=int, default=None, help="PMEmo: the first N songs only")
    parser.add_argument(
        "--ratings",
        choices=["auto", "per-subject", "song-mean"],
        default="auto",
        help="PMEmo: each subject's own rating (needs annotations/subject_static_annotations.csv; "
        "auto uses it when present) or the song's mean rating",
    )
    parser.add_argument(
        "--stride",
        type=float,
        default=None,
        help="seconds between training windows (default: preset)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="PMEmo: keep and reuse the windows there"
    )
    parser.add_argument(
        "--electrode-dropout",
        type=float,
        default=None,
        metavar="P",
        help="grid models: probability that a training window gets a random partial EEG montage "
        "(training/augment.py); 0 turns it off; default: the preset's (0.5 for cnn-lstm-lab, off "
        "for cnn-lstm)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument(
        "--cv-only",
        action="store_true",
        help="report the cross-validation only; no final model (e.g. a comparison protocol)",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        nargs="+",
        default=None,
        metavar="RUN",
        help="write one side-by-side report (--out) of these finished runs; trains nothing",
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory for the report")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars (shown on stderr only when it is a terminal) and no per-fold lines",
    )


def _bars(args: argparse.Namespace) -> bool | None:
    """Progress bars: never with ``--quiet``, else when stderr is a terminal (``None``)."""
    return False if args.quiet else None


def _error(message: str) -> int:
    print(f"affectstream train: error: {message}", file=sys.stderr)
    return 2


def command_line(args: argparse.Namespace, stride: float, label_rule: str, threshold: float) -> str:
    """The full command that repeats this run (every setting spelled out)."""
    parts = ["affectstream", "train", "--dataset", args.dataset, "--data", str(args.data)]
    parts += ["--model", args.model, "--protocol", args.protocol, "--folds", str(args.folds)]
    parts += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    parts += ["--lr", f"{args.lr:g}", "--patience", str(args.patience), "--seed", str(args.seed)]
    parts += ["--label-rule", label_rule, "--label-threshold", f"{threshold:g}"]
    parts += ["--stride", f"{stride:g}"]
    parts += ["--weight-decay", f"{args.weight_decay:g}", "--optimizer", args.optimizer]
    parts += ["--baseline", args.baseline, "--de-gamma-hi", f"{args.de_gamma_hi:g}"]
    parts += ["--task", args.task]
    if getattr(args, "electrode_dropout", None) is not None:
        parts += ["--electrode-dropout", f"{args.electrode_dropout:g}"]
    for flag, value in (("--subjects", args.subjects), ("--songs", args.songs)):
        if value is not None:
            parts += [flag, str(value)]
    if args.dataset == "pmemo":
        parts += ["--ratings", args.ratings]
        if args.cache_dir is not None:
            parts += ["--cache-dir", str(args.cache_dir)]
    if args.cv_only:
        parts.append("--cv-only")
    parts += ["--out", str(args.out)]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print(
            "affectstream train needs PyTorch: pip install 'affectstream[train]'", file=sys.stderr
        )
        return 2
    if args.compare:
        from affectstream.training.compare import compare_runs

        try:
            doc = compare_runs(args.compare, args.out)
        except (OSError, ValueError, KeyError) as e:
            return _error(str(e))
        print(f"comparison of {len(doc['runs'])} run(s): {args.out / 'report.md'}")
        return 0
    if args.data is None or args.model is None:
        return _error("--data and --model are required (or --compare RUN …)")
    from affectstream.models.registry import ARCHITECTURES, get
    from affectstream.training.labels import THRESHOLDS
    from affectstream.training.options import OPTIMIZERS, apply_preprocessing_options
    from affectstream.training.presets import architecture_of, preset
    from affectstream.training.protocols import STIMULUS_PROTOCOLS

    if args.protocol in STIMULUS_PROTOCOLS and args.dataset != "pmemo":
        return _error(f"--protocol {args.protocol} needs stimulus ids (--dataset pmemo)")
    try:
        # an architecture, or a preset variant of one (cnn-lstm-lab → cnn-lstm)
        arch = get(
            args.model if args.model in ARCHITECTURES else architecture_of(args.model, args.dataset)
        )
        if args.dataset != "pmemo" and any(i.kind == "stimulus_features" for i in arch.inputs):
            return _error(f"{args.model} reads music features, which only --dataset pmemo provides")
        p = apply_preprocessing_options(
            preset(args.model, args.dataset),
            baseline=args.baseline,
            de_gamma_hi=args.de_gamma_hi,
        )
    except (KeyError, ValueError) as e:
        return _error(str(e).strip("'\""))
    setup = OPTIMIZERS[args.optimizer]  # its settings fill what the command line leaves out
    args.lr = setup.lr if args.lr is None else args.lr
    args.weight_decay = setup.weight_decay if args.weight_decay is None else args.weight_decay
    args.batch_size = setup.batch_size if args.batch_size is None else args.batch_size
    args.epochs = (setup.epochs or 30) if args.epochs is None else args.epochs
    if args.task == "nine-class" and args.dataset != "deap":
        return _error("--task nine-class rounds DEAP's 1–9 ratings (--dataset deap)")
    if args.electrode_dropout is not None and not 0 <= args.electrode_dropout <= 1:
        return _error(f"--electrode-dropout {args.electrode_dropout:g} is not in [0, 1]")
    label_rule = args.label_rule or ("kmeans" if args.dataset == "pmemo" else "threshold")
    threshold = (
        args.label_threshold if args.label_threshold is not None else THRESHOLDS[args.dataset]
    )
    stride = args.stride or p.stride_s
    t0 = time.monotonic()
    try:
        if args.dataset == "pmemo":
            ws, dataset = _pmemo(args, p, stride)
        else:
            ws, dataset = _deap(args, p, stride)
    except (ValueError, FileNotFoundError, KeyError) as e:
        return _error(str(e))
    preprocess_s = time.monotonic() - t0
    print(f"{len(ws)} windows in {preprocess_s:.0f} s", flush=True)
    return _train(args, p, ws, dataset, stride, label_rule, threshold, t0, preprocess_s)


def _deap(args: argparse.Namespace, p: Preset, stride: float) -> tuple[WindowSet, dict[str, Any]]:
    import numpy as np

    from affectstream.streaming.synthetic.deap import SYNTHETIC_MARKER, is_synthetic_deap
    from affectstream.training.datasets.deap import deap_files, deap_windows
    from affectstream.training.train import progress_bar

    files = deap_files(args.data)[: args.subjects]
    # the sidecar, or the watermark inside the files (a copy that lost the sidecar)
    synthetic = is_synthetic_deap(args.data)
    marker = args.data / SYNTHETIC_MARKER
    print(f"preprocessing {len(files)} subject(s) for {args.model} …", flush=True)
    with progress_bar(len(files), "preprocessing", "subject", enabled=_bars(args)) as bar:

        def on_file(msg: str) -> None:
            bar.set_postfix_str(msg, refresh=False)
            bar.update()

        ws = deap_windows(files, p.spec, stride, progress=on_file)
    dataset = {
        "name": "synthetic DEAP-format data (affectstream synth)" if synthetic else "DEAP",
        "format": "DEAP",
        "synthetic": synthetic,
        "generator": json.loads(marker.read_text())
        if marker.is_file()
        else (
            {"generator": "affectstream synth", "note": "watermark in the ratings"}
            if synthetic
            else None
        ),
        "path": str(args.data),
        "subjects": len(np.unique(ws.subjects)),
        "windows": len(ws),
        "stride_s": stride,
    }
    return ws, dataset


def _pmemo(args: argparse.Namespace, p: Preset, stride: float) -> tuple[WindowSet, dict[str, Any]]:
    from affectstream.streaming.formats.pmemo import open_pmemo
    from affectstream.training.datasets.pmemo_windows import describe_windows, pmemo_windows
    from affectstream.training.train import progress_bar

    ds = open_pmemo(args.data)
    subjects = ds.subjects[: args.subjects] if args.subjects else None
    songs = ds.music_ids[: args.songs] if args.songs else None
    n_songs = len(songs) if songs is not None else len(ds.music_ids)
    print(f"preprocessing {n_songs} song(s) for {args.model} …", flush=True)
    with progress_bar(n_songs, "preprocessing", "song", enabled=_bars(args)) as bar:

        def on_song(msg: str) -> None:
            bar.set_postfix_str(msg, refresh=False)  # a cache hit: one call for all songs
            bar.update()

        ws = pmemo_windows(
            ds,
            p.spec,
            stride,
            subjects=subjects,
            music_ids=songs,
            ratings=args.ratings,
            cache_dir=args.cache_dir,
            progress=on_song,
        )
    dataset = describe_windows(ds, ws, p.spec, stride)
    return ws, dataset


def _electrode_dropout(args: argparse.Namespace, p: Preset) -> ElectrodeDropout | None:
    """The preset's electrode dropout, or ``--electrode-dropout P`` (0: none) with its min_keep."""
    from affectstream.training.augment import ElectrodeDropout

    if args.electrode_dropout is None:
        return p.electrode_dropout
    if args.electrode_dropout == 0:
        return None
    keep = p.electrode_dropout.min_keep if p.electrode_dropout is not None else 2
    return ElectrodeDropout(p=args.electrode_dropout, min_keep=keep)


def _train(
    args: argparse.Namespace,
    p: Preset,
    ws: WindowSet,
    dataset: dict[str, Any],
    stride: float,
    label_rule: str,
    threshold: float,
    t0: float,
    preprocess_s: float,
) -> int:
    import numpy as np

    from affectstream.models.registry import get
    from affectstream.training.labels import class_balance
    from affectstream.training.options import OPTIMIZERS
    from affectstream.training.report import caveats, write_report
    from affectstream.training.tasks import summarise_quadrant
    from affectstream.training.train import TrainConfig, make_labels, run_training

    architecture = p.architecture or args.model
    setup = OPTIMIZERS[args.optimizer]
    cfg = TrainConfig(
        model=architecture,
        protocol=args.protocol,
        folds=args.folds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=args.seed,
        label_rule=label_rule,
        label_threshold=threshold,
        hyper=dict(p.hyper),
        device=args.device,
        electrode_dropout=_electrode_dropout(args, p),
        stream_dropout=p.stream_dropout,
        weight_decay=args.weight_decay,
        optimizer=setup.algorithm,
        momentum=setup.momentum,
        lr_step_epochs=setup.lr_step_epochs,
        lr_gamma=setup.lr_gamma,
    )
    if args.task == "nine-class":
        return _nine_class(args, p, ws, dataset, cfg, stride, label_rule, threshold, t0)
    y, _ = make_labels(cfg, ws)
    balance = class_balance(y)
    pmemo = args.dataset == "pmemo"
    recordings = class_balance(y, np.stack([ws.subjects, ws.trials], axis=1)) if pmemo else None
    print(
        f"class balance (high/low), {label_rule} labels: "
        + ", ".join(f"{d} {b['high']}/{b['low']}" for d, b in balance.items())
        + " windows"
        + (
            "; "
            + ", ".join(f"{d} {b['high']}/{b['low']}" for d, b in recordings.items())
            + " recordings"
            if recordings
            else ""
        ),
        flush=True,
    )
    try:
        results, final, rule = run_training(
            cfg,
            p.spec,
            ws,
            progress=None if args.quiet else lambda m: print("  " + m, flush=True),
            final_model=not args.cv_only,
            bar=_bars(args),
        )
    except ValueError as e:
        return _error(str(e))
    reads_music = any(i.kind == "stimulus_features" for i in get(architecture).inputs)
    notes = caveats(args.protocol, stimuli=pmemo, reads_stimulus=reads_music, label_rule=label_rule)
    notes += option_notes(args, p, label_rule)
    config = {
        k: v for k, v in vars(args).items() if k not in ("data", "out", "quiet") and k[0] != "_"
    }
    config |= {"out": str(args.out), "label_rule": label_rule, "label_threshold": threshold}
    config["cache_dir"] = str(args.cache_dir) if args.cache_dir else None
    config["command"] = command_line(args, stride, label_rule, threshold)
    config["preset"] = args.model
    config["architecture"] = architecture
    config["electrode_dropout"] = (
        cfg.electrode_dropout.to_dict() if cfg.electrode_dropout is not None else None
    )
    config["stream_dropout"] = (
        cfg.stream_dropout.to_dict() if cfg.stream_dropout is not None else None
    )
    config["preprocess_s"] = round(preprocess_s, 1)
    config["runtime_s"] = round(time.monotonic() - t0, 1)
    config["paper_options"] = paper_options(args, label_rule)
    if args.task == "quadrant":
        config["quadrant_task"] = summarise_quadrant([r.quadrant for r in results])
        q = config["quadrant_task"]["accuracy"]
        notes.append(
            f"4-class quadrant task (from the pair of binary outputs, no 4-class head): accuracy "
            f"{q['mean']:.3f} ± {q['std']:.3f} over the folds (chance 0.25 with balanced "
            "quadrants); report.json config.quadrant_task has the balanced accuracy and the "
            "confusion matrix"
        )
    doc = write_report(
        args.out,
        model=architecture,
        protocol=args.protocol,
        results=results,
        label_rule=rule,
        dataset=dataset,
        config=config,
        class_balance=balance,
        class_balance_recordings=recordings,
        notes=notes,
    )
    if final is not None:
        from affectstream.training.export import write_final

        if args.dataset == "pmemo":
            retrain = (
                f"affectstream train --dataset pmemo --data PMEmo2019 --model {args.model} "
                f"--protocol song --label-rule kmeans --folds {args.folds} --epochs {args.epochs} "
                f"--patience {args.patience} --stride {stride:g} --seed {args.seed} "
                f"--out runs/{args.model}-pmemo"
            )
        else:
            retrain = (
                f"affectstream train --dataset deap --data data_preprocessed_python --model "
                f"{args.model} --protocol subject --folds {args.folds} --epochs {args.epochs} "
                f"--patience {args.patience} --stride {stride:g} --seed {args.seed} "
                f"--out runs/{args.model}-deap"
            )
        retrain += "".join(
            f" --{flag} {value}"
            for flag, value, default in (
                ("baseline", args.baseline, "zscore"),
                ("de-gamma-hi", f"{args.de_gamma_hi:g}", "45"),
                ("optimizer", args.optimizer, "adam"),
                ("label-rule", label_rule, "threshold" if args.dataset == "deap" else "kmeans"),
            )
            if value != default
        )
        write_final(
            args.out,
            p,
            ws,
            final,
            doc,
            rule,
            retrain,
            preset_name=args.model,
            electrode_dropout=cfg.electrode_dropout,
            stream_dropout=cfg.stream_dropout,
        )
    s = doc["summary"]
    print(f"report: {args.out / 'report.md'}")
    print(
        "  "
        + ", ".join(
            f"{d} accuracy {s[d]['accuracy']['mean']:.3f} ± {s[d]['accuracy']['std']:.3f}, "
            f"balanced {s[d]['balanced_accuracy']['mean']:.3f}"
            for d in ("valence", "arousal")
        )
        + (f" (synthetic data, not {dataset['format']})" if dataset["synthetic"] else "")
        + (" [LEAKY protocol]" if args.protocol in ("segment", "random70") else "")
        + (
            " [stimulus leakage: songs in train and test]"
            if pmemo and reads_music and args.protocol != "song"
            else ""
        )
    )
    print(json.dumps({"report": str(args.out / "report.json")}))
    return 0


def paper_options(args: argparse.Namespace, label_rule: str) -> dict[str, Any]:
    """The run's paper-faithful options and their meaning (report.json ``config.paper_options``)."""
    from affectstream.training.options import describe

    doc = describe(
        baseline=args.baseline,
        de_gamma_hi=args.de_gamma_hi,
        optimizer=args.optimizer,
        task=args.task,
        protocol=args.protocol,
    )
    doc["label_rule"] = label_rule
    return doc


def option_notes(args: argparse.Namespace, p: Preset, label_rule: str) -> list[str]:
    """report.md lines for the options that differ from the defaults, and for the leaky
    ``random70`` protocol (the report's own caveats flag ``segment``)."""
    from affectstream.training.options import OPTIMIZERS

    out = []
    if args.protocol == "random70":
        out.append(
            "**Leaky protocol (random70):** one random 70/30 split of the windows (athar70's); "
            "overlapping windows of the same trial are in train and test, so the figures "
            "overstate what a model does for a new person. One fold: no spread over folds."
        )
    if args.baseline == "yang":
        out.append(
            "Option `--baseline yang` (Yang et al.): the mean 1 s chunk of each input's 3 s "
            "calibration period is subtracted from every later second instead of z-scoring by "
            "it; the exported contract carries the option (`baseline_subtract`), so serving does "
            "the same on a live session's first 3 s. Yang's further z-score over the whole trial "
            "is replaced by the per-channel standardisation fitted on the training windows."
        )
    if args.de_gamma_hi != 45.0:
        out.append(
            f"Option `--de-gamma-hi {args.de_gamma_hi:g}` (Tang et al.): γ band 31–"
            f"{args.de_gamma_hi:g} Hz. DEAP's EEG is band-passed 4–45 Hz, so the 45–"
            f"{args.de_gamma_hi:g} Hz part of that band holds only the filter's roll-off."
        )
    if args.optimizer != "adam":
        setup = OPTIMIZERS[args.optimizer]
        step = (
            f", lr × {setup.lr_gamma:g} every {setup.lr_step_epochs} epochs"
            if setup.lr_step_epochs
            else ""
        )
        out.append(
            f"Option `--optimizer {args.optimizer}` ({setup.source}): SGD, momentum "
            f"{setup.momentum:g}{step}; this run: lr {args.lr:g}, weight decay "
            f"{args.weight_decay:g}, batch {args.batch_size}, at most {args.epochs} epochs "
            f"(early stopping, patience {args.patience})."
        )
    if label_rule == "kmeans2d":
        out.append(
            "Label rule `kmeans2d` (RTCAN-1D): for each subject one 2-means clustering of the "
            "(valence, arousal) pairs, one per recording; the subject's thresholds are the two "
            "coordinates of the midpoint between the centres (report.json label_rule.per_subject)."
        )
    return out


def _nine_class(
    args: argparse.Namespace,
    p: Preset,
    ws: WindowSet,
    dataset: dict[str, Any],
    cfg: TrainConfig,
    stride: float,
    label_rule: str,
    threshold: float,
    t0: float,
) -> int:
    """``--task nine-class``: cross-validation only, its own report, nothing to export."""
    from affectstream.training.tasks import run_nine_class, write_nine_class_report

    try:
        doc = run_nine_class(
            cfg, p.spec, ws, progress=None if args.quiet else lambda m: print("  " + m, flush=True)
        )
    except ValueError as e:
        return _error(str(e))
    notes = option_notes(args, p, label_rule)
    if args.protocol == "segment":  # random70's note comes from option_notes
        notes.insert(
            0,
            "**Leaky protocol:** windows of the same trial are in train and test; the figures "
            "overstate what a model does for a new person.",
        )
    config = {
        k: v for k, v in vars(args).items() if k not in ("data", "out", "quiet") and k[0] != "_"
    }
    config |= {"out": str(args.out), "preset": args.model, "architecture": cfg.model}
    config["cache_dir"] = str(args.cache_dir) if args.cache_dir else None
    config["command"] = command_line(args, stride, label_rule, threshold)
    config["paper_options"] = paper_options(args, label_rule)
    config["runtime_s"] = round(time.monotonic() - t0, 1)
    if not args.cv_only:
        print("nine-class task: cross-validation only; no final model (not exportable)")
    write_nine_class_report(args.out, doc, dataset, config, notes)
    s = doc["summary"]
    print(f"report: {args.out / 'report.md'}")
    print(
        "  nine-class "
        + ", ".join(
            f"{d} accuracy {s[d]['accuracy']['mean']:.3f} ± {s[d]['accuracy']['std']:.3f}, "
            f"balanced {s[d]['balanced_accuracy']['mean']:.3f}"
            for d in ("valence", "arousal")
        )
        + (f" (synthetic data, not {dataset['format']})" if dataset["synthetic"] else "")
        + (" [LEAKY protocol]" if doc["leaky"] else "")
    )
    print(json.dumps({"report": str(args.out / "report.json")}))
    return 0
