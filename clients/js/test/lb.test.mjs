// The JS client through the load-balancer kit (deploy/haproxy/haproxy.cfg,
// deploy/nginx/roomcast.conf), run for real: Debian's haproxy and nginx in
// front of two real roomcastd nodes on a real redis-server (issue 14).
// The committed files are rendered with the test's ports by the same
// substitution rules as tests/integration/test_lb.py (each pattern must match
// exactly as often as there: a reshaped kit file fails here, it is not run
// half-rendered), never copied.
//
// - HAProxy: 40 Clients, only ever given HAProxy's address, in two rooms;
//   durable messages published through Redis (FCALL) the whole time; node A
//   drains (SIGTERM). Its clients follow `reconnect` back through HAProxy to
//   B and resume; every client's `message` handler sees every durable seq
//   published after its join exactly once, in order; A exits 0.
// - nginx: a Client through nginx gets welcome and a durable message.
// Run: node --test --test-concurrency=1 test/lb.test.mjs (ROOMCASTD=...)
// SPDX-License-Identifier: MIT
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import WebSocket from "ws";
import { Client } from "../roomcast.js";
import { Cluster, REPO, mintJwt, freePort, sleep, waitUntil, collect, tcpOpen } from "./harness.mjs";

const HAPROXY = process.env.HAPROXY || "/usr/sbin/haproxy";
const NGINX = process.env.NGINX || "/usr/sbin/nginx";
const HAPROXY_CFG = join(REPO, "deploy", "haproxy", "haproxy.cfg");
const NGINX_CONF = join(REPO, "deploy", "nginx", "roomcast.conf");

const T = (s) => ({ timeout: s * 1000 });

// ---------------------------------------------------------------- rendering
// The rules of test_lb.py's render_haproxy / render_nginx, pattern for
// pattern (Python's re.MULTILINE is the "m" flag, \g<1> is $1).

function sub(text, pattern, repl, want, what) {
  let n = 0;
  const out = text.replace(new RegExp(pattern, "gm"), (...m) => {
    n++;
    return repl(m);
  });
  assert.equal(n, want, `rendering ${what}: pattern ${pattern} matched ${n} times, expected ${want}`);
  return out;
}

/** haproxy.cfg with `bind :80` on 127.0.0.1:front, the stats listener on
 * stats, and each `server` line (in order) on servers[i] = [port, checkPort]. */
function renderHaproxy(path, front, stats, servers) {
  let text = readFileSync(HAPROXY_CFG, "utf8");
  text = sub(text, String.raw`^(\s*bind\s+):80\s*$`, (m) => `${m[1]}127.0.0.1:${front}`, 1, "frontend bind");
  text = sub(text, String.raw`^(\s*bind\s+)127\.0\.0\.1:8404\s*$`, (m) => `${m[1]}127.0.0.1:${stats}`, 1, "stats bind");
  let i = 0;
  text = sub(text, String.raw`^(\s*server\s+\S+\s+)\S+:\d+(\s.*\bport\s+)\d+`, (m) => {
    const [port, check] = servers[i++];
    return `${m[1]}127.0.0.1:${port}${m[2]}${check}`;
  }, servers.length, "server lines");
  writeFileSync(path, text);
  return path;
}

/** A throwaway nginx prefix: nginx.conf (own pid, error log, temp paths)
 * including roomcast.conf rendered with listenPort, the upstream servers on
 * upstreamPorts and the access log in the prefix. */
function renderNginx(prefix, listenPort, upstreamPorts) {
  mkdirSync(prefix, { recursive: true });
  const access = join(prefix, "roomcast.access.log");
  let text = readFileSync(NGINX_CONF, "utf8");
  text = sub(text, String.raw`^(\s*listen\s+)80;`, (m) => `${m[1]}127.0.0.1:${listenPort};`, 1, "listen");
  let i = 0;
  text = sub(text, String.raw`^(\s*server\s+)\S+:\d+(\s)`,
    (m) => `${m[1]}127.0.0.1:${upstreamPorts[i++]}${m[2]}`, upstreamPorts.length, "upstream servers");
  text = sub(text, String.raw`^(\s*access_log\s+)\S+`, (m) => `${m[1]}${access}`, 1, "access_log");
  writeFileSync(join(prefix, "roomcast.conf"), text);
  for (const d of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) {
    mkdirSync(join(prefix, d), { recursive: true });
    chmodSync(join(prefix, d), 0o777); // workers may run as another user
  }
  const conf = join(prefix, "nginx.conf");
  writeFileSync(conf, `worker_processes 1;
error_log ${prefix}/error.log info;
pid ${prefix}/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path ${prefix}/body;
    proxy_temp_path ${prefix}/proxy;
    fastcgi_temp_path ${prefix}/fastcgi;
    uwsgi_temp_path ${prefix}/uwsgi;
    scgi_temp_path ${prefix}/scgi;
    include ${prefix}/roomcast.conf;
}
`);
  return { conf, access };
}

// ---------------------------------------------------------------- balancers

async function startBalancer(cl, name, cmd, args, port) {
  assert.ok(existsSync(cmd), `${cmd} not installed (scripts/deps installs haproxy and nginx)`);
  const p = cl.spawn(name, cmd, args);
  await waitUntil(async () => {
    if (!p.running()) throw new Error(`${name} exited ${p.code}:\n${p.log()}`);
    return tcpOpen(port);
  }, 10000, `${name} listening on ${port}`);
  return p;
}

/** HAProxy's CSV stats: Map "pxname/svname" -> row object. */
async function haproxyStats(statsPort) {
  const r = await fetch(`http://127.0.0.1:${statsPort}/stats;csv`, { signal: AbortSignal.timeout(3000) });
  const lines = (await r.text()).replace(/^# /, "").trim().split("\n");
  const head = lines[0].split(",");
  const rows = new Map();
  for (const ln of lines.slice(1)) {
    const v = ln.split(",");
    const row = Object.fromEntries(head.map((h, i) => [h, v[i]]));
    rows.set(`${row.pxname}/${row.svname}`, row);
  }
  return rows;
}

const serverStatus = async (statsPort, name) =>
  (await haproxyStats(statsPort)).get(`roomcast_nodes/${name}`)?.status;

// ---------------------------------------------------------------- Redis

/** A minimal RESP client on one connection: call() resolves with the reply
 * (integer, string, null) or rejects with Redis's error. */
class Resp {
  constructor(port) {
    this.sock = createConnection({ port, host: "127.0.0.1" });
    this.sock.setNoDelay(true);
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    this.sock.on("data", (d) => { this.buf = Buffer.concat([this.buf, d]); this._parse(); });
    const fail = (e) => { for (const w of this.waiting.splice(0)) w.reject(e); };
    this.sock.on("error", fail);
    this.sock.on("close", () => fail(new Error("redis connection closed")));
  }
  call(...args) {
    let s = `*${args.length}\r\n`;
    for (const a of args) s += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis ${args[0]}: no reply in 5 s`)), 5000);
      this.waiting.push({
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.sock.write(s);
    });
  }
  _parse() {
    for (;;) {
      const nl = this.buf.indexOf("\r\n");
      if (nl < 0) return;
      const type = String.fromCharCode(this.buf[0]);
      const line = this.buf.subarray(1, nl).toString();
      let v, used = nl + 2;
      if (type === "$") {
        const len = Number(line);
        if (len >= 0) {
          if (this.buf.length < used + len + 2) return;
          v = this.buf.subarray(used, used + len).toString();
          used += len + 2;
        } else v = null;
      } else if (type === ":") v = Number(line);
      else if (type === "+") v = line;
      else if (type === "-") v = new Error(line);
      else throw new Error(`resp: unexpected reply type ${type}`);
      this.buf = this.buf.subarray(used);
      const w = this.waiting.shift();
      if (w) v instanceof Error ? w.reject(v) : w.resolve(v);
    }
  }
  close() { this.sock.destroy(); }
}

/** Durable publish through Redis, the way a backend does (PROTOCOL 5), in
 * the bare-room form test_lb.py uses: the library this tree's roomcastd
 * loads takes keys[1] as the room itself (the `roomcast:{<room>}` key form
 * is not in it yet: it would publish to a room of that literal name). */
const fcallPublish = (resp, room, data) =>
  resp.call("FCALL", "roomcast_publish", "1", room, JSON.stringify(data));

// ---------------------------------------------------------------- clients

function lbClient(url, sub) {
  const c = new Client(url, { WebSocket, token: () => mintJwt({ sub, ttl: 600 }) });
  c.errors = [];
  c.states = [];
  c.nodes = [];
  c.on("error", (e) => c.errors.push(e));
  c.on("state", (s) => { c.states.push(s); if (s === "connected") c.nodes.push(c.node); });
  return c;
}

async function metric(node, name) {
  const text = await (await fetch(`http://127.0.0.1:${node.adminPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(name + " ") || line.startsWith(name + "{")) sum += Number(line.split(/\s+/).pop());
  }
  return sum;
}

// ---------------------------------------------------------------- HAProxy

test("HAProxy: node A drains under publish load; its JS clients move through HAProxy to B, 0 lost, 0 duplicated",
  T(150), async () => {
    const N = 40, ROOMS = ["lbjs:a", "lbjs:b"];
    const cl = new Cluster();
    const cs = [];
    let resp;
    const stop = { v: false };
    try {
      await cl.redis();
      const flags = { history_size: 10000, drain_window_ms: 4000, drain_timeout_ms: 20000 };
      const a = await cl.node("A", flags);
      const b = await cl.node("B", flags);
      const front = await freePort(), stats = await freePort();
      const cfg = renderHaproxy(join(cl.dir, "haproxy.cfg"), front, stats,
        [[a.port, a.adminPort], [b.port, b.adminPort]]);
      execFileSync(HAPROXY, ["-c", "-f", cfg], { timeout: 10000, stdio: "pipe" });
      // -n: the kit's maxconn 100000 needs ~200k descriptors; this machine
      // allows 20000 per process, the test needs a few hundred
      const hp = await startBalancer(cl, "haproxy", HAPROXY, ["-f", cfg, "-db", "-n", "4000"], front);
      await waitUntil(async () => (await serverStatus(stats, "node1")) === "UP" &&
        (await serverStatus(stats, "node2")) === "UP", 10000, "both nodes UP in haproxy");

      // 40 clients that only know HAProxy's address, all connecting at once
      // (leastconn spreads them), each in one of the two rooms
      const url = `ws://127.0.0.1:${front}/ws`;
      const subs = [];
      for (let i = 0; i < N; i++) {
        const c = lbClient(url, `lb${i}`);
        cs.push(c);
        const room = ROOMS[i % 2];
        subs.push({ i, c, room, got: collect(c.room(room)) });
      }
      const joins = await Promise.all(subs.map((s) => s.c.room(s.room).join()));
      subs.forEach((s, k) => { s.base = joins[k].seq; s.first = s.c.node; });
      const on = { A: subs.filter((s) => s.first === "A").length, B: subs.filter((s) => s.first === "B").length };
      console.log(`haproxy leastconn spread: ${JSON.stringify(on)}`);
      assert.ok(on.A >= 10 && on.B >= 10, `spread ${JSON.stringify(on)}`);
      assert.equal(on.A + on.B, N);

      // durable messages through Redis, alternating rooms, ~100/s in all,
      // from before the SIGTERM to after A is gone
      resp = new Resp(cl.redisPort);
      const acc = []; // {k, room, seq} in publish order
      const publisher = (async () => {
        for (let k = 0; !stop.v; k++) {
          const room = ROOMS[k % 2];
          acc.push({ k, room, seq: await fcallPublish(resp, room, { k, room }) });
          await sleep(10);
        }
      })();
      publisher.catch(() => {}); // awaited below; a failure is thrown there
      await sleep(1000);
      const t0 = Date.now();
      a.signal("SIGTERM");
      let downAfter;
      await waitUntil(async () => {
        if (downAfter === undefined && String(await serverStatus(stats, "node1")).startsWith("DOWN")) {
          downAfter = Date.now() - t0;
        }
        return !a.running();
      }, 25000, "A to finish draining and exit", 100);
      const exitAfter = Date.now() - t0;
      await sleep(1000); // publishing goes on, on B alone
      stop.v = true;
      await publisher;
      assert.equal(await a.exited, 0, `A exits 0 after the drain:\n${a.log().slice(-2000)}`);

      const last = Object.fromEntries(ROOMS.map((r) => [r, Math.max(...acc.filter((x) => x.room === r).map((x) => x.seq))]));
      // a timeout here is reported client by client below
      const caughtUp = await waitUntil(() => subs.every((s) => s.got.seqs.at(-1) === last[s.room]), 20000,
        "every client has its room's last seq").catch((e) => e);
      await sleep(500); // a late duplicate would land here

      const problems = [];
      for (const s of subs) {
        const want = acc.filter((x) => x.room === s.room && x.seq > s.base).map((x) => x.seq);
        const got = s.got.seqs;
        const lost = want.filter((q) => !got.includes(q));
        const dups = got.length - new Set(got).size;
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          problems.push(`client ${s.i} (${s.first}, ${s.room}): ${got.length}/${want.length} seqs, ` +
            `${lost.length} lost (first ${lost.slice(0, 3)}), ${dups} duplicated, ` +
            `extra ${got.filter((q) => !want.includes(q)).slice(0, 3)}`);
        }
        // the data is the message published with that seq
        const bySeq = new Map(acc.filter((x) => x.room === s.room).map((x) => [x.seq, x.k]));
        if (!s.got.data.every((d, j) => d.room === s.room && d.k === bySeq.get(got[j]))) {
          problems.push(`client ${s.i}: data does not match the published messages`);
        }
        if (s.got.gaps.length) problems.push(`client ${s.i}: gaps ${JSON.stringify(s.got.gaps)}`);
        if (s.c.errors.length) problems.push(`client ${s.i}: errors ${s.c.errors.map(String)}`);
        if (s.c.state !== "connected") problems.push(`client ${s.i}: state ${s.c.state}`);
        if (s.first === "A") {
          if (s.c.node !== "B" || JSON.stringify(s.c.nodes) !== '["A","B"]') {
            problems.push(`client ${s.i} (on A): nodes ${JSON.stringify(s.c.nodes)}, now on ${s.c.node}`);
          }
        } else if (JSON.stringify(s.c.nodes) !== '["B"]' || s.c.states.includes("disconnected")) {
          problems.push(`client ${s.i} (on B) moved: nodes ${JSON.stringify(s.c.nodes)}, states ${s.c.states}`);
        }
      }
      const resumed = await metric(b, "roomcast_resumes_accepted_total");
      const st = await haproxyStats(stats);
      const be = st.get("roomcast_nodes/BACKEND");
      console.log(`A exited ${exitAfter} ms after SIGTERM; haproxy saw it DOWN after ${downAfter} ms; ` +
        `B accepted ${resumed} resumes; haproxy retries=${be.wretr} redispatches=${be.wredis} ` +
        `node1 5xx=${st.get("roomcast_nodes/node1").hrsp_5xx}; ${acc.length} durable messages, ` +
        `${subs.reduce((n, s) => n + s.got.seqs.length, 0)} deliveries checked`);
      assert.deepEqual(problems.slice(0, 20), []);
      assert.equal(caughtUp, true);
      assert.equal(resumed, on.A, `B accepted a resume from each of A's ${on.A} clients`);
      assert.ok(downAfter !== undefined, "haproxy never marked A DOWN");
      assert.ok(hp.running(), "haproxy still up");
    } finally {
      stop.v = true;
      cs.forEach((c) => c.close());
      resp?.close();
      await cl.stop();
    }
  });

// ---------------------------------------------------------------- nginx

test("nginx: a JS client through deploy/nginx/roomcast.conf gets welcome and a durable message", T(60), async () => {
  const cl = new Cluster();
  const cs = [];
  let resp;
  try {
    await cl.redis();
    const a = await cl.node("A");
    const b = await cl.node("B");
    const port = await freePort();
    const prefix = join(cl.dir, "nginx");
    const { conf } = renderNginx(prefix, port, [a.port, b.port]);
    const base = ["-p", prefix, "-e", join(prefix, "error.log"), "-c", conf];
    assert.ok(existsSync(NGINX), "nginx not installed (scripts/deps)");
    const t = execFileSync(NGINX, [...base, "-t"], { timeout: 10000, stdio: "pipe", encoding: "utf8" });
    assert.equal(typeof t, "string"); // exit 0, or execFileSync threw
    await startBalancer(cl, "nginx", NGINX, [...base, "-g", "daemon off;"], port);

    const c = lbClient(`ws://127.0.0.1:${port}/ws`, "ng0");
    cs.push(c);
    const got = collect(c.room("ngjs:x"));
    const j = await c.room("ngjs:x").join();
    assert.equal(c.state, "connected");
    assert.ok(["A", "B"].includes(c.node), `welcome names a node: ${c.node}`);
    assert.equal(typeof c.session, "string");
    resp = new Resp(cl.redisPort);
    const seq = await fcallPublish(resp, "ngjs:x", { via: "nginx" });
    assert.ok(seq > j.seq, `published seq ${seq} after the join's ${j.seq}`);
    await waitUntil(() => got.seqs.length >= 1, 5000, "the message through nginx");
    await sleep(200);
    assert.deepEqual(got.seqs, [seq]);
    assert.deepEqual(got.data, [{ via: "nginx" }]);
    assert.deepEqual(c.errors.map(String), []);
  } finally {
    cs.forEach((c) => c.close());
    resp?.close();
    await cl.stop();
  }
});
