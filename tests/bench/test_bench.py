"""``affectstream bench``: the quick run end to end (the document is complete), and its parts.

The quick run's figures are not asserted: they are measurements of whatever machine runs the
tests. What is asserted is that every measurement ran and the document has every section.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from affectstream.bench import command
from affectstream.bench.e2e import push_time, wearable_stream_read
from affectstream.bench.report import (
    BEGIN,
    END,
    REQUIRED_KEYS,
    SECTION_KEYS,
    markdown,
    update_readme,
)
from affectstream.models import registry
from affectstream.service import cli as cli_module

REPO = Path(__file__).resolve().parents[2]


def test_push_time_is_the_round_holding_the_sample_that_completes_the_window() -> None:
    # rounds of 4 samples at 128 Hz: round k holds samples 4k..4k+3 and left at 100 + k; the log
    # holds, per round, the time its streams are complete up to (last sample + 1/128)
    ts = 10.0 + np.arange(3, 400, 4) / 128
    log = np.column_stack([ts + 1 / 128, 100.0 + np.arange(len(ts))])
    logs = {"s": log}
    # a sample stamped t covers [t, t + 1/128): the window [.., end) is completed by the first
    # sample at or after end - 1/128
    assert push_time(logs, "s", 10.0 + 10 / 128) == 102.0  # sample 9, round 2 (samples 8-11)
    assert push_time(logs, "s", 10.0 + 9.5 / 128) == 102.0  # sample 9
    assert push_time(logs, "s", 10.0 + 8.9 / 128) == 102.0  # sample 8
    assert push_time(logs, "s", 10.0 + 8 / 128) == 101.0  # sample 7, the last of round 1
    assert push_time(logs, "s", 10.0 + 1000 / 128) is None  # not pushed (yet)
    assert push_time(logs, "other", 10.0) is None


def test_a_model_reading_one_wearable_stream_is_timed_by_that_stream() -> None:
    """The wearable log holds, per round, every stream's coverage and then each one's (EDA 4 Hz,
    BVP 64 Hz): an EDA-only model's window is complete with its EDA sample, even when the pulse
    has not reached the window's end (windows end anywhere in the hop: each session's phase)."""
    rounds = 10.0 + np.arange(1, 40) / 32  # a round every 1/32 s, pushed on the dot
    eda = (np.floor(rounds * 4) + 1) / 4  # the newest EDA sample covers a quarter second ahead
    bvp = (np.floor(rounds * 64) + 1) / 64
    log = np.column_stack([np.minimum(eda, bvp), 100.0 + np.arange(len(rounds)), eda, bvp])
    logs = {"s": log}
    end = 10.2  # reached by EDA at the first round (10.03: its sample 40 covers [10.0, 10.25))
    assert push_time(logs, "s", end, stream=0) == 100.0
    assert push_time(logs, "s", end) == push_time(logs, "s", end, stream=1) == 100.0 + 5
    assert push_time({"s": log[:, :2]}, "s", end, stream=0) == 100.0 + 5  # a two-column log
    listed = [
        {"name": "eda-only", "version": "1", "needs": ["GSR"], "may_use": []},
        {"name": "both", "version": "1", "needs": ["GSR", "PPG"], "may_use": []},
        {"name": "pulse-maybe", "version": "2", "needs": ["BVP"], "may_use": ["EEG"]},
    ]
    # keyed as the predictions name the model
    assert wearable_stream_read(listed) == {"eda-only@1": 0, "pulse-maybe@2": 1}


@pytest.mark.parametrize(
    "bad",
    [
        ["--sessions", "0"],
        ["--sessions", "a,b"],
        ["--seconds", "0"],
        ["--ingest-sessions", "0"],
        ["--ingest-seconds", "0.5"],
        ["--only", "ingest,nope"],
        ["--only", ","],
        ["--only", "ingest", "--update-readme", "README.md"],
        ["--deap", "no-such-file.dat"],
        ["--workers", "0"],
        ["--workers", "17"],
        ["--workers", "1,2", "--only", "ingest"],
        ["--kind", "lab,watch"],
        ["--kind", ","],
        ["--kind", "lab", "--update-readme", "README.md"],
        ["--wearable-sessions", "0"],
        ["--profile-seconds", "0"],
        ["--profile-rate", "5"],
    ],
)
def test_bad_arguments_are_refused(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_module.main(["bench", *bad]) == 2
    assert "affectstream bench: error:" in capsys.readouterr().err


def _plan(*argv: str) -> command.Plan:
    parser = cli_module.build_parser("bench")
    p = command.plan(parser.parse_args(list(argv)))
    assert isinstance(p, command.Plan), p
    return p


def test_sections_run_in_their_own_order_and_quick_shrinks_every_one() -> None:
    assert _plan().sections == tuple(SECTION_KEYS) == tuple(command.SECTIONS)
    assert _plan("--only", "cvxeda, ingest").sections == ("ingest", "cvxeda")
    full, quick = _plan(), _plan("--quick")
    assert full.ingest_levels == (1, 4, 16, 32) and full.ingest_seconds == 10.0
    assert quick.ingest_levels == (1, 2) and quick.ingest_seconds <= 3.0
    assert quick.levels == (1, 2) and quick.seconds == 5.0
    assert _plan("--ingest-sessions", "4,1", "--ingest-seconds", "2").ingest_levels == (1, 4)
    assert full.kinds == quick.kinds == ("lab", "wearable")
    assert full.levels == (1, 8, 12, 16, 24, 32) and quick.wearable_levels == (1,)
    assert full.wearable_levels == (1, 10, 20, 30, 50, 100)
    assert full.profile_seconds == 60.0 and quick.profile_seconds < 10
    assert _plan("--kind", "wearable , lab").kinds == ("lab", "wearable")
    assert _plan("--kind", "wearable").kinds == ("wearable",)


def _stack(*files: str, funcs: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    names = list(funcs) + ["f"] * (len(files) - len(funcs))
    return [(n, f"/repo/{f}") for n, f in zip(names, files, strict=True)]


@pytest.mark.parametrize(
    ("frames", "stage"),
    [
        (
            _stack("threading.py", "streaming/ingest/acquisition.py", "pylsl/inlet.py"),
            "acquisition",
        ),
        (_stack("streaming/ingest/acquisition.py", "streaming/ingest/dejitter.py"), "acquisition"),
        # the windower reading a ring buffer: windowing, not acquisition
        (
            _stack(
                "service/scheduler.py",
                "service/sessions.py",
                "streaming/ingest/windows.py",
                "streaming/ingest/ring_buffer.py",
            ),
            "windowing",
        ),
        (
            _stack(
                "service/sessions.py",
                "streaming/preprocess/pipeline.py",
                "streaming/preprocess/pipeline.py",
                "streaming/preprocess/eda.py",
                "streaming/preprocess/cvxeda/ipm.py",
                funcs=("collect", "WindowFeeder.feed", "_InputState.push"),
            ),
            "preprocess_eda",
        ),
        (
            _stack(
                "streaming/preprocess/pipeline.py",
                "streaming/preprocess/pipeline.py",
                "numpy/core/fromnumeric.py",
                funcs=("WindowFeeder.feed", "WindowFeeder._new_samples"),
            ),
            "windowing",
        ),
        (
            _stack("streaming/preprocess/pipeline.py", "streaming/preprocess/eeg.py"),
            "preprocess_eeg",
        ),
        (
            _stack("streaming/preprocess/eeg.py", "streaming/preprocess/filters.py"),
            "preprocess_filters",
        ),
        (
            _stack("streaming/preprocess/pipeline.py", "streaming/preprocess/resample.py"),
            "preprocess_resample",
        ),
        (_stack("streaming/preprocess/pipeline.py", "scipy/signal/x.py"), "preprocess_other"),
        (
            _stack(
                "service/scheduler.py", "models/runner.py", "site-packages/onnxruntime/capi/s.py"
            ),
            "inference",
        ),
        (
            _stack("service/scheduler.py", "service/sessions.py", funcs=("Scheduler._emit",)),
            "messages",
        ),
        (_stack("service/scheduler.py", "service/messages.py"), "messages"),
        (
            _stack(
                "asyncio/events.py",
                "service/api/ws.py",
                "site-packages/starlette/websockets.py",
                "json/__init__.py",
                "json/encoder.py",
                funcs=("run", "follow", "send_json", "dumps", "JSONEncoder.encode"),
            ),
            "json",
        ),
        (
            _stack(
                "service/api/ws.py",
                "site-packages/starlette/websockets.py",
                "site-packages/uvicorn/protocols/websockets/websockets_impl.py",
                "site-packages/websockets/frames.py",
            ),
            "websocket",
        ),
        (_stack("asyncio/base_events.py", "asyncio/events.py"), "other"),
        ([], "other"),
    ],
)
def test_each_sample_falls_in_the_stage_its_frames_name(
    frames: list[tuple[str, str]], stage: str
) -> None:
    from affectstream.bench.profile import STAGES, classify

    assert stage in STAGES
    assert classify(frames) == stage


def test_py_spy_raw_output_is_read_with_threads_and_counts() -> None:
    from affectstream.bench.profile import parse_raw, stage_summary

    text = (
        "thread (4242): scheduler;Thread.run (/usr/lib/python3.11/threading.py:982);"
        "tick (/repo/service/scheduler.py:99);predict (/repo/models/runner.py:150) 7\n"
        "thread (4243): Thread-3 (_run);_run (/repo/streaming/ingest/acquisition.py:170) 3\n"
        "thread (4242): scheduler;Thread.run (/usr/lib/python3.11/threading.py:982);"
        "Condition.wait (/usr/lib/python3.11/threading.py:320) 5\n"
        "thread (4244): inference_0;Thread.run (/usr/lib/python3.11/threading.py:982);"
        "_worker (/usr/lib/python3.11/concurrent/futures/thread.py:81) 2\n"
        "garbage line\n"
    )
    samples = parse_raw(text)
    assert [(s.tid, s.thread, s.count) for s in samples] == [
        (4242, "scheduler", 7),
        (4243, "Thread-3 (_run)", 3),
        (4242, "scheduler", 5),
        (4244, "inference_0", 2),
    ]
    assert samples[0].frames[-1] == ("predict", "/repo/models/runner.py")
    per_stage, own, leaf = stage_summary(samples, "/repo")
    assert per_stage["inference"] == 7 and per_stage["acquisition"] == 3
    # an idle inference thread waits on its queue: waiting too, not "other"
    assert per_stage["waiting"] == 7 and sum(per_stage.values()) == 17
    assert own["inference"][0]["frame"] == "predict (models/runner.py)"
    assert leaf[0]["samples"] == 7


def test_readme_has_the_benchmark_block() -> None:
    text = (REPO / "README.md").read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1


def test_update_readme_needs_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n")
    with pytest.raises(ValueError, match="no <!-- bench:begin -->"):
        update_readme(readme, "table")


@pytest.mark.slow
@pytest.mark.lsl
@pytest.mark.serial
@pytest.mark.timeout(600)
def test_quick_run_measures_everything(
    tmp_path: Path, cli: Callable[..., list[str]], cli_env: dict[str, str]
) -> None:
    done = subprocess.run(
        cli("bench", "--quick", "--out", tmp_path),
        capture_output=True,
        text=True,
        timeout=590,
        env=cli_env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = tmp_path.glob("*-quick.json")
    doc = json.loads(path.read_text())
    assert set(REQUIRED_KEYS) <= set(doc)
    assert doc["quick"] is True and doc["sections"] == list(SECTION_KEYS)
    # ingest: one process holding the sessions, all their data arrived, a plausible CPU cost
    ingest = doc["ingest"]
    assert set(ingest["by_sessions"]) == {"1", "2"}
    for n, row in ingest["by_sessions"].items():
        assert row["sessions"] == int(n) and row["seconds"] >= 2.5
        assert row["samples_expected"] == pytest.approx(int(n) * 5 * 128 * row["seconds"], abs=1)
        assert 0.9 <= row["received_ratio"] <= 1.1, row
        # liblsl's threads and ours for 5 streams: well above nothing, well below a core each
        assert 0.001 < row["cpu_core_fraction_per_session"] < 0.9, row
        assert row["cpu_ms_per_session_second"] == pytest.approx(
            1000 * row["cpu_core_fraction_per_session"], rel=0.01
        )
        assert row["pushers_cpu_core_fraction"] > 0
    assert ingest["sessions_at_50pct_core_measured"] in (0, 1, 2)
    assert ingest["sessions_at_50pct_core_extrapolated"] >= 0
    for n in ("1", "2"):
        e2e = doc["e2e_latency_ms"][n]
        assert e2e["n"] > 0, doc["levels"][n]
        assert 0 < e2e["p50"] <= e2e["p95"] <= e2e["p99"] <= e2e["max"]
        level = doc["levels"][n]
        assert level["received_predictions"] > 0 and level["unmatched"] == 0
        assert level["cpu_cores"]["service"] > 0 and level["memory"]["rss_mib"] > 0
        # the service's threads name themselves: the scheduler and inference are found
        threads = level["service_threads_cpu_ms_per_session_second"]
        assert threads["scheduler"] > 0 and threads["inference"] > 0, threads
    assert isinstance(doc["capacity_sessions"], int)
    assert doc["capacity"]["levels_tried"] == [1, 2]
    # the wearable kind: its own sweep, served by the wearable models
    assert doc["kinds"] == ["lab", "wearable"]
    wearable = doc["wearable"]
    assert wearable["kind"] == "wearable"
    assert wearable["models"] == ["rtcan1d", "rtcan1d-eda-bvp"]
    assert wearable["capacity"]["levels_tried"] == [1]
    for n in ("1",):
        level = wearable["levels"][n]
        assert level["received_predictions"] > 0 and level["unmatched"] == 0, level
        assert {m.split("@")[0] for m in level["e2e_ms_by_model"]} == set(wearable["models"])
    # the profile: every stage of both kinds, from samples py-spy took of the running service
    profile = doc["profile"]
    assert set(profile["by_kind"]) == {"lab", "wearable"}
    for kind, row in profile["by_kind"].items():
        assert row["kind"] == kind and row["sessions"] == 1 and row["warmup_complete"], row
        assert set(row["cpu_ms_per_session_second"]) == set(profile["stages"]), kind
        assert row["active_samples"] > 0 and row["sampling_rounds"] > 0
        assert sum(row["stage_samples"].values()) == row["active_samples"]
        assert row["proc_cpu_ms_per_session_second"]["service"] > 0
        assert {
            m.split("@")[0] for m in row["inference_by_model_cpu_ms_per_session_second"]
        } == set(row["models"]) or not row["stage_samples"]["inference"]
        assert row["machine_load"]["load_average_1min_start"] >= 0
    for stage in ("ingest", "preprocess", "inference"):
        assert doc["stage_ms"][stage]["p50"] is not None
    models = doc["inference_throughput"]["models"]
    assert set(models) == set(registry.names())
    for row in models.values():
        for b in ("batch_1", "batch_32"):
            assert row[b]["ort"]["ms_median"] > 0 and row[b]["torch"]["ms_median"] > 0
            assert row[b]["max_abs_diff"] < 1e-3  # the same computation on both sides
    assert [k for k, v in models.items() if v["shipped"]]  # the zoo's models are marked
    cvx = doc["cvxeda_speedup"]["by_segment_s"]
    assert cvx and all(r["speedup_median"] > 0 for r in cvx.values())
    resampled = doc["resample_cost"]["by_case"]
    assert {r["converter"] for r in resampled.values()} == {"Decimator", "Resampler"}
    # measured, and far below real time (a stream-second costs well under a millisecond or so)
    assert all(0 < r["cpu_ms_per_stream_s"] < 100 for r in resampled.values())
    for key in ("cpu", "cores", "memory_mib", "onnxruntime", "torch", "python"):
        assert doc["machine"][key], key
    assert set(doc["targets"]) == {
        "single_session_p99_le_50ms",
        "sessions_within_250ms_p99_ge_32",
        "wearable_sessions_within_250ms_p99_ge_100",
        "ort_faster_than_torch_batch1_every_shipped_model",
    }
    png = path.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the README block renders from this document
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nOLD-BLOCK\n{END}\nrest\n")
    update_readme(readme, markdown(doc, path.name, png.name))
    text = readme.read_text()
    assert "OLD-BLOCK" not in text and "| 2 |" in text and text.endswith(f"{END}\nrest\n")
    assert "Ingest alone" in text
    assert "Wearable sessions (EDA 4 Hz + BVP 64 Hz), models rtcan1d, rtcan1d-eda-bvp" in text
    assert "| preprocessing: EDA online cvxEDA |" in text and "ms of CPU per session-second" in text
    assert "| EDA 1 ch 51.2 → 16 Hz | Resampler |" in text
    one = doc["ingest"]["by_sessions"]["1"]
    assert f"| {one['samples_received']}/{one['samples_expected']} (" in text
    # a run of some sections renders those alone
    only = {k: doc[k] for k in ("date", "quick", "machine", "ingest", "cvxeda_speedup")}
    part = markdown({**only, "sections": ["ingest", "cvxeda"], "targets": {}}, "x.json", None)
    assert "--only ingest,cvxeda" in part and "Ingest alone" in part and "cvxEDA" in part
    assert "![" not in part and "Targets" not in part and "| model |" not in part


@pytest.mark.slow
@pytest.mark.lsl
@pytest.mark.serial
@pytest.mark.timeout(240)
def test_workers_sweep_runs_against_a_gateway_and_workers(
    tmp_path: Path, cli: Callable[..., list[str]], cli_env: dict[str, str]
) -> None:
    """``bench --workers 1``: the e2e sweep against ``serve --bus URL --workers 1`` on a fresh
    redis-server; predictions arrive through the gateway and the CPU figure counts the worker.
    The wearable kind only: the lab kind runs the same sweep code with the lab pusher (which the
    quick run exercises), and both kinds here would take ~5 min of the suite's budget."""
    import shutil

    if shutil.which("redis-server") is None:  # .ci/run installs it
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    done = subprocess.run(
        cli(
            "bench",
            "--only",
            "e2e",
            "--workers",
            "1",
            "--kind",
            "wearable",
            "--wearable-sessions",
            "1",
            "--seconds",
            "3",
            "--out",
            tmp_path,
        ),
        capture_output=True,
        text=True,
        timeout=230,
        env=cli_env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = tmp_path.glob("*-e2e-workers-wearable.json")
    doc = json.loads(path.read_text())
    assert doc["kinds"] == ["wearable"] and "e2e_workers" not in doc
    one = doc["e2e_workers_wearable"]["by_workers"]["1"]
    level = one["levels"]["1"]
    assert level["received_predictions"] > 0 and level["unmatched"] == 0, level
    assert level["cpu_cores"]["service"] > 0.05  # gateway + the worker doing the inference
    assert one["e2e_latency_ms"]["1"]["p50"] > 0
    assert "Capacity by worker processes" in done.stdout


def test_benchmark_figures_say_when_their_sessions_were_synthetic() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from affectstream.bench.report import mark_synthetic_sessions

    for data, marked in (
        ("synthetic DEAP-format subject (seed 0, 2 trials)", True),
        ("s01.dat", False),
    ):
        fig = plt.figure()
        mark_synthetic_sessions(fig, {"live_sessions_data": data})
        texts = [t.get_text() for t in fig.texts]
        plt.close(fig)
        assert any("synthetic data, not DEAP" in t for t in texts) is marked, texts


def test_the_readme_block_links_results_written_outside_the_readmes_folder(
    tmp_path: Path,
) -> None:
    """``--out`` anywhere with ``--update-readme``: the block links the files relative to the
    README (it raised after the whole run when the out folder was not under the README's)."""
    stored = Path(__file__).resolve().parents[2] / "bench/results/2026-12-07-vm-fifth-round.json"
    doc = json.loads(stored.read_text())
    readme = tmp_path / "repo" / "README.md"
    readme.parent.mkdir()
    readme.write_text(f"intro\n{BEGIN}\nOLD-BLOCK\n{END}\nrest\n")
    assert command.write(doc, tmp_path / "elsewhere", readme) == 0
    text = readme.read_text()
    assert "OLD-BLOCK" not in text
    written = [p.name for p in (tmp_path / "elsewhere").iterdir()]
    assert {Path(n).suffix for n in written} == {".json", ".png"}
    for name in written:
        assert f"../elsewhere/{name}" in text
