"""Train a model on DEAP (or synthetic DEAP-format data) with an honest evaluation protocol.

``--dataset pmemo`` trains on a PMEmo folder (or synthetic PMEmo-layout data) instead: RTCAN-1D on
EDA (``rtcan1d``), on EDA + the song's music features (``rtcan1d-music``), or on the music alone
(``music-mlp``), under the subject-independent (default) or the song-independent (``--protocol
song``) split. ``--compare RUN [RUN …] --out DIR`` writes one side-by-side report of finished runs.

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
        choices=["subject", "loso", "segment", "song"],
        default="subject",
        help="subject-independent k-fold (default), leave-one-subject-out, the leaky "
        "segment-level random split (for comparison with papers), or (PMEmo) song-independent "
        "k-fold: no song in both train and test",
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=6, help="early-stopping patience, epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--label-rule",
        choices=["threshold", "kmeans"],
        default=None,
        help="fixed threshold, or a per-subject k-means midpoint, 1-D per dimension (RTCAN-1D "
        "clusters the valence-arousal plane) (default: threshold for DEAP, kmeans for PMEmo)",
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
        p = preset(args.model, args.dataset)
    except (KeyError, ValueError) as e:
        return _error(str(e).strip("'\""))
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

    from affectstream.streaming.synthetic.deap import SYNTHETIC_MARKER
    from affectstream.training.datasets.deap import deap_files, deap_windows
    from affectstream.training.train import progress_bar

    files = deap_files(args.data)[: args.subjects]
    synthetic = (args.data / SYNTHETIC_MARKER).exists()
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
        "generator": json.loads((args.data / SYNTHETIC_MARKER).read_text()) if synthetic else None,
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
    from affectstream.training.report import caveats, write_report
    from affectstream.training.train import TrainConfig, make_labels, run_training

    architecture = p.architecture or args.model
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
    )
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
    config["preprocess_s"] = round(preprocess_s, 1)
    config["runtime_s"] = round(time.monotonic() - t0, 1)
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
        + (" [LEAKY protocol]" if args.protocol == "segment" else "")
        + (
            " [stimulus leakage: songs in train and test]"
            if pmemo and reads_music and args.protocol != "song"
            else ""
        )
    )
    print(json.dumps({"report": str(args.out / "report.json")}))
    return 0
