"""Prometheus text exposition for ``GET /metrics`` (format 0.0.4, written by hand: a few counters
and histograms do not need a client library)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from affectstream.service.scheduler import BUCKETS_MS

if TYPE_CHECKING:
    from affectstream.service.app import ServiceState

__all__ = ["render_metrics"]


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(state: ServiceState) -> str:
    out: list[str] = []

    def metric(
        name: str, kind: str, help_: str, rows: Sequence[tuple[dict[str, str], float]]
    ) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in rows:
            lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
            out.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")

    sched = state.scheduler
    sessions = state.session_list()
    metric("affectstream_sessions", "gauge", "Sessions.", [({}, len(sessions))])
    metric(
        "affectstream_predictions_total",
        "counter",
        "Predictions published.",
        [
            ({"session": s.id, "model": slot.name}, slot.predictions)
            for s in sessions
            for slot in s.slots
        ],
    )
    metric(
        "affectstream_coalesced_windows_total",
        "counter",
        "Due windows not sent to a model because a newer one was due at the same tick.",
        [
            ({"session": s.id, "model": slot.name}, slot.coalesced)
            for s in sessions
            for slot in s.slots
        ],
    )
    metric(
        "affectstream_dropped_messages_total",
        "counter",
        "Messages dropped from full subscriber queues.",
        [({}, state.hub.dropped_total)],
    )
    metric(
        "affectstream_scheduler_errors_total",
        "counter",
        "Failed scheduler steps.",
        [({}, sched.errors_total if sched else 0)],
    )
    rows = []
    for s in sessions:
        for r in s.ingest.report():
            rows.append(({"session": s.id, "type": str(r["type"]), "state": str(r["state"])}, 1))
    metric("affectstream_stream_state", "gauge", "Stream health state (1 = current).", rows)
    if sched is not None:
        name = "affectstream_stage_latency_ms"
        out.append(f"# HELP {name} Per-stage latency of published predictions, milliseconds.")
        out.append(f"# TYPE {name} histogram")
        for stage, counts in sched.stats.counts.items():
            cum = 0
            for bound, c in zip([*BUCKETS_MS, "+Inf"], counts, strict=True):
                cum += c
                out.append(f'{name}_bucket{{stage="{stage}",le="{bound}"}} {cum}')
            out.append(f'{name}_sum{{stage="{stage}"}} {sched.stats.sums[stage]:.3f}')
            out.append(f'{name}_count{{stage="{stage}"}} {sched.stats.n[stage]}')
    return "\n".join(out) + "\n"
