"""DEAP windows for training, through the same preprocessing as the live service.

Each trial of each ``sNN.dat`` is turned into the streams the replay publishes
(:func:`affectstream.streaming.replay.deap.deap_trial_streams`), then into features by
:func:`affectstream.streaming.preprocess.pipeline.preprocess_recording` — the functions the service
uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.formats.deap import SFREQ, read_deap, subject_number
from affectstream.streaming.preprocess.pipeline import preprocess_recording
from affectstream.streaming.preprocess.spec import PreprocessSpec
from affectstream.streaming.replay.deap import REPLAY_STREAMS, deap_trial_streams
from affectstream.training.datasets.windows import WindowSet
from affectstream.training.presets import stream_labels

__all__ = ["WindowSet", "deap_files", "deap_windows"]

RATES = {s.type: SFREQ for s in REPLAY_STREAMS}


def deap_files(data_dir: Path) -> list[Path]:
    """``sNN.dat`` files of a DEAP ``data_preprocessed_python`` folder, in subject order."""
    files = sorted(Path(data_dir).glob("s*.dat"), key=lambda p: subject_number(p) or 0)
    files = [f for f in files if subject_number(f) is not None]
    if not files:
        raise FileNotFoundError(f"{data_dir}: no sNN.dat files (DEAP data_preprocessed_python)")
    return files


def deap_windows(
    files: Sequence[Path],
    spec: PreprocessSpec,
    stride_s: float,
    *,
    progress: Callable[[str], None] | None = None,
) -> WindowSet:
    """Preprocess every trial of ``files`` into windows (one every ``stride_s``).

    The hop is set to ``stride_s`` for speed: every transform gives the same output however its
    input is chunked, so the windows equal those of the serving hop.
    """
    train_spec = dataclasses.replace(spec, hop_s=stride_s)
    labels = stream_labels(spec)  # one-channel streams by their type where the spec says so
    feats: dict[str, list[NDArray[np.float32]]] = {i.name: [] for i in spec.inputs}
    ratings, subjects, trials, ends = [], [], [], []
    for f in files:
        subject = read_deap(f)
        sid = subject.subject or 0
        for t in range(subject.n_trials):
            streams = deap_trial_streams(subject.data[t])
            for t_end, x in preprocess_recording(train_spec, streams, RATES, labels):
                for name, value in x.items():
                    feats[name].append(value.astype(np.float32))
                ratings.append(subject.labels[t])
                subjects.append(sid)
                trials.append(t + 1)
                ends.append(t_end)
        if progress is not None:
            progress(f"{f.name}: {subject.n_trials} trials")
    return WindowSet(
        {k: np.stack(v) for k, v in feats.items()},
        np.asarray(ratings, dtype=np.float64),
        np.asarray(subjects, dtype=np.int64),
        np.asarray(trials, dtype=np.int64),
        np.asarray(ends, dtype=np.float64),
    )
