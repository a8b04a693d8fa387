// What the client decides without a service: backoff delays, close codes, URLs, options.
// (Its behaviour against a running service is in service.test.mjs.)
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AffectStreamClient,
  AffectStreamError,
  CloseCode,
  backoffDelay,
  isRetryable,
  sessionUrl,
} from "../affectstream.js";

test("backoff grows by the factor, is capped, and jitter only shortens it", () => {
  const o = { initialDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0.5 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 9].map((n) => backoffDelay(n, o, () => 0)),
    [100, 200, 400, 800, 1000, 1000],
  );
  // random() → 1 would be the largest jitter: half of the delay with jitter 0.5
  assert.equal(backoffDelay(3, o, () => 0.999999), 400 * (1 - 0.5 * 0.999999));
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(4, o);
    assert.ok(d > 400 && d <= 800, `delay ${d} outside (400, 800]`);
  }
  const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(2, o)));
  assert.ok(delays.size > 40, "jitter must spread the clients' reconnections");
});

test("close codes: retried or final as the protocol says", () => {
  for (const code of [1000, 1001, 1006, 1011, 1012, 1013]) assert.ok(isRetryable(code), `${code}`);
  for (const code of [1002, 1003, 1007, 1008, 1009, 4401, 4403, 4404, 4410, 4999]) {
    assert.ok(!isRetryable(code), `${code}`);
  }
  assert.ok(isRetryable(CloseCode.UNKNOWN_SESSION, { waitForSession: true }));
  assert.ok(!isRetryable(CloseCode.SESSION_DELETED, { waitForSession: true }));
});

test("session URLs: ws scheme, escaped id, token, since and epoch, proxy prefix kept", () => {
  assert.equal(
    sessionUrl("http://127.0.0.1:8000", "lab 7/a", { token: "t&k=1", since: 0, epoch: "ab12" }),
    "ws://127.0.0.1:8000/ws/sessions/lab%207%2Fa?token=t%26k%3D1&since=0&epoch=ab12",
  );
  assert.equal(
    sessionUrl("https://lab.example/affect/", "s1"),
    "wss://lab.example/affect/ws/sessions/s1",
  );
  assert.equal(sessionUrl("ws://h:1/?x=1#f", "s"), "ws://h:1/ws/sessions/s");
  assert.throws(() => sessionUrl("ftp://h/", "s"), AffectStreamError);
});

test("bad options fail at once with AffectStreamError(kind options)", () => {
  const ws = globalThis.WebSocket ?? function NoSocket() {};
  const cases = [
    {},
    { session: "" },
    { session: "s", url: "ftp://h/", WebSocket: ws },
    { session: "s", url: "http://h/", WebSocket: ws, since: -1 },
    { session: "s", url: "http://h/", WebSocket: ws, since: 1.5 },
    { session: "s", url: "http://h/", WebSocket: "not a constructor" },
  ];
  for (const options of cases) {
    assert.throws(
      () => new AffectStreamClient(/** @type {any} */ (options)),
      (e) => e instanceof AffectStreamError && e.kind === "options",
      JSON.stringify(options),
    );
  }
});

test("a closed client's iterators end at once; close() twice is harmless", async () => {
  const client = new AffectStreamClient({
    session: "s",
    url: "http://127.0.0.1:9/",
    WebSocket: function NeverCalled() {
      throw new Error("a closed client must not connect");
    },
  });
  client.close();
  client.close();
  assert.equal(client.state, "closed");
  for await (const _ of client) assert.fail("no prediction from a closed client");
  await client.wait(); // resolves: closed by close(), not by an error
});

test("a handshake that never completes is given up after openTimeoutMs and retried", async () => {
  const opened = [];
  class Stuck {
    // a socket whose handshake never ends (no open, no close): what a server that accepted the
    // connection but never answered looks like
    constructor(url) {
      opened.push(url);
    }
    close() {}
    send() {}
  }
  const client = new AffectStreamClient({
    url: "http://127.0.0.1:9/",
    session: "s",
    WebSocket: Stuck,
    openTimeoutMs: 40,
    initialDelayMs: 10,
    maxDelayMs: 20,
  });
  const states = [];
  client.on("state", (s) => states.push(s));
  client.start();
  await new Promise((resolve) => setTimeout(resolve, 300));
  client.close();
  assert.ok(opened.length >= 3, `attempts ${opened.length}`);
  const retried = states.filter((s) => s.state === "reconnecting" && s.code === 1006);
  assert.ok(retried.length >= 2, JSON.stringify(states));
  assert.match(retried[0].reason, /no handshake within 40 ms/);
});
