"""Electrode names and positions: the 10-20/10-10 vocabulary and the 9×9 grid of the grid models.

The grid models (CNN-LSTM, MLSTM-FCN's EEG branch) see the scalp as a 9×9 image, frontal at the
top and the left hemisphere on the left. This module holds that map by electrode name, with no
tie to any dataset: a DEAP recording, a replay or a live headset all name their channels in the
10-20/10-10 system, and :func:`affectstream.streaming.preprocess.eeg.eeg_grid` places them by
name.

- :data:`GRID_POSITIONS`: the 32 electrodes of the DEAP montage (Yang et al.'s layout).
- :data:`ELECTRODE_CELLS`: every 10-10 position known here, on cells consistent with those 32 (none
  of them moves); the outer ring (``F9`` … ``P10``) and ``Nz``/``Iz`` share the cell of their
  inner neighbour (docs/eeg-features.md#electrode-grid).
- :data:`OLD_NAMES`: the 10-20 names replaced in 10-10 (``T3`` → ``T7`` …).
- :func:`canonical_electrode`, :func:`grid_cell`, :func:`validate_eeg_labels`: names as devices
  and users write them (any case, old names) → the canonical spelling, checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "ELECTRODE_CELLS",
    "GRID_POSITIONS",
    "OLD_NAMES",
    "canonical_electrode",
    "grid_cell",
    "validate_eeg_labels",
]

# 9×9 map (row, col) of 32 electrodes of the 10-20 system (the DEAP montage), frontal at the top,
# left hemisphere on the left, as Yang et al.'s data_1Dto2D and torcheeg's DEAP_LOCATION_LIST
# (docs/eeg-features.md#electrode-grid). Other cells are 0.
GRID_POSITIONS: Mapping[str, tuple[int, int]] = {
    "Fp1": (0, 3),
    "Fp2": (0, 5),
    "AF3": (1, 3),
    "AF4": (1, 5),
    "F7": (2, 0),
    "F3": (2, 2),
    "Fz": (2, 4),
    "F4": (2, 6),
    "F8": (2, 8),
    "FC5": (3, 1),
    "FC1": (3, 3),
    "FC2": (3, 5),
    "FC6": (3, 7),
    "T7": (4, 0),
    "C3": (4, 2),
    "Cz": (4, 4),
    "C4": (4, 6),
    "T8": (4, 8),
    "CP5": (5, 1),
    "CP1": (5, 3),
    "CP2": (5, 5),
    "CP6": (5, 7),
    "P7": (6, 0),
    "P3": (6, 2),
    "Pz": (6, 4),
    "P4": (6, 6),
    "P8": (6, 8),
    "PO3": (7, 3),
    "PO4": (7, 5),
    "O1": (8, 3),
    "Oz": (8, 4),
    "O2": (8, 5),
}

# The 10-10 grid, row by row ("." = no electrode). Rows 2-6 hold the nine positions of their 10-10
# row from the left ear to the right; the shorter AF and PO rows and the top and bottom rows keep
# the columns of the DEAP layout above (the same layout as the 62-channel SEED grid).
_ROWS: tuple[tuple[str, ...], ...] = (
    (".", ".", ".", "Fp1", "Fpz", "Fp2", ".", ".", "."),
    ("AF9", "AF7", "AF5", "AF3", "AFz", "AF4", "AF6", "AF8", "AF10"),
    ("F7", "F5", "F3", "F1", "Fz", "F2", "F4", "F6", "F8"),
    ("FT7", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "FT8"),
    ("T7", "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "T8"),
    ("TP7", "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "TP8"),
    ("P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8"),
    ("PO9", "PO7", "PO5", "PO3", "POz", "PO4", "PO6", "PO8", "PO10"),
    (".", ".", "I1", "O1", "Oz", "O2", "I2", ".", "."),
)

# Positions with no cell of their own: on the cell of the neighbour nearest the grid's centre line.
_SHARED: Mapping[str, str] = {
    "Nz": "Fpz",
    "F9": "F7",
    "F10": "F8",
    "FT9": "FT7",
    "FT10": "FT8",
    "T9": "T7",
    "T10": "T8",
    "TP9": "TP7",
    "TP10": "TP8",
    "P9": "P7",
    "P10": "P8",
    "Iz": "Oz",
}


def _cells() -> dict[str, tuple[int, int]]:
    cells = {
        name: (r, c) for r, row in enumerate(_ROWS) for c, name in enumerate(row) if name != "."
    }
    for name, host in _SHARED.items():
        cells[name] = cells[host]
    return cells


ELECTRODE_CELLS: Mapping[str, tuple[int, int]] = _cells()
"""Every electrode name known here (canonical spelling) → its (row, col) on the 9×9 grid."""

OLD_NAMES: Mapping[str, str] = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
"""10-20 names that 10-10 renamed: accepted, read as the new name."""

_BY_FOLDED: Mapping[str, str] = {
    **{name.casefold(): name for name in ELECTRODE_CELLS},
    **{old.casefold(): new for old, new in OLD_NAMES.items()},
}


def canonical_electrode(label: str) -> str | None:
    """The canonical spelling of an electrode name in any case, old names read as the new ones
    (``"FP1"`` → ``"Fp1"``, ``"t3"`` → ``"T7"``); ``None`` if it is no known electrode."""
    return _BY_FOLDED.get(label.strip().casefold())


def grid_cell(label: str) -> tuple[int, int]:
    """(row, col) of an electrode on the 9×9 grid, by any spelling :func:`canonical_electrode`
    accepts; ``ValueError`` naming the label if it has no cell."""
    name = canonical_electrode(label)
    if name is None:
        raise ValueError(f"channel {label!r} is no 10-20/10-10 electrode with a place on the grid")
    return ELECTRODE_CELLS[name]


def validate_eeg_labels(labels: Iterable[str], *, grid: bool = False) -> list[str]:
    """Check EEG channel labels (in column order) and return them in canonical spelling.

    Raises ``ValueError`` naming every label that is no known electrode and every electrode named
    more than once (``"Cz"`` and ``"CZ"``, or ``"T3"`` and ``"T7"``, are the same electrode). With
    ``grid=True`` two electrodes that share a grid cell (e.g. ``T7`` and ``T9``) are refused too,
    since the grid models would see only one of them.
    """
    given = list(labels)
    names = [canonical_electrode(label) for label in given]
    problems = []
    unknown = [label for label, name in zip(given, names, strict=True) if name is None]
    if unknown:
        problems.append("unknown electrode label(s) " + ", ".join(repr(label) for label in unknown))
    seen: dict[str, list[str]] = {}
    for label, name in zip(given, names, strict=True):
        if name is not None:
            seen.setdefault(name, []).append(label)
    for name, spellings in seen.items():
        if len(spellings) > 1:
            problems.append(
                f"electrode {name} given {len(spellings)} times ("
                + ", ".join(repr(s) for s in spellings)
                + ")"
            )
    if grid:
        by_cell: dict[tuple[int, int], list[str]] = {}
        for name in seen:
            by_cell.setdefault(ELECTRODE_CELLS[name], []).append(name)
        for cell, together in by_cell.items():
            if len(together) > 1:
                problems.append(f"{' and '.join(together)} share grid cell {cell}")
    if problems:
        raise ValueError("EEG channel labels: " + "; ".join(problems))
    return [name for name in names if name is not None]
