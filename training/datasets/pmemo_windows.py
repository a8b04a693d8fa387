"""PMEmo windows for training, through the same preprocessing as the live service.

Each (subject, song) recording of :meth:`PmemoDataset.trials` becomes one skin-conductance stream
``{"GSR": eda[:, None]}`` and goes through
:func:`affectstream.streaming.preprocess.pipeline.preprocess_recording` with the model's
:class:`~affectstream.streaming.preprocess.spec.PreprocessSpec` (for RTCAN-1D: online cvxEDA →
origin, tonic, phasic over a 20 s trailing window at 25 Hz) — the function the service uses. Every
window carries its subject, song (musicId), rating (valence, arousal) and the rating's source, and
the song's raw music feature vector through :attr:`WindowSet.stimulus`.

**Rate.** The stream is pushed at PMEmo's own 50 Hz, as the PMEmo replay publishes it, and the
preprocessing (online and offline alike) converts it to the spec's feature rate: by a whole factor
where there is one (the PMEmo presets, :data:`affectstream.training.presets.PMEMO_PRESETS`,
decompose at 25 Hz), by rational polyphase resampling otherwise (docs/resampling.md).

**Stride.** As for DEAP (:func:`affectstream.training.datasets.deap.deap_windows`) the hop is set to
the training stride for speed: every transform, online cvxEDA included, gives the same output
however its input is chunked (cvxEDA to its solver's tolerance), so the windows equal the serving
ones at those ends (``tests/training/test_pmemo_training.py`` checks it).

**Cache.** ``cache_dir`` keeps the windows in ``.npz`` files named by a hash of the dataset's
files (names, sizes, modification times), the spec, the stride and the selection, so a second run
with the same inputs skips the preprocessing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from affectstream.models.contract import feature_to_dict
from affectstream.streaming.formats.pmemo import SFREQ, PmemoDataset
from affectstream.streaming.preprocess.pipeline import preprocess_recording
from affectstream.streaming.preprocess.spec import PreprocessSpec
from affectstream.streaming.synthetic.deap import SYNTHETIC_MARKER
from affectstream.streaming.synthetic.pmemo import is_synthetic_pmemo
from affectstream.training.datasets.windows import StimulusTable, WindowSet

__all__ = [
    "MUSIC_SOURCE_PMEMO",
    "MUSIC_SOURCE_SYNTHETIC",
    "STREAM_LABELS",
    "STREAM_RATE",
    "NoWindowsError",
    "describe_windows",
    "music_table",
    "pmemo_trial_streams",
    "pmemo_windows",
]

log = logging.getLogger(__name__)

STREAM_RATE = SFREQ
"""Rate (Hz) at which a recording is pushed into the preprocessing: PMEmo's own 50 Hz."""
STREAM_LABELS = {"GSR": ("GSR",)}
RATES = {"GSR": STREAM_RATE}
MUSIC_SOURCE_PMEMO = "PMEmo static_features.csv (openSMILE IS13_ComParE functionals)"
MUSIC_SOURCE_SYNTHETIC = "synthetic PMEmo-layout features"
_CACHE_VERSION = 2  # bump when the windowing changes meaning


class NoWindowsError(ValueError):
    """No recording is long enough for one window."""


def pmemo_trial_streams(eda: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    """One recording as the stream the preprocessing takes.

    eda : ndarray, shape (n_samples,), µS at 50 Hz
    returns {"GSR": ndarray, shape (n_samples, 1)} at :data:`STREAM_RATE` (50 Hz)
    """
    return {"GSR": np.asarray(eda, dtype=np.float64)[:, None]}


def music_table(dataset: PmemoDataset) -> StimulusTable:
    """Every song's raw static music features (the whole ``static_features.csv``)."""
    ids, names, values = dataset.features()
    synthetic = is_synthetic_pmemo(dataset.root)
    return StimulusTable(
        np.asarray(ids, dtype=np.int64),
        tuple(names),
        np.asarray(values, dtype=np.float64),
        MUSIC_SOURCE_SYNTHETIC if synthetic else MUSIC_SOURCE_PMEMO,
    )


def pmemo_windows(
    dataset: PmemoDataset,
    spec: PreprocessSpec,
    stride_s: float,
    *,
    subjects: Iterable[str] | None = None,
    music_ids: Iterable[int] | None = None,
    ratings: Literal["auto", "per-subject", "song-mean"] = "auto",
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> WindowSet:
    """Preprocess every recording of ``dataset`` into windows (one every ``stride_s``).

    Parameters
    ----------
    dataset : an opened PMEmo folder (:func:`affectstream.streaming.formats.pmemo.open_pmemo`)
    spec : the model's preprocessing; its inputs must read the ``GSR`` stream only
    stride_s : seconds between training windows; it becomes the hop, so it must be a whole number
        of samples at 50 Hz and at the feature rate (a multiple of the serving hop, so that the
        windows are ones the service also computes)
    subjects, music_ids, ratings : passed to :meth:`PmemoDataset.trials`
    cache_dir : keep and reuse the windows there (optional)
    progress : called with one line per song

    Returns
    -------
    WindowSet
        ``subjects`` = the 6-digit subject id as a number, ``trials`` = musicId,
        ``ratings`` (n, 2) valence, arousal on [0, 1], ``rating_sources``, and ``stimulus`` =
        :func:`music_table`. Recordings shorter than the window are left out (counted in
        ``dataset.skipped.too_short``), as are songs without music features (logged).

    Raises
    ------
    NoWindowsError
        If no recording is long enough for one window (the message gives the longest).
    """
    subjects = None if subjects is None else sorted(set(subjects))
    music_ids = None if music_ids is None else sorted(set(music_ids))
    table = music_table(dataset)
    cache = None
    if cache_dir is not None:
        key = _cache_key(dataset, spec, stride_s, subjects, music_ids, ratings)
        cache = Path(cache_dir) / f"pmemo-windows-{key}.npz"
        if cache.is_file():
            ws = _load(cache, table)
            if progress is not None:
                progress(f"{len(ws)} windows from the cache {cache}")
            return ws
    ws = _compute(dataset, spec, stride_s, table, subjects, music_ids, ratings, progress)
    if cache is not None:
        _save(cache, ws)
    return ws


def describe_windows(
    dataset: PmemoDataset, ws: WindowSet, spec: PreprocessSpec, stride_s: float
) -> dict[str, Any]:
    """What reports and model cards say about the data: name, synthetic or not (with the
    generator's settings), sizes, rates, rating source, what was skipped, the music features."""
    assert ws.stimulus is not None and ws.rating_sources is not None
    marker = dataset.root / SYNTHETIC_MARKER
    synthetic = is_synthetic_pmemo(dataset.root)  # the sidecar, or the titles inside
    recordings = np.unique(np.stack([ws.subjects, ws.trials], axis=1), axis=0)
    return {
        "name": "synthetic PMEmo-layout data (affectstream synth --format pmemo)"
        if synthetic
        else "PMEmo",
        "format": "PMEmo",
        "synthetic": synthetic,
        "generator": json.loads(marker.read_text())
        if marker.is_file()
        else ({"generator": "affectstream synth --format pmemo"} if synthetic else None),
        "path": str(dataset.root),
        "subjects": len(np.unique(ws.subjects)),
        "songs": len(np.unique(ws.trials)),
        "recordings": len(recordings),
        "windows": len(ws),
        "stride_s": stride_s,
        "window_s": spec.window_s,
        "eda_rate_hz": SFREQ,
        "feature_rate_hz": sorted({i.srate for i in spec.inputs}),
        "hop_s": spec.hop_s,
        "rating_source": sorted(set(ws.rating_sources.tolist())),
        "skipped": dataset.skipped.summary(),
        "music_features": {
            "source": ws.stimulus.source,
            "n_features": ws.stimulus.n_features,
            "songs_in_table": len(ws.stimulus.ids),
        },
    }


def _compute(
    dataset: PmemoDataset,
    spec: PreprocessSpec,
    stride_s: float,
    table: StimulusTable,
    subjects: list[str] | None,
    music_ids: list[int] | None,
    ratings: Literal["auto", "per-subject", "song-mean"],
    progress: Callable[[str], None] | None,
) -> WindowSet:
    train_spec = dataclasses.replace(spec, hop_s=stride_s)
    feats: dict[str, list[NDArray[np.float32]]] = {i.name: [] for i in spec.inputs}
    rows: list[tuple[float, float, int, int, float, str]] = []
    no_features: set[int] = set()
    song, n_song = None, 0
    for trial in dataset.trials(spec.window_s, subjects, music_ids, ratings):
        if trial.music_id != song:
            if song is not None and progress is not None:
                progress(f"song {song}: {n_song} windows")
            song, n_song = trial.music_id, 0
        if trial.music_id not in table:
            no_features.add(trial.music_id)
            continue
        streams = pmemo_trial_streams(trial.eda)
        for t_end, x in preprocess_recording(train_spec, streams, RATES, STREAM_LABELS):
            for name, value in x.items():
                feats[name].append(value.astype(np.float32))
            rows.append(
                (
                    trial.valence,
                    trial.arousal,
                    int(trial.subject),
                    trial.music_id,
                    t_end,
                    trial.rating_source,
                )
            )
            n_song += 1
    if song is not None and progress is not None:
        progress(f"song {song}: {n_song} windows")
    if no_features:
        log.warning(
            "%d song(s) without music features left out: %s", len(no_features), sorted(no_features)
        )
    if not rows:
        longest = max(
            (t.duration_s for t in dataset.trials(0.0, subjects, music_ids, ratings)), default=0.0
        )
        raise NoWindowsError(
            f"{dataset.root}: no recording is long enough for one {spec.window_s:g} s window "
            f"(the longest is {longest:.1f} s; {dataset.skipped.summary()})"
        )
    return WindowSet(
        {k: np.stack(v) for k, v in feats.items()},
        np.array([r[:2] for r in rows], dtype=np.float64),
        np.array([r[2] for r in rows], dtype=np.int64),
        np.array([r[3] for r in rows], dtype=np.int64),
        np.array([r[4] for r in rows], dtype=np.float64),
        stimulus=table,
        rating_sources=np.array([r[5] for r in rows], dtype=np.str_),
    )


def _cache_key(
    dataset: PmemoDataset,
    spec: PreprocessSpec,
    stride_s: float,
    subjects: list[str] | None,
    music_ids: list[int] | None,
    ratings: str,
) -> str:
    files = sorted(p for p in dataset.root.rglob("*") if p.is_file() and not p.name.startswith("."))
    doc = {
        "version": _CACHE_VERSION,
        "root": str(dataset.root.resolve()),
        "files": [
            [str(p.relative_to(dataset.root)), p.stat().st_size, p.stat().st_mtime_ns]
            for p in files
        ],
        "inputs": [feature_to_dict(i) for i in spec.inputs],
        "stride_s": stride_s,
        "stream_rate": STREAM_RATE,
        "subjects": subjects,
        "music_ids": music_ids,
        "ratings": ratings,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]


def _save(path: Path, ws: WindowSet) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    arrays: dict[str, NDArray[Any]] = {f"X_{k}": v for k, v in ws.X.items()}
    arrays |= {"ratings": ws.ratings, "subjects": ws.subjects, "trials": ws.trials}
    arrays |= {"t_end": ws.t_end, "rating_sources": _sources(ws)}
    np.savez(tmp, allow_pickle=False, **arrays)
    tmp.replace(path)  # a crash mid-write never leaves a half file under the real name


def _sources(ws: WindowSet) -> NDArray[np.str_]:
    if ws.rating_sources is None:
        return np.full(len(ws), "", dtype=np.str_)
    return ws.rating_sources


def _load(path: Path, table: StimulusTable) -> WindowSet:
    with np.load(path, allow_pickle=False) as z:
        X = {k[2:]: np.asarray(z[k], dtype=np.float32) for k in z.files if k.startswith("X_")}
        return WindowSet(
            X,
            np.asarray(z["ratings"], dtype=np.float64),
            np.asarray(z["subjects"], dtype=np.int64),
            np.asarray(z["trials"], dtype=np.int64),
            np.asarray(z["t_end"], dtype=np.float64),
            stimulus=table,
            rating_sources=np.asarray(z["rating_sources"], dtype=np.str_),
        )
