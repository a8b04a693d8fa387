"""The inference scheduler: every tick, collect due windows from every session, batch them per
model into one ONNX Runtime run, publish the predictions.

It runs in its own thread (model code never runs in an acquisition thread). Latency per message,
in milliseconds, on the LSL clock:

- ``ingest``: from the window's last sample (its end minus one interval of its fastest stream)
  to the moment the scheduler found it due (transport, acquisition, the watermark and the tick),
- ``preprocess``: the shared preprocessing of that session's due windows,
- ``inference``: the batched model run that included it,
- ``total``: from the window's last sample to the message being handed to the hub.

The timestamps are the streams' (clock-corrected, dejittered) LSL timestamps, so a latency can come
out a little below its true value, never by more than the dejitter error (~1 ms measured here).

Each prediction is built as a :class:`~affectstream.service.messages.Prediction` and handed, as its
wire dict, to ``publish`` (the hub, :mod:`affectstream.service.hub`), which queues it for the
session's WebSocket clients: the predictions of one model's batched run together, in one
hand-over (``publish_many``, one wake-up of the event loop instead of one per prediction, #16). A
session with ``lsl_out`` also gets it pushed on the model's LSL stream, stamped with the window's
end (:class:`~affectstream.service.sessions.PredictionOutlets`: opened here at the model's first
prediction, never blocking afterwards).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from affectstream.service.messages import GroundTruth, LatencyMs, Prediction, Window, now_iso
from affectstream.service.sessions import Due, ModelSlot, Session
from affectstream.streaming.lsl.inlet import local_clock

__all__ = ["Scheduler", "StageStats"]

log = logging.getLogger(__name__)

BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500)


@dataclass
class StageStats:
    """Histogram per stage for /metrics."""

    counts: dict[str, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * (len(BUCKETS_MS) + 1))
    )
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    n: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def observe(self, stage: str, ms: float) -> None:
        i = next((k for k, b in enumerate(BUCKETS_MS) if ms <= b), len(BUCKETS_MS))
        self.counts[stage][i] += 1
        self.sums[stage] += ms
        self.n[stage] += 1


class Scheduler:
    def __init__(
        self,
        sessions: Callable[[], list[Session]],
        publish: Callable[[str, dict[str, Any]], None],
        tick_s: float = 0.02,
        publish_many: Callable[[list[tuple[str, dict[str, Any]]]], None] | None = None,
    ) -> None:
        """``publish_many`` hands over several ``(session, message)`` at once; by default the
        ``publish_many`` of the object ``publish`` is a method of (the hub's), else ``publish``
        once per message."""
        self._sessions = sessions
        self._publish = publish
        if publish_many is None:
            publish_many = getattr(getattr(publish, "__self__", None), "publish_many", None)
        self._publish_many = publish_many
        self.tick_s = tick_s
        self.stats = StageStats()
        self.predictions_total = 0
        self.errors_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                self.tick()
            except Exception:  # one bad tick must not end the service
                self.errors_total += 1
                log.exception("scheduler tick failed")
            self._stop.wait(max(0.0, self.tick_s - (time.perf_counter() - started)))

    def tick(self) -> int:
        """One round: returns the number of predictions published."""
        due: list[Due] = []
        for session in self._sessions():
            try:
                due += session.collect()
            except Exception:  # a broken session must not stop the others
                self.errors_total += 1
                log.exception("session %s: collecting windows failed", session.id)
        by_model: dict[int, list[Due]] = defaultdict(list)
        for d in due:
            by_model[id(d.slot.runner)].append(d)
        published = 0
        for items in by_model.values():
            runner = items[0].slot.runner
            t0 = time.perf_counter()
            try:
                probs = runner.predict([d.features for d in items])
            except Exception as e:
                self.errors_total += 1
                log.error("model %s: inference failed: %s", runner.name, e)
                continue
            inference_ms = (time.perf_counter() - t0) * 1000
            out: list[tuple[str, dict[str, Any]]] = []
            for d, p in zip(items, probs, strict=True):
                self._emit(d, d.slot, (float(p[0]), float(p[1])), inference_ms, out)
                published += 1
            self._hand_over(out)
        return published

    def _hand_over(self, out: list[tuple[str, dict[str, Any]]]) -> None:
        if self._publish_many is not None:
            self._publish_many(out)
        else:
            for session_id, message in out:
                self._publish(session_id, message)

    def _emit(
        self,
        d: Due,
        slot: ModelSlot,
        probs: tuple[float, float],
        inference_ms: float,
        out: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        """Build the prediction and publish it (or, with ``out``, append it there for the
        caller to hand over with the rest of its batch)."""
        session = d.session
        quality = session.quality(d.window_end)
        now = local_clock()
        latency = {
            "ingest": round((d.detected - d.last_sample) * 1000, 3),
            "preprocess": round(d.preprocess_s * 1000, 3),
            "inference": round(inference_ms, 3),
            "total": round((now - d.last_sample) * 1000, 3),
        }
        for stage, ms in latency.items():
            self.stats.observe(stage, ms)
        truth = session.truth_at(d.window_end)
        try:
            message = Prediction(
                session=session.id,
                seq=session.next_seq(),
                model=slot.name,
                window=Window(start=d.window_start, end=d.window_end),
                valence=probs[0],
                arousal=probs[1],
                quality=quality,
                latency_ms=LatencyMs(**latency),
                emitted_at=now_iso(),
                ground_truth=None
                if truth is None
                else GroundTruth(valence=truth[0], arousal=truth[1]),
                stimulus=d.stimulus,  # the stimulus whose features went in (fusion models)
                coverage=slot.coverage,  # a partial montage: the share of the model's channels
                fallbacks=d.fallbacks,  # cvxEDA fell back: the features are not a decomposition
            ).dump()
        except ValidationError as e:  # e.g. a model's output outside [0, 1]: not a prediction
            self.errors_total += 1
            log.error(
                "model %s, session %s: output %s refused: %s", slot.name, session.id, probs, e
            )
            return
        if truth is not None:
            slot.score.add(probs, truth[:2], truth[2])
        slot.last = message
        slot.predictions += 1
        self.predictions_total += 1
        if out is None:
            self._publish(session.id, message)
        else:
            out.append((session.id, message))
        outlets = getattr(session, "lsl_out", None)  # tests' stand-in sessions have none
        if outlets is not None:
            outlets.push(slot.name, d.window_end, probs, quality, slot.coverage)
