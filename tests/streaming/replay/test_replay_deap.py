"""DEAP replay as LSL streams: pure helpers, then real outlets and inlets on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from affectstream.streaming.formats.deap import (
    CHANNELS,
    N_SAMPLES,
    DeapSubject,
    gsr_ohm_to_microsiemens,
    read_deap,
)
from affectstream.streaming.replay.deap import (
    REPLAY_STREAMS,
    DeapReplay,
    default_session_name,
    parse_trials,
)

# -- pure helpers -------------------------------------------------------------------------------


def test_parse_trials_ranges_and_singles_keep_order() -> None:
    assert parse_trials("1-3,7", 40) == (1, 2, 3, 7)
    assert parse_trials("7,1-2", 40) == (7, 1, 2)
    assert parse_trials(None, 3) == (1, 2, 3)
    assert parse_trials("", 2) == (1, 2)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("0", "out of range"),
        ("41", "out of range"),
        ("3-1", "bad trial"),
        ("a", "bad trial"),
        ("1,,2", "bad trial"),
    ],
)
def test_parse_trials_errors(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_trials(spec, 40)


def test_session_name_is_stable_per_file_and_differs_between_files(tmp_path: Path) -> None:
    a, b = tmp_path / "s01.dat", tmp_path / "x" / "s01.dat"
    assert default_session_name(a) == default_session_name(a)
    assert default_session_name(a).startswith("deap-s01-")
    assert default_session_name(a) != default_session_name(b)


def _subject(n_trials: int = 2) -> DeapSubject:
    rng = np.random.default_rng(1)
    data = rng.normal(size=(n_trials, 40, N_SAMPLES))
    data[:, 36] = 1e5
    return DeapSubject(data, np.full((n_trials, 4), 5.0))


def test_replay_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="speed must be a positive"):
        DeapReplay(_subject(), [1], speed=0, session="x")
    with pytest.raises(ValueError, match="within 1-2"):
        DeapReplay(_subject(), [3], session="x")
    with pytest.raises(ValueError, match="explicit session name"):
        DeapReplay(_subject(), [1])


def test_replay_refuses_non_positive_skin_resistance_naming_the_trial() -> None:
    subject = _subject()
    subject.data[1, 36, 10] = 0.0
    with pytest.raises(ValueError, match="trial 2, stream GSR"):
        DeapReplay(subject, [1, 2], session="x")


def test_stream_layout_covers_every_deap_channel_once() -> None:
    used = [i for spec in REPLAY_STREAMS for i in spec.channels]
    assert sorted(used) == list(range(40))
    assert [s.type for s in REPLAY_STREAMS] == ["EEG", "GSR", "PPG", "RESP", "AUX"]


# -- real LSL on loopback -------------------------------------------------------------------------


def _resolve(prefix: str, n: int, timeout: float = 15.0) -> list:  # type: ignore[type-arg]
    import pylsl

    deadline = time.monotonic() + timeout
    found: list = []  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        found = [i for i in pylsl.resolve_streams(1.0) if i.source_id().startswith(prefix)]
        if len(found) >= n:
            return found
    raise AssertionError(f"found {len(found)} of {n} streams with prefix {prefix}")


def _receive_replay(
    proc: subprocess.Popen[str], session: str, extra_seconds: float = 3.0
) -> dict[str, tuple[list, np.ndarray, list[float], object]]:  # type: ignore[type-arg]
    """Open a raw pylsl inlet (no post-processing) on each replay stream and pull until the replay
    process has exited; returns per type (samples, timestamps, arrival lags, full info)."""
    import pylsl

    infos = _resolve(session, 6)
    inlets = {i.type(): pylsl.StreamInlet(i, max_buflen=360, recover=False) for i in infos}
    for inlet in inlets.values():
        inlet.open_stream(timeout=10)
    full = {k: inlet.info(timeout=10) for k, inlet in inlets.items()}
    samples: dict[str, list] = {k: [] for k in inlets}  # type: ignore[type-arg]
    stamps: dict[str, list[float]] = {k: [] for k in inlets}
    lags: dict[str, list[float]] = {k: [] for k in inlets}
    live = set(inlets)
    deadline: float | None = None
    while live:
        for kind in list(live):
            try:
                data, ts = inlets[kind].pull_chunk(timeout=0.0, max_samples=4096)
            except pylsl.util.LostError:
                live.discard(kind)
                continue
            if ts:
                lags[kind].append(pylsl.local_clock() - ts[-1])
                samples[kind] += data
                stamps[kind] += ts
        if proc.poll() is not None:
            deadline = deadline or time.monotonic() + extra_seconds
            if time.monotonic() > deadline:
                break
        time.sleep(0.005)
    return {k: (samples[k], np.array(stamps[k]), lags[k], full[k]) for k in inlets}


def _labels(info: object) -> list[str]:
    ch = info.desc().child("channels").child("channel")  # type: ignore[attr-defined]
    out = []
    while not ch.empty():
        out.append(ch.child_value("label"))
        ch = ch.next_sibling()
    return out


def _check_trial_received(path: Path, trial: int, speed: float, received: dict) -> None:  # type: ignore[type-arg]
    subject = read_deap(path)
    block = subject.data[trial - 1]
    rate = 128.0 * speed
    for spec in REPLAY_STREAMS:
        data, ts, lags, info = received[spec.type]
        assert len(data) == N_SAMPLES, f"{spec.type}: {len(data)} samples, expected {N_SAMPLES}"
        assert info.nominal_srate() == rate
        assert _labels(info) == [CHANNELS[i].name for i in spec.channels]
        expected = block[list(spec.channels)].T
        if spec.type == "GSR":
            expected = gsr_ohm_to_microsiemens(expected)
            assert (
                info.desc().child("channels").child("channel").child_value("unit") == "microsiemens"
            )
        np.testing.assert_array_equal(np.array(data, dtype=np.float32), expected.astype(np.float32))
        # spacing of the timestamps: the nominal rate within 1 %
        spacing = np.diff(ts)
        assert np.all(np.abs(spacing * rate - 1) < 0.01), (spacing.min(), spacing.max())
        # paced in real time: chunks arrive when their samples are due, not in a burst
        assert np.median(lags) < 0.1, np.median(lags)
        assert ts[-1] - ts[0] == pytest.approx((N_SAMPLES - 1) / rate, rel=1e-6)
    # markers carry the file's labels and the data's clock
    markers, mts, _, minfo = received["Markers"]
    assert minfo.nominal_srate() == 0
    events = [json.loads(m[0]) for m in markers]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "trial_start" and kinds[-1] == "trial_end"
    running = [e for e in events if e["event"] == "trial_running"]
    assert len(running) == len(events) - 2 == 12  # every 5 s of the 63 s trial
    assert [e["elapsed_s"] for e in running] == [5.0 * k for k in range(1, 13)]
    expected_labels = dict(
        zip(
            ("valence", "arousal", "dominance", "liking"),
            subject.labels[trial - 1].tolist(),
            strict=True,
        )
    )
    for e in events:
        assert e["trial"] == trial and e["subject"] == subject.subject
        assert {k: e[k] for k in expected_labels} == expected_labels
    eeg_ts = received["EEG"][1]
    assert mts[0] == pytest.approx(eeg_ts[0], abs=1e-6)
    assert mts[-1] == pytest.approx(eeg_ts[-1] + 1 / rate, abs=1e-6)
    assert mts[1] == pytest.approx(eeg_ts[5 * 128], abs=1e-6)  # first trial_running, at 5 s


@pytest.mark.lsl
def test_replay_delivers_every_sample_of_a_trial_at_the_nominal_rate(
    synthetic_dir: Path, session_name: str, cli: Callable[..., list[str]], cli_env: dict[str, str]
) -> None:
    path = synthetic_dir / "s02.dat"
    cmd = cli(
        "replay",
        path,
        "--trials",
        "2",
        "--speed",
        "4",
        "--session",
        session_name,
        "--wait-for-consumers",
        "20",
    )
    proc = subprocess.Popen(
        cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        received = _receive_replay(proc, session_name)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"{session_name}-EEG" in out and "finished: 8064 samples" in out
    _check_trial_received(path, 2, 4.0, received)


@pytest.mark.lsl
@pytest.mark.slow
@pytest.mark.timeout(150)
def test_replay_in_real_time(
    synthetic_dir: Path, session_name: str, cli: Callable[..., list[str]], cli_env: dict[str, str]
) -> None:
    path = synthetic_dir / "s01.dat"
    cmd = cli(
        "replay",
        path,
        "--trials",
        "3",
        "--session",
        session_name,
        "--wait-for-consumers",
        "20",
        "--quiet",
    )
    proc = subprocess.Popen(
        cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        received = _receive_replay(proc, session_name)
        proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    _check_trial_received(path, 3, 1.0, received)


@pytest.mark.lsl
def test_ctrl_c_stops_cleanly(
    synthetic_dir: Path, session_name: str, cli: Callable[..., list[str]], cli_env: dict[str, str]
) -> None:
    cmd = cli("replay", synthetic_dir / "s01.dat", "--loop", "--session", session_name)
    proc = subprocess.Popen(
        cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _resolve(session_name, 6)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped:" in out


@pytest.mark.lsl
def test_restarted_replay_is_recovered_by_an_open_inlet(
    synthetic_dir: Path, cli: Callable[..., list[str]], cli_env: dict[str, str]
) -> None:
    """Same file → same source_id, so an inlet with LSL recovery resumes after a restart."""
    import pylsl

    path = synthetic_dir / "s01.dat"
    session = default_session_name(path)
    cmd = cli("replay", path, "--loop", "--quiet")

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def pull_for(inlet: pylsl.StreamInlet, seconds: float) -> int:
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            _, ts = inlet.pull_chunk(timeout=0.2, max_samples=1024, min_samples=1)
            n += len(ts)
        return n

    first = start()
    second = None
    try:
        (info,) = [i for i in _resolve(session, 6) if i.type() == "GSR"]
        assert info.source_id() == f"{session}-GSR"
        inlet = pylsl.StreamInlet(info, recover=True)
        inlet.open_stream(timeout=10)
        assert pull_for(inlet, 1.0) > 0
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=10)
        pull_for(inlet, 0.5)  # drain
        second = start()
        assert pull_for(inlet, 8.0) > 0, "inlet did not resume after the replay restarted"
    finally:
        for p in (first, second):
            if p is not None:
                p.kill()
                p.communicate()
