"""A published message is encoded once (orjson) and the same text goes to every subscriber
(#16); the text means what ``json.dumps`` of the message meant."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from affectstream.service.api.ws import send_message
from affectstream.service.hub import Hub
from affectstream.service.messages import (
    LatencyMs,
    Prediction,
    Window,
    Wire,
    encode,
    now_iso,
    parse_server_message,
)


def _prediction(seq: int) -> dict[str, Any]:
    return Prediction(
        session="wire-1",
        seq=seq,
        model="m@1",
        window=Window(start=10.0, end=14.0),
        valence=0.25,
        arousal=0.75,
        quality={
            "GSR": {"state": "ok", "nonfinite": 0, "unit": "µS"},
            "PPG": {"rate_per_min": None},
        },
        latency_ms=LatencyMs(ingest=1.5, preprocess=0.25, inference=3.0, total=5.0),
        emitted_at=now_iso(),
        coverage={"EEG": 0.5},
    ).dump()


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(text)


def test_one_text_for_every_subscriber_meaning_what_json_dumps_meant() -> None:
    async def scenario() -> tuple[list[Any], FakeSocket, FakeSocket]:
        hub = Hub(queue_size=8, loop=asyncio.get_running_loop())
        subs = [hub.subscribe("wire-1") for _ in range(3)]
        for seq in (1, 2):
            hub.publish("wire-1", _prediction(seq))
        await asyncio.sleep(0)
        got = [[s.queue.get_nowait() for _ in range(2)] for s in subs]
        a, b = FakeSocket(), FakeSocket()
        for m in got[0]:
            await send_message(a, m)  # type: ignore[arg-type]
        for m in got[1]:
            await send_message(b, m)  # type: ignore[arg-type]
        return got, a, b

    got, a, b = asyncio.run(scenario())
    first = got[0][0]
    assert isinstance(first, Wire) and all(g[0] is first for g in got)  # one object, all queues
    assert a.sent[0] is b.sent[0]  # one encoding, the same text to each client
    for text, seq in zip(a.sent, (1, 2), strict=True):
        original = _prediction(seq)
        assert json.loads(text) == {**original, "emitted_at": json.loads(text)["emitted_at"]}
        assert text.startswith('{"type":"prediction","schema":1,"session":"wire-1","seq":')
        assert '"µS"' in text and " " not in text.replace("µS", "")  # compact UTF-8, as before
        parse_server_message(text)  # the published schema


def test_a_subscribers_dropped_count_is_added_to_its_copy_only() -> None:
    message = Wire(_prediction(3))
    text = message.text
    sock = FakeSocket()
    asyncio.run(send_message(sock, {**message, "dropped": 2}))  # type: ignore[arg-type]
    assert json.loads(sock.sent[0])["dropped"] == 2 and "dropped" not in json.loads(text)
    assert message.text is text and json.loads(text) == json.loads(encode(dict(message)))


def test_encoding_matches_the_standard_library_value_for_value() -> None:
    message = {"a": 1e-05, "b": 123456789.123456789, "c": [1, 2.5, None, True], "d": "Fp1 µV"}
    assert json.loads(encode(message)) == message  # the same values (1e-05 may read 0.00001)
    ints = {"seq": 7, "ok": [True, None], "s": "Fp1 µV", "x": 0.25}
    assert encode(ints) == json.dumps(ints, separators=(",", ":"), ensure_ascii=False)


class StubLoop:
    """Records the callbacks handed to the event loop from other threads."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
        self.callbacks.append((callback, args))


def test_a_batch_of_predictions_wakes_the_loop_once_and_keeps_its_order() -> None:
    from affectstream.service.scheduler import Scheduler

    stub = StubLoop()
    hub = Hub(queue_size=8, loop=stub)  # type: ignore[arg-type]
    sub = hub.subscribe("wire-1")
    hub.publish_many([("wire-1", _prediction(seq)) for seq in (1, 2, 3)])
    hub.publish("wire-1", _prediction(4))  # before the loop ran: joins the same batch
    assert len(stub.callbacks) == 1
    callback, args = stub.callbacks.pop()
    callback(*args)
    assert [sub.queue.get_nowait()["seq"] for _ in range(4)] == [1, 2, 3, 4]
    hub.publish("wire-1", _prediction(5))  # the batch was taken: a new one, a new wake-up
    assert len(stub.callbacks) == 1
    # the scheduler hands a model's predictions over through the hub's publish_many
    assert Scheduler(list, hub.publish)._publish_many == hub.publish_many
