"""The inference scheduler: collect due windows from the sessions, batch them per model into one
ONNX Runtime run, publish the predictions.

When: a session is collected as soon as one of its streams has reached the end of a window one of
its models waits for (:meth:`Scheduler.wake`, called from the acquisition thread through
:meth:`~affectstream.service.sessions.Session._on_data`, at most a few times per window end), and
every session at every tick (``tick_s``): the ticks find a session's first windows, and windows
that wait on a stream gone quiet. Waking instead of waiting for the next 20 ms tick takes the
tick's share out of the latency (#16), and a woken round touches only the sessions woken.

It runs in its own thread (model code never runs in an acquisition thread). The batches of the
different models due in a tick run in parallel on ``inference_threads`` threads (the setting;
ONNX Runtime releases the interpreter lock while it runs): the scheduler's own thread and a pool
of ``inference_threads - 1``, each taking the next model's batch until none is left, each
model's run on a single ONNX Runtime thread: at the service's batch sizes a second intra-op
thread per run cost more CPU than it saved time (README, Benchmarks). The scheduler runs batches
itself rather than only waiting for the pool: a thread that waits gives up the interpreter lock
and has to win it back (up to a switch interval, 5 ms, while another thread runs Python) at
every hand-over, and at the capacity edge the scheduler's thread is the one that falls behind
(#16). The predictions are built, numbered and handed over in the scheduler's own thread, each
model's as soon as its run is done (the scheduler's own ones right after it ran them). Latency
per message,
in milliseconds, on the LSL clock:

- ``ingest``: from the window's last sample (the newest before its end, over its streams)
  to the moment the scheduler found it due (transport, acquisition, the watermark and the tick),
- ``preprocess``: the shared preprocessing of that session's due windows,
- ``inference``: the batched model run that included it,
- ``total``: from the window's last sample to the message being handed to the hub.

The timestamps are the streams' (clock-corrected, dejittered) LSL timestamps, so a latency can come
out a little below its true value, never by more than the dejitter error (~1 ms measured here).

Each prediction is built as the wire dict of a :class:`~affectstream.service.messages.Prediction`
(by :func:`~affectstream.service.messages.prediction_message`, without pydantic) and handed to
``publish`` (the hub, :mod:`affectstream.service.hub`), which queues it for the session's WebSocket
clients: the predictions of one model's batched run together, in one hand-over (``publish_many``,
one wake-up of the event loop instead of one per prediction, #16). A session with ``lsl_out`` also
gets it pushed on the model's LSL stream, stamped with the window's end
(:class:`~affectstream.service.sessions.PredictionOutlets`: opened here at the model's first
prediction, never blocking afterwards).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import Any

import numpy as np
from numpy.typing import NDArray

from affectstream.service.messages import now_iso, prediction_message
from affectstream.service.sessions import Due, ModelSlot, Session
from affectstream.streaming.lsl.inlet import local_clock
from affectstream.streaming.threadname import name_os_thread

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
        inference_threads: int = 1,
    ) -> None:
        """``publish_many`` hands over several ``(session, message)`` at once; by default the
        ``publish_many`` of the object ``publish`` is a method of (the hub's), else ``publish``
        once per message. ``inference_threads`` > 1: the batches of the different models due in
        a tick run in parallel on that many threads (ONNX Runtime releases the interpreter lock
        while it runs); the predictions are still built and handed over in this thread."""
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
        self._woken = threading.Event()
        self._dirty: set[Session] = set()
        self._dirty_lock = threading.Lock()
        self.wakes_total = 0
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self.inference_threads = max(1, inference_threads)
        self._pool = (  # the scheduler's thread is the other one
            ThreadPoolExecutor(
                self.inference_threads - 1,
                thread_name_prefix="inference",
                initializer=name_os_thread,
            )
            if self.inference_threads > 1
            else None
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._woken.set()
        if self._thread.ident is not None:  # started
            self._thread.join(5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def wake(self, session: Session) -> None:
        """Collect ``session`` now rather than at the next tick (any thread; returns at once):
        its streams have reached the end of a window one of its models waits for."""
        with self._dirty_lock:
            self._dirty.add(session)
        self._woken.set()

    def _run(self) -> None:
        name_os_thread()
        next_tick = time.perf_counter()
        while not self._stop.is_set():
            self._woken.clear()
            with self._dirty_lock:
                dirty, self._dirty = self._dirty, set()
            if time.perf_counter() >= next_tick:  # every session, every tick_s
                next_tick = time.perf_counter() + self.tick_s
                self._round(None)
            elif dirty:  # between ticks: the sessions woken, if they still exist
                self.wakes_total += 1
                self._round([s for s in self._sessions() if s in dirty])
            if self._stop.is_set():
                break
            self._woken.wait(max(0.0, next_tick - time.perf_counter()))

    def _round(self, only: Sequence[Session] | None) -> None:
        try:
            self.tick(only)
        except Exception:  # one bad tick must not end the service
            self.errors_total += 1
            log.exception("scheduler tick failed")

    def tick(self, only: Sequence[Session] | None = None) -> int:
        """One round over every session (or over ``only``): returns the number of predictions
        published."""
        due: list[Due] = []
        for session in self._sessions() if only is None else only:
            try:
                due += session.collect()
            except Exception:  # a broken session must not stop the others
                self.errors_total += 1
                log.exception("session %s: collecting windows failed", session.id)
        by_model: dict[int, list[Due]] = defaultdict(list)
        for d in due:
            by_model[id(d.slot.runner)].append(d)
        published = 0
        for items, result in self._infer(list(by_model.values())):
            if isinstance(result, BaseException):
                self.errors_total += 1
                log.error("model %s: inference failed: %s", items[0].slot.runner.name, result)
                continue
            probs, inference_ms = result
            out: list[tuple[str, dict[str, Any]]] = []
            for d, p in zip(items, probs, strict=True):
                self._emit(d, d.slot, (float(p[0]), float(p[1])), inference_ms, out)
                published += 1
            self._hand_over(out)
        return published

    def _infer(
        self, groups: Sequence[list[Due]]
    ) -> Iterator[tuple[list[Due], tuple[NDArray[np.float32], float] | BaseException]]:
        """Each model's batch run, yielded as each is done (a failure is yielded, not raised):
        the scheduler's thread and, when more than one model is due, the pool's threads each take
        the next batch until none is left."""
        if self._pool is None or len(groups) < 2:
            for items in groups:
                yield items, _predict(items)
            return
        todo = deque(groups)
        done: SimpleQueue[tuple[list[Due], tuple[NDArray[np.float32], float] | BaseException]]
        done = SimpleQueue()

        def help_out() -> None:  # deque.popleft is atomic: each batch is taken once
            while True:
                try:
                    items = todo.popleft()
                except IndexError:
                    return
                done.put((items, _predict(items)))

        try:
            for _ in range(min(self.inference_threads - 1, len(groups) - 1)):
                self._pool.submit(help_out)
        except RuntimeError:  # the pool is shut down (stopping): run them all here
            pass
        yielded = 0
        while yielded < len(groups):  # every batch is run by one thread and yielded once
            try:
                items = todo.popleft()
            except IndexError:  # the rest are running on the pool: wait for them
                try:
                    pair = done.get(timeout=1.0)
                except Empty:
                    if self._stop.is_set():
                        return
                    continue
                yielded += 1
                yield pair
                continue
            result = _predict(items)
            while not done.empty():  # the pool's finished batches first: they finished first
                yielded += 1
                yield done.get()
            yielded += 1
            yield items, result

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
            message = prediction_message(
                session=session.id,
                seq=session.next_seq(),
                model=slot.name,
                window_start=d.window_start,
                window_end=d.window_end,
                valence=probs[0],
                arousal=probs[1],
                quality=quality,
                latency_ms=latency,
                emitted_at=now_iso(),
                ground_truth=None if truth is None else (truth[0], truth[1]),
                stimulus=d.stimulus,  # the stimulus whose features went in (fusion models)
                coverage=slot.coverage,  # a partial montage: the share of the model's channels
                fallbacks=d.fallbacks,  # cvxEDA fell back: the features are not a decomposition
            )
        except ValueError as e:  # e.g. a model's output outside [0, 1]: not a prediction
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


def _predict_or_raise(items: list[Due]) -> tuple[NDArray[np.float32], float]:
    """One model's batch: its probabilities and the run's wall time in ms."""
    t0 = time.perf_counter()
    probs = items[0].slot.runner.predict([d.features for d in items])
    return probs, (time.perf_counter() - t0) * 1000


def _predict(items: list[Due]) -> tuple[NDArray[np.float32], float] | BaseException:
    try:
        return _predict_or_raise(items)
    except Exception as e:
        return e
