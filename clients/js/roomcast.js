// roomcast client: one self-contained ES module for browsers and Node.js 18+.
// Wire contract: PROTOCOL.md (sections 2, 3, 4 and 8). No dependencies.
// SPDX-License-Identifier: MIT

const SUBPROTOCOL = "roomcast.v1";

/** Full-jitter exponential backoff: random in [0, min(max, min * 2^attempt)).
 * The jitter stays whole at the cap: never a fixed delay. */
export function backoffDelay(attempt, minDelayMs = 250, maxDelayMs = 20000,
                             random = Math.random) {
  const a = Math.min(Math.max(0, attempt | 0), 30);
  const ceil = Math.min(maxDelayMs, minDelayMs * 2 ** a);
  return Math.floor(random() * ceil);
}

/** The `exp` claim of a JWT (seconds), or undefined. */
export function jwtExp(token) {
  try {
    let p = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    p += "=".repeat((4 - (p.length % 4)) % 4);
    const bin = atob(p);
    const bytes = Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
    const exp = JSON.parse(new TextDecoder().decode(bytes)).exp;
    return typeof exp === "number" ? exp : undefined;
  } catch {
    return undefined;
  }
}

class Emitter {
  constructor() { this._h = new Map(); }
  on(ev, fn) {
    if (!this._h.has(ev)) this._h.set(ev, new Set());
    this._h.get(ev).add(fn);
    return this;
  }
  off(ev, fn) {
    const s = this._h.get(ev);
    if (s) s.delete(fn);
    return this;
  }
  once(ev, fn) {
    const w = (...a) => { this.off(ev, w); fn(...a); };
    return this.on(ev, w);
  }
  emit(ev, ...args) {
    const s = this._h.get(ev);
    if (!s || !s.size) return false;
    for (const fn of [...s]) {
      try { fn(...args); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
    return true;
  }
}

/** An error from the server (`code` is the contract's error code) or from
 * the client itself (`disconnected`, `timeout`, `closed`, `unauthorized`). */
export class RoomcastError extends Error {
  constructor(code, message, extra) {
    super(message || code);
    this.name = "RoomcastError";
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

/** One room of a Client: `client.room(name)` returns the same handle. */
export class Room extends Emitter {
  constructor(client, name) {
    super();
    this.client = client;
    this.name = name;
    this.wanted = false;     // the user asked to be a member
    this.joined = false;     // the server has us as a member on this link
    this.lastSeq = undefined; // last seq delivered to "message"
    this._gap = null;        // {from, latest}: recovered:false, not yet told
    this._gapTimer = null;
    this._waiters = [];      // join() promises waiting for the next join ok
  }

  /** Join; resolves with {seq, recovered} after the server's ok. */
  join(opts = {}) {
    const c = this.client;
    if (c._closed) return Promise.reject(new RoomcastError("closed", "client is closed"));
    if (opts.since != null) this.lastSeq = Number(opts.since);
    this.wanted = true;
    return new Promise((resolve, reject) => {
      this._waiters.push({ resolve, reject });
      if (c.state === "connected" && !this._inflight) c._join(this);
    });
  }

  /** Leave; no rejoin after this. */
  leave() {
    const c = this.client;
    this.wanted = false;
    this.lastSeq = undefined; // a later join starts afresh
    this._gap = null;
    this._settleWaiters(new RoomcastError("left", "left before the join completed"));
    if (c.state !== "connected" || (!this.joined && !this._inflight)) {
      this.joined = false;
      return Promise.resolve();
    }
    this.joined = false;
    return c._request({ op: "leave", room: this.name }, false).catch((e) => {
      if (e.code === "not_joined") return undefined;
      throw e;
    }).then(() => undefined);
  }

  /** Publish data (any JSON value); resolves with the new seq. */
  publish(data) {
    return this.client._request({ op: "publish", room: this.name, data }, true)
      .then((r) => r.seq);
  }

  _settleWaiters(err, value) {
    const w = this._waiters;
    this._waiters = [];
    for (const p of w) err ? p.reject(err) : p.resolve(value);
  }

  // A join ok (or a resumed room): recovered false means a gap, told when
  // the first message after the seam shows where the history restarts.
  _joined(seq, recovered, hadSince) {
    this.joined = true;
    if (hadSince && recovered === false && this.lastSeq != null && seq > this.lastSeq) {
      this._gap = { from: this.lastSeq + 1, latest: seq };
      clearTimeout(this._gapTimer);
      this._gapTimer = setTimeout(() => this._flushGap(seq + 1), 1000);
    }
    if (!hadSince && (this.lastSeq == null || seq > this.lastSeq)) this.lastSeq = seq;
    this._settleWaiters(null, { seq, recovered });
  }

  _flushGap(nextSeq) {
    const g = this._gap;
    if (!g) return;
    this._gap = null;
    clearTimeout(this._gapTimer);
    const to = nextSeq - 1;
    if (to >= g.from) {
      this.emit("gap", { from: g.from, to });
      if (this.lastSeq == null || to > this.lastSeq) this.lastSeq = to;
    }
  }

  _deliver(f) {
    if (typeof f.seq === "number") {
      if (this._gap) this._flushGap(f.seq);
      if (this.lastSeq != null && f.seq <= this.lastSeq) return; // duplicate
      this.lastSeq = f.seq;
    }
    this.emit("message", f.data, { seq: f.seq, room: this.name });
  }
}

/** A roomcast connection that reconnects, resumes and rejoins by itself. */
export class Client extends Emitter {
  constructor(urls, opts = {}) {
    super();
    this.urls = Array.isArray(urls) ? urls.slice() : [urls];
    if (!this.urls.length) throw new TypeError("roomcast: no url");
    this.opts = Object.assign({
      minDelayMs: 250, maxDelayMs: 20000, requestTimeoutMs: 10000,
      connectTimeoutMs: 10000, refreshMarginMs: 30000,
    }, opts);
    this.WS = opts.WebSocket || globalThis.WebSocket;
    if (!this.WS) throw new TypeError("roomcast: no WebSocket (pass opts.WebSocket)");
    this.state = "disconnected";
    this.rooms = new Map();
    this.session = this.node = undefined;
    this.heartbeatMs = 25000;
    this._attempt = 0;      // reset by welcome only
    this._urlIndex = -1;
    this._resume = null;
    this._token = null;
    this._authFails = 0;    // 4001 closes since the last welcome
    this._id = 0;
    this._pending = new Map(); // id -> {resolve, reject, timer, frame}
    this._queue = [];          // requests waiting for a connection
    this._ws = null;
    this._closed = false;
    this._timers = {};
    this._gen = 0;             // bumps on every link, to ignore stale events
    if (typeof globalThis.addEventListener === "function" && typeof window !== "undefined") {
      this._onOnline = () => this._online();
      this._onOffline = () => this._offline();
      globalThis.addEventListener("online", this._onOnline);
      globalThis.addEventListener("offline", this._onOffline);
    }
    this._connect();
  }

  /** The handle of room `name` (one per name). */
  room(name) {
    let r = this.rooms.get(name);
    if (!r) { r = new Room(this, name); this.rooms.set(name, r); }
    return r;
  }

  /** Close for good: no reconnect after this. */
  close() {
    if (this._closed) return;
    this._closed = true;
    if (this._onOnline) {
      globalThis.removeEventListener("online", this._onOnline);
      globalThis.removeEventListener("offline", this._onOffline);
    }
    this._teardown(new RoomcastError("closed", "client closed"), 1000);
    const err = new RoomcastError("closed", "client closed");
    for (const q of this._queue.splice(0)) { clearTimeout(q.timer); q.reject(err); }
    for (const r of this.rooms.values()) { r._settleWaiters(err); clearTimeout(r._gapTimer); }
    this._setState("closed");
  }

  _setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.emit("state", s);
  }

  _timer(name, ms, fn) {
    clearTimeout(this._timers[name]);
    this._timers[name] = ms == null ? undefined : setTimeout(fn, ms);
  }

  async _getToken(fresh) {
    const t = this.opts.token;
    if (typeof t === "function") {
      if (fresh || this._token == null) this._token = await t();
    } else {
      this._token = t;
    }
    if (typeof this._token !== "string" || !this._token) {
      throw new RoomcastError("unauthorized", "token function gave no token");
    }
    return this._token;
  }

  async _connect() {
    if (this._closed) return;
    const gen = ++this._gen;
    this._setState("connecting");
    let token;
    try {
      token = await this._getToken(true);
    } catch (e) {
      if (gen !== this._gen || this._closed) return;
      this.emit("error", e);
      this._scheduleReconnect();
      return;
    }
    if (gen !== this._gen || this._closed) return;
    this._urlIndex = (this._urlIndex + 1) % this.urls.length;
    const url = this.urls[this._urlIndex];
    let ws;
    try {
      ws = new this.WS(url, SUBPROTOCOL);
    } catch (e) {
      this.emit("error", e);
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    this._welcomed = false;
    this._lastRx = Date.now();
    this._timer("connect", this.opts.connectTimeoutMs, () => {
      this.emit("error", new RoomcastError("timeout", "connect timed out: " + url));
      this._drop(4000);
    });
    const live = () => gen === this._gen && this._ws === ws;
    ws.onopen = () => {
      if (!live()) return;
      const auth = { op: "auth", token };
      // kept until a welcome replaces it: a used one is refused quietly
      if (this._resume) auth.resume = this._resume;
      this._send(auth);
    };
    ws.onmessage = (ev) => { if (live()) this._onFrame(ev.data); };
    ws.onerror = (ev) => {
      if (!live()) return;
      const msg = (ev && (ev.message || (ev.error && ev.error.message))) || "";
      // ws (Node) reports the upgrade's status; browsers cannot see it
      if (/\b401\b/.test(msg)) this._httpAuthRefused = true;
    };
    ws.onclose = (ev) => { if (live()) this._onClose(ev.code, ev.reason); };
    if (typeof ws.on === "function") ws.on("ping", () => { this._lastRx = Date.now(); });
  }

  _send(obj) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  _onFrame(raw) {
    this._lastRx = Date.now();
    let f;
    try { f = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw)); } catch { return; }
    if (!f || typeof f !== "object") return;
    switch (f.op) {
      case "msg": {
        const r = this.rooms.get(f.room);
        if (r && r.wanted) r._deliver(f);
        break;
      }
      case "ok":
      case "error": {
        const p = this._pending.get(f.id);
        if (p) {
          this._pending.delete(f.id);
          clearTimeout(p.timer);
          // the hook runs now, before any later frame of this read
          if (f.op === "ok") { if (p.onOk) p.onOk(f); p.resolve(f); }
          else p.reject(new RoomcastError(f.code, f.message, { room: p.frame.room }));
        } else if (f.op === "error" && f.id == null) {
          this._lastError = f;
          this.emit("error", new RoomcastError(f.code, f.message));
        }
        break;
      }
      case "welcome": this._onWelcome(f); break;
      case "reconnect":
        this._resume = f.resume || this._resume;
        this._advice = Math.max(0, Number(f.after_ms) || 0);
        break;
    }
  }

  _onWelcome(f) {
    this._timer("connect", null);
    this._welcomed = true;
    this._attempt = 0;
    this._authFails = 0;
    this._advice = undefined;
    this.session = f.session;
    this.node = f.node;
    this._resume = f.resume || null;
    this.heartbeatMs = f.heartbeat_ms > 0 ? f.heartbeat_ms : 25000;
    const restored = new Map();
    if (f.resumed && Array.isArray(f.rooms)) for (const x of f.rooms) restored.set(x.room, x);
    this._setState("connected");
    for (const r of this.rooms.values()) {
      const x = restored.get(r.name);
      r.joined = false;
      r._inflight = false;
      if (x && r.wanted) r._joined(x.seq, x.recovered, true);
      else if (x) this._request({ op: "leave", room: r.name }, false).catch(() => {});
      else if (r.wanted) this._join(r);
    }
    for (const q of this._queue.splice(0)) this._issue(q);
    this._armWatchdog();
    this._armRefresh();
  }

  _join(r) {
    const frame = { op: "join", room: r.name };
    const hadSince = r.lastSeq != null;
    if (hadSince) frame.since = r.lastSeq;
    r._inflight = true;
    const link = this._gen;
    this._request(frame, false, (ok) => {
      r._inflight = false;
      if (r.wanted) r._joined(ok.seq, ok.recovered, hadSince);
    }).catch((e) => {
      if (link === this._gen) r._inflight = false;
      if (e.code === "disconnected" || e.code === "timeout") {
        // join state is kept: the room is rejoined on reconnect
        r._settleWaiters(e);
        return;
      }
      r.wanted = false;
      r._settleWaiters(e);
      this.emit("error", e);
    });
  }

  // One request with an id; resolves or rejects exactly once. queue: may
  // wait for a connection (else it is sent now or refused).
  _request(frame, queue, onOk) {
    if (this._closed) return Promise.reject(new RoomcastError("closed", "client is closed"));
    return new Promise((resolve, reject) => {
      const q = { frame, resolve, reject, onOk };
      q.timer = setTimeout(() => {
        const i = this._queue.indexOf(q);
        if (i >= 0) this._queue.splice(i, 1);
        if (q.id != null) this._pending.delete(q.id);
        reject(new RoomcastError("timeout", `${frame.op} got no reply in ${this.opts.requestTimeoutMs} ms`));
      }, this.opts.requestTimeoutMs);
      if (this.state === "connected") this._issue(q);
      else if (queue) this._queue.push(q);
      else { clearTimeout(q.timer); reject(new RoomcastError("disconnected", `${frame.op}: not connected`)); }
    });
  }

  _issue(q) {
    q.id = ++this._id;
    this._pending.set(q.id, q);
    if (!this._send(Object.assign({ id: q.id }, q.frame))) {
      this._pending.delete(q.id);
      clearTimeout(q.timer);
      q.reject(new RoomcastError("disconnected", `${q.frame.op}: not connected`));
    }
  }

  _armWatchdog() {
    const hb = this.heartbeatMs;
    const tick = () => {
      const idle = Date.now() - this._lastRx;
      if (idle >= 2 * hb) {
        this.emit("error", new RoomcastError("timeout", `no frame for ${idle} ms: link dead`));
        this._drop(4000);
        return;
      }
      // Browsers do not see WebSocket pings: ask for a frame when idle.
      if (idle >= hb && !this._pinging) {
        this._pinging = true;
        this._request({ op: "ping" }, false).catch(() => {}).then(() => { this._pinging = false; });
      }
      this._timer("watchdog", Math.max(50, hb / 4), tick);
    };
    this._pinging = false;
    this._timer("watchdog", Math.max(50, hb / 4), tick);
  }

  _armRefresh() {
    if (typeof this.opts.token !== "function") return;
    const exp = jwtExp(this._token);
    if (exp == null) return;
    const left = exp * 1000 - Date.now();
    const margin = Math.min(this.opts.refreshMarginMs, left / 3);
    this._timer("refresh", Math.max(0, left - margin), () => this._refresh());
  }

  async _refresh() {
    const gen = this._gen;
    let token;
    try {
      token = await this._getToken(true);
    } catch (e) {
      this.emit("error", e);
      if (gen === this._gen) this._timer("refresh", 1000, () => this._refresh());
      return;
    }
    if (gen !== this._gen || this.state !== "connected") return;
    this._request({ op: "refresh", token }, false).then(
      () => { if (gen === this._gen) this._armRefresh(); },
      (e) => {
        if (e.code === "disconnected") return;
        this.emit("error", e);
        if (gen === this._gen) this._timer("refresh", 1000, () => this._refresh());
      });
  }

  // Close the current link (if any) and reject what waits on it.
  _teardown(err, code) {
    this._gen++;
    for (const k of Object.keys(this._timers)) this._timer(k, null);
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      if (typeof ws.on === "function") ws.on("error", () => {});
      try { ws.close(code === 1000 ? 1000 : 4000); } catch { /* not open yet */ }
    }
    for (const [id, p] of this._pending) {
      this._pending.delete(id);
      clearTimeout(p.timer);
      p.reject(err);
    }
    for (const r of this.rooms.values()) { r.joined = false; r._inflight = false; }
  }

  _drop(code) {
    this._onClose(code, "");
  }

  _onClose(code, reason) {
    if (this._closed) return;
    this._teardown(new RoomcastError("disconnected",
      `link dropped before the reply (close ${code}${reason ? " " + reason : ""}); join state is kept`), code);
    this._setState("disconnected");
    const authRefused = code === 4001 || this._httpAuthRefused;
    this._httpAuthRefused = false;
    if (authRefused) {
      this._authFails++;
      const fresh = typeof this.opts.token === "function";
      if (!fresh || this._authFails >= 2 || code !== 4001) {
        const err = new RoomcastError("unauthorized",
          `authentication refused (${code === 4001 ? "close 4001" : "HTTP 401"}${reason ? ": " + reason : ""}); not reconnecting`);
        this.emit("error", err);
        this.close();
        return;
      }
    }
    if (this._advice != null) {
      const after = this._advice;
      this._advice = undefined;
      this._scheduleReconnect(Math.floor(Math.random() * (after + 1)));
      return;
    }
    this._scheduleReconnect();
  }

  _scheduleReconnect(delay) {
    if (this._closed) return;
    const d = delay != null ? delay
      : backoffDelay(this._attempt++, this.opts.minDelayMs, this.opts.maxDelayMs);
    this._setState("disconnected");
    this._timer("reconnect", d, () => this._connect());
  }

  _online() {
    if (this._closed || this.state !== "disconnected") return;
    this._timer("reconnect", null);
    this._connect();
  }

  _offline() {
    if (this._closed || !this._ws) return;
    this._drop(4000);
  }
}

export default Client;
