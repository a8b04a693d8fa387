"""PMEmo replay: the play list and markers, the command's errors, and every sample over real LSL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pylsl
import pytest

from affectstream.service import cli as cli_module
from affectstream.streaming.replay.pmemo import PMEMO_SFREQ, PmemoReplay
from affectstream.streaming.synthetic.pmemo import write_synthetic_pmemo


@dataclass(frozen=True)
class Trial:
    music_id: int
    eda: np.ndarray
    valence: float
    arousal: float


def _trials() -> list[Trial]:
    return [Trial(7, np.linspace(2, 3, 600), 0.7, 0.2), Trial(9, np.full(260, 5.0), 0.1, 0.9)]


def test_play_list_holds_the_songs_back_to_back_with_stimulus_markers() -> None:
    r = PmemoReplay("100001", _trials(), session="pm")
    pl = r._playlist
    assert pl.n_samples == 860 and pl.streams[0].shape == (860, 1)
    np.testing.assert_allclose(pl.streams[0][:600, 0], np.linspace(2, 3, 600), rtol=1e-6)
    starts = [(pos, m) for pos, m in pl.markers if m["event"] == "trial_start"]
    got = [(pos, m["stimulus_id"], m["valence"]) for pos, m in starts]
    assert got == [(0, "7", 0.7), (600, "9", 0.1)]
    running = [pos for pos, m in pl.markers if m["event"] == "trial_running"]
    assert running == [250, 500, 850]  # every 5 s of each song, at 50 Hz
    ends = [(pos, m["music_id"]) for pos, m in pl.markers if m["event"] == "trial_end"]
    assert ends == [(600, 7), (860, 9)]
    assert all(m["dataset"] == "pmemo" and m["subject"] == "100001" for _, m in pl.markers)
    assert r.source_ids == {"GSR": "pm-GSR", "Markers": "pm-Markers"}


@pytest.mark.parametrize(
    ("trials", "kwargs", "fragment"),
    [
        ([], {}, "no trial selected"),
        (_trials(), {"speed": 0.0}, "speed must be a positive number"),
        ([Trial(3, np.array([1.0, np.nan]), 0.5, 0.5)], {}, "song 3: EDA must be"),
        ([Trial(3, np.zeros(0), 0.5, 0.5)], {}, "song 3: EDA must be"),
    ],
)
def test_bad_settings_are_refused(
    trials: list[Trial], kwargs: dict[str, float], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        PmemoReplay("100001", trials, session="pm", **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pmemo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pmemo")
    write_synthetic_pmemo(out, n_subjects=2, n_songs=3, seed=5)
    return out


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--subject", "999999"], "no EDA for subject(s) 999999"),
        (["--songs", "x"], "invalid literal"),
    ],
)
def test_command_errors_are_clear(
    pmemo_dir: Path, extra: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_module.main(["replay", "--format", "pmemo", str(pmemo_dir), *extra]) == 2
    assert fragment in capsys.readouterr().err


def test_command_refuses_a_folder_that_is_not_pmemo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_module.main(["replay", "--format", "pmemo", str(tmp_path)]) == 2
    assert "affectstream replay: error:" in capsys.readouterr().err


@pytest.mark.lsl
@pytest.mark.timeout(60)
def test_every_sample_and_marker_arrives_over_lsl(session_name: str) -> None:
    trials = [Trial(7, np.arange(100.0), 0.7, 0.2), Trial(9, 1000 + np.arange(50.0), 0.1, 0.9)]
    replay = PmemoReplay("100001", trials, session=session_name, speed=4.0, linger_s=2.0)
    replay.open()
    found: Callable[[str], list[pylsl.StreamInfo]] = lambda t: pylsl.resolve_byprop(  # noqa: E731
        "source_id", f"{session_name}-{t}", timeout=10
    )
    inlets = {t: pylsl.StreamInlet(found(t)[0]) for t in ("GSR", "Markers")}
    for inlet in inlets.values():
        inlet.open_stream(timeout=10)
    assert inlets["GSR"].info().nominal_srate() == PMEMO_SFREQ * 4
    thread = threading.Thread(target=replay.run, kwargs={"wait_for_consumers": 5}, daemon=True)
    thread.start()
    thread.join(30)
    values, markers = [], []
    for _ in range(20):
        data, _ts = inlets["GSR"].pull_chunk(timeout=0.2)
        values += [row[0] for row in data]
        m, _ = inlets["Markers"].pull_chunk(timeout=0.0)
        markers += [json.loads(row[0]) for row in m]
    replay.close()
    np.testing.assert_array_equal(values, np.r_[np.arange(100.0), 1000 + np.arange(50.0)])
    events = [(m["event"], m["stimulus_id"]) for m in markers]
    assert events == [
        ("trial_start", "7"),
        ("trial_end", "7"),
        ("trial_start", "9"),
        ("trial_end", "9"),
    ]
