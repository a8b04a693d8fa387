"""PMEmo (2019 update): song metadata, valence/arousal annotations, music features and EDA.

:func:`open_pmemo` checks the folder eagerly (every required file, every header, the annotation
values) and reads the large parts lazily: the static features on first use, the EDA one song at a
time. :meth:`PmemoDataset.trials` yields one :class:`PmemoTrial` per (subject, song) with EDA and
a rating. Ratings are always ordered **(valence, arousal)**, as everywhere in this project, even
though PMEmo's own files put arousal first.

Layout (root = the unpacked ``PMEmo2019`` folder)::

    metadata.csv                    musicId, fileName, title, artist, album, duration,
                                    chorus_start_time, chorus_end_time
    annotations/static_annotations.csv       musicId, Arousal(mean), Valence(mean)   in [0, 1]
    annotations/static_annotations_std.csv   musicId, Arousal(std), Valence(std)
    annotations/dynamic_annotations.csv      musicId, frameTime, Arousal(mean), Valence(mean)
    annotations/dynamic_annotations_std.csv  musicId, frameTime, Arousal(std), Valence(std)
    annotations/subject_static_annotations.csv   (optional, ours) subjectId, musicId, Arousal,
                                                 Valence   in [0, 1]
    features/static_features.csv    musicId + 6373 openSMILE IS13_ComParE functionals per song
    EDA/<musicId>_EDA.csv           row index, then one column per subject, 50 Hz

What was checked, in the authors' repository (github.com/HuiZhangDB/PMEmo):

- ``README.md``: the folder tree, 794 songs, 457 subjects, "The first 15-second annotations are
  removed"; ``docs/data/overview.json``: 794 EDA files, 767 songs with static annotations.
- ``static_MER.ipynb``: ``pd.read_csv('static_features.csv', index_col=0)`` (musicId first, then
  the features, all used) and ``usecols=['musicId', 'Valence(mean)']`` / ``'Arousal(mean)'`` on
  ``static_annotations.csv``; ``features.py``: the static set is ``IS13_ComParE.conf``, 6373 values.
- ``dynamic_MER.ipynb``: ``dynamic_annotations.csv`` merged on ``['musicId', 'frameTime']``,
  labels ``'Arousal(mean)'`` and ``'Valence(mean)'``.
- ``EDA_features_ex.ipynb``: ``pd.read_csv('<musicId>_EDA.csv', index_col=0)`` (the first column
  is a row index), ``for c in raw_eda.columns: subjectId = c[-6:]`` (a subject column's name ends
  with the 6-character subject id), ``sampleRate=50``, musicId = the file name before ``_``.
- ``docs/data/samples/108.json``: values on [0, 1], dynamic times 15.5, 16.0, … (2 Hz), subject
  ids such as ``'100083'``, chorus times as ``"02:50"``.

Not settled by that repository, so accepted in every documented form:

- the ``_std`` columns are read as ``Arousal(std)``/``Valence(std)``, the spelling third-party
  loaders use; the metadata column names also come from third-party loaders;
- the index column of an EDA file may have any header (pandas writes an empty one) and its values
  are not used (row order is time order); a subject column's prefix before the id is ignored;
- column names may carry surrounding spaces and the file a UTF-8 byte-order mark; a musicId may be
  written ``7`` or ``7.0``; chorus times as ``MM:SS``, ``H:MM:SS`` or seconds; the EDA folder may
  be ``EDA`` or ``eda``;
- a static-annotation row whose two values are both empty means "not annotated" (as a missing row).

Rules: columns are found by name (any order; the metadata may have extra columns, the other files
may not); every value must be a finite number; ratings must lie in [0, 1]. An EDA cell may be empty
only at the end of its column (the subject stopped listening); a column with no value at all (the
subject did not listen) is skipped with a logged warning and counted in
:attr:`PmemoDataset.skipped`. Any other problem raises :class:`PmemoFormatError` naming the file,
line, column and what was expected.

Per-subject ratings: PMEmo publishes per-song means only. When the optional
``annotations/subject_static_annotations.csv`` exists (header ``subjectId,musicId,Arousal,Valence``,
one row per subject and song, subjectId the 6-digit id of the EDA columns, values in [0, 1]), each
trial carries its subject's own rating (``rating_source == "per-subject"``); otherwise every subject
gets the song's mean (``"song-mean"``). Songs without a rating (27 of 794 in PMEmo) are skipped
and counted, not an error.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "N_STATIC_FEATURES",
    "SFREQ",
    "SUBJECT_RATINGS_FILE",
    "PmemoDataset",
    "PmemoFormatError",
    "PmemoSkips",
    "PmemoSong",
    "PmemoTrial",
    "open_pmemo",
]

FloatArray = NDArray[np.float64]
RatingSource = Literal["per-subject", "song-mean"]

SFREQ = 50.0
"""EDA sampling rate, Hz (``EDA_features_ex.ipynb``: ``sampleRate=50``)."""
N_STATIC_FEATURES = 6373
"""openSMILE IS13_ComParE functionals per song in ``features/static_features.csv``."""
DYNAMIC_START_S = 15.5
"""The first dynamic annotation is at 15.5 s: PMEmo removed the first 15 s."""

METADATA_FILE = "metadata.csv"
STATIC_FILE = "annotations/static_annotations.csv"
STATIC_STD_FILE = "annotations/static_annotations_std.csv"
DYNAMIC_FILE = "annotations/dynamic_annotations.csv"
DYNAMIC_STD_FILE = "annotations/dynamic_annotations_std.csv"
SUBJECT_RATINGS_FILE = "annotations/subject_static_annotations.csv"
"""Optional, our own layout: ``subjectId,musicId,Arousal,Valence`` (see the module docstring)."""
FEATURES_FILE = "features/static_features.csv"
EDA_DIRS = ("EDA", "eda")
_REQUIRED_FILES = (
    METADATA_FILE,
    STATIC_FILE,
    STATIC_STD_FILE,
    DYNAMIC_FILE,
    DYNAMIC_STD_FILE,
    FEATURES_FILE,
)

_METADATA_COLUMNS = (
    "musicId",
    "fileName",
    "title",
    "artist",
    "album",
    "duration",
    "chorus_start_time",
    "chorus_end_time",
)
_MEAN = ("Valence(mean)", "Arousal(mean)")  # (valence, arousal): our order, not the files'
_STD = ("Valence(std)", "Arousal(std)")
_EDA_NAME = re.compile(r"(\d+)_EDA\.csv")
_SUBJECT_ID = re.compile(r"\d{6}")

logger = logging.getLogger(__name__)


class PmemoFormatError(ValueError):
    """Not the PMEmo layout; the message names the file, line, column and what was expected."""

    def __init__(
        self, path: Path | str, problem: str, line: int | None = None, column: str | None = None
    ) -> None:
        self.path = Path(path)
        self.problem = problem
        self.line = line
        self.column = column
        where = str(path)
        if line is not None:
            where += f": line {line}"
        if column is not None:
            where += f", column {column}" if line is not None else f": column {column}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class PmemoSong:
    """One row of ``metadata.csv``; times in seconds (chorus times within the full song)."""

    music_id: int
    file_name: str
    title: str
    artist: str
    album: str
    duration_s: float
    chorus_start_s: float
    chorus_end_s: float


@dataclass(frozen=True, slots=True, eq=False)  # eq=False: it holds an ndarray
class PmemoTrial:
    """One subject listening to one song.

    eda : ndarray, shape (n_samples,), float64 — the file's values at 50 Hz, trailing empty cells
        removed (so a subject who stopped early has a shorter signal)
    valence, arousal : the rating on [0, 1], from ``rating_source`` ("per-subject" or "song-mean")
    """

    subject: str
    music_id: int
    eda: FloatArray
    valence: float
    arousal: float
    rating_source: RatingSource

    @property
    def duration_s(self) -> float:
        return len(self.eda) / SFREQ


@dataclass
class PmemoSkips:
    """What :meth:`PmemoDataset.trials` and :meth:`PmemoDataset.eda` left out, and why.

    Accumulates over calls (sets, so reading a song twice counts it once).
    """

    songs_without_rating: set[int] = field(default_factory=set)
    """Songs with EDA but no rating of the kind in use (e.g. no static annotation)."""
    empty_columns: set[tuple[int, str]] = field(default_factory=set)
    """(music_id, subject): an EDA column with no value (the subject did not listen)."""
    too_short: set[tuple[int, str]] = field(default_factory=set)
    """(music_id, subject): less EDA than ``min_seconds``."""
    without_subject_rating: set[tuple[int, str]] = field(default_factory=set)
    """(music_id, subject): EDA, but no row in the per-subject rating file."""

    def summary(self) -> str:
        return (
            f"{len(self.songs_without_rating)} song(s) without a rating, "
            f"{len(self.empty_columns)} empty EDA column(s), "
            f"{len(self.too_short)} too-short recording(s), "
            f"{len(self.without_subject_rating)} recording(s) without a per-subject rating"
        )


# --------------------------------------------------------------------------------------------
# CSV primitives


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank row; decoding and quoting errors named."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                for row in reader:
                    if row:
                        yield reader.line_num, row
            except csv.Error as e:
                raise PmemoFormatError(path, f"not valid CSV: {e}", reader.line_num) from e
    except UnicodeDecodeError as e:
        raise PmemoFormatError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
    except OSError as e:
        raise PmemoFormatError(path, f"cannot be read: {e.strerror or e}") from e


def _column(name: str, index: int) -> str:
    return f"{index + 1} ({name!r})"


def _header(
    path: Path, line: int, header: list[str], required: Sequence[str], *, extra_ok: bool = False
) -> dict[str, int]:
    """Column index of each required name; refuse missing, duplicated or (unless allowed) extra
    columns."""
    names = [h.strip() for h in header]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in index:
            raise PmemoFormatError(path, "duplicate column name", line, _column(name, i))
        index[name] = i
    missing = [name for name in required if name not in index]
    extra = [name for name in names if name not in required]
    if missing or (extra and not extra_ok):
        problem = f"expected the header {','.join(required)}"
        if missing:
            problem += f"; missing {', '.join(map(repr, missing))}"
        if extra and not extra_ok:
            problem += f"; unexpected {', '.join(map(repr, extra))}"
        raise PmemoFormatError(path, f"{problem} (got {','.join(names)})", line)
    return {name: index[name] for name in required}


def _table(
    path: Path, required: Sequence[str], *, extra_ok: bool = False
) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """Header map and data rows of a small CSV; every row must have the header's field count."""
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise PmemoFormatError(path, f"empty file; expected the header {','.join(required)}")
    line, header = first
    columns = _header(path, line, header, required, extra_ok=extra_ok)
    body = list(rows)
    for line, row in body:
        if len(row) != len(header):
            raise PmemoFormatError(
                path, f"{len(row)} fields, expected {len(header)} (as in the header)", line
            )
    return columns, body


def _number(path: Path, line: int, column: str, text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise PmemoFormatError(path, f"expected a number, got {text!r}", line, column) from None
    if not math.isfinite(x):
        raise PmemoFormatError(path, f"expected a finite number, got {text!r}", line, column)
    return x


def _music_id(path: Path, line: int, column: str, text: str) -> int:
    x = _number(path, line, column, text)
    if x != int(x) or x < 0:
        raise PmemoFormatError(path, f"expected a musicId (integer), got {text!r}", line, column)
    return int(x)


def _rating(path: Path, line: int, column: str, text: str) -> float:
    x = _number(path, line, column, text)
    if not 0.0 <= x <= 1.0:
        raise PmemoFormatError(path, f"expected a rating in [0, 1], got {text!r}", line, column)
    return x


def _seconds(path: Path, line: int, column: str, text: str) -> float:
    """``"02:50"`` / ``"0:02:50"`` / ``"170"`` → 170.0."""
    parts = text.strip().split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if not 1 <= len(values) <= 3 or not all(math.isfinite(v) and v >= 0 for v in values):
        raise PmemoFormatError(
            path, f"expected a time as MM:SS or seconds, got {text!r}", line, column
        )
    return float(sum(v * 60.0**i for i, v in enumerate(reversed(values))))


# --------------------------------------------------------------------------------------------
# File readers (small files: read whole at open time)


def _read_metadata(path: Path) -> dict[int, PmemoSong]:
    cols, body = _table(path, _METADATA_COLUMNS, extra_ok=True)
    songs: dict[int, PmemoSong] = {}
    for line, row in body:
        c = {name: _column(name, i) for name, i in cols.items()}
        music_id = _music_id(path, line, c["musicId"], row[cols["musicId"]])
        if music_id in songs:
            raise PmemoFormatError(path, f"duplicate musicId {music_id}", line, c["musicId"])
        songs[music_id] = PmemoSong(
            music_id=music_id,
            file_name=row[cols["fileName"]],
            title=row[cols["title"]],
            artist=row[cols["artist"]],
            album=row[cols["album"]],
            duration_s=_number(path, line, c["duration"], row[cols["duration"]]),
            chorus_start_s=_seconds(
                path, line, c["chorus_start_time"], row[cols["chorus_start_time"]]
            ),
            chorus_end_s=_seconds(path, line, c["chorus_end_time"], row[cols["chorus_end_time"]]),
        )
    return songs


def _read_static(
    path: Path, names: tuple[str, str], *, ratings: bool
) -> dict[int, tuple[float, float]]:
    """musicId → (valence, arousal); rows with both values empty mean "not annotated"."""
    cols, body = _table(path, ("musicId", *names))
    values: dict[int, tuple[float, float]] = {}
    seen: set[int] = set()
    parse = _rating if ratings else _non_negative
    for line, row in body:
        id_col = _column("musicId", cols["musicId"])
        music_id = _music_id(path, line, id_col, row[cols["musicId"]])
        if music_id in seen:
            raise PmemoFormatError(path, f"duplicate musicId {music_id}", line, id_col)
        seen.add(music_id)
        texts = [row[cols[name]].strip() for name in names]
        if texts == ["", ""]:
            continue
        v, a = (
            parse(path, line, _column(n, cols[n]), t) for n, t in zip(names, texts, strict=True)
        )
        values[music_id] = (v, a)
    return values


def _non_negative(path: Path, line: int, column: str, text: str) -> float:
    x = _number(path, line, column, text)
    if x < 0:
        raise PmemoFormatError(
            path, f"expected a standard deviation >= 0, got {text!r}", line, column
        )
    return x


def _read_dynamic(path: Path, names: tuple[str, str], *, ratings: bool) -> dict[int, FloatArray]:
    """musicId → ndarray (n_frames, 3): frameTime, valence, arousal, sorted by time."""
    cols, body = _table(path, ("musicId", "frameTime", *names))
    frames: dict[int, dict[float, tuple[float, float]]] = {}
    parse = _rating if ratings else _non_negative
    for line, row in body:
        c = {name: _column(name, i) for name, i in cols.items()}
        music_id = _music_id(path, line, c["musicId"], row[cols["musicId"]])
        t = _number(path, line, c["frameTime"], row[cols["frameTime"]])
        v, a = (parse(path, line, c[n], row[cols[n]]) for n in names)
        song = frames.setdefault(music_id, {})
        if t in song:
            raise PmemoFormatError(
                path, f"duplicate frameTime {t:g} for musicId {music_id}", line, c["frameTime"]
            )
        song[t] = (v, a)
    out: dict[int, FloatArray] = {}
    for music_id, song in frames.items():
        arr = np.array([(t, v, a) for t, (v, a) in sorted(song.items())], dtype=np.float64)
        arr.flags.writeable = False
        out[music_id] = arr
    return out


def _read_subject_ratings(path: Path) -> dict[tuple[int, str], tuple[float, float]]:
    """(musicId, subjectId) → (valence, arousal) from the optional per-subject file."""
    cols, body = _table(path, ("subjectId", "musicId", "Arousal", "Valence"))
    ratings: dict[tuple[int, str], tuple[float, float]] = {}
    for line, row in body:
        c = {name: _column(name, i) for name, i in cols.items()}
        subject = row[cols["subjectId"]].strip()
        if not _SUBJECT_ID.fullmatch(subject):
            raise PmemoFormatError(
                path, f"expected a 6-digit subject id, got {subject!r}", line, c["subjectId"]
            )
        music_id = _music_id(path, line, c["musicId"], row[cols["musicId"]])
        if (music_id, subject) in ratings:
            raise PmemoFormatError(
                path, f"duplicate rating of musicId {music_id} by subject {subject}", line
            )
        ratings[music_id, subject] = (
            _rating(path, line, c["Valence"], row[cols["Valence"]]),
            _rating(path, line, c["Arousal"], row[cols["Arousal"]]),
        )
    return ratings


def _eda_header(path: Path) -> tuple[str, ...]:
    """Subject ids of an EDA file's columns (after the index column)."""
    first = next(_rows(path), None)
    if first is None:
        raise PmemoFormatError(
            path, "empty file; expected a header: index, then one column per subject"
        )
    line, header = first
    subjects: list[str] = []
    for i, name in enumerate(header[1:], start=1):
        subject = name.strip()[-6:]
        if not _SUBJECT_ID.fullmatch(subject):
            raise PmemoFormatError(
                path,
                "expected a subject column whose name ends with a 6-digit subject id",
                line,
                _column(name, i),
            )
        if subject in subjects:
            raise PmemoFormatError(
                path, f"subject {subject} has two columns", line, _column(name, i)
            )
        subjects.append(subject)
    if not subjects:
        raise PmemoFormatError(
            path, "no subject column (expected: index, then one per subject)", line
        )
    return tuple(subjects)


def _read_eda(path: Path) -> dict[str, FloatArray | None]:
    """subject → signal (trailing empty cells removed), or ``None`` for an all-empty column."""
    subjects = _eda_header(path)
    rows = _rows(path)
    _, header = next(rows)
    body = list(rows)
    for line, row in body:
        if len(row) != len(header):
            raise PmemoFormatError(
                path, f"{len(row)} fields, expected {len(header)} (as in the header)", line
            )
    lines = [line for line, _ in body]
    columns = list(zip(*(row for _, row in body), strict=True)) if body else []
    signals: dict[str, FloatArray | None] = {}
    for j, subject in enumerate(subjects, start=1):
        cells = [c.strip() for c in columns[j]] if columns else []
        n = len(cells)
        while n and not cells[n - 1]:
            n -= 1
        if n == 0:
            signals[subject] = None
            continue
        col = _column(header[j], j)
        try:
            x = np.array(cells[:n], dtype=np.float64)
        except ValueError:
            k = next(k for k in range(n) if not _is_number(cells[k]))
            problem = (
                "empty cell before the end of the column (only trailing cells may be empty)"
                if not cells[k]
                else f"expected a number, got {cells[k]!r}"
            )
            raise PmemoFormatError(path, problem, lines[k], col) from None
        bad = ~np.isfinite(x)
        if bad.any():
            k = int(np.argmax(bad))
            raise PmemoFormatError(
                path, f"expected a finite number, got {cells[k]!r}", lines[k], col
            )
        x.flags.writeable = False
        signals[subject] = x
    return signals


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# The dataset


class PmemoDataset:
    """An opened PMEmo folder (use :func:`open_pmemo`).

    Attributes
    ----------
    root : the folder; eda_dir : its EDA folder.
    songs : musicId → :class:`PmemoSong` (every row of ``metadata.csv``).
    music_ids : songs that have an EDA file, ascending.
    subjects : every subject id that has a column in some EDA file, sorted.
    static_annotations, static_std : musicId → (valence, arousal), per-song mean and SD.
    dynamic_annotations, dynamic_std : musicId → ndarray (n_frames, 3) of frameTime (s, from
        15.5), valence, arousal at 2 Hz.
    subject_ratings : (musicId, subjectId) → (valence, arousal), empty without the optional file.
    feature_names : the 6373 static feature names, in file order.
    skipped : what trials/eda left out so far (:class:`PmemoSkips`).
    """

    sfreq = SFREQ

    def __init__(self, root: Path) -> None:
        """Check the layout and read the small files; raise :class:`PmemoFormatError`."""
        self.root = Path(root)
        if not self.root.is_dir():
            raise PmemoFormatError(self.root, "not a folder (expected the PMEmo2019 root)")
        for name in _REQUIRED_FILES:
            if not (self.root / name).is_file():
                raise PmemoFormatError(
                    self.root,
                    f"missing {name} (expected the PMEmo 2019 layout: metadata.csv, "
                    "annotations/, features/, EDA/)",
                )
        eda_dir = next((self.root / d for d in EDA_DIRS if (self.root / d).is_dir()), None)
        if eda_dir is None:
            raise PmemoFormatError(self.root, "missing the EDA/ folder (<musicId>_EDA.csv files)")
        self.eda_dir = eda_dir

        self.songs: Mapping[int, PmemoSong] = MappingProxyType(
            _read_metadata(self.root / METADATA_FILE)
        )
        self.static_annotations: Mapping[int, tuple[float, float]] = MappingProxyType(
            _read_static(self.root / STATIC_FILE, _MEAN, ratings=True)
        )
        self.static_std: Mapping[int, tuple[float, float]] = MappingProxyType(
            _read_static(self.root / STATIC_STD_FILE, _STD, ratings=False)
        )
        self.dynamic_annotations: Mapping[int, FloatArray] = MappingProxyType(
            _read_dynamic(self.root / DYNAMIC_FILE, _MEAN, ratings=True)
        )
        self.dynamic_std: Mapping[int, FloatArray] = MappingProxyType(
            _read_dynamic(self.root / DYNAMIC_STD_FILE, _STD, ratings=False)
        )
        subject_file = self.root / SUBJECT_RATINGS_FILE
        self.has_subject_ratings = subject_file.is_file()
        self.subject_ratings: Mapping[tuple[int, str], tuple[float, float]] = MappingProxyType(
            _read_subject_ratings(subject_file) if self.has_subject_ratings else {}
        )
        self.feature_names = self._read_feature_header()
        self._eda_files, self._eda_subjects = self._scan_eda()
        self.music_ids: tuple[int, ...] = tuple(sorted(self._eda_files))
        self.subjects: tuple[str, ...] = tuple(
            sorted({s for subjects in self._eda_subjects.values() for s in subjects})
        )
        self.skipped = PmemoSkips()
        self._features: tuple[NDArray[np.int64], FloatArray] | None = None

    def __repr__(self) -> str:
        return (
            f"PmemoDataset({str(self.root)!r}: {len(self.music_ids)} songs with EDA, "
            f"{len(self.subjects)} subjects, ratings {self.rating_source})"
        )

    @property
    def rating_source(self) -> RatingSource:
        """What ``trials(ratings="auto")`` uses: per-subject ratings if the file exists."""
        return "per-subject" if self.has_subject_ratings else "song-mean"

    # -- opening -----------------------------------------------------------------------------

    def _read_feature_header(self) -> tuple[str, ...]:
        path = self.root / FEATURES_FILE
        first = next(_rows(path), None)
        if first is None:
            raise PmemoFormatError(path, "empty file; expected musicId and 6373 feature names")
        line, header = first
        names = [h.strip() for h in header]
        if not names or names[0] != "musicId":
            raise PmemoFormatError(
                path, f"expected 'musicId' as the first column, got {names[0]!r}", line
            )
        if len(names) - 1 != N_STATIC_FEATURES:
            raise PmemoFormatError(
                path,
                f"{len(names) - 1} feature columns, expected {N_STATIC_FEATURES} "
                "(openSMILE IS13_ComParE functionals) after musicId",
                line,
            )
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise PmemoFormatError(path, "duplicate column name", line, _column(name, i))
            seen.add(name)
        return tuple(names[1:])

    def _scan_eda(self) -> tuple[dict[int, Path], dict[int, tuple[str, ...]]]:
        files: dict[int, Path] = {}
        subjects: dict[int, tuple[str, ...]] = {}
        for path in sorted(self.eda_dir.iterdir()):
            m = _EDA_NAME.fullmatch(path.name)
            if m is None:
                if path.name.endswith(".csv"):
                    raise PmemoFormatError(path, "expected an EDA file named <musicId>_EDA.csv")
                continue  # e.g. .DS_Store
            music_id = int(m.group(1))
            if music_id not in self.songs:
                raise PmemoFormatError(
                    path, f"EDA for musicId {music_id}, which has no row in {METADATA_FILE}"
                )
            if music_id in files:
                raise PmemoFormatError(
                    path, f"second EDA file for musicId {music_id} ({files[music_id].name})"
                )
            files[music_id] = path
            subjects[music_id] = _eda_header(path)
        if not files:
            raise PmemoFormatError(self.eda_dir, "no <musicId>_EDA.csv file")
        return files, subjects

    # -- features ----------------------------------------------------------------------------

    def features(self) -> tuple[NDArray[np.int64], list[str], FloatArray]:
        """All static music features.

        Returns
        -------
        music_ids : ndarray, shape (n_songs,), int64, ascending
        names : list of the 6373 feature names
        X : ndarray, shape (n_songs, 6373), float64, read-only (raw openSMILE scales, which differ
            by orders of magnitude: standardise before use)
        """
        if self._features is None:
            self._features = self._read_features()
        ids, X = self._features
        return ids, list(self.feature_names), X

    def feature_vector(self, music_id: int) -> FloatArray:
        """The static features of one song, shape (6373,), read-only."""
        ids, _, X = self.features()
        i = int(np.searchsorted(ids, music_id))
        if i == len(ids) or ids[i] != music_id:
            raise KeyError(f"musicId {music_id} has no row in {self.root / FEATURES_FILE}")
        row: FloatArray = X[i]
        return row

    def _read_features(self) -> tuple[NDArray[np.int64], FloatArray]:
        path = self.root / FEATURES_FILE
        rows = _rows(path)
        next(rows)  # header, checked at open
        ids: list[int] = []
        values: list[FloatArray] = []
        seen: set[int] = set()
        n_fields = N_STATIC_FEATURES + 1
        for line, row in rows:
            if len(row) != n_fields:
                raise PmemoFormatError(
                    path,
                    f"{len(row) - 1} feature values, expected {N_STATIC_FEATURES} after musicId",
                    line,
                )
            music_id = _music_id(path, line, _column("musicId", 0), row[0])
            if music_id in seen:
                raise PmemoFormatError(
                    path, f"duplicate musicId {music_id}", line, _column("musicId", 0)
                )
            seen.add(music_id)
            try:
                x = np.array(row[1:], dtype=np.float64)
            except ValueError:
                k = next(k for k, t in enumerate(row[1:], 1) if not _is_number(t))
                raise PmemoFormatError(
                    path,
                    f"expected a number, got {row[k]!r}",
                    line,
                    _column(self.feature_names[k - 1], k),
                ) from None
            if not np.isfinite(x).all():
                k = int(np.argmax(~np.isfinite(x))) + 1
                raise PmemoFormatError(
                    path,
                    f"expected a finite number, got {row[k]!r}",
                    line,
                    _column(self.feature_names[k - 1], k),
                )
            ids.append(music_id)
            values.append(x)
        order = np.argsort(ids, kind="stable")
        id_arr = np.asarray(ids, dtype=np.int64)[order]
        X = np.stack(values)[order] if values else np.empty((0, N_STATIC_FEATURES))
        id_arr.flags.writeable = False
        X.flags.writeable = False
        return id_arr, X

    # -- EDA and trials ----------------------------------------------------------------------

    def eda_subjects(self, music_id: int) -> tuple[str, ...]:
        """Subject ids with a column in the song's EDA file (empty columns included)."""
        return self._eda_subjects[self._check_music_id(music_id)]

    def eda(self, music_id: int) -> dict[str, FloatArray]:
        """The EDA of everyone who listened to a song: subject → ndarray (n_samples,), 50 Hz.

        Trailing empty cells are removed; columns without any value are left out, logged and
        counted in :attr:`skipped`.
        """
        path = self._eda_files[self._check_music_id(music_id)]
        signals: dict[str, FloatArray] = {}
        for subject, x in _read_eda(path).items():
            if x is None:
                if (music_id, subject) not in self.skipped.empty_columns:  # warn once
                    logger.warning("%s: subject %s's column is empty: skipped", path, subject)
                self.skipped.empty_columns.add((music_id, subject))
            else:
                signals[subject] = x
        return signals

    def _check_music_id(self, music_id: int) -> int:
        if music_id not in self._eda_files:
            raise KeyError(f"musicId {music_id} has no EDA file in {self.eda_dir}")
        return music_id

    def trials(
        self,
        min_seconds: float = 10.0,
        subjects: Iterable[str] | None = None,
        music_ids: Iterable[int] | None = None,
        ratings: Literal["auto", "per-subject", "song-mean"] = "auto",
    ) -> Iterator[PmemoTrial]:
        """Every (subject, song) with EDA and a rating, song by song (ascending musicId), then
        subject by subject.

        Parameters
        ----------
        min_seconds : recordings with less EDA are skipped (counted in ``skipped.too_short``).
        subjects, music_ids : restrict to these (default: all); unknown ids raise ``KeyError``.
        ratings : "auto" (per-subject if the optional file exists, else song means),
            "per-subject" (the file must exist; recordings it does not rate are skipped and
            counted) or "song-mean" (the song's static mean for every subject).

        Songs without a rating are skipped before their EDA is read
        (``skipped.songs_without_rating``).
        """
        source: RatingSource = self.rating_source if ratings == "auto" else ratings
        if source == "per-subject" and not self.has_subject_ratings:
            raise PmemoFormatError(
                self.root, f"ratings='per-subject' needs {SUBJECT_RATINGS_FILE}, which is missing"
            )
        songs = self.music_ids if music_ids is None else sorted(set(music_ids))
        for music_id in songs:
            self._check_music_id(music_id)
        wanted = None if subjects is None else set(subjects)
        if wanted is not None and (unknown := wanted - set(self.subjects)):
            raise KeyError(f"no EDA for subject(s) {', '.join(sorted(unknown))}")
        return self._trials(songs, wanted, source, min_seconds)

    def _trials(
        self,
        songs: Sequence[int],
        wanted: set[str] | None,
        source: RatingSource,
        min_seconds: float,
    ) -> Iterator[PmemoTrial]:
        rated_songs = (
            {m for m, _ in self.subject_ratings}
            if source == "per-subject"
            else set(self.static_annotations)
        )
        for music_id in songs:
            if music_id not in rated_songs:
                self.skipped.songs_without_rating.add(music_id)
                continue
            if wanted is not None and wanted.isdisjoint(self._eda_subjects[music_id]):
                continue
            for subject, x in self.eda(music_id).items():
                if wanted is not None and subject not in wanted:
                    continue
                if source == "per-subject":
                    rating = self.subject_ratings.get((music_id, subject))
                    if rating is None:
                        self.skipped.without_subject_rating.add((music_id, subject))
                        continue
                else:
                    rating = self.static_annotations[music_id]
                if len(x) < min_seconds * SFREQ:
                    self.skipped.too_short.add((music_id, subject))
                    continue
                yield PmemoTrial(subject, music_id, x, rating[0], rating[1], source)


def open_pmemo(root: Path | str) -> PmemoDataset:
    """Open a PMEmo 2019 folder: check the layout and headers now, read EDA and features lazily.

    Raises
    ------
    PmemoFormatError : a missing file or folder, a wrong header, a malformed value (the message
        names file, line, column and what was expected).
    """
    return PmemoDataset(Path(root))
