"""Types, labels and units as devices send them (streaming/ingest/channels.py), without LSL."""

from __future__ import annotations

import numpy as np
import pytest

from affectstream.streaming.ingest.channels import (
    SKIN_UNITS,
    StreamOverrides,
    UnitConversion,
    canonical_type,
    plan_channels,
    skin_unit,
)
from affectstream.streaming.ingest.session import SessionMatch
from affectstream.streaming.lsl.inlet import StreamDescription


def _desc(
    kind: str,
    n: int,
    labels: tuple[str, ...] = (),
    units: tuple[str, ...] = (),
    fmt: str = "float32",
) -> StreamDescription:
    return StreamDescription(
        name=f"dev {kind}",
        type=kind,
        source_id=f"dev-{kind}",
        hostname="here",
        channel_count=n,
        nominal_srate=4.0,
        channel_format=fmt,
        uid="u",
        channel_labels=labels,
        channel_units=units,
    )


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        *[(t, "GSR") for t in ("GSR", "gsr", "EDA", "eda", "SC", "sc", "Skin Conductance")],
        *[(t, "GSR") for t in ("skin_conductance", "skin-conductance", "electrodermal activity")],
        *[(t, "PPG") for t in ("PPG", "ppg", "BVP", "bvp", "Blood Volume Pulse")],
        *[(t, "RESP") for t in ("RESP", "RSP", "Resp", "resp", "respiration", "Respiration")],
        *[(t, "ECG") for t in ("ECG", "ecg", "EKG", "ekg")],
        *[(t, "EEG") for t in ("EEG", "eeg", "Eeg")],
        *[(t, "Markers") for t in ("Markers", "markers", "MARKERS")],
        # anything else is kept as spelt (and compared exactly)
        ("Gyro", "Gyro"),
        ("gyro", "gyro"),
        ("Marker", "Marker"),
    ],
)
def test_canonical_type(given: str, canonical: str) -> None:
    assert canonical_type(given) == canonical


def test_session_match_by_type_uses_any_spelling() -> None:
    match = SessionMatch(type="gsr")
    assert match.matches_short(_desc("EDA", 1))
    assert match.matches_short(_desc("sc", 1))
    assert not match.matches_short(_desc("PPG", 1))
    assert SessionMatch(type="Gyro").matches_short(_desc("Gyro", 3))
    assert not SessionMatch(type="Gyro").matches_short(_desc("gyro", 3))


@pytest.mark.parametrize("kind", ["EDA", "bvp", "Resp", "EKG"])
@pytest.mark.parametrize("labels", [(), ("Channel 1",), ("",), ("EEG",)])
def test_one_channel_modality_stream_is_labelled_by_its_type(
    kind: str, labels: tuple[str, ...]
) -> None:
    plan = plan_channels(_desc(kind, 1, labels))
    assert plan.labels == (canonical_type(kind),)
    assert plan.labels_from == "type"


def test_multichannel_labels_as_carried_or_none() -> None:
    labelled = plan_channels(_desc("EEG", 4, ("TP9", "AF7", "AF8", "TP10")))
    assert labelled.labels == ("TP9", "AF7", "AF8", "TP10")
    assert labelled.labels_from == "stream"
    for labels in [(), ("TP9", "AF7"), ("TP9", "", "AF8", "TP10")]:  # none, too few, a hole
        plan = plan_channels(_desc("EEG", 4, labels))
        assert plan.labels == () and plan.labels_from is None
        assert plan.report()["labels"] is None
    assert plan_channels(_desc("EEG", 1, ("Cz",))).labels == ("Cz",)  # not a one-channel type


def test_override_labels_win_and_a_count_mismatch_is_refused() -> None:
    names = [f"E{i}" for i in range(32)]
    overrides = StreamOverrides(channels={"eeg": names})
    plan = plan_channels(_desc("EEG", 32, tuple(f"ch{i}" for i in range(32))), overrides)
    assert plan.labels == tuple(names) and plan.labels_from == "override"
    with pytest.raises(
        ValueError, match=r"has 4 channel\(s\); the session's labels for EEG name 32"
    ):
        plan_channels(_desc("EEG", 4), overrides)


def test_override_validation() -> None:
    assert StreamOverrides(channels={"EDA": ["GSR"]}).channels == {"GSR": ("GSR",)}
    assert StreamOverrides(units={"eda": " kOhm "}).units == {"GSR": "kOhm"}
    assert not StreamOverrides()
    with pytest.raises(ValueError, match="given twice"):
        StreamOverrides(channels={"EEG": ["Fp1", "Fp1"]})
    with pytest.raises(ValueError, match="empty label"):
        StreamOverrides(channels={"EEG": ["Fp1", " "]})
    with pytest.raises(ValueError, match="type GSR given twice"):
        StreamOverrides(units={"EDA": "uS", "GSR": "uS"})
    with pytest.raises(ValueError, match="GSR only"):
        StreamOverrides(units={"EEG": "uV"})
    with pytest.raises(ValueError, match="'furlongs' is no skin-conductance unit"):
        StreamOverrides(units={"GSR": "furlongs"})


@pytest.mark.parametrize(
    ("text", "symbol"),
    [
        *[(t, "µS") for t in ("µS", "μS", "uS", "us", "microsiemens", "microSiemens", "µ S")],
        *[(t, "mS") for t in ("mS", "millisiemens")],
        *[(t, "nS") for t in ("nS", "nanosiemens")],
        *[(t, "S") for t in ("S", "siemens", "Siemens")],
        *[(t, "Ω") for t in ("Ohm", "ohm", "Ω", "Ω", "ohms")],
        *[(t, "kΩ") for t in ("kOhm", "kohm", "KOHM", "kΩ", "k Ohm", "kiloohm", "kilohms")],
        *[(t, "MΩ") for t in ("MOhm", "MΩ", "megaohm", "Megohm")],
    ],
)
def test_skin_units(text: str, symbol: str) -> None:
    unit = skin_unit(text)
    assert unit is not None and unit.symbol == symbol


@pytest.mark.parametrize("text", ["mOhm", "mΩ", "furlongs", "uV", "%", "a.u."])
def test_unknown_skin_units(text: str) -> None:
    assert skin_unit(text) is None


def test_conversion_to_microsiemens() -> None:
    conv = UnitConversion(
        (SKIN_UNITS["kΩ"], SKIN_UNITS["Ω"], SKIN_UNITS["mS"], SKIN_UNITS["MΩ"], SKIN_UNITS["S"])
    )
    x = np.array(
        [
            [100.0, 250_000.0, 0.002, 0.5, 3e-6],
            [0.0, -1.0, np.nan, np.inf, -2e-6],
        ]
    )
    out = conv.apply(x)
    np.testing.assert_allclose(out[0], [10.0, 4.0, 2.0, 2.0, 3.0])
    # resistance ≤ 0 or non-finite → NaN; conductance: NaN stays NaN, Inf stays non-finite
    assert np.isnan(out[1, :2]).all() and np.isnan(out[1, 2]) and np.isnan(out[1, 3])
    assert out[1, 4] == pytest.approx(-2.0)


def test_gsr_unit_from_description_override_or_assumed() -> None:
    described = plan_channels(_desc("EDA", 1, units=("kOhm",)))
    assert described.unit == "µS" and described.unit_from == "description"
    assert described.unit_given == "kOhm" and described.units == ("µS",)
    assert described.conversion is not None
    overridden = plan_channels(_desc("EDA", 1, units=("uS",)), StreamOverrides(units={"GSR": "kΩ"}))
    assert overridden.unit_from == "override" and overridden.unit_given == "kΩ"
    assert overridden.conversion is not None and overridden.conversion.units[0].resistance
    assumed = plan_channels(_desc("GSR", 2))
    assert assumed.report()["unit"] == "µS (assumed)" and assumed.unit_from == "assumed"
    assert assumed.conversion is None and assumed.unit_given is None
    already = plan_channels(_desc("GSR", 1, units=("microsiemens",)))
    assert already.conversion is None and already.unit == "µS"
    with pytest.raises(ValueError, match="channel 1: unit 'furlongs'"):
        plan_channels(_desc("GSR", 1, units=("furlongs",)))


def test_other_streams_keep_their_units_unconverted() -> None:
    plan = plan_channels(_desc("EEG", 2, ("Cz", "Pz"), ("microvolts", "microvolts")))
    assert plan.unit == "microvolts" and plan.conversion is None
    assert plan.units == ("microvolts", "microvolts")
    mixed = plan_channels(_desc("Gyro", 2, units=("deg/s", "g")))
    assert mixed.unit is None and mixed.units == ("deg/s", "g")
    markers = plan_channels(_desc("Markers", 1, fmt="string"))
    assert markers.conversion is None and markers.unit is None
