// loadtest/peers/socketio/server.js: the Socket.IO 4 peer roomcast is
// benchmarked against (issue 5). One Node process = one node; run several on
// one Redis and @socket.io/redis-adapter carries room broadcasts between
// them, as roomcast's Redis adapter does. Clients authenticate with the same
// HS256 JWT roomcast takes (verified here with node:crypto), join and leave
// rooms with acked events, and receive whatever is broadcast to their rooms
// (roomcast-load publishes straight into Redis, like @socket.io/redis-emitter).
// No per-message work of our own and no per-message logging.
//
//   node server.js --port 3000 --redis-url redis://127.0.0.1:6379 \
//       --jwt-secret-file secret [--host 127.0.0.1] [--leeway-ms 30000] \
//       [--ping-interval-ms 25000] [--ping-timeout-ms 20000]
//
// Each flag may also come from the environment: PORT, HOST, REDIS_URL,
// JWT_SECRET_FILE (or JWT_SECRET), JWT_LEEWAY_MS, PING_INTERVAL_MS,
// PING_TIMEOUT_MS. Prints "ready <port>" on
// stdout once it listens and the adapter is subscribed; exits on SIGTERM or
// SIGINT.
// SPDX-License-Identifier: MIT
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

function parseArgs(argv) {
    const out = {};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
        const eq = a.indexOf('=');
        if (eq > 0) {
            out[a.slice(2, eq)] = a.slice(eq + 1);
        } else {
            if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
            out[a.slice(2)] = argv[++i];
        }
    }
    return out;
}

const KNOWN = ['port', 'host', 'redis-url', 'jwt-secret-file', 'jwt-secret',
    'leeway-ms', 'ping-interval-ms', 'ping-timeout-ms'];
let args;
try {
    args = parseArgs(process.argv.slice(2));
    for (const k of Object.keys(args))
        if (!KNOWN.includes(k)) throw new Error(`unknown flag --${k}`);
} catch (e) {
    console.error(`socketio-peer: ${e.message}`);
    console.error(`usage: node server.js --port P --redis-url URL ` +
        `--jwt-secret-file F [--host H] [--leeway-ms MS]`);
    process.exit(1);
}

const port = Number(args.port || process.env.PORT || 3000);
const host = args.host || process.env.HOST || '127.0.0.1';
const redisUrl = args['redis-url'] || process.env.REDIS_URL ||
    'redis://127.0.0.1:6379';
const leewayMs = Number(args['leeway-ms'] || process.env.JWT_LEEWAY_MS ||
    30000);
// Engine.IO's heartbeat; the defaults are Socket.IO's (and roomcastd's
// heartbeat_ms is 25000 too).
const pingInterval = Number(args['ping-interval-ms'] ||
    process.env.PING_INTERVAL_MS || 25000);
const pingTimeout = Number(args['ping-timeout-ms'] ||
    process.env.PING_TIMEOUT_MS || 20000);
const secretFile = args['jwt-secret-file'] || process.env.JWT_SECRET_FILE;
let secret = args['jwt-secret'] || process.env.JWT_SECRET;
if (secretFile) {
    // Same rule as roomcastd and roomcast-load: one trailing newline off.
    secret = fs.readFileSync(secretFile, 'utf8').replace(/\n$/, '');
}
if (!secret) {
    console.error('socketio-peer: a JWT secret is required ' +
        '(--jwt-secret-file or JWT_SECRET_FILE)');
    process.exit(1);
}
if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`socketio-peer: bad port ${args.port || process.env.PORT}`);
    process.exit(1);
}
const key = Buffer.from(secret, 'utf8');

function b64urlJson(s) {
    return JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
}

// HS256 only, like roomcastd with jwt_alg HS256: signature, alg, exp (with
// leeway), nbf; returns the claims or null.
function verifyJwt(token) {
    if (typeof token !== 'string' || token.length > 8192) return null;
    const parts = token.split('.');
    if (parts.length !== 3) return null;
    let header, claims;
    try {
        header = b64urlJson(parts[0]);
        claims = b64urlJson(parts[1]);
    } catch (e) {
        return null;
    }
    if (!header || header.alg !== 'HS256') return null;
    const want = crypto.createHmac('sha256', key)
        .update(parts[0] + '.' + parts[1]).digest();
    const got = Buffer.from(parts[2], 'base64url');
    if (got.length !== want.length || !crypto.timingSafeEqual(got, want))
        return null;
    const now = Date.now();
    if (typeof claims.exp !== 'number' || claims.exp * 1000 + leewayMs <= now)
        return null;
    if (typeof claims.nbf === 'number' && claims.nbf * 1000 - leewayMs > now)
        return null;
    if (typeof claims.sub !== 'string' || claims.sub.length === 0) return null;
    return claims;
}

// The token's "rooms" patterns: exact name, "prefix*", or "*".
function allowed(patterns, room) {
    if (!Array.isArray(patterns)) return false;
    for (const p of patterns) {
        if (typeof p !== 'string') continue;
        if (p.endsWith('*') ? room.startsWith(p.slice(0, -1)) : p === room)
            return true;
    }
    return false;
}

async function main() {
    const pub = createClient({ url: redisUrl });
    const sub = pub.duplicate();
    pub.on('error', (e) => console.error(`socketio-peer: redis: ${e.message}`));
    sub.on('error', (e) => console.error(`socketio-peer: redis: ${e.message}`));
    await Promise.all([pub.connect(), sub.connect()]);

    const httpServer = http.createServer((req, res) => {
        res.writeHead(404).end();
    });
    const io = new Server(httpServer, {
        path: '/socket.io/',
        transports: ['websocket'],
        perMessageDeflate: false, // roomcast does not compress either
        serveClient: false,
        pingInterval,
        pingTimeout,
        adapter: createAdapter(pub, sub),
    });

    io.use((socket, next) => {
        const hs = socket.handshake;
        const token = (hs.auth && hs.auth.token) || hs.query.token;
        const claims = verifyJwt(token);
        if (!claims) return next(new Error('unauthorized'));
        socket.data.rooms = claims.rooms;
        next();
    });

    io.on('connection', (socket) => {
        socket.on('join', (room, ack) => {
            if (typeof ack !== 'function') return;
            if (typeof room !== 'string' || !allowed(socket.data.rooms, room))
                return ack({ ok: false, error: 'forbidden' });
            socket.join(room);
            ack({ ok: true });
        });
        socket.on('leave', (room, ack) => {
            if (typeof ack !== 'function') return;
            if (typeof room !== 'string') return ack({ ok: false });
            socket.leave(room);
            ack({ ok: true });
        });
    });

    // The adapter psubscribes in its constructor; make sure Redis has
    // confirmed it before we say ready, or the first messages could miss us.
    await sub.ping().catch(() => { });

    httpServer.listen(port, host, () => {
        process.stdout.write(`ready ${httpServer.address().port}\n`);
    });

    let stopping = false;
    const stop = () => {
        if (stopping) process.exit(0);
        stopping = true;
        io.close();
        Promise.allSettled([pub.quit(), sub.quit()]).then(() =>
            process.exit(0));
        setTimeout(() => process.exit(0), 2000).unref();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}

main().catch((e) => {
    console.error(`socketio-peer: ${e.stack || e.message}`);
    process.exit(1);
});
