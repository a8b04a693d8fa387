"""Prometheus metrics for ``GET /metrics``, written by ``prometheus_client``.

Each :class:`~affectstream.service.state.ServiceState` gets its own registry
(:func:`metrics_registry`; never the library's global one, so several apps in one process do not
collide). The registry holds a collector that reads the live state at scrape time
(:class:`ServiceCollector`: sessions, predictions, coalesced windows, dropped messages, scheduler
errors, stream health, per-stage latency histograms) and the library's process and platform
collectors (CPU seconds, resident memory, open file descriptors, Python version).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from affectstream.service.scheduler import BUCKETS_MS

if TYPE_CHECKING:
    from affectstream.service.state import ServiceState

__all__ = ["CONTENT_TYPE_LATEST", "ServiceCollector", "metrics_registry", "render_metrics"]

# The content type of what render_metrics writes (generate_latest: the Prometheus text format
# 0.0.4). Spelt out: newer prometheus_client releases point their own CONTENT_TYPE_LATEST at
# format 1.0.0.
CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"


class ServiceCollector(Collector):
    """The service's own metrics, read from the state at every scrape. Holds the state weakly,
    so a registry never keeps a closed app alive."""

    def __init__(self, state: ServiceState) -> None:
        self._state = weakref.ref(state)

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        if state is None:
            return
        sched = state.scheduler
        sessions = state.session_list()

        yield GaugeMetricFamily("affectstream_sessions", "Sessions.", value=len(sessions))

        predictions = CounterMetricFamily(
            "affectstream_predictions", "Predictions published.", labels=["session", "model"]
        )
        coalesced = CounterMetricFamily(
            "affectstream_coalesced_windows",
            "Due windows not sent to a model because a newer one was due at the same tick.",
            labels=["session", "model"],
        )
        for s in sessions:
            for slot in s.slots:
                predictions.add_metric([s.id, slot.name], slot.predictions)
                coalesced.add_metric([s.id, slot.name], slot.coalesced)
        yield predictions
        yield coalesced

        yield CounterMetricFamily(
            "affectstream_dropped_messages",
            "Messages dropped from full subscriber queues.",
            value=state.hub.dropped_total,
        )
        yield CounterMetricFamily(
            "affectstream_scheduler_errors",
            "Failed scheduler steps.",
            value=sched.errors_total if sched else 0,
        )

        streams = GaugeMetricFamily(
            "affectstream_stream_state",
            "Stream health state (1 = current).",
            labels=["session", "type", "state"],
        )
        for s in sessions:
            for r in s.ingest.report():
                streams.add_metric([s.id, str(r["type"]), str(r["state"])], 1)
        yield streams

        latency = HistogramMetricFamily(
            "affectstream_stage_latency_ms",
            "Per-stage latency of published predictions, milliseconds.",
            labels=["stage"],
        )
        if sched is not None:
            stats = sched.stats
            for stage, counts in list(stats.counts.items()):  # a copy: the scheduler adds stages
                cumulative, buckets = 0, []
                for bound, c in zip([*map(str, BUCKETS_MS), "+Inf"], list(counts), strict=True):
                    cumulative += c
                    buckets.append((bound, float(cumulative)))
                latency.add_metric([stage], buckets, sum_value=stats.sums[stage])
        yield latency
        gateway = getattr(state, "gateway", None)  # None in the embedded service
        if gateway is not None:
            yield from _bus_metrics(gateway.health())


def _bus_metrics(bus: dict[str, Any]) -> Iterator[Metric]:
    """A gateway's view of the bus: reachable, sessions registered and leased, relays, and each
    live worker's load (from its heartbeat)."""
    yield GaugeMetricFamily(
        "affectstream_bus_connected", "1 when Redis answers.", value=int(bool(bus["connected"]))
    )
    if not bus["connected"]:
        return
    yield GaugeMetricFamily(
        "affectstream_bus_sessions", "Sessions in the registry.", value=bus["sessions"]
    )
    yield GaugeMetricFamily(
        "affectstream_bus_leased_sessions", "Sessions a worker holds.", value=bus["leased"]
    )
    yield GaugeMetricFamily(
        "affectstream_bus_relays", "Sessions this gateway relays.", value=bus["relays"]
    )
    yield CounterMetricFamily(
        "affectstream_bus_restarts_seen",
        "Redis restarts (new run_id) this gateway saw.",
        value=bus["redis_restarts_seen"],
    )
    held = GaugeMetricFamily(
        "affectstream_worker_sessions", "Sessions a live worker holds.", labels=["worker"]
    )
    published = CounterMetricFamily(
        "affectstream_worker_published",
        "Messages a live worker published to the bus.",
        labels=["worker"],
    )
    fenced = CounterMetricFamily(
        "affectstream_worker_fenced",
        "Messages refused because the worker no longer held the lease.",
        labels=["worker"],
    )
    for worker, load in sorted(bus["workers"].items()):
        held.add_metric([worker], float(load.get("sessions", 0)))
        published.add_metric([worker], float(load.get("published", 0)))
        fenced.add_metric([worker], float(load.get("fenced", 0)))
    yield held
    yield published
    yield fenced


_REGISTRIES: dict[int, CollectorRegistry] = {}
_LOCK = threading.Lock()


def metrics_registry(state: ServiceState) -> CollectorRegistry:
    """The registry of ``state`` (made on first use, dropped when the state is collected)."""
    key = id(state)
    with _LOCK:
        registry = _REGISTRIES.get(key)
        if registry is None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(ServiceCollector(state))
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            _REGISTRIES[key] = registry
            weakref.finalize(state, _REGISTRIES.pop, key, None)
        return registry


def render_metrics(state: ServiceState) -> str:
    """The Prometheus text exposition (content type :data:`CONTENT_TYPE_LATEST`) of ``state``."""
    return generate_latest(metrics_registry(state)).decode("utf-8")
