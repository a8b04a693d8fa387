"""The 10-20/10-10 electrode vocabulary and the 9×9 grid (streaming/preprocess/montage.py)."""

from __future__ import annotations

import pytest

from affectstream.streaming.preprocess.montage import (
    ELECTRODE_CELLS,
    GRID_POSITIONS,
    OLD_NAMES,
    canonical_electrode,
    grid_cell,
    validate_eeg_labels,
)

TEN_TEN = (
    "Nz Fp1 Fpz Fp2 AF9 AF7 AF5 AF3 AFz AF4 AF6 AF8 AF10 "
    "F9 F7 F5 F3 F1 Fz F2 F4 F6 F8 F10 FT9 FT7 FC5 FC3 FC1 FCz FC2 FC4 FC6 FT8 FT10 "
    "T9 T7 C5 C3 C1 Cz C2 C4 C6 T8 T10 TP9 TP7 CP5 CP3 CP1 CPz CP2 CP4 CP6 TP8 TP10 "
    "P9 P7 P5 P3 P1 Pz P2 P4 P6 P8 P10 PO9 PO7 PO5 PO3 POz PO4 PO6 PO8 PO10 "
    "I1 O1 Oz O2 I2 Iz"
).split()


def test_every_10_10_position_has_a_cell_and_the_deap_32_do_not_move() -> None:
    assert set(ELECTRODE_CELLS) == set(TEN_TEN)
    for name, cell in GRID_POSITIONS.items():
        assert ELECTRODE_CELLS[name] == cell, name
    assert all(0 <= r < 9 and 0 <= c < 9 for r, c in ELECTRODE_CELLS.values())


def test_grid_is_left_right_symmetric() -> None:
    """Odd numbers on the left, even on the right, ``z`` on the midline, mirror images."""
    for name, (r, c) in ELECTRODE_CELLS.items():
        if name.endswith("z"):
            assert c == 4, name
            continue
        head = name.rstrip("0123456789")
        number = int(name[len(head) :])
        assert (c < 4) == (number % 2 == 1), name
        mirror = f"{head}{number + 1 if number % 2 else number - 1}"
        assert ELECTRODE_CELLS[mirror] == (r, 8 - c), name


def test_only_the_outer_ring_and_nz_iz_share_a_cell() -> None:
    by_cell: dict[tuple[int, int], list[str]] = {}
    for name, cell in ELECTRODE_CELLS.items():
        by_cell.setdefault(cell, []).append(name)
    shared = sorted(tuple(sorted(v)) for v in by_cell.values() if len(v) > 1)
    assert shared == sorted(
        tuple(sorted(p))
        for p in [
            ("Fpz", "Nz"),
            ("F7", "F9"),
            ("F8", "F10"),
            ("FT7", "FT9"),
            ("FT8", "FT10"),
            ("T7", "T9"),
            ("T8", "T10"),
            ("TP7", "TP9"),
            ("TP8", "TP10"),
            ("P7", "P9"),
            ("P8", "P10"),
            ("Iz", "Oz"),
        ]
    )


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("Fp1", "Fp1"),
        ("FP1", "Fp1"),
        ("fp1", "Fp1"),
        ("FPZ", "Fpz"),
        ("CZ", "Cz"),
        ("afz", "AFz"),
        (" Oz ", "Oz"),
        ("T3", "T7"),
        ("t4", "T8"),
        ("T5", "P7"),
        ("T6", "P8"),
        ("tp9", "TP9"),
    ],
)
def test_canonical_spelling(label: str, name: str) -> None:
    assert canonical_electrode(label) == name
    assert grid_cell(label) == ELECTRODE_CELLS[name]


def test_old_names_sit_where_the_new_ones_do() -> None:
    assert {old: grid_cell(old) for old in OLD_NAMES} == {
        "T3": (4, 0),
        "T4": (4, 8),
        "T5": (6, 0),
        "T6": (6, 8),
    }
    assert canonical_electrode("EXG1") is None
    with pytest.raises(ValueError, match="'EXG1' is no 10-20/10-10 electrode"):
        grid_cell("EXG1")


def test_validate_returns_canonical_names_in_order() -> None:
    headband = ["tp9", "AF7", "af8", "TP10"]
    assert validate_eeg_labels(headband) == ["TP9", "AF7", "AF8", "TP10"]
    assert validate_eeg_labels(headband, grid=True) == ["TP9", "AF7", "AF8", "TP10"]
    deap = list(GRID_POSITIONS)
    assert validate_eeg_labels([n.upper() for n in deap], grid=True) == deap
    assert validate_eeg_labels(["T3", "T4", "T5", "T6"]) == ["T7", "T8", "P7", "P8"]


def test_validate_names_unknown_and_duplicate_labels() -> None:
    with pytest.raises(ValueError, match="unknown electrode label") as e:
        validate_eeg_labels(["Fp1", "FP1", "EXG1", "T3", "T7", "Ch 5", "Cz"])
    text = str(e.value)
    assert "'EXG1'" in text and "'Ch 5'" in text
    assert "electrode Fp1 given 2 times ('Fp1', 'FP1')" in text
    assert "electrode T7 given 2 times ('T3', 'T7')" in text
    assert "Cz" not in text


def test_validate_grid_refuses_two_electrodes_on_one_cell() -> None:
    assert validate_eeg_labels(["T7", "T9"]) == ["T7", "T9"]  # both real electrodes
    with pytest.raises(ValueError, match=r"T7 and T9 share grid cell \(4, 0\)"):
        validate_eeg_labels(["T7", "T9"], grid=True)
