"""Electrode positions: where each 10-20 EEG channel sits on the 9×9 grid of the grid models.

The grid models (CNN-LSTM, MLSTM-FCN's EEG branch) see the scalp as a 9×9 image, frontal at the
top and the left hemisphere on the left. This module holds that map by electrode name, with no
tie to any dataset: a DEAP recording, a replay or a live headset all name their channels in the
10-20 system, and :func:`affectstream.streaming.preprocess.eeg.eeg_grid` places them by name.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["GRID_POSITIONS"]

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
