"""Every message of the service, typed, in one place: what the WebSocket publishes and what the
HTTP API accepts.

Where this sits on the way of one window: the scheduler (:mod:`affectstream.service.scheduler`)
turns an inferred window into a :class:`Prediction`, the sessions
(:mod:`affectstream.service.sessions`) report :class:`StreamStatus` and :class:`ModelStatus`; each
is handed on as its wire dict (:meth:`dump`) to the hub (:mod:`affectstream.service.hub`), whose
queues the WebSocket route (:mod:`affectstream.service.api.ws`) empties to its client.

Service → client (WebSocket ``/ws/sessions/{id}``, schema 1): :class:`Hello` on connect (with a
resume, ``?since=``: then a :class:`Gap` if predictions were lost, and the kept predictions the
client missed), then :class:`Prediction`, :class:`StreamStatus` and :class:`ModelStatus` as they
happen, :class:`Pong` and :class:`ErrorMessage` in answer to the client. Every message starts with
``type``, ``schema`` (1) and ``session``. Optional fields (``ground_truth``, ``stimulus``,
``dropped``) are left out when they have no value, as clients of schema 1 expect. :class:`Closed`
never reaches a client: it tells the WebSocket route that the session was deleted, and the route
closes with code 4410; nor do :class:`SessionOpened` and :class:`SessionEnded`, which tell the hub's
resume buffer (see :mod:`affectstream.service.hub`) which incarnation of a session it keeps.

Client → service (HTTP bodies): :class:`SessionBody`, :class:`MatchBody`, :class:`StimulusBody`.

:func:`message_json_schema` gives the JSON Schema of the published messages (served at
``GET /schema/messages.json`` and kept in ``docs/messages.schema.json``, which a test compares).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any, ClassVar, Final, Literal

import numpy as np
import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    field_validator,
    model_serializer,
    model_validator,
)

from affectstream.streaming.ingest.channels import StreamOverrides, canonical_type
from affectstream.streaming.ingest.health import StreamState
from affectstream.streaming.preprocess.montage import validate_eeg_labels

__all__ = [
    "EPOCH",
    "MAX_MODELS",
    "SCHEMA_VERSION",
    "SESSION_ID",
    "Closed",
    "ErrorMessage",
    "Gap",
    "GroundTruth",
    "Hello",
    "LatencyMs",
    "MatchBody",
    "ModelState",
    "ModelStateRow",
    "ModelStatus",
    "Pong",
    "Prediction",
    "Resume",
    "ServerMessage",
    "SessionBody",
    "SessionEnded",
    "SessionOpened",
    "SessionStatus",
    "StimulusBody",
    "StimulusUsed",
    "StreamRef",
    "StreamStatus",
    "Window",
    "Wire",
    "encode",
    "message_json_schema",
    "message_json_schema_text",
    "now_iso",
    "parse_server_message",
    "prediction_message",
    "valid_epoch",
    "valid_session_id",
]

SCHEMA_VERSION: Final = 1
"""The ``schema`` field of every published message."""
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
"""Session ids: 1-128 letters, digits, ``.``, ``_`` or ``-``, not starting with a symbol. Use
:func:`valid_session_id` (``fullmatch``: no trailing newline slips through, as with ``$``)."""


EPOCH = re.compile(r"[A-Za-z0-9_\-]{1,64}")
"""Session epochs as a client may send them back (``?epoch=``): 1-64 letters, digits, ``_``, ``-``
(the service makes 12 hex digits). Use :func:`valid_epoch`."""


def valid_epoch(text: str) -> bool:
    """Whether ``text`` is an epoch a client may send (:data:`EPOCH`, the whole string)."""
    return EPOCH.fullmatch(text) is not None


def valid_session_id(text: str) -> bool:
    """Whether ``text`` is a session id (:data:`SESSION_ID`, the whole string)."""
    return SESSION_ID.fullmatch(text) is not None


def now_iso() -> str:
    """The wall-clock time in ISO 8601 with milliseconds (UTC), as in ``emitted_at``."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


# -- service → client -------------------------------------------------------------------------


def encode(message: dict[str, Any]) -> str:
    """A message as the JSON text a client receives: compact, UTF-8, keys in the dict's order.

    orjson, several times faster than ``json.dumps``; numpy numbers are written as numbers.
    Where orjson refuses a value (a type it does not know, an integer beyond 64 bits) the
    standard library writes it as before."""
    try:
        return orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class Wire(dict[str, Any]):
    """A published message (a dict like any other) that keeps its JSON text once encoded, so
    the same text goes to every subscriber (and to a resuming client) without encoding it
    again (:attr:`text`)."""

    __slots__ = ("_text",)

    @property
    def text(self) -> str:
        try:
            return self._text
        except AttributeError:
            self._text: str = encode(self)
            return self._text


def _always_present(schema: dict[str, Any], cls: type) -> None:
    """``type`` and ``schema`` have defaults here but are on every message: mark them required."""
    required = schema.setdefault("required", [])
    for key in ("schema", "type"):
        if key not in required:
            required.insert(0, key)


class _Message(BaseModel):
    """Fields of every published message; optional fields without a value are left out.

    ``type`` is declared here (each message narrows it to its literal) so that every message's
    JSON object starts with ``type``, ``schema``, ``session``, in that order, as it always has."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        use_attribute_docstrings=True,
        use_enum_values=True,
        json_schema_extra=_always_present,
    )
    _omit_when_none: ClassVar[tuple[str, ...]] = ()

    type: str
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, alias="schema")
    """Message schema version (1)."""
    session: str
    """The session id."""

    @model_serializer(mode="wrap")
    def _omit(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        for key in self._omit_when_none:
            if data.get(key) is None:
                data.pop(key, None)
        return data

    def dump(self) -> dict[str, Any]:
        """The message as the JSON object clients receive.

        Python mode, not pydantic's JSON mode: free-form values (``quality``, ``streams``) pass
        through exactly as the service computed them and are encoded once, by :func:`encode`,
        when the message is sent (:class:`Wire`)."""
        out: dict[str, Any] = self.model_dump(by_alias=True)
        return out


class Resume(BaseModel):
    """What a reconnecting client (``?since=``) gets: the predictions it missed, from the
    session's resume buffer (docs/protocol.md, "Resume")."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    since: int = Field(ge=0)
    """The ``since`` the client sent: the last prediction ``seq`` it holds."""
    replayed: int = Field(ge=0)
    """Kept predictions sent right after this hello (and any ``gap``), before the live feed."""
    missed: int = Field(ge=0)
    """Predictions the client will never get: no longer kept (the ``gap`` message's count)."""
    reset: bool
    """The client's ``since`` belongs to another incarnation of the session (another ``epoch``,
    or a ``since`` beyond ``last_seq``): the replay starts at this incarnation's first kept
    prediction and the client must forget its seq bookkeeping."""


class Hello(_Message):
    """First message on a WebSocket: the session's models and streams, its epoch and latest
    seq, and what a resume (``?since=``) replays."""

    type: Literal["hello"] = "hello"
    models: list[str]
    """Names (name@version) of the session's models."""
    streams: list[dict[str, Any]]
    """One row per stream: identity, health state and counters (as in GET /sessions/{id})."""
    model_status: list[ModelStateRow] = Field(default_factory=list)
    """Each model's state now (later changes arrive as ``model_status`` messages)."""
    session_state: Literal["served", "unserved"] = "served"
    """``unserved`` when no model of the session can run on its streams yet."""
    reason: str = ""
    """For ``unserved``: what is missing."""
    epoch: str
    """This incarnation of the session (random, made when it was created): a session created
    again under the same id (service restart, delete and create) has another, and its ``seq``
    starts again at 1. Send it back as ``?epoch=`` with ``?since=`` to resume."""
    last_seq: int = Field(ge=0)
    """The session's latest assigned prediction ``seq`` (0 before the first)."""
    resume: Resume | None
    """``null`` without ``?since=``; otherwise what is replayed and missed."""


class Gap(_Message):
    """Right after ``hello`` on a resume: predictions ``from`` … ``to`` (inclusive) are no longer
    kept, so they will never arrive."""

    type: Literal["gap"] = "gap"
    from_seq: int = Field(alias="from", ge=1)
    """First missing seq."""
    to: int = Field(ge=1)
    """Last missing seq."""
    missed: int = Field(ge=1)
    """``to - from + 1``."""
    reason: str
    """Why, e.g. ``older than the resume buffer (resume_buffer=N)``."""


class Window(BaseModel):
    """The window a prediction was computed on, [start, end) in LSL seconds."""

    model_config = ConfigDict(extra="forbid")
    start: float
    end: float


class LatencyMs(BaseModel):
    """Per-stage latency of a prediction in milliseconds: ingest (from the window's last sample
    to the window found due), preprocess, inference, total (from the last sample to the message
    built)."""

    model_config = ConfigDict(extra="forbid")
    ingest: float
    preprocess: float
    inference: float
    total: float


class GroundTruth(BaseModel):
    """The ratings of the trial running at the window's end (from the session's markers, on the
    scale the markers give)."""

    model_config = ConfigDict(extra="forbid")
    valence: float
    arousal: float


class StimulusUsed(BaseModel):
    """The stimulus whose features went into a fusion model."""

    model_config = ConfigDict(extra="forbid")
    id: str | None
    """The stimulus id (null when features were sent without an id)."""
    source: Literal["markers", "rest"]
    """Where it came from: a marker carrying a stimulus_id, or PUT /sessions/{id}/stimulus."""


class Prediction(_Message):
    """One model's valence and arousal probabilities (of "high") for one window."""

    _omit_when_none: ClassVar[tuple[str, ...]] = (
        "ground_truth",
        "stimulus",
        "coverage",
        "fallbacks",
        "dropped",
    )

    type: Literal["prediction"] = "prediction"
    seq: int
    """Increases strictly per session."""
    model: str
    """The model's name@version."""
    window: Window
    valence: float = Field(ge=0, le=1)
    """Probability of high valence."""
    arousal: float = Field(ge=0, le=1)
    """Probability of high arousal."""
    quality: dict[str, dict[str, Any]]
    """Per stream type: state, nonfinite and, for PPG and RESP, rate_per_min."""
    latency_ms: LatencyMs
    emitted_at: str
    """Wall-clock time the message was built, ISO 8601 UTC with milliseconds."""
    ground_truth: GroundTruth | None = None
    """Present when the session's markers carry the running trial's ratings."""
    stimulus: StimulusUsed | None = None
    """Present on fusion models' predictions."""
    coverage: dict[str, float] | None = None
    """Per stream type, the fraction of the model's channels present (a partial EEG montage);
    present when below 1."""
    fallbacks: dict[str, str] | None = None
    """Model inputs whose online cvxEDA fell back for this window (flat segment or solver
    failure: tonic = signal, phasic = 0), with the reason; present only then."""
    dropped: int | None = None
    """Messages this client lost to its full queue so far (present when it changed)."""


def prediction_message(
    *,
    session: str,
    seq: int,
    model: str,
    window_start: float,
    window_end: float,
    valence: float,
    arousal: float,
    quality: dict[str, dict[str, Any]],
    latency_ms: dict[str, float],
    emitted_at: str,
    ground_truth: tuple[float, float] | None = None,
    stimulus: StimulusUsed | None = None,
    coverage: dict[str, float] | None = None,
    fallbacks: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``Prediction(...).dump()`` without pydantic: the same dict, key for key and in the same
    order (a test compares the two over every optional field), built in about a third of the
    time (7 against 24 µs with ``now_iso()`` measured here; the scheduler builds one per model
    per window, #16). What pydantic would refuse is refused here
    too, with :class:`ValueError`: a probability that is not within [0, 1] (NaN included) and a
    latency without exactly its four stages."""
    for name, p in (("valence", valence), ("arousal", arousal)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name}: {p} is not a probability")
    if set(latency_ms) != {"ingest", "preprocess", "inference", "total"}:
        raise ValueError(f"latency_ms: stages {sorted(latency_ms)}")
    out: dict[str, Any] = {
        "type": "prediction",
        "schema": SCHEMA_VERSION,
        "session": session,
        "seq": int(seq),
        "model": model,
        "window": {"start": float(window_start), "end": float(window_end)},
        "valence": float(valence),
        "arousal": float(arousal),
        "quality": quality,
        "latency_ms": {
            k: float(latency_ms[k]) for k in ("ingest", "preprocess", "inference", "total")
        },
        "emitted_at": emitted_at,
    }
    if ground_truth is not None:
        out["ground_truth"] = {"valence": float(ground_truth[0]), "arousal": float(ground_truth[1])}
    if stimulus is not None:
        out["stimulus"] = {"id": stimulus.id, "source": stimulus.source}
    if coverage is not None:
        out["coverage"] = dict(coverage)
    if fallbacks is not None:
        out["fallbacks"] = dict(fallbacks)
    return out


class StreamRef(BaseModel):
    """A stream by type and source_id."""

    model_config = ConfigDict(extra="forbid")
    type: str
    source_id: str


class StreamStatus(_Message):
    """A stream of the session changed health state."""

    _omit_when_none: ClassVar[tuple[str, ...]] = ("dropped",)

    type: Literal["status"] = "status"
    stream: StreamRef
    state: StreamState
    """The stream's new health state (docs/architecture.md#stream-health)."""
    reason: str
    """Why, when the state has a reason (e.g. lost); otherwise empty."""
    emitted_at: str
    dropped: int | None = None
    """Messages this client lost to its full queue so far (present when it changed)."""


ModelState = Literal["waiting", "refused", "running", "degraded"]
"""A model's state in a session: ``waiting`` for a stream it needs, ``refused`` (it cannot serve
these streams as they are, or a fusion model lacks its stimulus: the reason says what to send),
``running``, or ``degraded`` (running on part of what it was trained on, e.g. a partial EEG
montage: ``coverage`` says how much)."""


class ModelStatus(_Message):
    """A model of the session changed state (and why)."""

    _omit_when_none: ClassVar[tuple[str, ...]] = ("coverage", "dropped")

    type: Literal["model_status"] = "model_status"
    model: str
    state: ModelState
    reason: str
    """What it waits for, why it is refused (what to send) or degraded; empty when running."""
    emitted_at: str
    coverage: dict[str, float] | None = None
    """Per stream type, the fraction of the model's channels the session's streams provide
    (present when below 1)."""
    dropped: int | None = None
    """Messages this client lost to its full queue so far (present when it changed)."""


class ModelStateRow(BaseModel):
    """One model's current state, as :class:`Hello` lists it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    model: str
    state: ModelState
    reason: str
    coverage: dict[str, float] | None = None


class SessionStatus(_Message):
    """Whether any model of the session is being served, and if none, what is missing."""

    _omit_when_none: ClassVar[tuple[str, ...]] = ("dropped",)

    type: Literal["session_status"] = "session_status"
    state: Literal["served", "unserved"]
    reason: str
    """For ``unserved``: what each model still needs; empty when served."""
    emitted_at: str
    dropped: int | None = None
    """Messages this client lost to its full queue so far (present when it changed)."""


class Closed(_Message):
    """The session was deleted. Internal (hub → WebSocket route): the route closes the socket
    with code 4410 instead of sending it, so it is not part of :data:`ServerMessage`."""

    type: Literal["closed"] = "closed"


class SessionOpened(_Message):
    """A session (one incarnation, ``epoch``) was created. Internal (session → hub): the hub
    starts its resume buffer; never sent to a client."""

    type: Literal["opened"] = "opened"
    epoch: str


class SessionEnded(_Message):
    """A session's incarnation ``epoch`` was closed. Internal (session → hub): the hub drops its
    resume buffer (unless the id already belongs to a newer incarnation); never sent."""

    type: Literal["ended"] = "ended"
    epoch: str


class Pong(_Message):
    """Answer to a client's {"type": "ping"}."""

    type: Literal["pong"] = "pong"


class ErrorMessage(_Message):
    """Answer to a client message the service does not take (the connection stays open)."""

    type: Literal["error"] = "error"
    error: str


ServerMessage = Annotated[
    Hello | Gap | Prediction | StreamStatus | ModelStatus | SessionStatus | Pong | ErrorMessage,
    Field(discriminator="type"),
]
"""Any message a client receives on a session's WebSocket."""

_SERVER_MESSAGE: TypeAdapter[Any] = TypeAdapter(ServerMessage)


def message_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the published messages, discriminated by ``type``."""
    schema: dict[str, Any] = _SERVER_MESSAGE.json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"affectstream WebSocket message, schema {SCHEMA_VERSION}"
    return schema


def message_json_schema_text() -> str:
    """:func:`message_json_schema` as ``docs/messages.schema.json`` holds it (2-space indent,
    sorted keys, trailing newline)."""
    return json.dumps(message_json_schema(), indent=2, sort_keys=True) + "\n"


def parse_server_message(data: str | bytes | dict[str, Any]) -> BaseModel:
    """Validate one published message (a client's or a test's check of the schema)."""
    if isinstance(data, dict):
        out: BaseModel = _SERVER_MESSAGE.validate_python(data)
    else:
        out = _SERVER_MESSAGE.validate_json(data)
    return out


# -- client → service (HTTP bodies) ------------------------------------------------------------


class MatchBody(BaseModel):
    """Which LSL streams make up the session (at least one of the first three keys)."""

    model_config = ConfigDict(extra="forbid")
    source_id_prefix: str | None = Field(default=None, min_length=1, max_length=256)
    hostname: str | None = Field(default=None, min_length=1, max_length=256)
    session: str | None = Field(default=None, min_length=1, max_length=256)
    type: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def one_key(self) -> MatchBody:
        if not (self.source_id_prefix or self.hostname or self.session):
            raise ValueError("match needs one of source_id_prefix, hostname or session")
        return self


class StimulusBody(BaseModel):
    """The current stimulus of a session: an id from the fusion models' tables, or its features."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, min_length=1, max_length=128)
    features: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(
        default=None, min_length=1, max_length=100_000
    )
    """Finite numbers only (``NaN``, ``Infinity`` and overflowing literals are refused)."""

    @model_validator(mode="after")
    def one_of(self) -> StimulusBody:
        if (self.id is None) == (self.features is None):
            raise ValueError('give exactly one of "id" or "features"')
        if self.features is not None and not np.isfinite(self.features).all():
            raise ValueError("features must be finite numbers")
        return self


Label = Annotated[str, Field(min_length=1, max_length=64)]
MAX_MODELS: Final = 256
"""The most models a session body may name (the setting ``max_models_per_session`` is lower)."""


class SessionBody(BaseModel):
    """``POST /sessions``: a session id, its stream match, its models (when empty or absent: every
    loaded model its streams can feed), optionally its first stimulus, and what the streams do not
    say themselves: channel labels in column order per stream type (``{"EEG": ["Fp1", …]}``) and
    the skin-conductance unit (``{"GSR": "kOhm"}``); ``lsl_out`` overrides the service's setting
    of that name for this session."""

    model_config = ConfigDict(extra="forbid")
    session: str
    match: MatchBody
    models: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=MAX_MODELS
    )
    """At most ``max_models_per_session`` (a setting, ≤ 256), each once."""
    stimulus: StimulusBody | None = None
    channels: dict[Label, list[Label]] | None = Field(default=None, max_length=16)
    """Channel labels per stream type, in column order (EEG labels: 10-20/10-10 electrodes)."""
    units: dict[Label, Label] | None = Field(default=None, max_length=16)
    """Units per stream type; for skin conductance µS, kOhm, Ohm (converted to µS)."""
    lsl_out: bool | None = None
    """Publish the session's predictions as LSL streams, one per model (when absent: the
    service's ``lsl_out`` setting)."""

    @field_validator("session")
    @classmethod
    def valid_id(cls, v: str) -> str:
        if not valid_session_id(v):
            raise ValueError(
                "session id: 1-128 letters, digits, '.', '_' or '-', not starting with a symbol"
            )
        return v

    @field_validator("models")
    @classmethod
    def distinct_models(cls, v: list[str]) -> list[str]:
        repeated = sorted({m for m in v if v.count(m) > 1})
        if repeated:
            raise ValueError(f"models: each model once; repeated: {repeated}")
        return v

    @field_validator("channels")
    @classmethod
    def valid_channels(cls, v: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if v is None:
            return None
        out = {}
        for kind, labels in v.items():
            if len(labels) > 512:
                raise ValueError(f"channels[{kind!r}]: at most 512 labels")
            if canonical_type(kind) == "EEG":
                labels = validate_eeg_labels(labels)  # ValueError names unknown and duplicates
            out[kind] = labels
        return out

    @model_validator(mode="after")
    def valid_overrides(self) -> SessionBody:
        self.stream_overrides()  # ValueError: a unit not known, the same type twice, …
        return self

    def stream_overrides(self) -> StreamOverrides | None:
        """The ingest layer's overrides for this body, ``None`` when it gives none."""
        if not self.channels and not self.units:
            return None
        return StreamOverrides(channels=self.channels or {}, units=self.units or {})
