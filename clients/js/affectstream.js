// affectstream.js: the JavaScript client of affectstream's WebSocket protocol (schema 1).
//
// One ES module without dependencies, for browsers and Node (18+; Node < 22 has no global
// WebSocket: run it with --experimental-websocket or pass a `WebSocket` constructor, e.g. the
// `ws` package's). The service serves this file at GET /client.js; it is kept in clients/js/.
//
//   import { connect } from "/client.js";
//   const client = connect({ session: "demo", token: "…" });
//   for await (const p of client) console.log(p.seq, p.model, p.valence, p.arousal);
//
// What it does for you: the token (as ?token=, the one way a browser's WebSocket can send it),
// reconnection with exponential backoff and jitter, resuming from the last seq it delivered
// (?since=&epoch=: the service replays what it still keeps, without duplicates), a count of the
// predictions that never arrived (`missed`), and the close codes: those that cannot succeed on a
// retry (wrong token, deleted session, …) end the client with an AffectStreamError.

/**
 * A prediction message (see GET /schema/messages.json for every field).
 * @typedef {Object} Prediction
 * @property {"prediction"} type
 * @property {number} schema
 * @property {string} session
 * @property {number} seq  increases strictly per session (and incarnation, see `epoch`)
 * @property {string} model  name@version
 * @property {{start: number, end: number}} window  on the LSL clock, seconds
 * @property {number} valence  probability of high valence, 0–1
 * @property {number} arousal  probability of high arousal, 0–1
 * @property {Object<string, Object>} quality
 * @property {{ingest: number, preprocess: number, inference: number, total: number}} latency_ms
 * @property {string} emitted_at
 * @property {{valence: number, arousal: number}} [ground_truth]
 * @property {number} [dropped]
 */

/**
 * Any message of the service: hello, gap, prediction, status, model_status, session_status,
 * pong, error (and types a newer service may add).
 * @typedef {{type: string, schema: number, session: string} & Object<string, any>} Message
 */

/**
 * @typedef {Object} ClientOptions
 * @property {string} session  the session id
 * @property {string} [url]  the service: "http://host:8000", "https://…", "ws://…" or "wss://…"
 *   (a path prefix is kept, for a reverse proxy); in a browser it defaults to the page's origin
 * @property {string | null} [token]  the service's token, sent as ?token=
 * @property {any} [WebSocket]  a WebSocket constructor (default: globalThis.WebSocket)
 * @property {number | null} [since]  resume after this prediction seq (with `epoch`)
 * @property {string | null} [epoch]  the session incarnation `since` belongs to (from a hello)
 * @property {boolean} [reconnect=true]  reconnect when the connection is lost
 * @property {number} [maxRetries=Infinity]  failed attempts in a row before giving up
 * @property {number} [initialDelayMs=500]  first backoff delay
 * @property {number} [maxDelayMs=15000]  largest backoff delay
 * @property {number} [factor=2]  backoff growth per failed attempt
 * @property {number} [jitter=0.5]  each delay is drawn from [(1 − jitter)·d, d]
 * @property {boolean} [waitForSession=false]  retry while the session is unknown (close 4404)
 * @property {number} [openTimeoutMs=10000]  a handshake not done by then is given up and
 *   retried (this timer also keeps a Node process alive while the client connects: Node's
 *   WebSocket does not hold the event loop open during its handshake)
 * @property {number} [pingIntervalMs=20000]  send {"type":"ping"} this often (0: never); a
 *   connection silent for 2.5 intervals is taken as lost and reconnected
 * @property {number} [bufferSize=1024]  messages an iterator holds for a slow loop (oldest
 *   dropped first, counted in `bufferDropped`)
 */

/**
 * Connection states, in the order a client goes through them.
 * @typedef {"idle" | "connecting" | "open" | "reconnecting" | "closed"} ClientState
 */

/** WebSocket close codes the service uses (and the RFC 6455 ones a client meets). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  ABNORMAL: 1006, // no close frame: network loss, refused connection
  INVALID_DATA: 1007,
  POLICY: 1008, // message rate exceeded, bad since/epoch: do not retry
  MESSAGE_TOO_BIG: 1009, // do not retry
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013, // too many subscribers: retry with backoff
  UNAUTHORIZED: 4401, // missing or wrong token: do not retry
  FORBIDDEN: 4403, // Origin or Host not allowed: do not retry
  UNKNOWN_SESSION: 4404, // retried only with waitForSession
  SESSION_DELETED: 4410, // stop
});

const FATAL = new Map([
  [CloseCode.PROTOCOL_ERROR, "protocol"],
  [CloseCode.UNSUPPORTED_DATA, "protocol"],
  [CloseCode.INVALID_DATA, "protocol"],
  [CloseCode.POLICY, "policy"],
  [CloseCode.MESSAGE_TOO_BIG, "too-big"],
  [CloseCode.UNAUTHORIZED, "unauthorized"],
  [CloseCode.FORBIDDEN, "forbidden"],
  [CloseCode.UNKNOWN_SESSION, "unknown-session"],
  [CloseCode.SESSION_DELETED, "session-deleted"],
]);

/** Events of the client itself: a message of one of these types is only a "message" event. */
const LIFECYCLE = new Set(["message", "state", "reset", "close"]);

/**
 * Why a client stopped for good: a close code that a retry cannot fix, retries exhausted, or
 * a bad option.
 *
 * `kind`: "unauthorized" (4401), "forbidden" (4403), "unknown-session" (4404),
 * "session-deleted" (4410), "policy" (1008), "too-big" (1009), "protocol" (1002, 1003, 1007,
 * unknown 4xxx codes), "retries-exhausted", "options".
 */
export class AffectStreamError extends Error {
  /**
   * @param {string} kind
   * @param {string} message
   * @param {{code?: number | null, reason?: string, attempts?: number}} [details]
   */
  constructor(kind, message, details = {}) {
    super(message);
    this.name = "AffectStreamError";
    /** @type {string} */
    this.kind = kind;
    /** @type {number | null} the close code, when a close ended the client */
    this.code = details.code ?? null;
    /** @type {string} the close reason the service gave */
    this.reason = details.reason ?? "";
    /** @type {number} connection attempts made */
    this.attempts = details.attempts ?? 0;
  }
}

/**
 * Whether a close code is worth a reconnection (network loss, service restart, 1013).
 * @param {number} code
 * @param {{waitForSession?: boolean}} [options]
 * @returns {boolean}
 */
export function isRetryable(code, options = {}) {
  if (code === CloseCode.UNKNOWN_SESSION) return Boolean(options.waitForSession);
  if (FATAL.has(code)) return false;
  return !(code >= 4000 && code <= 4999); // application codes this client does not know
}

/**
 * The delay before reconnection attempt `attempt` (1, 2, …): exponential, capped, with jitter.
 * @param {number} attempt
 * @param {{initialDelayMs?: number, maxDelayMs?: number, factor?: number, jitter?: number}} [o]
 * @param {() => number} [random]  uniform in [0, 1)
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, o = {}, random = Math.random) {
  const initial = o.initialDelayMs ?? 500;
  const cap = o.maxDelayMs ?? 15000;
  const factor = o.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, o.jitter ?? 0.5));
  const full = Math.min(cap, initial * factor ** Math.max(0, attempt - 1));
  return full * (1 - jitter * random());
}

/**
 * The WebSocket URL of a session: `base` with its scheme made ws/wss, the session's path, and
 * the token, since and epoch as query parameters.
 * @param {string} base
 * @param {string} session
 * @param {{token?: string | null, since?: number | null, epoch?: string | null}} [q]
 * @returns {string}
 */
export function sessionUrl(base, session, q = {}) {
  const url = new URL(base);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  else if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new AffectStreamError("options", `url must be http(s) or ws(s): ${base}`);
  }
  const prefix = url.pathname.replace(/\/+$/, "");
  url.pathname = `${prefix}/ws/sessions/${encodeURIComponent(session)}`;
  url.search = "";
  url.hash = "";
  if (q.token) url.searchParams.set("token", q.token);
  if (q.since !== null && q.since !== undefined) url.searchParams.set("since", String(q.since));
  if (q.epoch) url.searchParams.set("epoch", q.epoch);
  return url.toString();
}

/**
 * A session's messages over one WebSocket at a time, reconnecting and resuming as needed.
 *
 * Iterate it (`for await (const p of client)`) for predictions; `client.messages()` for every
 * message; or listen: `client.on("prediction", fn)`. Events: every message type ("hello",
 * "prediction", "gap", "status", "model_status", "session_status", "error" — the service's
 * answer to a bad client message —, "pong"), "message" (each of them), "state" ({state,
 * attempt, delayMs, code, reason}), "reset" (a new incarnation of the session: seq starts
 * again), "close" ({error}: the client stopped, with the AffectStreamError or null).
 */
export class AffectStreamClient {
  /** @param {ClientOptions} options */
  constructor(options) {
    if (!options || typeof options.session !== "string" || !options.session) {
      throw new AffectStreamError("options", "options.session (the session id) is required");
    }
    const base = options.url ?? globalThis.location?.origin;
    if (!base) throw new AffectStreamError("options", "options.url is required outside a page");
    sessionUrl(base, options.session); // checks the URL now rather than at the first connect
    const Socket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof Socket !== "function") {
      throw new AffectStreamError(
        "options",
        "no WebSocket: pass options.WebSocket (Node < 22: run with --experimental-websocket)",
      );
    }
    const since = options.since ?? null;
    if (since !== null && !(Number.isInteger(since) && since >= 0)) {
      throw new AffectStreamError("options", `options.since must be an integer >= 0: ${since}`);
    }
    this.options = { ...options };
    /** @type {string} */
    this.session = options.session;
    /** @private */ this._base = base;
    /** @private */ this._Socket = Socket;
    /** @type {ClientState} */
    this.state = "idle";
    /** @type {string | null} the session incarnation of the last hello */
    this.epoch = options.epoch ?? null;
    /** @type {number | null} seq of the last prediction delivered (or the `since` option) */
    this.lastSeq = options.since ?? null;
    /** @type {number} predictions that never arrived: gap messages plus jumps in seq */
    this.missed = 0;
    /** @type {number} predictions received twice and delivered once (0 from a correct service) */
    this.duplicates = 0;
    /** @type {number} `dropped` of the last message: what the service's queue for this client
     * lost on the current connection (those predictions are also in `missed`) */
    this.dropped = 0;
    /** @type {number} messages a slow iterator's buffer let go (oldest first) */
    this.bufferDropped = 0;
    /** @type {number} connections opened (hello received) */
    this.connections = 0;
    /** @type {number} connections opened with a resume (`since`) */
    this.resumes = 0;
    /** @type {number} times the session was found re-created (new epoch: seq restarted) */
    this.resets = 0;
    /** @type {number} WebSocket connection attempts */
    this.attempts = 0;
    /** @type {Message | null} */
    this.hello = null;
    /** @type {AffectStreamError | null} what ended the client, if anything did */
    this.error = null;
    /** @private @type {number | null} hello.last_seq of a fresh connection: resume point until
     * the first prediction */
    this._baseline = null;
    /** @private */ this._failures = 0;
    /** @private @type {any} */ this._ws = null;
    /** @private @type {any} */ this._retryTimer = null;
    /** @private @type {any} */ this._pingTimer = null;
    /** @private @type {any} */ this._openTimer = null;
    /** @private */ this._lastHeard = 0;
    /** @private @type {Map<string, Set<Function>>} */ this._listeners = new Map();
    /** @private @type {Set<Sink>} */ this._sinks = new Set();
    /** @private @type {Promise<void> | null} */ this._done = null;
  }

  /** Connect (idempotent); returns the client. Iterating starts it too. */
  start() {
    if (this.state === "idle") this._open();
    return this;
  }

  /** Stop for good: close the socket, end every iterator (no error). */
  close() {
    if (this.state === "closed") return;
    this._finish(null);
  }

  /** Close the current connection and connect again at once, resuming from `lastSeq` (e.g.
   * when the page learns that the network changed). */
  reconnect() {
    if (this.state === "closed") return;
    this._detach(CloseCode.NORMAL, "client reconnects");
    clearTimeout(this._retryTimer);
    this._failures = 0;
    this._open();
  }

  /**
   * Listen to an event (see the class description); returns a function that removes it.
   * @param {string} event
   * @param {(detail: any) => void} fn
   * @returns {() => void}
   */
  on(event, fn) {
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  /**
   * @param {string} event
   * @param {(detail: any) => void} fn
   */
  off(event, fn) {
    this._listeners.get(event)?.delete(fn);
  }

  /**
   * A promise that resolves when the client is closed with close() and rejects with the
   * AffectStreamError that ended it otherwise. Starts the client.
   * @returns {Promise<void>}
   */
  wait() {
    if (!this._done) {
      this._done = new Promise((resolve, reject) => {
        const settle = () => (this.error ? reject(this.error) : resolve());
        if (this.state === "closed") settle();
        else this.on("close", settle);
      });
    }
    this.start();
    return this._done;
  }

  /**
   * Every message of the service (hello, gap, prediction, status, …), as they arrive; throws
   * the AffectStreamError that ended the client, ends when it is closed.
   * @returns {AsyncIterableIterator<Message>}
   */
  messages() {
    return this._iterate(() => true);
  }

  /**
   * The session's predictions, in seq order, each once.
   * @returns {AsyncIterableIterator<Prediction>}
   */
  predictions() {
    return /** @type {AsyncIterableIterator<Prediction>} */ (
      this._iterate((m) => m.type === "prediction")
    );
  }

  /** @returns {AsyncIterableIterator<Prediction>} */
  [Symbol.asyncIterator]() {
    return this.predictions();
  }

  // -- the connection ---------------------------------------------------------------------------

  /** @private */
  _resumePoint() {
    if (this.lastSeq !== null) return { since: this.lastSeq, epoch: this.epoch };
    if (this._baseline !== null) return { since: this._baseline, epoch: this.epoch };
    return { since: null, epoch: null };
  }

  /** @private */
  _open() {
    const { since, epoch } = this._resumePoint();
    const url = sessionUrl(this._base, this.session, { token: this.options.token, since, epoch });
    this.attempts += 1;
    this._setState(this.attempts > 1 ? "reconnecting" : "connecting", { attempt: this.attempts });
    let ws;
    try {
      ws = new this._Socket(url);
    } catch (e) {
      this._finish(new AffectStreamError("options", `cannot open ${this._safe(url)}: ${e}`));
      return;
    }
    this._ws = ws;
    this._lastHeard = Date.now();
    clearTimeout(this._openTimer);
    const openMs = this.options.openTimeoutMs ?? 10000;
    this._openTimer = setTimeout(() => {
      if (ws !== this._ws) return;
      this._detach(CloseCode.NORMAL, "handshake timeout");
      this._closed(CloseCode.ABNORMAL, `no handshake within ${openMs} ms`);
    }, openMs);
    ws.onmessage = (/** @type {{data: any}} */ ev) => {
      if (ws !== this._ws) return;
      this._lastHeard = Date.now();
      if (typeof ev.data !== "string") return; // the service sends text frames only
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && typeof msg === "object" && typeof msg.type === "string") this._receive(msg);
    };
    ws.onclose = (/** @type {{code: number, reason: string}} */ ev) => {
      clearTimeout(this._openTimer);
      if (ws !== this._ws) return;
      this._ws = null;
      clearInterval(this._pingTimer);
      this._closed(ev.code, ev.reason ?? "");
    };
    ws.onerror = () => {}; // a close event follows, with the code
    ws.onopen = () => {
      clearTimeout(this._openTimer);
      const every = this.options.pingIntervalMs ?? 20000;
      if (every > 0) this._pingTimer = setInterval(() => this._ping(ws, every), every);
    };
  }

  /** @private */
  _ping(/** @type {any} */ ws, /** @type {number} */ every) {
    if (ws !== this._ws) return;
    if (Date.now() - this._lastHeard > 2.5 * every) {
      // silent for too long: a dead network does not always end a socket
      this._detach(CloseCode.NORMAL, "no message for too long");
      this._closed(CloseCode.ABNORMAL, "no message for too long");
      return;
    }
    try {
      ws.send(JSON.stringify({ type: "ping" }));
    } catch {
      // closing: onclose follows
    }
  }

  /** @private Forget the current socket (its events are ignored from now on) and close it. */
  _detach(/** @type {number} */ code, /** @type {string} */ reason) {
    const ws = this._ws;
    this._ws = null;
    clearInterval(this._pingTimer);
    if (ws) {
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    }
  }

  /** @private */
  _closed(/** @type {number} */ code, /** @type {string} */ reason) {
    if (this.state === "closed") return;
    const o = this.options;
    if (!isRetryable(code, o)) {
      const kind = FATAL.get(code) ?? "protocol";
      const why = reason ? `: ${reason}` : "";
      this._finish(
        new AffectStreamError(kind, `closed by the service with ${code}${why}`, {
          code,
          reason,
          attempts: this.attempts,
        }),
      );
      return;
    }
    this._failures += 1;
    if (o.reconnect === false || this._failures > (o.maxRetries ?? Infinity)) {
      const message = `connection lost (${code}${reason ? ` ${reason}` : ""}); not retrying`;
      this._finish(
        new AffectStreamError("retries-exhausted", message, {
          code,
          reason,
          attempts: this.attempts,
        }),
      );
      return;
    }
    const delayMs = backoffDelay(this._failures, o);
    this._setState("reconnecting", { attempt: this._failures, delayMs, code, reason });
    this._retryTimer = setTimeout(() => {
      if (this.state !== "closed") this._open();
    }, delayMs);
  }

  /** @private */
  _finish(/** @type {AffectStreamError | null} */ error) {
    this.error = error;
    clearTimeout(this._retryTimer);
    clearTimeout(this._openTimer);
    this._detach(CloseCode.NORMAL, "client closed");
    this._setState("closed", { code: error?.code ?? null, reason: error?.reason ?? "" });
    for (const sink of [...this._sinks]) sink.end(error);
    this._sinks.clear();
    this._emit("close", { error });
  }

  /** @private */
  _setState(/** @type {ClientState} */ state, /** @type {Object} */ detail = {}) {
    this.state = state;
    this._emit("state", { state, ...detail });
  }

  /** @private The URL without its token, for messages. */
  _safe(/** @type {string} */ url) {
    return url.replace(/([?&]token=)[^&]*/, "$1[redacted]");
  }

  // -- messages ---------------------------------------------------------------------------------

  /** @private */
  _receive(/** @type {Message} */ msg) {
    if (typeof msg.dropped === "number") this.dropped = msg.dropped;
    switch (msg.type) {
      case "hello":
        this._onHello(msg);
        break;
      case "gap":
        this.missed += Number(msg.missed) || 0;
        if (typeof msg.to === "number") this.lastSeq = Math.max(this.lastSeq ?? 0, msg.to);
        break;
      case "prediction":
        if (!this._onPrediction(msg)) return;
        break;
      default:
        break;
    }
    if (!LIFECYCLE.has(msg.type)) this._emit(msg.type, msg);
    this._emit("message", msg);
    for (const sink of this._sinks) sink.offer(msg);
  }

  /** @private */
  _onHello(/** @type {Message} */ msg) {
    this.hello = msg;
    this.connections += 1;
    this._failures = 0;
    this.dropped = 0; // the service counts per connection
    const resume = msg.resume ?? null;
    if (typeof msg.epoch !== "string") {
      // a service without resume: seq cannot be compared across connections
      this.lastSeq = null;
      this._baseline = null;
    } else if (resume) {
      this.resumes += 1;
      if (resume.reset) {
        this.lastSeq = 0; // a new incarnation: its seq starts at 1, replayed from its first kept
        this.resets += 1;
        this._emit("reset", { epoch: msg.epoch, previousEpoch: this.epoch });
      }
    } else if (this.lastSeq === null) {
      this._baseline = typeof msg.last_seq === "number" ? msg.last_seq : null;
    }
    if (typeof msg.epoch === "string") this.epoch = msg.epoch;
    this._setState("open", { attempt: this.attempts });
  }

  /** @private @returns {boolean} whether to deliver it */
  _onPrediction(/** @type {Message} */ msg) {
    const seq = msg.seq;
    if (typeof seq !== "number") return true;
    if (this.lastSeq !== null) {
      if (seq <= this.lastSeq) {
        this.duplicates += 1;
        return false;
      }
      if (seq > this.lastSeq + 1) this.missed += seq - this.lastSeq - 1;
    }
    this.lastSeq = seq;
    return true;
  }

  /** @private */
  _emit(/** @type {string} */ event, /** @type {any} */ detail) {
    for (const fn of [...(this._listeners.get(event) ?? [])]) {
      try {
        fn(detail);
      } catch (e) {
        // a listener's bug must not stop the stream; report it where the runtime reports errors
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  /** @private */
  _iterate(/** @type {(m: Message) => boolean} */ accept) {
    const sink = new Sink(accept, this.options.bufferSize ?? 1024, () => {
      this.bufferDropped += 1;
    });
    if (this.state === "closed") sink.end(this.error);
    else this._sinks.add(sink);
    this.start();
    const sinks = this._sinks;
    return {
      next: () => sink.next(),
      return: async () => {
        sinks.delete(sink);
        sink.end(null);
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }
}

/** One iterator's buffer: messages waiting for next(), or next() calls waiting for messages. */
class Sink {
  /**
   * @param {(m: Message) => boolean} accept
   * @param {number} size
   * @param {() => void} onDrop
   */
  constructor(accept, size, onDrop) {
    this.accept = accept;
    this.size = Math.max(1, size);
    this.onDrop = onDrop;
    /** @type {Message[]} */ this.queue = [];
    /** @type {{resolve: Function, reject: Function}[]} */ this.waiting = [];
    this.ended = false;
    /** @type {AffectStreamError | null} */ this.error = null;
  }

  /** @param {Message} msg */
  offer(msg) {
    if (this.ended || !this.accept(msg)) return;
    const waiter = this.waiting.shift();
    if (waiter) {
      waiter.resolve({ value: msg, done: false });
      return;
    }
    this.queue.push(msg);
    if (this.queue.length > this.size) {
      this.queue.shift();
      this.onDrop();
    }
  }

  /** @param {AffectStreamError | null} error */
  end(error) {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    for (const waiter of this.waiting.splice(0)) this._settle(waiter);
  }

  /** @returns {Promise<IteratorResult<any>>} */
  next() {
    if (this.queue.length) return Promise.resolve({ value: this.queue.shift(), done: false });
    return new Promise((resolve, reject) => {
      if (this.ended) this._settle({ resolve, reject });
      else this.waiting.push({ resolve, reject });
    });
  }

  /** @private @param {{resolve: Function, reject: Function}} waiter */
  _settle(waiter) {
    if (this.error) {
      const error = this.error;
      this.error = null; // thrown once; the iterator is done afterwards
      waiter.reject(error);
    } else {
      waiter.resolve({ value: undefined, done: true });
    }
  }
}

/**
 * A started client: `connect({session, token, url})`.
 * @param {ClientOptions} options
 * @returns {AffectStreamClient}
 */
export function connect(options) {
  return new AffectStreamClient(options).start();
}
