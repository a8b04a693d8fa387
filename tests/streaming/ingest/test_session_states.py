""":meth:`IngestSession.states` (what a prediction's ``quality`` reads at every window end) reads
each stream's health without its lock, yet gives a ``(state, nonfinite)`` pair the health held at
one instant, even when the acquisition thread stores chunks between its reads."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from affectstream.streaming.ingest.health import StreamState
from affectstream.streaming.ingest.session import IngestSession, SessionMatch, _state_and_nonfinite


class RacingHealth:
    """A stream's health whose acquisition thread runs ``writes[k]`` (a list of field updates,
    in order) right after the reader's ``k``-th read of ``state`` or ``nonfinite``; ``held`` is
    every ``(state, nonfinite)`` pair it held."""

    def __init__(self, writes: dict[int, list[tuple[str, Any]]], always: bool = False) -> None:
        self._state, self._nonfinite = StreamState.OK, 3
        self.writes, self.always = writes, always
        self.reads = 0
        self.snapshots = 0
        self.held = {(str(self._state), self._nonfinite)}

    def _after_read(self) -> None:
        self.reads += 1
        steps = self.writes.get(self.reads, [])
        if self.always:  # a chunk with non-finite values after every read
            steps = [("nonfinite", self._nonfinite + 1)]
        for name, value in steps:
            setattr(self, f"_{name}", value)
            self.held.add((str(self._state), self._nonfinite))

    @property
    def state(self) -> StreamState:
        value = self._state
        self._after_read()
        return value

    @property
    def nonfinite(self) -> int:
        value = self._nonfinite
        self._after_read()
        return value

    def snapshot(self) -> dict[str, Any]:  # (under the lock: no write meanwhile)
        self.snapshots += 1
        return {"state": str(self._state), "nonfinite": self._nonfinite}


# between the reader's first and second read: the stream goes stale (a silence tick), then a
# chunk with four non-finite samples is stored (nonfinite first, then its state, as _accept does)
STALE_THEN_CHUNK = {
    1: [("state", StreamState.STALE), ("nonfinite", 7), ("state", StreamState.RECOVERED)]
}


def test_a_pair_read_while_chunks_are_stored_is_one_the_health_held() -> None:
    h = RacingHealth(STALE_THEN_CHUNK)
    state, nonfinite = _state_and_nonfinite(h)  # type: ignore[arg-type]  # (a stand-in)
    pair = (str(state), nonfinite)
    assert pair in h.held and pair == ("recovered", 7)
    assert h.snapshots == 0  # read again, not under the lock
    # (reading state, then nonfinite, without checking, gives a pair it never held)
    naive = RacingHealth(STALE_THEN_CHUNK)
    torn = (str(naive.state), naive.nonfinite)
    assert torn == ("ok", 7) and torn not in naive.held


def test_a_count_that_keeps_moving_is_read_under_the_lock() -> None:
    h = RacingHealth({}, always=True)
    state, nonfinite = _state_and_nonfinite(h)  # type: ignore[arg-type]
    assert (state, nonfinite) == (StreamState.OK, h._nonfinite)
    assert h.snapshots == 1


def test_states_are_in_report_order_with_one_pair_per_stream() -> None:
    directory: Any = SimpleNamespace()  # (never asked: the session is not started)
    session = IngestSession(SessionMatch(source_id_prefix="x"), directory=directory)

    def acquirer(kind: str, sid: str, health: Any, unit: str | None) -> Any:
        return SimpleNamespace(
            stream=SimpleNamespace(type=kind, source_id=sid),
            health=health,
            channels=SimpleNamespace(unit=unit),
        )

    racing = RacingHealth(STALE_THEN_CHUNK)
    session.acquirers = {
        "b": acquirer("GSR", "s2", racing, "µS"),
        "a": acquirer("EEG", "s1", RacingHealth({}), None),
    }
    refused: Any = SimpleNamespace(type="ECG", source_id="s3")
    session.refused = {"c": (refused, "has 3 channels, this session expects 1")}
    assert session.states() == [
        ("ECG", "refused", 0, None),
        ("EEG", "ok", 3, None),
        ("GSR", "recovered", 7, "µS"),
    ]
