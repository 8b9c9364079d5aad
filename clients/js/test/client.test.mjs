// The roomcast JS client against real roomcastd nodes and a real Redis.
// Run: node --test --test-concurrency=1 test/   (ROOMCASTD=path/to/roomcastd)
// SPDX-License-Identifier: MIT
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import WebSocket from "ws";
import { Client, backoffDelay, jwtExp } from "../roomcast.js";
import { Cluster, HERE, mintJwt, sleep, waitUntil, collect, contiguous, SECRET } from "./harness.mjs";

const T = (s) => ({ timeout: s * 1000 });

function client(urls, opts = {}) {
  const c = new Client(urls, { WebSocket, token: () => mintJwt(), ...opts });
  c.errors = [];
  c.states = [];
  c.on("error", (e) => c.errors.push(e));
  c.on("state", (s) => c.states.push(s));
  return c;
}

const connected = (c) => waitUntil(() => c.state === "connected", 10000, "connected");

async function metric(node, name) {
  const r = await fetch(`http://127.0.0.1:${node.adminPort}/metrics`);
  const text = await r.text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(name + " ") || line.startsWith(name + "{")) sum += Number(line.split(/\s+/).pop());
  }
  return sum;
}

// ---------------------------------------------------------------- units

test("backoff: full jitter, stays jittered at the cap", T(5), () => {
  const min = 250, max = 20000;
  for (let a = 0; a < 12; a++) {
    const ceil = Math.min(max, min * 2 ** a);
    assert.equal(backoffDelay(a, min, max, () => 0), 0);
    assert.equal(backoffDelay(a, min, max, () => 0.999999), ceil - 1);
  }
  // far past the cap: spread over [0, max), never a fixed value
  const xs = Array.from({ length: 4000 }, () => backoffDelay(40, min, max));
  assert.ok(xs.every((x) => x >= 0 && x < max), "inside [0, max)");
  assert.ok(Math.min(...xs) < max * 0.05, `some short delays (min ${Math.min(...xs)})`);
  assert.ok(Math.max(...xs) > max * 0.95, `some long delays (max ${Math.max(...xs)})`);
  assert.ok(new Set(xs).size > 1000, "many distinct delays");
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(Math.abs(mean - max / 2) < max * 0.05, `mean ${mean} near max/2`);
  // attempt 0 is below minDelayMs
  assert.ok(Array.from({ length: 200 }, () => backoffDelay(0, min, max)).every((x) => x < min));
});

test("jwtExp reads the payload's exp", T(5), () => {
  const t = mintJwt({ ttl: 100 });
  assert.equal(jwtExp(t), Math.floor(Date.now() / 1000) + 100);
  assert.equal(jwtExp("garbage"), undefined);
});

test("size: roomcast.js is at most 10 KB with gzip -9", T(10), () => {
  const file = join(HERE, "..", "roomcast.js");
  let n = gzipSync(readFileSync(file), { level: 9 }).length;
  try { n = execFileSync("gzip", ["-9", "-c", file]).length; } catch { /* no gzip binary */ }
  console.log(`# roomcast.js gzip -9: ${n} bytes`);
  assert.ok(n <= 10240, `${n} bytes gzipped`);
});

// ---------------------------------------------------------------- live

test("join, publish, messages in order with their seqs", T(30), async () => {
  const cl = new Cluster();
  const cs = [];
  try {
    await cl.redis();
    const a = await cl.node("A");
    const alice = client(a.url), bob = client(a.url);
    cs.push(alice, bob);
    const ra = alice.room("chat:lobby"), rb = bob.room("chat:lobby");
    const got = collect(rb);
    const j = await rb.join();
    assert.equal(typeof j.seq, "number");
    await ra.join();
    assert.equal(alice.room("chat:lobby"), ra, "one handle per room name");
    const seqs = [];
    for (let i = 0; i < 50; i++) seqs.push(await ra.publish({ i, from: "alice" }));
    contiguous(seqs, seqs[0], seqs[0] + 49);
    await waitUntil(() => got.seqs.length >= 50, 5000, "50 messages");
    assert.deepEqual(got.seqs, seqs);
    assert.deepEqual(got.data.map((d) => d.i), [...Array(50).keys()]);
    assert.equal(bob.state, "connected");
    // leave: no more messages
    await rb.leave();
    await ra.publish({ after: "leave" });
    await sleep(300);
    assert.equal(got.seqs.length, 50);
    // a publish the token forbids is rejected with the server's code
    const ro = client(a.url, { token: () => mintJwt({ pub: [] }) });
    cs.push(ro);
    await assert.rejects(ro.room("chat:lobby").publish(1), { code: "forbidden" });
  } finally {
    cs.forEach((c) => c.close());
    await cl.stop();
  }
});

test("gap: join with since past the history says from/to", T(30), async () => {
  const cl = new Cluster();
  const cs = [];
  try {
    await cl.redis();
    const a = await cl.node("A", { history_size: 5 });
    const p = client(a.url);
    cs.push(p);
    const s = [];
    for (let i = 0; i < 20; i++) s.push(await p.room("g").publish(i));
    contiguous(s, s[0], s[0] + 19);
    const c = client(a.url);
    cs.push(c);
    const got = collect(c.room("g"));
    const j = await c.room("g").join({ since: s[0] });
    assert.equal(j.recovered, false);
    assert.equal(j.seq, s[19]);
    await waitUntil(() => got.seqs.length >= 5, 5000, "5 retained messages");
    assert.deepEqual(got.gaps, [{ from: s[1], to: s[14] }]);
    assert.deepEqual(got.seqs, s.slice(15));
    // a since that is still in the history: recovered, no gap
    const c2 = client(a.url);
    cs.push(c2);
    const got2 = collect(c2.room("g"));
    assert.equal((await c2.room("g").join({ since: s[16] })).recovered, true);
    await waitUntil(() => got2.seqs.length >= 3, 5000, "3 messages");
    assert.deepEqual(got2.seqs, s.slice(17));
    assert.deepEqual(got2.gaps, []);
  } finally {
    cs.forEach((c) => c.close());
    await cl.stop();
  }
});

// Publish `n` messages to room through pub, one every `everyMs`.
async function publishLoad(pub, room, n, everyMs, during) {
  const seqs = [];
  for (let i = 0; i < n; i++) {
    if (i === Math.floor(n / 3) && during) during();
    seqs.push(await pub.room(room).publish({ i }));
    await sleep(everyMs);
  }
  return seqs;
}

test("node SIGKILLed: the client rejoins on the other node with since, no loss, no duplicate", T(60), async () => {
  const cl = new Cluster();
  const cs = [];
  try {
    await cl.redis();
    const a = await cl.node("A", { history_size: 5000 });
    const b = await cl.node("B", { history_size: 5000 });
    const pub = client(b.url);
    const c = client([a.url, b.url]);
    cs.push(pub, c);
    const got = collect(c.room("k"));
    await c.room("k").join();
    assert.equal(c.node, "A");
    const seqs = await publishLoad(pub, "k", 300, 3, () => a.signal("SIGKILL"));
    await waitUntil(() => got.seqs.length >= seqs.length, 15000,
      `all ${seqs.length} messages (have ${got.seqs.length})`);
    await sleep(200);
    assert.equal(c.node, "B", "moved to B");
    assert.ok(c.states.includes("disconnected"), "saw the drop");
    contiguous(got.seqs, seqs[0], seqs.at(-1));
    assert.deepEqual(got.gaps, []);
    assert.equal(await a.exited, null, "A was killed");
  } finally {
    cs.forEach((c) => c.close());
    await cl.stop();
  }
});

test("drain (SIGTERM): clients move to the other node by resume, 0 lost, 0 duplicated under load", T(90), async () => {
  const cl = new Cluster();
  const cs = [];
  const N = 20;
  try {
    await cl.redis();
    const flags = { history_size: 5000, drain_window_ms: 2000 };
    const a = await cl.node("A", flags);
    const b = await cl.node("B", flags);
    const pub = client(b.url);
    cs.push(pub);
    const subs = [];
    for (let i = 0; i < N; i++) {
      const c = client([a.url, b.url]);
      cs.push(c);
      const got = collect(c.room("d"));
      await c.room("d").join();
      subs.push({ c, got });
    }
    assert.ok(subs.every((s) => s.c.node === "A"));
    // 80/s: under the server's per-client rate limit (100/s)
    const seqs = await publishLoad(pub, "d", 400, 12, () => a.signal("SIGTERM"));
    const last = seqs.at(-1);
    await waitUntil(() => subs.every((s) => s.got.seqs.at(-1) === last), 20000, "every client has the last seq");
    await sleep(300);
    for (const s of subs) {
      contiguous(s.got.seqs, seqs[0], last);
      assert.deepEqual(s.got.gaps, []);
      assert.equal(s.c.node, "B");
      assert.deepEqual(s.c.errors.map(String), []);
    }
    assert.equal(await a.exited, 0, "A exits 0 after the drain");
    const resumed = await metric(b, "roomcast_resumes_accepted_total");
    assert.equal(resumed, N, `B accepted ${N} resumes`);
  } finally {
    cs.forEach((c) => c.close());
    await cl.stop();
  }
});

test("token refresh before exp: 3 s tokens, no 4001 over 9 s", T(40), async () => {
  const cl = new Cluster();
  const cs = [];
  try {
    await cl.redis();
    const a = await cl.node("A", { jwt_leeway_ms: 100 });
    let calls = 0;
    const c = client(a.url, { token: async () => { calls++; return mintJwt({ ttl: 3 }); } });
    // control: the same 3 s token as a string cannot be refreshed
    const fixed = client(a.url, { token: mintJwt({ ttl: 3 }) });
    cs.push(c, fixed);
    const got = collect(c.room("t"));
    await c.room("t").join();
    await connected(fixed);
    const session = c.session;
    await sleep(9000);
    assert.equal(c.state, "connected");
    assert.equal(c.session, session, "same session: never reconnected");
    assert.deepEqual(c.states.filter((s) => s === "disconnected"), []);
    assert.deepEqual(c.errors.map(String), []);
    assert.ok(calls >= 4, `token function called ${calls} times`);
    const seq = await c.room("t").publish("still here");
    await waitUntil(() => got.seqs.includes(seq), 3000, "own message");
    assert.equal(await metric(a, "roomcast_token_expired_closes_total"), 1, "only the control expired");
    // the control got 4001 and stopped
    assert.equal(fixed.state, "closed");
    assert.ok(fixed.errors.some((e) => e.code === "unauthorized"), String(fixed.errors));
  } finally {
    cs.forEach((c) => c.close());
    await cl.stop();
  }
});

test("auth refusal a fresh token cannot fix stops: error, closed, no storm", T(30), async () => {
  const cl = new Cluster();
  const cs = [];
  try {
    await cl.redis();
    const a = await cl.node("A");
    let calls = 0;
    const c = client(a.url, { token: async () => { calls++; return mintJwt({ secret: "wrong-" + SECRET }); } });
    cs.push(c);
    const joined = c.room("x").join();
    joined.catch(() => {});
    await waitUntil(() => c.state === "closed", 10000, "closed");
    await assert.rejects(joined, { code: "closed" });
    const n = calls;
    await sleep(2000);
    assert.equal(calls, n, "no more connects after closing");
    assert.equal(calls, 2, "one retry with a fresh token");
    assert.equal(c.errors.filter((e) => e.code === "unauthorized").length, 1);
    assert.equal(await metric(a, "roomcast_auth_failures_total"), 2);
  } finally {
    cs.forEach((c) => c.close());
    await cl.stop();
  }
});

test("requests in flight when the link drops reject exactly once; the room is rejoined", T(60), async () => {
  const cl = new Cluster();
  const cs = [];
  const redis = () => cl.procs[0];
  try {
    await cl.redis();
    const a = await cl.node("A");
    const b = await cl.node("B");
    const c = client([a.url, b.url]);
    const pub = client(b.url);
    cs.push(c, pub);
    await connected(c);
    assert.equal(c.node, "A");
    // Redis stopped: the node cannot answer join or publish
    redis().signal("SIGSTOP");
    const settled = { join: [], publish: [] };
    const track = (name, p) => p.then((v) => settled[name].push(["ok", v]), (e) => settled[name].push(["err", e]));
    const got = collect(c.room("f"));
    track("join", c.room("f").join());
    track("publish", c.room("other").publish("lost?"));
    await sleep(500);
    assert.deepEqual(settled, { join: [], publish: [] }, "both still waiting");
    a.signal("SIGKILL");
    await waitUntil(() => settled.join.length && settled.publish.length, 5000, "both settled");
    for (const k of ["join", "publish"]) {
      assert.equal(settled[k].length, 1);
      assert.equal(settled[k][0][0], "err");
      assert.equal(settled[k][0][1].code, "disconnected");
      assert.match(settled[k][0][1].message, /link dropped/);
    }
    redis().signal("SIGCONT");
    // join state kept: rejoined on B, messages arrive
    await waitUntil(() => c.state === "connected" && c.node === "B" && c.room("f").joined, 15000, "rejoined on B");
    const seq = await pub.room("f").publish("after");
    await waitUntil(() => got.seqs.includes(seq), 5000, "message after the rejoin");
    await sleep(300);
    for (const k of ["join", "publish"]) assert.equal(settled[k].length, 1, "settled once only");
  } finally {
    try { redis()?.signal("SIGCONT"); } catch { /* gone */ }
    cs.forEach((c) => c.close());
    await cl.stop();
  }
});

test("watchdog: a silent node (SIGSTOP) is given up after two heartbeats", T(40), async () => {
  const cl = new Cluster();
  const cs = [];
  let a;
  try {
    await cl.redis();
    a = await cl.node("A", { heartbeat_ms: 400 });
    const b = await cl.node("B", { heartbeat_ms: 400 });
    const c = client([a.url, b.url]);
    cs.push(c);
    const got = collect(c.room("w"));
    await c.room("w").join();
    assert.equal(c.node, "A");
    assert.equal(c.heartbeatMs, 400);
    await sleep(1500); // idle but alive: pings keep it up
    assert.deepEqual(c.states.filter((s) => s === "disconnected"), []);
    a.signal("SIGSTOP"); // the TCP link stays up, nothing more arrives
    const t0 = Date.now();
    await waitUntil(() => c.state === "connected" && c.node === "B", 10000, "moved to B");
    const took = Date.now() - t0;
    assert.ok(took < 3000, `dead link noticed in ${took} ms`);
    assert.ok(c.errors.some((e) => e.code === "timeout"), String(c.errors));
    const pub = client(b.url);
    cs.push(pub);
    const seq = await pub.room("w").publish("on B");
    await waitUntil(() => got.seqs.includes(seq), 5000, "message on B");
  } finally {
    try { a?.signal("SIGCONT"); } catch { /* gone */ }
    cs.forEach((c) => c.close());
    await cl.stop();
  }
});
