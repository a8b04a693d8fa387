// The client against a running affectstream service with a live LSL producer.
//
// tests/client/test_js_client.py starts both and runs `node --test clients/js/test/` with
//   AFFECTSTREAM_URL      the service, e.g. http://127.0.0.1:8123
//   AFFECTSTREAM_SESSION  a session producing about 4 predictions/s
//   AFFECTSTREAM_TOKEN    the service's token
//   AFFECTSTREAM_CONTROL  (optional) a folder: the restart test writes `restart` there and the
//                         harness restarts the service on the same port, re-creating the session
// Without AFFECTSTREAM_URL these tests are skipped (the unit tests still run).
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { AffectStreamClient, AffectStreamError, connect } from "../affectstream.js";

const URL = process.env.AFFECTSTREAM_URL;
const SESSION = process.env.AFFECTSTREAM_SESSION ?? "";
const TOKEN = process.env.AFFECTSTREAM_TOKEN ?? "";
const CONTROL = process.env.AFFECTSTREAM_CONTROL;
const skip = !URL
  ? "no service: set AFFECTSTREAM_URL, AFFECTSTREAM_SESSION, AFFECTSTREAM_TOKEN"
  : typeof globalThis.WebSocket !== "function"
    ? "no global WebSocket: Node < 22 needs --experimental-websocket"
    : false;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The real WebSocket, with a handle on the last socket opened (to cut it like a network). */
class Cuttable extends (globalThis.WebSocket ?? Object) {
  /** @type {WebSocket | null} */ static last = null;
  constructor(...args) {
    super(...args);
    Cuttable.last = this;
  }
}

/** The next `n` predictions of an iterator, which stays open for more (a `for await` loop
 * left with `break` would end it). Given the client itself: a new iterator each call. */
async function take(source, n) {
  const own = source instanceof AffectStreamClient;
  const it = own ? source.predictions() : source;
  const out = [];
  try {
    while (out.length < n) {
      const { value, done } = await it.next();
      if (done) break;
      out.push(value);
    }
  } finally {
    if (own) await it.return();
  }
  return out;
}

function assertContiguous(seqs, what) {
  for (let i = 1; i < seqs.length; i++) {
    assert.equal(seqs[i], seqs[i - 1] + 1, `${what}: seq ${seqs[i - 1]} then ${seqs[i]} (${seqs})`);
  }
}

test("predictions arrive in seq order, with the token, as for-await and as events", { skip, timeout: 30000 }, async () => {
  const client = connect({ url: URL, session: SESSION, token: TOKEN });
  const events = [];
  client.on("prediction", (p) => events.push(p.seq));
  let hello = null;
  client.on("hello", (h) => (hello = h));
  try {
    const got = await take(client, 8);
    assert.equal(hello?.session, SESSION);
    assert.equal(typeof hello?.epoch, "string");
    assert.equal(hello?.resume, null); // a fresh connection resumes nothing
    for (const p of got) {
      assert.equal(p.type, "prediction");
      assert.equal(p.session, SESSION);
      assert.ok(p.valence >= 0 && p.valence <= 1 && p.arousal >= 0 && p.arousal <= 1, p);
      assert.ok(p.window.end > p.window.start, p);
    }
    const seqs = got.map((p) => p.seq);
    assertContiguous(seqs, "live feed"); // one model, a fast reader: nothing lost on loopback
    assert.deepEqual(events.slice(0, 8), seqs); // listeners see the same messages
    assert.equal(client.lastSeq, seqs.at(-1));
    assert.equal(client.epoch, hello.epoch);
    assert.equal(client.missed, 0);
    assert.equal(client.duplicates, 0);
    assert.equal(client.state, "open");
  } finally {
    client.close();
  }
  assert.equal(client.state, "closed");
  await client.wait(); // closed by us: resolves
});

test("a cut connection is reconnected after a backoff and resumed without loss or duplicate", { skip, timeout: 30000 }, async () => {
  const states = [];
  const client = new AffectStreamClient({
    url: URL,
    session: SESSION,
    token: TOKEN,
    WebSocket: Cuttable,
    initialDelayMs: 1200, // ~5 predictions are made while the client is away
    jitter: 0,
  });
  client.on("state", (s) => states.push(s.state));
  const hellos = [];
  client.on("hello", (h) => hellos.push(h));
  try {
    const it = client.predictions();
    const before = await take(it, 3);
    Cuttable.last.close(); // the socket ends under the client, as when a network goes
    const after = await take(it, 12);
    const seqs = [...before, ...after].map((p) => p.seq);
    assertContiguous(seqs, "across the reconnection");
    assert.equal(hellos.length, 2);
    const resume = hellos[1].resume;
    assert.ok(resume, "the reconnection must ask to resume");
    assert.equal(resume.since, before.at(-1).seq);
    assert.equal(resume.reset, false);
    assert.equal(resume.missed, 0);
    assert.ok(resume.replayed >= 2, `replayed ${resume.replayed}: the backoff was 1.2 s`);
    assert.equal(hellos[1].epoch, hellos[0].epoch);
    assert.deepEqual(
      [client.resumes, client.missed, client.duplicates, client.resets],
      [1, 0, 0, 0],
    );
    assert.ok(states.includes("reconnecting"), states);
  } finally {
    client.close();
  }
});

test("a client resumes from since and epoch given as options", { skip, timeout: 30000 }, async () => {
  const first = connect({ url: URL, session: SESSION, token: TOKEN });
  let last;
  try {
    last = (await take(first, 2)).at(-1);
  } finally {
    first.close();
  }
  await sleep(1000); // predictions go on while no client is connected
  const second = connect({
    url: URL,
    session: SESSION,
    token: TOKEN,
    since: last.seq,
    epoch: first.epoch,
  });
  try {
    const got = await take(second, 8);
    assert.equal(got[0].seq, last.seq + 1, "the first replayed prediction follows `since`");
    assertContiguous(got.map((p) => p.seq), "replay then live");
    assert.ok(second.hello.resume.replayed >= 2, JSON.stringify(second.hello.resume));
    assert.equal(second.missed, 0);
  } finally {
    second.close();
  }
});

test("a wrong token ends the client with 4401 at once, without retrying", { skip, timeout: 15000 }, async () => {
  const client = connect({ url: URL, session: SESSION, token: "not-the-token-0000", initialDelayMs: 50 });
  const error = await client.wait().then(
    () => assert.fail("a wrong token must reject"),
    (e) => e,
  );
  assert.ok(error instanceof AffectStreamError, String(error));
  assert.equal(error.kind, "unauthorized");
  assert.equal(error.code, 4401);
  await sleep(400); // 8 backoff periods: a retry would have happened by now
  assert.equal(client.attempts, 1);
  assert.equal(client.state, "closed");
  // an iterator of the ended client throws the same error
  await assert.rejects(take(client, 1), (e) => e === error);
});

test("an unknown session and a malformed epoch are final errors with their close codes", { skip, timeout: 15000 }, async () => {
  const unknown = connect({ url: URL, session: `${SESSION}-nobody`, token: TOKEN });
  await assert.rejects(unknown.wait(), (e) => e.kind === "unknown-session" && e.code === 4404);
  const bad = connect({ url: URL, session: SESSION, token: TOKEN, since: 1, epoch: "not an epoch!" });
  await assert.rejects(bad.wait(), (e) => e.kind === "policy" && e.code === 1008 && /epoch/.test(e.reason));
  assert.deepEqual([unknown.attempts, bad.attempts], [1, 1]);
});

test("a service restart: the client waits for the session and starts over in its new incarnation", { skip: skip || (!CONTROL && "no AFFECTSTREAM_CONTROL folder: the harness cannot restart the service"), timeout: 60000 }, async () => {
  const client = connect({
    url: URL,
    session: SESSION,
    token: TOKEN,
    waitForSession: true, // between the restart and the session's re-creation: 4404, retried
    initialDelayMs: 200,
    maxDelayMs: 1000,
  });
  const resets = [];
  client.on("reset", (r) => resets.push(r));
  const codes = [];
  client.on("state", (s) => s.code && codes.push(s.code));
  try {
    const it = client.predictions();
    const before = await take(it, 2);
    const oldEpoch = client.epoch;
    writeFileSync(join(CONTROL, "restart"), `${before.at(-1).seq}\n`);
    const after = await take(it, 4);
    for (let i = 0; i < 50 && !existsSync(join(CONTROL, "restarted")); i++) await sleep(100);
    assert.ok(existsSync(join(CONTROL, "restarted")), "the harness did not restart the service");
    assert.equal(resets.length, 1, "the new incarnation must be announced once");
    assert.notEqual(client.epoch, oldEpoch);
    assert.equal(client.hello.resume?.reset, true);
    // the new incarnation's seq starts at 1: replayed from its first kept, or a gap before it
    const first = after[0].seq;
    assert.ok(first === 1 || client.missed === first - 1, `first ${first}, missed ${client.missed}`);
    assertContiguous(after.map((p) => p.seq), "the new incarnation");
    assert.equal(client.duplicates, 0);
    assert.ok(codes.length >= 1, "the client saw the connection close");
  } finally {
    client.close();
  }
});
