"""The scheduler runs the models due in a tick in parallel (#16): each model's ONNX Runtime run on
one thread, the runs of different models side by side on ``inference_threads`` threads (the
scheduler's own and a pool of the others); the predictions are built in the scheduler's own
thread, and one failing model costs only its own."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from affectstream.service.scheduler import Scheduler
from affectstream.service.sessions import Due, ModelSlot


class BarrierRunner:
    """A model whose run waits until ``parties`` runs are in progress at once: run one after the
    other, every run times out."""

    def __init__(self, name: str, barrier: threading.Barrier, fail: bool = False) -> None:
        self.name = name
        self.barrier = barrier
        self.fail = fail
        self.threads: list[str] = []

    def predict(self, windows: Sequence[Mapping[str, NDArray[Any]]]) -> NDArray[np.float32]:
        self.threads.append(threading.current_thread().name)
        self.barrier.wait(timeout=5)  # raises BrokenBarrierError unless the others run too
        if self.fail:
            raise RuntimeError("this model broke")
        return np.full((len(windows), 2), 0.25, np.float32)


def _session(sid: str, seqs: list[tuple[str, int]], n: list[int]) -> Any:
    def next_seq() -> int:
        n[0] += 1
        seqs.append((threading.current_thread().name, n[0]))
        return n[0]

    return SimpleNamespace(
        id=sid, quality=lambda _t: {}, next_seq=next_seq, truth_at=lambda _t: None
    )


def _due(session: Any, slot: ModelSlot) -> Due:
    return Due(session, slot, 0.0, 2.0, {}, detected=1.95, preprocess_s=0.001, last_sample=1.9)


@pytest.mark.parametrize("failing", [False, True])
def test_the_models_due_in_a_tick_run_side_by_side(failing: bool) -> None:
    barrier = threading.Barrier(3)
    runners = [BarrierRunner(f"m{i}@1", barrier, fail=failing and i == 1) for i in range(3)]
    slots = [ModelSlot(runner=r) for r in runners]  # type: ignore[arg-type]
    seqs: list[tuple[str, int]] = []
    n = [0]
    sessions = [_session(f"s{k}", seqs, n) for k in range(2)]
    due = [_due(s, slot) for s in sessions for slot in slots]
    for s in sessions:
        s.collect = lambda s=s: [d for d in due if d.session is s]
    published: list[tuple[str, dict[str, Any]]] = []
    scheduler = Scheduler(
        lambda: sessions,
        lambda sid, m: published.append((sid, m)),
        inference_threads=3,
    )
    try:
        count = scheduler.tick()
    finally:
        scheduler.stop()
    # all three ran at once (a sequential run breaks the barrier): one on the scheduler's own
    # thread (here the caller's), the others on the pool's two
    first = sorted(r.threads[0] for r in runners)
    assert threading.current_thread().name in first
    assert sum(t.startswith("inference") for t in first) == 2
    expected = {(s.id, f"m{i}@1") for s in sessions for i in range(3) if not (failing and i == 1)}
    assert {(sid, m["model"]) for sid, m in published} == expected
    assert count == len(expected) and scheduler.errors_total == (1 if failing else 0)
    # each model's batch held both sessions; the messages were built in the caller's thread
    assert all(m["valence"] == 0.25 for _, m in published)
    assert {t for t, _ in seqs} == {threading.current_thread().name}
    assert sorted(k for _, k in seqs) == list(range(1, len(expected) + 1))


def test_one_thread_runs_the_models_one_after_the_other() -> None:
    runner = BarrierRunner("solo@1", threading.Barrier(1))
    slot = ModelSlot(runner=runner)  # type: ignore[arg-type]
    session = _session("s", [], [0])
    session.collect = lambda: [_due(session, slot)]
    published: list[dict[str, Any]] = []
    scheduler = Scheduler(lambda: [session], lambda _sid, m: published.append(m))
    assert scheduler.tick() == 1 and scheduler._pool is None
    assert runner.threads == [threading.current_thread().name] and published[0]["model"] == "solo@1"


class LoggingRunner:
    """A model that notes its run in a shared log."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def predict(self, windows: Sequence[Mapping[str, NDArray[Any]]]) -> NDArray[np.float32]:
        self.log.append(f"run {self.name}")
        return np.full((len(windows), 2), 0.5, np.float32)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_models_predictions_go_out_before_the_next_model_runs_on_that_thread(
    threads: int,
) -> None:
    """One model's predictions are handed over as soon as its run is done, not after the
    tick's other models (with one thread: strictly in turn; with two, which thread takes which
    batch is a race, so only each model's message after its own run is checked)."""
    log: list[str] = []
    runners = [LoggingRunner(f"m{i}@1", log) for i in range(3)]
    slots = [ModelSlot(runner=r) for r in runners]  # type: ignore[arg-type]
    session = _session("s", [], [0])
    session.collect = lambda: [_due(session, slot) for slot in slots]
    scheduler = Scheduler(
        lambda: [session],
        lambda _sid, m: log.append(f"out {m['model']}"),
        inference_threads=threads,
    )
    try:
        assert scheduler.tick() == 3
    finally:
        scheduler.stop()
    assert sorted(log) == sorted([f"{k} m{i}@1" for i in range(3) for k in ("run", "out")])
    for i in range(3):  # each model's message after its run
        assert log.index(f"out m{i}@1") > log.index(f"run m{i}@1")
    if threads == 1:
        assert log == [f"{k} m{i}@1" for i in range(3) for k in ("run", "out")]
