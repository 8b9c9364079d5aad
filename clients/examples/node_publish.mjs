// A backend for roomcast in Node.js (18+): mint the JWT a user's browser
// presents to roomcast, and publish to a room through Redis with node-redis
// (the `redis` package, pinned in package.json / package-lock.json).
//
//   cd clients/examples && npm ci
//   export ROOMCAST_JWT_SECRET=...  ROOMCAST_REDIS_URL=redis://10.0.0.5:6379/0
//   node node_publish.mjs token alice                      # {"token": ...}
//   node node_publish.mjs publish chat:lobby '{"text":"hi"}'     # {"seq": N}
//   node node_publish.mjs publish chat:lobby '{"typing":"bob"}' --ephemeral
//
// In an Express/Fastify app, call mintToken() in the route that hands the
// signed-in user its roomcast token, and publish() where the application
// has something to say to a room; create one client per process.
//
// Durable messages go through the function library every roomcastd node
// loads into Redis (FCALL roomcast_publish): Redis numbers them, keeps them
// in the room's history and returns the seq. Ephemeral ones are a PUBLISH
// on the room's channel: no seq, no history. See docs/REDIS.md.
// SPDX-License-Identifier: MIT
import { createHmac } from "node:crypto";
import { pathToFileURL } from "node:url";
import { createClient } from "redis";

const SECRET = process.env.ROOMCAST_JWT_SECRET ?? "";
const REDIS_URL = process.env.ROOMCAST_REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = process.env.ROOMCAST_PREFIX ?? "roomcast:"; // key_prefix
const TOKEN_TTL = 3600; // s; a client refreshes (op refresh) before this
const ROOM_RE = /^[A-Za-z0-9_\-.:/@]{1,128}$/; // PROTOCOL section 2

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** An HS256 JWT roomcastd accepts (jwt_alg HS256, the same jwt_secret). */
export function mintToken(sub, { rooms, pub = [], ttl = TOKEN_TTL,
                                 secret = SECRET } = {}) {
  if (!secret) throw new Error("set ROOMCAST_JWT_SECRET (roomcastd's jwt_secret)");
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub, iat: now, exp: now + ttl, rooms };
  if (pub.length) claims.pub = pub;
  const input = `${b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }))}.` +
                b64url(JSON.stringify(claims));
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/** Durable: resolves with the seq clients will see on this message. */
export async function publish(redis, room, data) {
  if (!ROOM_RE.test(room)) throw new Error(`bad room name: ${room}`);
  // PROTOCOL section 5: the one key is the room's key, prefix{room}, so
  // Redis (and Redis Cluster) routes the call by a key that exists.
  return redis.fCall("roomcast_publish", {
    keys: [`${PREFIX}{${room}}`],
    arguments: [JSON.stringify(data)],
  });
}

/** No seq, no history (typing, presence); resolves with the number of
 *  nodes that have a member of the room (0 is not an error). */
export async function publishEphemeral(redis, room, data) {
  if (!ROOM_RE.test(room)) throw new Error(`bad room name: ${room}`);
  return redis.publish(`${PREFIX}{${room}}`, JSON.stringify(data));
}

async function main(argv) {
  if (argv.length === 2 && argv[0] === "token") {
    console.log(JSON.stringify({
      token: mintToken(argv[1], { rooms: ["chat:*", `user:${argv[1]}`],
                                  pub: ["chat:*"] }),
      expires_in: TOKEN_TTL,
    }));
    return 0;
  }
  const eph = argv[3] === "--ephemeral";
  if (argv[0] !== "publish" || !(argv.length === 3 || (argv.length === 4 && eph))) {
    console.error("usage: node_publish.mjs token USER\n" +
                  "       node_publish.mjs publish ROOM JSON [--ephemeral]");
    return 2;
  }
  let data;
  try {
    data = JSON.parse(argv[2]);
  } catch (e) {
    console.error(`node_publish.mjs: data is not JSON: ${e.message}`);
    return 2;
  }
  const redis = createClient({ url: REDIS_URL });
  redis.on("error", (e) => console.error(`node_publish.mjs: redis: ${e.message}`));
  await redis.connect();
  try {
    if (eph) {
      await publishEphemeral(redis, argv[1], data);
      console.log(JSON.stringify({ room: argv[1] }));
    } else {
      const seq = await publish(redis, argv[1], data);
      console.log(JSON.stringify({ room: argv[1], seq }));
    }
  } finally {
    await redis.quit();
  }
  return 0;
}

// run as a program, not when imported
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (rc) => { process.exitCode = rc; },
    (e) => { console.error(`node_publish.mjs: ${e.message}`); process.exitCode = 1; });
}
