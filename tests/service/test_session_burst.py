"""What a session serves when several windows of one model are due at once (#16): two (a stream's
samples arriving late, then together) are both served; from three on (the service fell behind)
only the newest, the others counted as coalesced. All of them are preprocessed (filter state)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from affectstream.service.sessions import SERVED_AT_ONCE, ModelSlot, Session
from affectstream.streaming.ingest.windows import InputSpec, Window, WindowSpec


class FakeWindower:
    def __init__(self, windows: list[Window]) -> None:
        self.spec = WindowSpec(2.0, 0.25, (InputSpec("GSR", 4.0),))
        self.windows = windows
        self.last_end: float | None = None

    def poll(self, max_windows: int | None = None) -> list[Window]:
        out, self.windows = self.windows, []
        if out:
            self.last_end = out[-1].t_end
        return out


class FakeFeeder:
    def __init__(self) -> None:
        self.fed: list[float] = []
        self.pre = SimpleNamespace(fallbacks=dict, streams=("GSR",))
        self.wants_whole = False

    def feed(self, w: Window) -> dict[str, Any]:
        self.fed.append(w.t_end)
        return {"x": np.full(3, w.t_end)}


def _session(n_due: int) -> tuple[Session, ModelSlot, FakeFeeder]:
    windows = [Window(10.0 + 0.25 * k, 12.0 + 0.25 * k, {}) for k in range(n_due)]
    feeder = FakeFeeder()
    runner: Any = SimpleNamespace(name="m@1", contract=SimpleNamespace(stimulus=None))
    slot = ModelSlot(runner=runner)
    slot.feeder, slot.windower = feeder, FakeWindower(windows)  # type: ignore[assignment]
    session = Session.__new__(Session)  # the collecting part only: no streams behind it
    session.slots = [slot]
    session.next_due, session._wakes_left = math.inf, 8
    session._announce_refused = lambda: None  # type: ignore[method-assign]
    session._optional_arrived = lambda slot: False  # type: ignore[method-assign]
    session._replan_if_needed = lambda slot: True  # type: ignore[method-assign]
    wishes: list[float | None] = []
    session.ingest = SimpleNamespace(  # type: ignore[assignment]
        want=wishes.append, wishes=wishes, by_type=lambda t: None
    )
    return session, slot, feeder


@pytest.mark.parametrize("n_due", [1, 2, 3, 5])
def test_a_burst_of_two_is_served_more_are_coalesced(n_due: int) -> None:
    session, slot, feeder = _session(n_due)
    due = session.collect()
    ends = [12.0 + 0.25 * k for k in range(n_due)]
    assert feeder.fed == ends  # every window preprocessed, in order
    served = ends if n_due <= SERVED_AT_ONCE else ends[-1:]
    assert [d.window_end for d in due] == served
    assert [float(d.features["x"][0]) for d in due] == served  # each its own features
    assert slot.coalesced == n_due - len(served)
    assert session.next_due == ends[-1] + 0.25  # the acquisition wakes the scheduler there
    assert session.ingest.wishes == [ends[-1] + 0.25]  # type: ignore[attr-defined]
    # and the streams' samples before it may wait in liblsl: one pull when they reach it


def test_sessions_fall_due_spread_over_the_hop() -> None:
    """#16: each session's window ends are shifted within the hop by a phase derived from its id
    (the same in every process, so a worker taking a session over cuts the same windows), so many
    sessions do not all fall due at the same instant."""
    from affectstream.service.sessions import session_phase

    ids = [f"bench-{k}" for k in range(200)]
    phases = [session_phase(i) for i in ids]
    assert phases == [session_phase(i) for i in ids] and all(0 <= p < 1 for p in phases)
    counts = np.histogram(phases, bins=10, range=(0, 1))[0]
    assert counts.min() >= 8, counts  # about 20 per tenth of the hop


def test_a_model_is_not_polled_before_its_streams_reach_its_next_window() -> None:
    """#16: a model whose next window ends after the newest sample of one of its streams is not
    polled (nor checked for a re-plan) at the ticks before that stream gets there; it is polled
    once every stream is complete to the window's end."""
    from affectstream.streaming.lsl.inlet import local_clock

    session, slot, feeder = _session(0)
    windower = slot.windower
    assert isinstance(windower, FakeWindower)
    next_end = local_clock() - 0.75  # long enough ago for the LSL clock's own test to pass
    windower.last_end = next_end - 0.25
    polls: list[float] = []
    original = windower.poll

    def counting_poll(max_windows: int | None = None) -> list[Window]:
        polls.append(next_end)
        return original(max_windows)

    windower.poll = counting_poll  # type: ignore[method-assign]
    replans: list[ModelSlot] = []
    session._replan_if_needed = lambda s: replans.append(s) or True  # type: ignore[method-assign]
    reach = {"GSR": next_end - 0.1}
    acquirer = SimpleNamespace(
        complete_to=lambda: reach["GSR"],
        health=SimpleNamespace(last_timestamp=None),
        stream=SimpleNamespace(nominal_srate=4.0),
    )
    session.ingest.by_type = lambda t: acquirer if t == "GSR" else None  # type: ignore[attr-defined]
    for _ in range(3):
        session.collect()
    assert polls == [] and replans == []  # the stream is 0.1 s short of the window's end
    reach["GSR"] = None  # type: ignore[assignment]  # (an empty stream: nothing to cut either)
    session.collect()
    assert polls == []
    windower.windows = [Window(next_end - 2.0, next_end, {})]
    reach["GSR"] = next_end
    due = session.collect()
    assert polls == [next_end] and replans == [slot]
    assert [d.window_end for d in due] == [next_end] and feeder.fed == [next_end]


def _acq(last: float | None, rate: float) -> Any:
    return SimpleNamespace(
        health=SimpleNamespace(last_timestamp=last), stream=SimpleNamespace(nominal_srate=rate)
    )


def test_a_windows_last_sample_is_its_newest_stream_sample_before_the_end() -> None:
    """Latency is measured from the newest sample before the window's end over the model's
    streams, stepped back on each stream's grid from its newest stored stamp. A 4 Hz EDA
    stream delivered at 16 Hz: its window is complete with a sample up to 250 ms before the
    end; the end minus one delivered interval (10 - 1/16) gave latencies 160 ms below zero."""
    acqs = {"EDA": _acq(10.05, 4.0), "BVP": _acq(10.003, 64.0)}
    me: Any = SimpleNamespace(ingest=SimpleNamespace(by_type=acqs.get))
    eda_only: Any = SimpleNamespace(spec=WindowSpec(4.0, 0.25, (InputSpec("EDA", 16.0),)))
    both: Any = SimpleNamespace(
        spec=WindowSpec(4.0, 0.25, (InputSpec("EDA", 16.0), InputSpec("BVP", 32.0)))
    )
    assert Session._last_sample(me, eda_only, 10.0) == pytest.approx(9.80)
    assert Session._last_sample(me, both, 10.0) == pytest.approx(10.003 - 1 / 64)
    acqs["EDA"] = _acq(9.93, 4.0)  # newest stored is already before the end: itself
    assert Session._last_sample(me, eda_only, 10.0) == pytest.approx(9.93)
    acqs["EDA"] = _acq(10.30, 4.0)  # two samples past the end (the scheduler was behind)
    assert Session._last_sample(me, eda_only, 10.0) == pytest.approx(9.80)
    acqs["EDA"] = _acq(None, 4.0)  # nothing known: the end minus one delivered interval
    assert Session._last_sample(me, eda_only, 10.0) == pytest.approx(10.0 - 1 / 16)
