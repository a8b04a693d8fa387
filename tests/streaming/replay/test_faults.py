"""Fault injection without LSL: the spec grammar, its errors (exit 2), and the injector's faults."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from affectstream.service import cli as cli_module
from affectstream.streaming.replay.faults import (
    FaultInjector,
    FaultSpec,
    FaultSpecError,
    parse_faults,
)


def test_the_issue_example_parses_with_units_and_defaults() -> None:
    spec = parse_faults("drop=0.01,jitter=5ms,nan=0.001,restart=30s,clock-step=0.5s")
    assert spec == FaultSpec(drop=0.01, jitter=0.005, nan=0.001, restart=30.0, clock_step=0.5)
    assert spec.active and spec.restart_down == 1.0 and spec.clock_step_at == 10.0
    assert parse_faults(None) == parse_faults("") == FaultSpec()
    assert not FaultSpec().active and FaultSpec().describe() == "none"


def test_every_key_and_unit() -> None:
    spec = parse_faults(
        "drop=1%,drop-run=0.1s,nan=0.002,nan-run=250ms,jitter=2ms,jitter-dist=normal,"
        "clock-step=-0.5,clock-step-at=1min,clock-step-every=20s,restart=10s,restart-down=2s,"
        "stall=1.5s,stall-every=12s"
    )
    assert spec.drop == pytest.approx(0.01) and spec.drop_run == pytest.approx(0.1)
    assert spec.nan_run == pytest.approx(0.25) and spec.jitter_dist == "normal"
    assert spec.clock_step == -0.5 and spec.clock_step_at == 60.0
    assert spec.clock_step_every == 20.0 and spec.restart_down == 2.0
    assert spec.stall == 1.5 and spec.stall_every == 12.0
    assert parse_faults(spec.describe()) == spec  # the canonical form parses back


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("drop=1.5", "within [0, 1)"),
        ("drop=-0.1", "within [0, 1)"),
        ("nan=abc", "expected a probability"),
        ("jitter=5", None),  # a bare number is seconds: valid
        ("jitter=5xs", "expected a duration"),
        ("jitter=-1ms", "≥ 0"),
        ("typo=1", "unknown fault 'typo'; known: drop"),
        ("drop", "expected key=value"),
        ("drop=", "expected key=value"),
        ("drop=0.1,,nan=0.1", "empty item"),
        ("drop=0.1,drop=0.2", "drop given twice"),
        ("drop-run=1s", "drop-run needs drop="),
        ("jitter-dist=normal", "jitter-dist needs jitter="),
        ("jitter=1ms,jitter-dist=cauchy", "uniform or normal"),
        ("restart=0s", "period T > 0"),
        ("restart=2s,restart-down=2s", "shorter than the restart period"),
        ("stall=0", "duration T > 0"),
        ("stall=40s", "shorter than stall-every"),
        ("clock-step=0ms", "S ≠ 0"),
    ],
)
def test_bad_specs_say_what_is_wrong(text: str, fragment: str | None) -> None:
    if fragment is None:
        parse_faults(text)
        return
    with pytest.raises(FaultSpecError, match=re.escape(fragment)):
        parse_faults(text)


def test_the_command_refuses_a_bad_spec_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "never-read.dat"  # the spec is checked before the file is read
    assert cli_module.main(["replay", str(missing), "--faults", "drop=2"]) == 2
    err = capsys.readouterr().err
    assert "affectstream replay: error: --faults: drop=2: a probability" in err
    args = ["replay", "--format", "pmemo", str(missing), "--faults", "restart=1s,bogus=2"]
    assert cli_module.main(args) == 2
    assert "unknown fault 'bogus'" in capsys.readouterr().err


def _injector(spec: str, seed: int = 0, rate: float = 128.0, n: int = 2) -> FaultInjector:
    return FaultInjector(parse_faults(spec), seed, rate, n)


def _play(inj: FaultInjector, n: int, chunk: int, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Everything one stream pushes over positions 0..n in chunks of ``chunk``."""
    data = np.arange(n, dtype=np.float32)[:, None]
    xs, ts = [], []
    for a in range(0, n, chunk):
        got = inj.apply(stream, a, data[a : a + chunk], t0=100.0)
        if got is not None:
            xs.append(got[0])
            ts.append(got[1])
    return np.concatenate(xs)[:, 0], np.concatenate(ts)


def test_random_faults_depend_on_seed_and_position_not_on_chunking() -> None:
    spec = "drop=0.05,nan=0.02,nan-run=0.1s,jitter=3ms"
    a = _play(_injector(spec), 20_000, 4)
    b = _play(_injector(spec), 20_000, 13)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = _play(_injector(spec, seed=1), 20_000, 4)
    assert len(c[0]) != len(a[0]) or not np.array_equal(c[1], a[1])
    other = _play(_injector(spec), 20_000, 4, stream=1)  # streams are independent
    assert not np.array_equal(other[1][:500], a[1][:500])


def test_drop_removes_runs_of_about_the_fraction_asked() -> None:
    inj = _injector("drop=0.05,drop-run=50ms")  # runs of 6 samples at 128 Hz
    x, ts = _play(inj, 100_000, 4)
    lost = 1 - len(x) / 100_000
    assert 0.035 < lost < 0.065 and inj.dropped[0] == 100_000 - len(x)
    step = np.diff(x)
    assert step.min() == 1 and np.all(step[step > 1] >= 7)  # whole runs go
    np.testing.assert_allclose(ts, 100.0 + x / 128.0)  # the others keep their timestamps


def test_nan_fraction_and_runs() -> None:
    inj = _injector("nan=0.01,nan-run=0.25s")  # runs of 32 samples
    x, _ = _play(inj, 200_000, 4)
    bad = np.isnan(x)
    assert 0.006 < bad.mean() < 0.014 and inj.nan[0] == int(bad.sum())
    edges = np.flatnonzero(np.diff(bad.astype(int)) == 1)
    ends = np.flatnonzero(np.diff(bad.astype(int)) == -1)
    runs = ends[: len(edges)] - edges[: len(ends)]
    assert runs.min() >= 32


@pytest.mark.parametrize("dist", ["uniform", "normal"])
def test_jitter_is_bounded_uniform_or_normal(dist: str) -> None:
    inj = _injector(f"jitter=5ms,jitter-dist={dist}")
    x, ts = _play(inj, 50_000, 4)
    err = ts - (100.0 + x / 128.0)
    assert abs(err.mean()) < 2e-4
    if dist == "uniform":
        assert np.abs(err).max() <= 0.005 and err.std() == pytest.approx(0.005 / 3**0.5, rel=0.05)
    else:
        assert err.std() == pytest.approx(0.005, rel=0.05)


def test_clock_steps_once_or_every_period_and_markers_share_them() -> None:
    once = _injector("clock-step=0.5s,clock-step-at=2s")
    x, ts = _play(once, 1024, 4)
    step = ts - (100.0 + x / 128.0)
    assert np.all(step[:256] == 0) and np.allclose(step[256:], 0.5)
    assert once.clock_steps == 1 and once.clock_offset(255) == 0 and once.clock_offset(256) == 0.5
    every = _injector("clock-step=-1s,clock-step-at=1s,clock-step-every=2s")
    assert [every.clock_offset(p * 128) for p in (0, 1, 2, 3, 5, 6)] == [0, -1, -1, -2, -3, -3]


def test_restart_and_stall_phases() -> None:
    inj = _injector("restart=10s,restart-down=2s,stall=1s,stall-every=4s")
    assert inj.restart_phase(5.0) == (0, False)
    assert inj.restart_phase(10.5) == (1, True) and inj.restart_phase(12.5) == (1, False)
    assert inj.restart_phase(21.0) == (2, True)
    assert inj.stalled(3.0) == (0, False) and inj.stalled(4.2) == (1, True)
    assert inj.stalled(5.5) == (1, False) and inj.stalled(8.9) == (2, True)
