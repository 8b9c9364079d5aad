// Test harness: a real redis-server and real roomcastd nodes on free
// loopback ports in a temp dir, stopped by PID; HS256 JWTs by node:crypto.
// SPDX-License-Identifier: MIT
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from "node:fs";
import { createServer, createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, "../../..");
export const ROOMCASTD = resolve(REPO, process.env.ROOMCASTD || "build/gateway/roomcastd");
export const REDIS_SERVER = process.env.REDIS_SERVER || "/usr/bin/redis-server";
export const SECRET = "js-client-test-secret-0123456789abcdef";
export const RESUME_SECRET = "js-client-resume-secret-0123456789abcdef";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** An HS256 JWT: {sub, rooms, pub, ttl (s)} plus extra claims. */
export function mintJwt({ sub = "user", rooms = ["*"], pub = ["*"], ttl = 60,
                          secret = SECRET, ...extra } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ sub, iat: now, exp: now + ttl, rooms, pub, ...extra }));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

export async function waitUntil(pred, timeoutMs, what = "condition", everyMs = 20) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function tcpOpen(port) {
  return new Promise((res) => {
    const c = createConnection({ port, host: "127.0.0.1" }, () => { c.destroy(); res(true); });
    c.on("error", () => res(false));
  });
}

async function httpStatus(url, method = "GET") {
  try {
    const r = await fetch(url, { method, signal: AbortSignal.timeout(2000) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}

export class Proc {
  constructor(dir, name, cmd, args) {
    this.dir = dir;
    this.name = name;
    this.logPath = join(dir, `${name}.log`);
    const fd = openSync(this.logPath, "w");
    this.proc = spawn(cmd, args, { stdio: ["ignore", fd, fd], env: cleanEnv() });
    closeSync(fd);
    this.pid = this.proc.pid;
    this.exited = new Promise((res) => this.proc.on("exit", (code, sig) => {
      this.code = code; this.sig = sig; res(code);
    }));
  }
  running() { return this.code === undefined && this.sig === undefined; }
  signal(sig) { if (this.running()) process.kill(this.pid, sig); }
  async stop(sig = "SIGTERM", timeoutMs = 15000) {
    if (!this.running()) return this.code;
    this.signal(sig);
    const t = await Promise.race([this.exited, sleep(timeoutMs).then(() => "timeout")]);
    if (t === "timeout") { this.signal("SIGKILL"); await this.exited; }
    return this.code;
  }
  log() { try { return readFileSync(this.logPath, "utf8"); } catch { return ""; } }
}

function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("ROOMCAST_")) env[k] = v;
  return env;
}

/** A temp dir with a redis-server and nodes; stop() ends them all by PID. */
export class Cluster {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "roomcast-js-"));
    this.procs = [];
    this.nodes = [];
  }

  async redis() {
    this.redisPort = await freePort();
    const p = new Proc(this.dir, "redis", REDIS_SERVER, [
      "--port", String(this.redisPort), "--bind", "127.0.0.1", "--save", "",
      "--appendonly", "no", "--dir", this.dir, "--protected-mode", "no"]);
    this.procs.push(p);
    await waitUntil(() => tcpOpen(this.redisPort), 10000, "redis-server");
    return p;
  }

  /** Start a roomcastd on the cluster's Redis; flags as {key: value}. */
  async node(name, flags = {}) {
    const port = await freePort(), admin = await freePort();
    const f = {
      listen: `127.0.0.1:${port}`, admin_listen: `127.0.0.1:${admin}`,
      jwt_secret: SECRET, node_id: name, resume_secret: RESUME_SECRET,
      ...(this.redisPort ? { redis_url: `redis://127.0.0.1:${this.redisPort}` } : {}),
      ...flags,
    };
    const args = [];
    for (const [k, v] of Object.entries(f)) args.push("--" + k.replace(/_/g, "-"), String(v));
    const p = new Proc(this.dir, name, ROOMCASTD, args);
    p.port = port;
    p.adminPort = admin;
    p.url = `ws://127.0.0.1:${port}/ws`;
    this.procs.push(p);
    this.nodes.push(p);
    await waitUntil(async () => {
      if (!p.running()) throw new Error(`${name} exited ${p.code}:\n${p.log()}`);
      return (await httpStatus(`http://127.0.0.1:${admin}/readyz`)) === 200;
    }, 10000, `${name} /readyz 200`);
    return p;
  }

  /** Start another process (a balancer, say) stopped with the cluster:
   * stop() ends processes in reverse order, so one started after the nodes
   * goes first. */
  spawn(name, cmd, args) {
    const p = new Proc(this.dir, name, cmd, args);
    this.procs.push(p);
    return p;
  }

  async stop() {
    for (const p of [...this.procs].reverse()) await p.stop("SIGTERM", 5000);
    if (!process.env.KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Collect a room's messages: seqs and data in arrival order. */
export function collect(room) {
  const got = { seqs: [], data: [], gaps: [] };
  room.on("message", (d, { seq }) => { got.seqs.push(seq); got.data.push(d); });
  room.on("gap", (g) => got.gaps.push(g));
  return got;
}

/** Assert seqs is exactly first..last, each once, in order. */
export function contiguous(seqs, first, last) {
  const bad = [];
  for (let i = 0; i < seqs.length; i++) if (seqs[i] !== first + i) { bad.push([i, seqs[i]]); if (bad.length > 5) break; }
  if (seqs.length !== last - first + 1 || bad.length) {
    throw new Error(`expected seqs ${first}..${last} once in order; got ${seqs.length} ` +
      `(first bad ${JSON.stringify(bad)}; head ${seqs.slice(0, 5)} tail ${seqs.slice(-5)})`);
  }
}
