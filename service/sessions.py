"""Sessions: one person's LSL streams (the ingest layer) + the models that read them.

A :class:`Session` owns an :class:`~affectstream.streaming.ingest.session.IngestSession` and, per
model, a :class:`ModelSlot` with its windower and preprocessing state. A slot's pipeline is built
once every stream its contract needs is being acquired (rates and channel labels come from the
streams' descriptions); until then the slot says what it is waiting for.

The scheduler (:mod:`affectstream.service.scheduler`) calls :meth:`Session.collect` every tick: due
windows go through the shared preprocessing; when more than :data:`SERVED_AT_ONCE` are due for one
model at once (the service fell behind), all are preprocessed (the filters' state must stay
continuous) but only the newest is sent to the model: the others are counted as coalesced.

Online scoring: when the session has a ``Markers`` stream carrying trial ratings and their scale
(``"rating_scale": [low, high]``, as the replays send), each prediction is compared with the ground
truth of the trial it falls in (high = above the scale's midpoint), giving running accuracies per
model — the numbers a user would quote, shown in ``GET /sessions``.

Fusion models (a contract with a stimulus input) also need the current stimulus: from markers
carrying a ``stimulus_id`` or from ``PUT /sessions/{id}/stimulus`` (:meth:`Session.stimulus_at`);
without it their windows are refused and counted, and the slot's state says why.

Changes that clients should hear of leave through ``on_status`` as message dicts: a stream's health
state (:class:`~affectstream.service.messages.StreamStatus`) and a model's refusal or return
(:class:`~affectstream.service.messages.ModelStatus`); the service state publishes them on the hub.
The same way the hub hears of the session's incarnation (its random ``epoch``):
:class:`~affectstream.service.messages.SessionOpened` when it is created,
:class:`~affectstream.service.messages.SessionEnded` when it closes (the hub's resume buffer).

With ``lsl_out`` a session also publishes its predictions as LSL streams, one per model
(:class:`PredictionOutlets`, docs/lsl.md "Predictions as LSL streams"): a recording of the lab's
streams (LabRecorder) then holds the predictions aligned with the signals they came from.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from affectstream.models.runner import ModelRunner
from affectstream.service.messages import (
    SCHEMA_VERSION,
    ModelState,
    ModelStateRow,
    ModelStatus,
    SessionEnded,
    SessionOpened,
    SessionStatus,
    StimulusUsed,
    StreamRef,
    StreamStatus,
    now_iso,
)
from affectstream.streaming.ingest.acquisition import StreamAcquirer
from affectstream.streaming.ingest.channels import StreamOverrides
from affectstream.streaming.ingest.health import StreamState
from affectstream.streaming.ingest.session import IngestSession, SessionMatch, canonical_type
from affectstream.streaming.ingest.windows import Window, Windower
from affectstream.streaming.lsl.inlet import StreamDirectory, decode_marker, local_clock
from affectstream.streaming.lsl.outlet import IRREGULAR_RATE, ChannelDesc, OutletSpec, open_outlet
from affectstream.streaming.preprocess.peripheral import breathing_rate, pulse_rate
from affectstream.streaming.preprocess.pipeline import SharedInputs, WindowFeeder

SERVED_AT_ONCE = 2
"""Windows of one model found due together that are all served: two windows due at once are a
stream's samples arriving late and then together (a 4 Hz stream whose sample missed its hop), not
a service falling behind; from three on only the newest is sent to the model, the others are
counted as coalesced."""
CATCH_UP_S = 2.0
"""A model that fell behind preprocesses at most this much of its backlog (continuous filter
state); windows older than that are skipped and counted, and its state restarts. Without the bound
an overloaded tick left more windows for the next one, which took longer still: measured as a
collapse to no prediction at all for any session at 32 sessions on 2 cores. A model attaching to
streams that already hold data starts from the newest window."""
BUILD_RETRY_S = 0.25
"""A model waiting for its streams checks again this often (not at every tick)."""
REFUSED_CHECK_S = 1.0
"""Streams the ingest layer refuses (wrong channel count, unknown unit) are looked for this often
and announced once each as a ``status`` message."""
RATE_REFRESH_S = 1.0
"""Pulse and breathing rates in the messages' ``quality`` are re-estimated this often."""
WAKES_PER_WINDOW = 8
"""How often the streams of a session may wake the scheduler for one window end (see
:meth:`Session._on_data`): enough for one wake per stream of a full lab session."""
POLL_AHEAD_S = 0.05
"""A window is polled for from this long before its end: samples carry timestamps at or before
now on our clock, give or take the clock-correction error (well below a millisecond on one
machine or a LAN). Skipping the earlier ticks saves most of the scheduler's polling."""

COVER_TOL_S = 1e-6
"""A model is polled for its next window once its streams are complete to within this of the
window's end (the windower's own test allows a billionth of a hop: polling a little early costs
one empty poll, never a window)."""

LSL_OUT_TYPE = "Affect"
"""The LSL type of the prediction streams (``serve --lsl-out``)."""
LSL_OUT_CHANNELS = (
    ChannelDesc("valence", "Valence", "probability"),
    ChannelDesc("arousal", "Arousal", "probability"),
    ChannelDesc("streams_ok", "Quality", "boolean"),
    ChannelDesc("coverage", "Quality", "fraction"),
)
"""The channels of a prediction stream: P(high valence), P(high arousal), 1 when every stream the
model reads was ``ok`` at the window's end (else 0), and the share of the model's channels the
streams give (the smallest over its stream types; 1 for a full montage)."""

__all__ = [
    "LSL_OUT_CHANNELS",
    "LSL_OUT_TYPE",
    "Due",
    "ModelSlot",
    "PredictionOutlets",
    "Score",
    "Session",
    "marker_ratings",
    "prediction_outlet_spec",
]

log = logging.getLogger(__name__)


@dataclass
class Due:
    """A window ready for inference."""

    session: Session
    slot: ModelSlot
    window_start: float
    window_end: float
    features: dict[str, NDArray[np.float64]]
    detected: float  # LSL clock when the scheduler found it due
    preprocess_s: float
    last_sample: float  # LSL time of the window's newest sample, over its streams
    stimulus: StimulusUsed | None = None  # fusion models: the stimulus whose features went in
    fallbacks: dict[str, str] | None = None  # inputs whose cvxEDA fell back, with the reason


@dataclass
class Score:
    """Running agreement of predictions with the marker stream's ratings (high = above the
    midpoint of the rating scale the marker carries)."""

    n: int = 0
    valence_correct: int = 0
    arousal_correct: int = 0

    def add(self, probs: tuple[float, float], truth: tuple[float, float], mid: float) -> None:
        self.n += 1
        self.valence_correct += int((probs[0] > 0.5) == (truth[0] > mid))
        self.arousal_correct += int((probs[1] > 0.5) == (truth[1] > mid))

    def as_dict(self) -> dict[str, Any]:
        if not self.n:
            return {"windows": 0}
        return {
            "windows": self.n,
            "valence_accuracy": round(self.valence_correct / self.n, 4),
            "arousal_accuracy": round(self.arousal_correct / self.n, 4),
        }


@dataclass
class ModelSlot:
    runner: ModelRunner
    feeder: WindowFeeder | None = None
    windower: Windower | None = None
    waiting_for: str = ""  # what the pipeline cannot be built without (empty once built)
    next_build: float = 0.0  # monotonic time of the next attempt to build the pipeline
    lead_s: float = 0.0
    """The longest sample interval of the streams the model reads: a sample stamped t covers
    [t, t + interval), so a window ending up to that long after now can be complete already (a
    4 Hz EDA stream's window, with the session's phase, ends between its samples)."""
    state: ModelState = "waiting"  # what clients were last told (model_status)
    reason: str = ""
    coverage: dict[str, float] | None = None
    coalesced: int = 0
    predictions: int = 0
    last: dict[str, Any] | None = None
    score: Score = field(default_factory=Score)
    refused: str = ""  # why windows are not inferred now (a fusion model without its stimulus)
    refused_windows: int = 0
    absent_optional: tuple[str, ...] = ()  # streams it may use that the session lacked at build
    rebuilds: int = 0  # pipelines rebuilt: an optional stream came, a stream's channels changed
    last_rebuild: str = ""  # why the latest rebuild happened

    @property
    def name(self) -> str:
        return self.runner.name

    def row(self) -> ModelStateRow:
        return ModelStateRow(
            model=self.name, state=self.state, reason=self.reason, coverage=self.coverage
        )


def _longest_interval(rates: dict[str, float]) -> float:
    """The longest sample interval among streams at these nominal rates (0 for none)."""
    return max((1.0 / r for r in rates.values() if r > 0), default=0.0)


def session_phase(session_id: str) -> float:
    """The session's place in the hop, in [0, 1): a hash of its id, so that whichever process
    serves the session (a worker taking it over) cuts the same windows, and the windows of many
    sessions fall due spread over the hop rather than all at the same instant — with one
    scheduler serving due sessions one after another, the last of a synchronous burst waited for
    all the others (#16)."""
    return zlib.crc32(session_id.encode("utf-8")) / 2**32


class Session:
    def __init__(
        self,
        session_id: str,
        match: SessionMatch,
        runners: list[ModelRunner],
        *,
        directory: StreamDirectory,
        buffer_s: float,
        on_status: Callable[[Session, dict[str, Any]], None] | None = None,
        overrides: StreamOverrides | None = None,
        lsl_out: bool = False,
        wake: Callable[[Session], None] | None = None,
        window_phase: float = 0.0,
    ) -> None:
        """``wake``: called (from the acquisition thread) when a stream's data have reached the
        end of a window a model waits for (the scheduler's ``wake``: it collects this session
        then instead of at its next tick). ``window_phase``: where in the hop this session's
        window ends fall, for all its models (:func:`session_phase`; 0: multiples of the hop)."""
        self.id = session_id
        self.window_phase = window_phase
        self._wake = wake
        self.next_due = math.inf
        """The earliest window end a running model waits for (LSL s; ``inf``: none known yet,
        the scheduler's ticks find the first windows); set by :meth:`collect`."""
        self._wakes_left = WAKES_PER_WINDOW
        self.shared_inputs = SharedInputs()
        """Inputs several of the session's models compute the same way, computed once."""
        self.match = match
        self.created = time.time()
        self.slots = [ModelSlot(r, waiting_for=_needs(r)) for r in runners]
        for slot in self.slots:
            slot.reason = slot.waiting_for
        self.overrides = overrides
        self.lsl_out = PredictionOutlets(session_id, runners) if lsl_out else None
        """The session's prediction streams (``None`` without ``lsl_out``): opened by the
        scheduler at each model's first prediction, closed with the session."""
        self.served = False
        self._on_status = on_status
        self._refused_seen: set[tuple[str, str]] = set()
        self._refused_checked = 0.0
        self.seq = 0
        """The latest prediction seq assigned (:meth:`next_seq`); 1 is the first."""
        self.epoch = secrets.token_hex(6)
        """This incarnation of the session (12 random hex digits): a session created again
        under the same id has another, and its seq starts again at 1 (resume, docs/protocol.md)."""
        self._lock = threading.Lock()
        if on_status is not None:  # the hub keeps this incarnation's predictions from now on
            on_status(self, SessionOpened(session=session_id, epoch=self.epoch).dump())
        self._quality: tuple[float, dict[str, Any]] | None = None
        self._rates: tuple[float, dict[str, float | None]] | None = None
        # stimulus set over REST: (LSL time it was set, stimulus id or None, feature vector or None)
        self._stimulus: tuple[float, str | None, NDArray[np.float64] | None] | None = None
        self.ingest = IngestSession(
            match,
            buffer_s=buffer_s,
            directory=directory,
            on_state=self._stream_state,
            overrides=overrides,
            on_data=self._on_data if wake is not None else None,
        ).start()

    def close(self) -> None:
        if self.lsl_out is not None:
            self.lsl_out.close()  # first: a recorder sees the predictions end with the session
        self.ingest.close()
        if self._on_status is not None:  # the hub drops this incarnation's kept predictions
            self._on_status(self, SessionEnded(session=self.id, epoch=self.epoch).dump())

    # -- health --------------------------------------------------------------------------------

    def _stream_state(self, acq: StreamAcquirer, state: StreamState) -> None:
        if self._on_status is None:
            return
        message = StreamStatus(
            session=self.id,
            stream=StreamRef(type=acq.stream.type, source_id=acq.stream.source_id),
            state=state,
            reason=acq.health.reason,
            emitted_at=now_iso(),
        )
        self._on_status(self, message.dump())

    def _announce_refused(self) -> None:
        """A ``status`` message, once, for each stream the ingest layer refuses (it takes no
        data from them, so no health change would ever tell the subscribers)."""
        now = time.monotonic()
        if self._on_status is None or now - self._refused_checked < REFUSED_CHECK_S:
            return
        self._refused_checked = now
        for row in self.ingest.report():
            if row.get("state") != StreamState.REFUSED:
                continue
            key = (str(row.get("source_id")), str(row.get("reason")))
            if key in self._refused_seen:
                continue
            self._refused_seen.add(key)
            message = StreamStatus(
                session=self.id,
                stream=StreamRef(type=str(row["type"]), source_id=key[0]),
                state=StreamState.REFUSED,
                reason=key[1],
                emitted_at=now_iso(),
            )
            self._on_status(self, message.dump())

    # -- model states ----------------------------------------------------------------------------

    def _set_state(
        self,
        slot: ModelSlot,
        state: ModelState,
        reason: str,
        coverage: dict[str, float] | None = None,
    ) -> None:
        """Record a model's state; on a change tell the subscribers (``model_status``) and, when
        the session as a whole becomes served or unserved, that too (``session_status``)."""
        if (slot.state, slot.reason, slot.coverage) == (state, reason, coverage):
            return
        slot.state, slot.reason, slot.coverage = state, reason, coverage
        log.info("session %s, model %s: %s %s", self.id, slot.name, state, reason)
        if self._on_status is not None:
            message = ModelStatus(
                session=self.id,
                model=slot.name,
                state=state,
                reason=reason,
                coverage=coverage,
                emitted_at=now_iso(),
            )
            self._on_status(self, message.dump())
        served = any(s.state in ("running", "degraded") for s in self.slots)
        if served != self.served:
            self.served = served
            if self._on_status is not None:
                self._on_status(
                    self,
                    SessionStatus(
                        session=self.id,
                        state="served" if served else "unserved",
                        reason=self.unserved_reason(),
                        emitted_at=now_iso(),
                    ).dump(),
                )

    def unserved_reason(self) -> str:
        """What each model still needs, when none is served; empty otherwise."""
        if self.served:
            return ""
        if not self.slots:
            return "no model is loaded"
        return "no loaded model can serve this session's streams: " + "; ".join(
            f"{s.name} {s.reason}" for s in self.slots
        )

    def model_rows(self) -> list[ModelStateRow]:
        return [s.row() for s in self.slots]

    def next_seq(self) -> int:
        with self._lock:
            self.seq += 1
            return self.seq

    # -- pipelines -----------------------------------------------------------------------------

    def _build(self, slot: ModelSlot) -> None:
        spec = slot.runner.contract.preprocess_spec()
        optional = spec.optional_streams
        rates, labels = {}, {}
        for stream in spec.streams:
            acq = self.ingest.by_type(stream)
            if (acq is None or acq.buffer is None) and stream in optional:
                continue  # one it may use: built without it (zeros), rebuilt when it comes
            if acq is None or acq.buffer is None:
                slot.waiting_for = f"waiting for a {stream} stream"
                refused = self._refused_stream(stream)
                if refused:
                    self._set_state(slot, "refused", f"its {stream} stream is refused: {refused}")
                else:
                    self._set_state(slot, "waiting", slot.waiting_for)
                return
            rates[stream] = acq.stream.nominal_srate
            # the labels in effect: the session's, a one-channel stream's modality, the stream's
            labels[stream] = acq.channel_labels
        try:
            feeder, wspec = WindowFeeder.for_spec(spec, rates, labels, self.shared_inputs)
        except ValueError as e:
            slot.waiting_for = f"cannot serve this model: {e}"
            self._set_state(slot, "refused", slot.waiting_for)
            return
        slot.feeder = feeder
        slot.lead_s = _longest_interval(rates)
        slot.windower = Windower(wspec, self.ingest.by_type, tails=True, phase=self.window_phase)
        slot.waiting_for = ""
        slot.absent_optional = feeder.pre.absent_optional()
        without = (
            "without the optional "
            + ", ".join(slot.absent_optional)
            + " stream (its channels are fed as zeros, as in training with stream dropout)"
            if slot.absent_optional
            else ""
        )
        coverage = feeder.pre.coverage()
        if coverage:
            parts = ", ".join(f"{k} {v:.0%}" for k, v in coverage.items())
            reason = f"partial montage: the streams give {parts} of the model's channels"
            self._set_state(slot, "degraded", "; ".join(filter(None, (reason, without))), coverage)
        else:
            self._set_state(slot, "running", without)

    def _optional_arrived(self, slot: ModelSlot) -> bool:
        """Whether a stream the model may use, absent when its pipeline was built, is acquired
        now (checked every :data:`BUILD_RETRY_S`): then the pipeline is dropped, to be rebuilt
        with it at once (fresh state, counted in ``rebuilds``)."""
        if not slot.absent_optional or time.monotonic() < slot.next_build:
            return False
        slot.next_build = time.monotonic() + BUILD_RETRY_S
        came = [
            s
            for s in slot.absent_optional
            if (acq := self.ingest.by_type(s)) is not None and acq.buffer is not None
        ]
        if not came:
            return False
        self._rebuild(slot, f"its optional {', '.join(came)} stream came")
        return True

    def _rebuild(self, slot: ModelSlot, why: str) -> None:
        """Drop the model's pipeline, to be built again at once from the streams as they are now
        (fresh state); counted in ``rebuilds`` with ``why`` in ``last_rebuild``."""
        log.info("session %s, model %s: pipeline rebuilt: %s", self.id, slot.name, why)
        slot.feeder, slot.windower, slot.next_build = None, None, 0.0
        slot.rebuilds += 1
        slot.last_rebuild = why

    def _covered_to(self, windower: Windower) -> float:
        """The time up to which every stream of ``windower`` is complete, from the streams'
        health (the windower's own watermark reads each buffer under its lock); ``-inf`` while
        a stream is missing or empty. A stream's buffer never holds more than its health has
        seen except between storing a chunk and counting it, and the chunk's ``on_data`` wakes
        the scheduler after that."""
        covered = math.inf
        for inp in windower.spec.inputs:
            acq = self.ingest.by_type(inp.type)
            reach = None if acq is None else acq.complete_to()
            if reach is None:
                return -math.inf
            covered = min(covered, reach)
        return covered

    def _last_sample(self, windower: Windower, t_end: float) -> float:
        """The LSL time of the newest sample before ``t_end`` of ``windower``'s streams (where
        its latency is measured from): each stream's newest stored stamp stepped back on its
        nominal grid (its stamps are dejittered onto it) to before ``t_end``. A window of a
        4 Hz EDA stream delivered at 16 Hz is complete with an EDA sample up to 250 ms before
        its end; its end minus one delivered interval was once used instead, and the latency
        came out negative (#16)."""
        newest = -math.inf
        for inp in windower.spec.inputs:
            acq = self.ingest.by_type(inp.type)
            last = None if acq is None else acq.health.last_timestamp
            if acq is None or last is None:
                continue
            rate = acq.stream.nominal_srate
            if last >= t_end and rate > 0:
                last -= (math.floor((last - t_end) * rate) + 1) / rate
            if last < t_end:
                newest = max(newest, last)
        if newest == -math.inf:  # no stream has a sample before the end any more
            return t_end - 1.0 / max(i.srate for i in windower.spec.inputs)
        return newest

    def _replan_if_needed(self, slot: ModelSlot) -> bool:
        """Re-plan a model whose streams came back at other rates (new resampling, fresh
        state); ``False`` when the slot must be rebuilt instead (a stream is gone, or the new
        rates cannot be served: then it says why)."""
        assert slot.feeder is not None
        rates = {}
        for stream in slot.feeder.pre.streams:
            acq = self.ingest.by_type(stream)
            if acq is None:
                return True  # stale or lost: health says so, the windower waits
            built = tuple(slot.feeder.pre.stream_labels.get(stream, ()))
            if tuple(acq.channel_labels) != built:  # the stream came back with other channels
                now = tuple(acq.channel_labels)
                change = (
                    f"{len(built)} → {len(now)} channels"
                    if len(now) != len(built)
                    else "other channel labels"
                )
                self._rebuild(slot, f"{stream} stream now has {change}")
                return False
            rates[stream] = acq.stream.nominal_srate
        if not slot.feeder.needs_replan(rates):
            return True
        try:
            wspec = slot.feeder.replan(rates)
        except ValueError as e:
            slot.feeder, slot.windower = None, None
            slot.waiting_for = f"cannot serve this model: {e}"
            self._set_state(slot, "refused", slot.waiting_for)
            return False
        slot.lead_s = _longest_interval(rates)
        slot.windower = Windower(wspec, self.ingest.by_type, tails=True, phase=self.window_phase)
        log.info("session %s, model %s re-planned: %s", self.id, slot.name, slot.feeder.last_replan)
        return True

    def _refused_stream(self, stream_type: str) -> str:
        """The reason the ingest layer refuses this session's stream of that type, if it does."""
        for row in self.ingest.report():
            if row.get("state") == StreamState.REFUSED and canonical_type(
                str(row.get("type"))
            ) == canonical_type(stream_type):
                return str(row.get("reason") or "refused")
        return ""

    def _on_data(self, complete_to: float) -> None:
        """A stream is complete up to ``complete_to`` (the acquisition thread): once it reaches
        the next window end a model waits for, wake the scheduler. At most
        :data:`WAKES_PER_WINDOW` times per window end (one per stream that gets there): a window
        that stays incomplete (a stream gone quiet) is left to the scheduler's ticks instead of
        waking it at every chunk of the other streams."""
        if complete_to >= self.next_due and self._wakes_left > 0 and self._wake is not None:
            self._wakes_left -= 1
            self._wake(self)

    def collect(self) -> list[Due]:
        """Preprocess every window that is due; return at most one (the newest) per model."""
        try:
            return self._collect()
        finally:
            ends = [
                slot.windower.last_end + slot.windower.spec.hop_s
                for slot in self.slots
                if slot.feeder is not None
                and slot.windower is not None
                and slot.windower.last_end is not None
            ]
            next_due = min(ends, default=math.inf)
            if next_due != self.next_due:
                self._wakes_left = WAKES_PER_WINDOW
                self.next_due = next_due
                # samples before the next window end may wait in liblsl and come in one pull
                self.ingest.want(next_due if math.isfinite(next_due) else None)

    def _collect(self) -> list[Due]:
        out = []
        now = local_clock()
        self._announce_refused()
        for slot in self.slots:
            if slot.feeder is not None:
                self._optional_arrived(slot)
            if slot.feeder is None:
                if time.monotonic() < slot.next_build:
                    continue
                slot.next_build = time.monotonic() + BUILD_RETRY_S
                self._build(slot)
                if slot.feeder is None:
                    continue
            assert slot.windower is not None
            wr = slot.windower
            next_end = None if wr.last_end is None else wr.last_end + wr.spec.hop_s
            if next_end is not None and now < next_end - POLL_AHEAD_S - slot.lead_s:
                continue  # the next window ends later than its newest samples can cover
            if next_end is not None and self._covered_to(wr) < next_end - COVER_TOL_S:
                continue  # a stream has not reached it (its chunk will wake the scheduler)
            if not self._replan_if_needed(slot):
                continue
            assert slot.feeder is not None and slot.windower is not None
            wr = slot.windower
            windows = wr.poll(
                1 if wr.last_end is None else max(1, round(CATCH_UP_S / wr.spec.hop_s))
            )
            if not windows:
                continue
            detected = local_clock()
            t0 = time.perf_counter()
            fed: list[tuple[Window, dict[str, NDArray[np.float64]], dict[str, str] | None]] = []
            for w in windows:
                features = slot.feeder.feed(w)
                if slot.feeder.wants_whole:  # an input shared with other models lost step
                    slot.feeder.wants_whole = False
                    wr.restart()
                    break  # (the next window comes whole)
                if features is not None:
                    fed.append((w, features, slot.feeder.pre.fallbacks() or None))
            preprocess_s = time.perf_counter() - t0
            # a burst of up to SERVED_AT_ONCE windows (a stream's samples arriving late, then
            # together) is served in full; more means falling behind: the newest only
            served = fed[-SERVED_AT_ONCE:] if len(fed) <= SERVED_AT_ONCE else fed[-1:]
            slot.coalesced += len(fed) - len(served)
            # latency is measured from the window's newest sample (_last_sample), as from a
            # sample's push
            for w, features, fallbacks in served:
                stimulus: StimulusUsed | None = None
                if slot.runner.contract.stimulus is not None:
                    resolved = self._stimulus_for(slot, w.t_end)
                    if resolved is None or not self._same_stimulus(w.t_start, resolved[1]):
                        # none known, or the window holds the end of the previous stimulus
                        # (training never sees such windows: each recording is preprocessed on
                        # its own)
                        slot.refused_windows += 1
                        continue
                    vector, stimulus = resolved
                    features = {**features, slot.runner.contract.stimulus.name: vector}
                out.append(
                    Due(
                        self,
                        slot,
                        w.t_start,
                        w.t_end,
                        features,
                        detected,
                        preprocess_s / len(served),
                        self._last_sample(wr, w.t_end),
                        stimulus,
                        fallbacks,
                    )
                )
        return out

    # -- ground truth and quality ----------------------------------------------------------------

    def _markers_back(self, t: float) -> Iterator[tuple[float, dict[str, Any]]]:
        """The session's JSON markers at or before LSL time ``t``, newest first, decoded lazily
        (a lookup stops at the newest event it cares about instead of decoding the history)."""
        markers = self.ingest.by_type("Markers")
        if markers is None:
            return
        for ts, text in reversed(markers.markers_between(-np.inf, t)):
            payload = decode_marker(text)
            if payload is not None:
                yield ts, payload

    def truth_at(self, t: float) -> tuple[float, float, float] | None:
        """(valence, arousal, scale midpoint) of the trial running at LSL time ``t``, from the
        markers: the ratings and their ``rating_scale`` ``[low, high]`` travel in the marker, so
        no dataset is special here (a marker without both gives no ground truth)."""
        for _, payload in self._markers_back(t):  # the newest trial event decides
            event = payload.get("event")
            if event in ("trial_start", "trial_running"):
                return marker_ratings(payload)
            if event == "trial_end":
                return None
        return None

    # -- the stimulus (fusion models) ------------------------------------------------------------

    def set_stimulus(
        self,
        stimulus_id: str | None,
        features: NDArray[np.float64] | None = None,
        at: float | None = None,
    ) -> None:
        """Set (or with both ``None``, clear) the current stimulus from LSL time ``at`` on
        (default: now) (REST; a worker relaying a gateway's request backdates it to when the
        request came)."""
        self._stimulus = (local_clock() if at is None else at, stimulus_id, features)

    def stimulus_at(
        self, t: float
    ) -> tuple[str | None, NDArray[np.float64] | None, Literal["markers", "rest"]] | None:
        """The stimulus at LSL time ``t``: (id, feature vector, source), or ``None`` if unknown.

        Sources: markers whose JSON has a ``stimulus_id`` (``trial_start``/``trial_running`` of the
        replays, or ``{"event": "stimulus", "stimulus_id": …}``; ``trial_end`` or
        ``stimulus_end`` clear it) and ``PUT /sessions/{id}/stimulus``; the newer one wins.
        """
        marked: tuple[float, str | None] | None = None
        for ts, payload in self._markers_back(t):  # the newest stimulus event decides
            event = payload.get("event")
            if event in ("trial_start", "trial_running", "stimulus") and "stimulus_id" in payload:
                marked = (ts, str(payload["stimulus_id"]))
                break
            if event in ("trial_end", "stimulus_end"):
                marked = (ts, None)
                break
        rest = self._stimulus
        if rest is not None and rest[0] <= t and (marked is None or rest[0] >= marked[0]):
            return None if rest[1] is None and rest[2] is None else (rest[1], rest[2], "rest")
        if marked is None or marked[1] is None:
            return None
        return marked[1], None, "markers"

    def _same_stimulus(self, t_start: float, used: StimulusUsed) -> bool:
        """Whether the stimulus ``used`` at a window's end was already current at its start."""
        at_start = self.stimulus_at(t_start)
        return at_start is not None and (at_start[0], at_start[2]) == (used.id, used.source)

    def _stimulus_for(
        self, slot: ModelSlot, t: float
    ) -> tuple[NDArray[np.float64], StimulusUsed] | None:
        """The raw stimulus vector for a fusion model's window ending at ``t`` and what it is
        (id, source); ``None`` (and the slot marked refused, with the reason) when there is none."""
        stim = slot.runner.contract.stimulus
        assert stim is not None
        current = self.stimulus_at(t)
        reason = ""
        vector = None
        if current is None:
            reason = (
                f"{slot.name} needs the current stimulus's features ({stim.name}, "
                f"{stim.n_features} values): send PUT /sessions/{self.id}/stimulus with "
                '{"id": …} or {"features": […]}, or markers carrying a stimulus_id'
            )
        elif current[1] is not None:
            vector = current[1]
            if vector.shape != (stim.n_features,):
                vector, reason = (
                    None,
                    (
                        f"{slot.name}: the session's stimulus features have {current[1].size} "
                        f"values, the model needs {stim.n_features}"
                    ),
                )
        else:
            vector = slot.runner.stimulus_features(str(current[0]))
            if vector is None:
                reason = (
                    f"{slot.name}: stimulus id {current[0]!r} is not in the model's feature "
                    f"table ({len(slot.runner.stimulus_index)} stimuli)"
                )
        if reason != slot.refused:
            slot.refused = reason
            self._set_state(slot, "refused" if reason else "running", reason)
        if vector is None or current is None:
            return None
        return vector, StimulusUsed(id=current[0], source=current[2])

    def quality(self, window_end: float) -> dict[str, Any]:
        """Per-stream health and, where the streams allow, pulse and breathing rate (computed
        once per window end: every model due at that tick shares it; the rates, estimated over
        the last 10 s and 30 s, are refreshed once per second of stream time)."""
        if self._quality is not None and self._quality[0] == window_end:
            return self._quality[1]
        q: dict[str, Any] = {}
        for kind, state, nonfinite, unit in self.ingest.states():
            q[str(kind)] = {"state": state, "nonfinite": nonfinite}
            if unit:
                q[str(kind)]["unit"] = unit  # "µS (assumed)" when none was given
        if self._rates is None or not 0 <= window_end - self._rates[0] < RATE_REFRESH_S:
            rates: dict[str, float | None] = {}
            for kind, fn in (("PPG", pulse_rate), ("RESP", breathing_rate)):
                acq = self.ingest.by_type(kind)
                if acq is None or acq.buffer is None:
                    continue
                span = 10.0 if kind == "PPG" else 30.0  # ≥ 2 cycles of the slowest rate
                x, _ = acq.buffer.read_range(window_end - span, window_end)
                rate = fn(x[:, 0], acq.stream.nominal_srate) if len(x) else None
                rates[kind] = None if rate is None else round(rate, 1)
            self._rates = (window_end, rates)
        for kind, rate in self._rates[1].items():
            if kind in q:
                q[kind]["rate_per_min"] = rate
        self._quality = (window_end, q)
        return q

    def describe(self) -> dict[str, Any]:
        return {
            "session": self.id,
            "match": self.match.as_dict(),
            **({"overrides": self.overrides.as_dict()} if self.overrides else {}),
            "created": self.created,
            "served": self.served,
            **({} if self.served else {"unserved": self.unserved_reason()}),
            "lsl_out": self.lsl_out is not None,
            "streams": self.ingest.report(),
            # inputs several of its models compute the same way, computed once (SharedInputs)
            "shared_inputs": self.shared_inputs.counters(),
            "models": [
                {
                    "model": s.name,
                    "state": ("refused: " + s.refused if s.refused else "running")
                    if s.feeder is not None
                    else s.waiting_for,
                    "status": s.state,
                    "reason": s.reason,
                    **({"coverage": s.coverage} if s.coverage else {}),
                    "predictions": s.predictions,
                    **(
                        {"refused_windows": s.refused_windows}
                        if s.runner.contract.stimulus is not None
                        else {}
                    ),
                    "coalesced": s.coalesced,
                    "rebuilds": s.rebuilds,
                    "last_rebuild": s.last_rebuild,
                    **(
                        {
                            "streams": list(s.feeder.pre.streams),
                            "without_optional": list(s.absent_optional),
                            "replans": s.feeder.replans,
                            "last_replan": s.feeder.last_replan,
                            "resets": s.feeder.resets,
                        }
                        if s.feeder is not None
                        else {}
                    ),
                    "skipped_windows": dict(s.windower.skipped) if s.windower else {},
                    "online_score": s.score.as_dict(),
                    **(
                        {"lsl_outlet": self.lsl_out.describe(s.name)}
                        if self.lsl_out is not None
                        else {}
                    ),
                    "last_prediction": s.last,
                }
                for s in self.slots
            ],
        }


# -- predictions as LSL streams ----------------------------------------------------------------


def prediction_outlet_spec(session_id: str, runner: ModelRunner) -> OutletSpec:
    """The LSL stream of one session's predictions by one model (docs/lsl.md).

    Irregular rate: a sample is a window the model was run on, stamped with the window's end, and
    windows do not always come at the contract's hop (coalesced when the service fell behind,
    skipped over gaps, withheld while a model waits for its streams or a stimulus). A nominal rate
    would be a promise the stream does not keep, and recorders' and inlets' dejittering, which
    assumes one, would move the timestamps. The hop is in the description for those who want it.

    ``source_id`` depends on the session and the model only, so a recorder re-links the stream
    when the service (or the session) starts again."""
    contract = runner.contract
    return OutletSpec(
        name=f"affectstream-{session_id}-{contract.id}",
        type=LSL_OUT_TYPE,
        source_id=f"affectstream/{session_id}/{contract.id}",
        srate=IRREGULAR_RATE,
        fmt="float32",
        channels=LSL_OUT_CHANNELS,
        desc={
            "session": session_id,
            "model": contract.id,
            "model_name": contract.name,
            "model_version": contract.version,
            "schema": str(SCHEMA_VERSION),
            "timestamp": "window end",
            "hop_s": f"{contract.hop_s:g}",
            "producer": "affectstream",
        },
    )


def streams_ok(quality: dict[str, Any], streams: frozenset[str]) -> bool:
    """Whether every stream of the types ``streams`` (canonical) in a prediction's ``quality``
    is ``ok`` (and there is one at least)."""
    states = [v.get("state") for k, v in quality.items() if canonical_type(k) in streams]
    return bool(states) and all(state == StreamState.OK for state in states)


@dataclass
class _ModelOutlet:
    spec: OutletSpec
    streams: frozenset[str]  # the canonical stream types the model reads (for streams_ok)
    outlet: Any = None  # the live outlet, once the model's first prediction came
    samples: int = 0
    error: str = ""  # the outlet could not be opened: not tried again


class PredictionOutlets:
    """A session's predictions as LSL streams, one per model (:func:`prediction_outlet_spec`).

    :meth:`push` runs in the scheduler's thread: it opens a model's outlet at its first prediction
    (a few milliseconds, once) and then only pushes (liblsl queues the sample and returns: a slow
    or absent consumer never holds the scheduler up). :meth:`close` (the session's end, from
    another thread) drops the outlets; one lock keeps a push and the close apart, and the outlets
    are destroyed after it is released, so the scheduler never waits on liblsl's teardown."""

    def __init__(self, session_id: str, runners: list[ModelRunner]) -> None:
        self.session_id = session_id
        self._lock = threading.Lock()
        self._closed = False
        self._models = {
            r.name: _ModelOutlet(
                prediction_outlet_spec(session_id, r),
                frozenset(canonical_type(s) for s in r.contract.preprocess_spec().streams),
            )
            for r in runners
        }

    def push(
        self,
        model: str,
        window_end: float,
        probs: tuple[float, float],
        quality: dict[str, Any],
        coverage: dict[str, float] | None,
    ) -> None:
        """One prediction of ``model``, stamped with its window's end (LSL clock); never raises
        (a failure is logged and the model's outlet left alone)."""
        with self._lock:
            m = self._models.get(model)
            if self._closed or m is None or m.error:
                return
            if m.outlet is None:
                try:
                    m.outlet = open_outlet(m.spec)
                except Exception as e:  # liblsl out of ports, sockets …: the service goes on
                    m.error = f"the outlet could not be opened: {e}"
                    log.error("session %s, model %s: %s", self.session_id, model, m.error)
                    return
                log.info("session %s, model %s: LSL outlet %s", self.session_id, model, m.spec.name)
            sample = [
                probs[0],
                probs[1],
                1.0 if streams_ok(quality, m.streams) else 0.0,
                min(coverage.values()) if coverage else 1.0,
            ]
            try:
                m.outlet.push_sample(sample, window_end)
            except Exception as e:
                m.error = f"push failed: {e}"
                log.error("session %s, model %s: LSL %s", self.session_id, model, m.error)
                return
            m.samples += 1

    def is_open(self, model: str) -> bool:
        with self._lock:
            m = self._models.get(model)
            return m is not None and m.outlet is not None

    def close(self) -> None:
        """Close every outlet (their inlets see them lost); later pushes do nothing."""
        with self._lock:
            self._closed = True
            outlets = [m.outlet for m in self._models.values() if m.outlet is not None]
            for m in self._models.values():
                m.outlet = None
        del outlets  # the last references: liblsl destroys the outlets here, outside the lock

    def describe(self, model: str) -> dict[str, Any]:
        """A model's stream for ``GET /sessions``: name, type, source_id, whether it is open
        (from the model's first prediction until the session ends) and the samples pushed."""
        with self._lock:
            m = self._models[model]
            return {
                "name": m.spec.name,
                "type": m.spec.type,
                "source_id": m.spec.source_id,
                "open": m.outlet is not None,
                "samples": m.samples,
                **({"error": m.error} if m.error else {}),
            }


def _needs(runner: ModelRunner) -> str:
    """A model's state before its first build: waiting for the first stream its contract needs
    (what :meth:`Session._build` says while that stream is missing, so no message repeats it)."""
    return f"waiting for a {runner.contract.preprocess_spec().needed_streams[0]} stream"


def group_key(source_id: str, stream_type: str) -> str | None:
    """Auto-attach grouping: ``<key>-<TYPE>`` source ids (the replay's and many apps') → key."""
    for suffix in (stream_type, canonical_type(stream_type)):
        if source_id.endswith("-" + suffix):
            return source_id[: -len(suffix) - 1]
    return None


def marker_ratings(payload: dict[str, Any]) -> tuple[float, float, float] | None:
    """(valence, arousal, midpoint of ``rating_scale``) of a trial marker; None unless all are
    there and finite, with the ratings inside a scale whose low end is below its high end."""
    try:
        low, high = (float(x) for x in payload["rating_scale"])
        valence, arousal = float(payload["valence"]), float(payload["arousal"])
    except (KeyError, TypeError, ValueError):
        return None
    values = (low, high, valence, arousal)
    if not all(math.isfinite(v) for v in values) or not low < high:
        return None
    if not (low <= valence <= high and low <= arousal <= high):
        return None
    return valence, arousal, (low + high) / 2
