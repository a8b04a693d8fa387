"""``GET /metrics`` from prometheus_client: the service's metrics read from the live state at scrape
time (same names, types and labels as before), the process collector's CPU and memory, and one
registry per app."""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from affectstream.service.metrics import CONTENT_TYPE_LATEST, metrics_registry, render_metrics
from affectstream.service.scheduler import BUCKETS_MS, StageStats

TOKEN = "t" * 24
HAS_PROC = os.path.isdir("/proc/self")  # the process collector reads /proc (Linux)


@dataclass
class _Slot:
    name: str
    predictions: int
    coalesced: int


@dataclass
class _Ingest:
    rows: list[dict[str, object]]

    def report(self) -> list[dict[str, object]]:
        return self.rows


@dataclass
class _Session:
    id: str
    slots: list[_Slot]
    ingest: _Ingest


@dataclass
class _Hub:
    dropped_total: int = 0


@dataclass
class _Scheduler:
    errors_total: int = 0
    stats: StageStats = field(default_factory=StageStats)


@dataclass
class _State:
    """What the metrics read of a ServiceState, and nothing else."""

    sessions: list[_Session] = field(default_factory=list)
    hub: _Hub = field(default_factory=_Hub)
    scheduler: _Scheduler | None = None

    def session_list(self) -> list[_Session]:
        return list(self.sessions)


def _families(state: object) -> dict[str, Metric]:
    text = render_metrics(cast(Any, state))
    return {m.name: m for m in text_string_to_metric_families(text)}


def _state() -> _State:
    sched = _Scheduler(errors_total=2)
    for ms in (0.5, 3.0, 3.0, 4000.0):
        sched.stats.observe("infer", ms)
    session = _Session(
        "p01",
        [_Slot("tiny", predictions=7, coalesced=1), _Slot("fusion", predictions=3, coalesced=0)],
        _Ingest([{"type": "EEG", "state": "ok"}, {"type": "GSR", "state": "stalled"}]),
    )
    return _State([session], _Hub(dropped_total=5), sched)


def test_service_metrics_have_the_same_names_types_and_labels() -> None:
    fam = _families(_state())
    # the parser drops a counter's _total from the family name, not from its samples
    expected_types = {
        "affectstream_sessions": "gauge",
        "affectstream_predictions": "counter",
        "affectstream_coalesced_windows": "counter",
        "affectstream_dropped_messages": "counter",
        "affectstream_scheduler_errors": "counter",
        "affectstream_stream_state": "gauge",
        "affectstream_stage_latency_ms": "histogram",
    }
    for name, kind in expected_types.items():
        assert fam[name].type == kind, name

    def samples(family: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam[family].samples}

    assert samples("affectstream_sessions") == {("affectstream_sessions", ()): 1.0}
    assert samples("affectstream_predictions") == {
        ("affectstream_predictions_total", (("model", "tiny"), ("session", "p01"))): 7.0,
        ("affectstream_predictions_total", (("model", "fusion"), ("session", "p01"))): 3.0,
    }
    assert (
        samples("affectstream_coalesced_windows")[
            ("affectstream_coalesced_windows_total", (("model", "tiny"), ("session", "p01")))
        ]
        == 1.0
    )
    assert samples("affectstream_dropped_messages") == {
        ("affectstream_dropped_messages_total", ()): 5.0
    }
    assert samples("affectstream_scheduler_errors") == {
        ("affectstream_scheduler_errors_total", ()): 2.0
    }
    assert samples("affectstream_stream_state") == {
        ("affectstream_stream_state", (("session", "p01"), ("state", "ok"), ("type", "EEG"))): 1.0,
        (
            "affectstream_stream_state",
            (("session", "p01"), ("state", "stalled"), ("type", "GSR")),
        ): 1.0,
    }
    hist = fam["affectstream_stage_latency_ms"].samples
    buckets = {s.labels["le"]: s.value for s in hist if s.name.endswith("_bucket")}
    assert list(buckets) == [*map(str, BUCKETS_MS), "+Inf"]  # the scheduler's bounds, as before
    assert (buckets["1"], buckets["2"], buckets["5"], buckets["2500"]) == (1, 1, 3, 3)
    assert buckets["+Inf"] == 4
    by_name = {s.name: s.value for s in hist if not s.name.endswith("_bucket")}
    assert by_name == {
        "affectstream_stage_latency_ms_count": 4,
        "affectstream_stage_latency_ms_sum": pytest.approx(4006.5),
    }
    assert all(s.labels.get("stage") == "infer" for s in hist)


def test_exposed_names_are_unchanged() -> None:
    """The text itself: counters keep their ``_total`` names in HELP, TYPE and the samples."""
    text = render_metrics(cast(Any, _state()))
    for line in (
        "# HELP affectstream_sessions Sessions.",
        "# TYPE affectstream_predictions_total counter",
        "# TYPE affectstream_coalesced_windows_total counter",
        "# TYPE affectstream_dropped_messages_total counter",
        "# TYPE affectstream_scheduler_errors_total counter",
        "# TYPE affectstream_stream_state gauge",
        "# TYPE affectstream_stage_latency_ms histogram",
        'affectstream_stage_latency_ms_bucket{le="+Inf",stage="infer"} 4.0',
        "affectstream_dropped_messages_total 5.0",
    ):
        assert line in text.splitlines(), line
    assert "_created" not in text
    assert CONTENT_TYPE_LATEST.startswith("text/plain; version=0.0.4")


def test_state_is_read_at_scrape_time() -> None:
    state = _State()
    assert _families(state)["affectstream_sessions"].samples[0].value == 0
    assert not _families(state)["affectstream_stage_latency_ms"].samples  # no scheduler yet
    state.sessions.append(_Session("p02", [_Slot("tiny", 1, 0)], _Ingest([])))
    state.scheduler = _Scheduler()
    state.scheduler.stats.observe("total", 12.0)
    fam = _families(state)
    assert fam["affectstream_sessions"].samples[0].value == 1
    assert {s.labels["stage"] for s in fam["affectstream_stage_latency_ms"].samples} == {"total"}


@pytest.mark.skipif(not HAS_PROC, reason="the process collector reads /proc")
def test_process_cpu_and_memory_are_exposed() -> None:
    fam = _families(_State())
    assert fam["process_cpu_seconds"].type == "counter"
    assert fam["process_cpu_seconds"].samples[0].value >= 0
    assert fam["process_resident_memory_bytes"].type == "gauge"
    assert fam["process_resident_memory_bytes"].samples[0].value > 1_000_000
    assert "process_open_fds" in fam and "process_start_time_seconds" in fam
    assert fam["python_info"].samples[0].labels["major"] == str(sys.version_info.major)


def test_one_registry_per_state_and_dropped_with_it() -> None:
    from affectstream.service import metrics

    a, b = _State(), _State()
    assert metrics_registry(a) is metrics_registry(a)
    assert metrics_registry(a) is not metrics_registry(b)
    for state in (a, b):  # no clash of metric names between the registries
        assert "affectstream_sessions 0.0" in render_metrics(cast(Any, state))
    del state
    key = id(b)
    del b
    gc.collect()
    assert key not in metrics._REGISTRIES


@pytest.mark.skipif(not HAS_PROC, reason="the process collector reads /proc")
def test_metrics_route_of_two_apps(tmp_path: Path) -> None:
    """Two real apps in one process, each scraped with the token: parsable, with the process
    metrics, the service's metrics, and the text content type."""
    pytest.importorskip("onnx")
    from fastapi.testclient import TestClient

    from affectstream.service.app import create_app
    from affectstream.service.settings import Settings

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
    from tiny_models import write_tiny_model

    write_tiny_model(tmp_path / "zoo" / "tiny")
    settings = Settings(model_dir=tmp_path / "zoo", token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with (
        TestClient(create_app(settings)) as one,
        TestClient(create_app(settings)) as two,
    ):
        for client in (one, two):
            response = client.get("/metrics", headers=auth)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            fam = {m.name: m for m in text_string_to_metric_families(response.text)}
            assert fam["affectstream_sessions"].samples[0].value == 0
            assert fam["affectstream_predictions"].type == "counter"
            assert fam["process_cpu_seconds"].type == "counter"
            assert fam["process_resident_memory_bytes"].type == "gauge"
