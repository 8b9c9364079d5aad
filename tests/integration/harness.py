# Black-box harness for roomcast integration tests: starts the real roomcastd
# binary and talks to it with a real WebSocket client (python3-websockets).
# Stdlib only besides websockets; run with /usr/bin/python3 -m pytest.
# SPDX-License-Identifier: MIT
import asyncio
import base64
import collections
import hashlib
import hmac
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import websockets
import websockets.exceptions

REPO = Path(__file__).resolve().parents[2]
ROOMCASTD = os.environ.get("ROOMCASTD",
                           str(REPO / "build" / "gateway" / "roomcastd"))
ROOMCAST_CLI = os.environ.get("ROOMCAST_CLI",
                              str(REPO / "build" / "clients" / "roomcast"))

SECRET = "integration-test-secret-0123456789abcdef"
SUBPROTOCOL = "roomcast.v1"

START_TIMEOUT = 10.0  # s until /healthz answers 200
STOP_TIMEOUT = 15.0   # s between SIGTERM and exit


# --------------------------------------------------------------------------
# small utilities

def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384,
           "HS512": hashlib.sha512}


def mint_jwt(secret=SECRET, sub="user", rooms=None, pub=None, ttl=60,
             exp=None, alg="HS256", iat=None, header=None, omit=(), **extra):
    """Mint a JWT. rooms/pub become the claims of the same name when not
    None; exp defaults to now + ttl (seconds); sub=None omits sub; names in
    omit are removed from the payload; extra claims are added as given.
    alg "none" gives an unsigned token (empty signature)."""
    now = int(time.time())
    payload = {}
    if sub is not None:
        payload["sub"] = sub
    payload["iat"] = now if iat is None else iat
    payload["exp"] = (now + ttl) if exp is None else exp
    # lists are copied; anything else is kept as given (to mint bad claims)
    if rooms is not None:
        payload["rooms"] = list(rooms) if isinstance(rooms, (list, tuple)) \
            else rooms
    if pub is not None:
        payload["pub"] = list(pub) if isinstance(pub, (list, tuple)) else pub
    payload.update(extra)
    for k in omit:
        payload.pop(k, None)
    hdr = {"alg": alg, "typ": "JWT"}
    if header:
        hdr.update(header)
    signing_input = b64url_json(hdr) + "." + b64url_json(payload)
    if alg == "none":
        return signing_input + "."
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    sig = hmac.new(key, signing_input.encode("ascii"), _HASHES[alg]).digest()
    return signing_input + "." + b64url(sig)


def tamper_signature(token):
    """Same header and payload, a different (wrong) signature."""
    head, payload, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    raw = bytes([raw[0] ^ 0x01]) + raw[1:]
    return head + "." + payload + "." + b64url(raw)


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns a truthy value; return it, or raise
    AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what} (last value {last!r})")
        time.sleep(interval)


# --------------------------------------------------------------------------
# Prometheus text

_METRIC_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(?:\s+\S+)?\s*$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text):
    """Prometheus text -> {"name{labels}" or "name": float}. Label sets are
    normalised (sorted by label name, no spaces) so lookups do not depend on
    the order the server writes them in."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _METRIC_RE.match(line)
        if not m:
            raise AssertionError(f"unparsable metrics line: {line!r}")
        name, labels, value = m.group(1), m.group(2), m.group(3)
        key = name
        if labels:
            pairs = sorted(_LABEL_RE.findall(labels))
            key = name + "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}"
        v = value.lower()
        if v in ("+inf", "inf"):
            fv = float("inf")
        elif v == "-inf":
            fv = float("-inf")
        elif v == "nan":
            fv = float("nan")
        else:
            fv = float(value)
        out[key] = fv
    return out


def mkey(name, **labels):
    """The key parse_prometheus() uses for name with labels."""
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{labels[k]}"'
                                 for k in sorted(labels)) + "}"


def metric(metrics, name, default=None, **labels):
    return metrics.get(mkey(name, **labels), default)


def metric_names(metrics):
    return {k.split("{", 1)[0] for k in metrics}


# --------------------------------------------------------------------------
# raw HTTP against the client port (to read 401 bodies and odd requests)

def raw_http(port, path="/ws", headers=None, upgrade=True, timeout=5.0,
             host="127.0.0.1", method="GET"):
    """Send one HTTP/1.1 request and return (status, headers dict with lower
    case names, body bytes). With upgrade=True it is a WebSocket upgrade."""
    hdrs = {"Host": f"{host}:{port}"}
    if upgrade:
        hdrs.update({
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
        })
    if headers:
        hdrs.update(headers)
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(req.encode("latin-1"))
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf:
            if time.monotonic() > deadline:
                raise AssertionError(f"no HTTP response head: {buf!r}")
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines or not lines[0].startswith("HTTP/1."):
            raise AssertionError(f"not an HTTP response: {buf[:200]!r}")
        status = int(lines[0].split()[1])
        rh = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                rh[k.strip().lower()] = v.strip()
        if status != 101:
            if "content-length" in rh:
                need = int(rh["content-length"])
                while len(body) < need and time.monotonic() < deadline:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                body = body[:need]
            elif rh.get("transfer-encoding", "").lower() == "chunked":
                while not body.endswith(b"0\r\n\r\n") and \
                        time.monotonic() < deadline:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                body = _dechunk(body)
            else:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                except socket.timeout:
                    pass
        return status, rh, body
    finally:
        s.close()


def _dechunk(body):
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def http_get(port, path, timeout=5.0, method="GET"):
    """(status, body bytes, headers) from the admin listener."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


# --------------------------------------------------------------------------
# running roomcastd

def flag_args(flags):
    """{"max_rooms": 3} -> ["--max-rooms", "3"]."""
    args = []
    for k, v in (flags or {}).items():
        args.append("--" + k.replace("_", "-"))
        if v is not None:
            args.append(str(v))
    return args


def clean_env(**overrides):
    """The environment for roomcastd: ours without any ROOMCAST_* variable
    (roomcastd reads ROOMCAST_<KEY> as config and refuses unknown ones, and
    ROOMCAST_CLI is set for the tests, not for it), plus overrides."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ROOMCAST_")}
    env.update(overrides)
    return env


def run_roomcastd(args, timeout=5.0, env=None):
    """Run roomcastd with args to completion; return (rc, stdout, stderr,
    seconds). Kills it and raises AssertionError when it outlives timeout."""
    t0 = time.monotonic()
    p = subprocess.Popen([ROOMCASTD] + list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE,
                         env=clean_env() if env is None else env,
                         stdin=subprocess.DEVNULL)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(
            f"roomcastd {args} still running after {timeout}s; stderr:\n"
            + err.decode(errors="replace")[-4000:])
    return (p.returncode, out.decode(errors="replace"),
            err.decode(errors="replace"), time.monotonic() - t0)


class Node:
    """One roomcastd process on free ports, logging into workdir."""

    def __init__(self, workdir, name="node1", secret=SECRET, flags=None,
                 env=None, args=None, with_defaults=True):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.secret = secret
        self.port = free_port()
        self.admin_port = free_port()
        self.flags = dict(flags or {})
        self.tls = "tls_cert" in self.flags or "tls-cert" in self.flags
        self.ws_path = self.flags.get("ws_path", self.flags.get("ws-path",
                                                                 "/ws"))
        self.log_path = self.workdir / f"{name}.log"
        self.proc = None
        self.returncode = None
        self.ssl_context = None  # set by TLS tests (trusts the test cert)
        self.with_defaults = with_defaults
        self.args = list(args or [])
        self._build_cmd()
        self.env = clean_env() if env is None else env

    def _build_cmd(self):
        self.cmd = [ROOMCASTD]
        if self.with_defaults:
            self.cmd += ["--listen", f"127.0.0.1:{self.port}",
                         "--admin-listen", f"127.0.0.1:{self.admin_port}",
                         "--jwt-secret", self.secret, "--node-id", self.name]
        self.cmd += flag_args(self.flags) + self.args

    # -- lifecycle
    def start(self, timeout=START_TIMEOUT):
        """Start and wait for /healthz. A port that free_port() found free
        can be taken by another process's outgoing connection before we
        bind it (parallel tests open thousands): then pick new ports and
        try again, a bounded number of times."""
        for attempt in range(3):
            try:
                return self._start(timeout)
            except AssertionError:
                if not (self.with_defaults and self.returncode is not None
                        and re.search(r"address (already )?in use",
                                      self.log_text())
                        and attempt < 2):
                    raise
                self._close_log()
                self.port, self.admin_port = free_port(), free_port()
                self._build_cmd()
                self.returncode = None

    def _start(self, timeout):
        if not os.path.exists(ROOMCASTD):
            raise AssertionError(f"roomcastd binary not found: {ROOMCASTD} "
                                 "(set ROOMCASTD)")
        self._log = open(self.log_path, "wb")
        self._log.write(("$ " + " ".join(self.cmd) + "\n").encode())
        self._log.flush()
        self.proc = subprocess.Popen(self.cmd, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise AssertionError(
                    f"roomcastd {self.name} exited with {rc} during start\n"
                    + self.log_tail())
            try:
                st, _, _ = http_get(self.admin_port, "/healthz", timeout=1.0)
                if st == 200:
                    return self
                last = st
            except (OSError, urllib.error.URLError) as e:
                last = e
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"roomcastd {self.name}: /healthz not 200 within "
                             f"{timeout}s (last: {last!r})\n"
                             + self.log_tail())

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Wait for the process to exit; return its code or None."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=STOP_TIMEOUT, expect=0):
        """SIGTERM, wait (bounded), assert the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.kill()
            raise AssertionError(f"roomcastd {self.name} did not exit within "
                                 f"{timeout}s of SIGTERM; killed\n"
                                 + self.log_tail())
        self._close_log()
        if expect is not None and rc != expect:
            raise AssertionError(f"roomcastd {self.name} exited with {rc}, "
                                 f"expected {expect}\n" + self.log_tail())
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.returncode = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def _close_log(self):
        f = getattr(self, "_log", None)
        if f is not None and not f.closed:
            f.close()

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=60):
        lines = self.log_text().splitlines()
        return (f"---- {self.log_path} (last {n} lines) ----\n"
                + "\n".join(lines[-n:]))

    # -- addresses
    def url(self, path=None, token=None, **query):
        scheme = "wss" if self.tls else "ws"
        u = f"{scheme}://127.0.0.1:{self.port}{path or self.ws_path}"
        q = {}
        if token is not None:
            q["token"] = token
        q.update(query)
        if q:
            u += "?" + urllib.parse.urlencode(q)
        return u

    def mint(self, sub="user", **kw):
        return mint_jwt(self.secret, sub, **kw)

    # -- admin
    def admin(self, path, method="GET"):
        return http_get(self.admin_port, path, method=method)

    def metrics(self):
        st, body, _ = self.admin("/metrics")
        assert st == 200, f"/metrics answered {st}"
        return parse_prometheus(body.decode("utf-8"))

    def stats(self):
        st, body, _ = self.admin("/stats")
        assert st == 200, f"/stats answered {st}"
        return json.loads(body)

    def readyz(self):
        return self.admin("/readyz")[0]

    def healthz(self):
        return self.admin("/healthz")[0]

    def wait_ready(self, timeout=10.0, want=200):
        """Poll /readyz until it answers want (with Redis: until the node
        is connected)."""
        return wait_until(lambda: self.readyz() == want, timeout,
                          what=f"{self.name} /readyz {want}")

    def m(self, name, default=0.0, **labels):
        """One metric's value now."""
        return metric(self.metrics(), name, default, **labels)



# --------------------------------------------------------------------------
# async WebSocket client helpers

def stop_nodes(nodes):
    """Stop every started node (SIGTERM, expecting its expect_exit, 0 by
    default), kill what lingers; return the shutdown problems found."""
    problems = []
    for n in nodes:
        try:
            if n.proc is not None:
                n.stop(expect=getattr(n, "expect_exit", 0))
        except AssertionError as e:
            problems.append(str(e))
        finally:
            n.kill()
    return problems


class Timeout(AssertionError):
    pass


def ws_kwargs(node=None, **kw):
    """Options every test client uses: no client pings (they would be frames
    the server counts), no compression, bounded handshakes."""
    opts = dict(compression=None, ping_interval=None, open_timeout=10,
                close_timeout=2, max_size=2 ** 24)
    if node is not None and node.tls:
        opts["ssl"] = node.ssl_context
    opts.update(kw)
    return opts


async def open_ws(node, token=None, via="header", subprotocols=(SUBPROTOCOL,),
                  path=None, query=None, headers=None, **kw):
    """Open a WebSocket (no auth frame, no welcome wait)."""
    hdrs = dict(headers or {})
    q = dict(query or {})
    if token is not None and via == "header":
        hdrs["Authorization"] = "Bearer " + token
    if token is not None and via == "query":
        q["token"] = token
    url = node.url(path=path, **q)
    ws = await websockets.connect(
        url, subprotocols=list(subprotocols) if subprotocols else None,
        extra_headers=hdrs or None, **ws_kwargs(node, **kw))
    _init_ws(ws)
    return ws


def _init_ws(ws):
    ws.rc_pending = collections.deque()
    ws.rc_ids = itertools.count(1)
    ws.rc_welcome = None


async def connect(node, token, via="header", subprotocols=(SUBPROTOCOL,),
                  path=None, timeout=5.0, auth_extra=None, **kw):
    """Connect with token given in the header, the query or an auth frame;
    return the websocket once `welcome` arrived (ws.rc_welcome)."""
    ws = await open_ws(node, token, via=via, subprotocols=subprotocols,
                       path=path, **kw)
    try:
        if via == "frame":
            frame = {"op": "auth", "token": token}
            frame.update(auth_extra or {})
            await send_json(ws, frame)
        w = await _recv_raw(ws, timeout)
        assert w.get("op") == "welcome", f"expected welcome, got {w!r}"
        ws.rc_welcome = w
        return ws
    except BaseException:
        await ws.close()
        raise


async def send_json(ws, obj):
    await ws.send(json.dumps(obj))


async def _recv_raw(ws, timeout):
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise Timeout(f"no frame within {timeout}s") from None
    assert isinstance(raw, str), f"expected a text frame, got {raw!r}"
    try:
        obj = json.loads(raw)
    except ValueError:
        raise AssertionError(f"server sent non-JSON text: {raw!r}")
    assert isinstance(obj, dict), f"server sent a non-object: {raw!r}"
    return obj


async def recv_json(ws, timeout=5.0):
    """Next frame (buffered ones first)."""
    if ws.rc_pending:
        return ws.rc_pending.popleft()
    return await _recv_raw(ws, timeout)


async def request(ws, op, timeout=5.0, **fields):
    """Send {"op":op,"id":<new>,...fields} and return the reply with that id,
    buffering every other frame for later."""
    rid = next(ws.rc_ids)
    frame = {"op": op, "id": rid}
    frame.update(fields)
    await send_json(ws, frame)
    return await wait_reply(ws, rid, timeout)


async def wait_reply(ws, rid, timeout=5.0):
    deadline = time.monotonic() + timeout
    for i, f in enumerate(ws.rc_pending):
        if f.get("id") == rid and f.get("op") in ("ok", "error"):
            del ws.rc_pending[i]
            return f
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout(f"no reply to id {rid} within {timeout}s; "
                          f"buffered: {list(ws.rc_pending)[:5]!r}")
        f = await _recv_raw(ws, left)
        if f.get("id") == rid and f.get("op") in ("ok", "error"):
            return f
        ws.rc_pending.append(f)


async def ok(ws, op, timeout=5.0, **fields):
    """request() that asserts an ok reply."""
    r = await request(ws, op, timeout=timeout, **fields)
    assert r.get("op") == "ok", f"{op} {fields!r}: expected ok, got {r!r}"
    return r


async def err(ws, op, code, timeout=5.0, **fields):
    """request() that asserts an error reply with code."""
    r = await request(ws, op, timeout=timeout, **fields)
    assert r.get("op") == "error" and r.get("code") == code, \
        f"{op} {fields!r}: expected error {code}, got {r!r}"
    assert isinstance(r.get("message"), str), f"error without message: {r!r}"
    return r


async def recv_msgs(ws, n, timeout=10.0, room=None):
    """Collect n `msg` frames (of room, when given); other frames stay
    buffered. Raises Timeout with what arrived."""
    got = []
    keep = collections.deque()
    while ws.rc_pending and len(got) < n:
        f = ws.rc_pending.popleft()
        if f.get("op") == "msg" and (room is None or f.get("room") == room):
            got.append(f)
        else:
            keep.append(f)
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(f"got {len(got)} of {n} msgs in {timeout}s; "
                              f"last: {got[-1:]!r}")
            f = await _recv_raw(ws, left)
            if f.get("op") == "msg" and (room is None
                                         or f.get("room") == room):
                got.append(f)
            else:
                keep.append(f)
    finally:
        keep.extend(ws.rc_pending)
        ws.rc_pending.clear()
        ws.rc_pending.extend(keep)
    return got


async def drain_frames(ws, wait):
    """Every frame arriving within `wait` seconds (buffered ones first)."""
    got = list(ws.rc_pending)
    ws.rc_pending.clear()
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return got
        try:
            got.append(await _recv_raw(ws, left))
        except Timeout:
            return got


async def assert_no_msgs(ws, wait=0.5):
    frames = await drain_frames(ws, wait)
    msgs = [f for f in frames if f.get("op") == "msg"]
    assert not msgs, f"expected no msg frames, got {msgs!r}"
    ws.rc_pending.extend(f for f in frames if f.get("op") != "msg")


async def expect_close(ws, timeout=5.0):
    """Read until the server closes; return (close code, frames before it).
    1006 means the TCP connection ended without a close frame."""
    frames = list(ws.rc_pending)
    ws.rc_pending.clear()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout(f"connection still open after {timeout}s; "
                          f"frames: {frames[-5:]!r}")
        try:
            raw = await asyncio.wait_for(ws.recv(), left)
        except asyncio.TimeoutError:
            continue
        except websockets.exceptions.ConnectionClosed as e:
            return (e.rcvd.code if e.rcvd is not None else 1006), frames
        try:
            frames.append(json.loads(raw))
        except (ValueError, TypeError):
            frames.append(raw)


async def close_all(wss):
    await asyncio.gather(*(w.close() for w in wss), return_exceptions=True)


def run(coro, timeout=60.0):
    """Run a coroutine with an overall bound."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


class Checks:
    """Soft assertions: record every failed check, fail once at the end, so
    one report names every mismatch of a scenario."""

    def __init__(self):
        self.problems = []

    def __call__(self, cond, what):
        if not cond:
            self.problems.append(what)
        return cond

    def done(self):
        assert not self.problems, "\n".join(self.problems)


# --------------------------------------------------------------------------
# Redis: a real redis-server per test, and a small RESP client (stdlib only)

REDIS_SERVER = (os.environ.get("REDIS_SERVER")
                or shutil.which("redis-server") or "/usr/bin/redis-server")
REDIS_CLI = (os.environ.get("REDIS_CLI")
             or shutil.which("redis-cli") or "/usr/bin/redis-cli")
PREFIX = "roomcast:"


class RespError(Exception):
    """An error reply from Redis (the connection is still usable)."""


class Resp:
    """A blocking RESP2 connection: enough for FCALL, PUBLISH, PUBSUB and
    SUBSCRIBE in tests. Raises OSError when the connection fails."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode("utf-8")
            elif not isinstance(a, bytes):
                a = str(a).encode("ascii")
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def send(self, *args):
        self.sock.sendall(self.encode(*args))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        """One reply: str for simple strings, int, bytes (bulk), list,
        None; an error reply is returned as a RespError instance."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"bad RESP reply: {line!r}")

    def call(self, *args):
        """Send one command and return its reply; raise RespError for an
        error reply."""
        self.send(*args)
        r = self.read()
        if isinstance(r, RespError):
            raise r
        return r


class RedisServer:
    """One redis-server on a loopback port, no persistence (--save '',
    --appendonly no), running in workdir; stopped by PID. restart() brings
    it back on the same port, empty. extra: more redis-server arguments
    (["--replicaof", "127.0.0.1 6379"], ...)."""

    def __init__(self, workdir, port=None, name="redis", extra=()):
        self.extra = [str(a) for a in extra]
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = port or free_port()
        self.log_path = self.workdir / f"{name}.log"
        self.proc = None
        self.starts = 0

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout=START_TIMEOUT):
        if not os.path.exists(REDIS_SERVER):
            raise AssertionError(f"redis-server not found: {REDIS_SERVER} "
                                 "(set REDIS_SERVER)")
        self.starts += 1
        cmd = [REDIS_SERVER, "--port", str(self.port),
               "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(self.workdir), "--daemonize", "no",
               "--protected-mode", "no", "--loglevel", "notice",
               "--logfile", str(self.log_path)] + self.extra
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"redis-server exited with {self.proc.returncode} "
                    f"during start (port {self.port})\n" + self.log_tail())
            try:
                with Resp(self.port, timeout=1.0) as c:
                    if c.call("PING") == "PONG":
                        return self
            except (OSError, RespError) as e:
                last = e
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"redis-server: no PONG within {timeout}s "
                             f"({last!r})\n" + self.log_tail())

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pause(self):
        """SIGSTOP by PID: a stalled Redis (the socket stays open, nothing
        answers). resume() is SIGCONT."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM by PID (nothing is saved), SIGKILL if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self):
        """SIGKILL by PID: a crash, as far as the nodes can tell."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def restart(self, kill=True, down_for=0.0, timeout=START_TIMEOUT):
        """Kill (or stop) it, wait down_for seconds, start it again on the
        same port: an empty Redis (no persistence)."""
        if kill:
            self.kill()
        else:
            self.stop()
        if down_for:
            time.sleep(down_for)
        return self.start(timeout=timeout)

    def cli(self, *args, check=True, timeout=10.0, stdin=None):
        """Run redis-cli against this server; return its stdout (str, one
        trailing newline removed). check: fail on a non-zero exit or an
        error reply."""
        p = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p",
                            str(self.port)] + [str(a) for a in args],
                           input=stdin, capture_output=True, text=True,
                           timeout=timeout)
        out = p.stdout[:-1] if p.stdout.endswith("\n") else p.stdout
        if check and (p.returncode != 0 or out.startswith("(error)")
                      or out.startswith("ERR")):
            raise AssertionError(f"redis-cli {args!r}: rc={p.returncode} "
                                 f"out={p.stdout!r} err={p.stderr!r}")
        return out

    def conn(self, timeout=5.0):
        return Resp(self.port, timeout=timeout)

    def call(self, *args):
        """One command on a fresh connection."""
        with self.conn() as c:
            return c.call(*args)

    def channels(self, pattern=PREFIX + "{*"):
        """PUBSUB CHANNELS pattern, as a set of str."""
        return {c.decode() for c in self.call("PUBSUB", "CHANNELS",
                                              pattern)}

    def log_tail(self, n=40):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return (f"---- {self.log_path} (last {n} lines) ----\n"
                + "\n".join(lines[-n:]))


def redis_flags(redis, **more):
    """roomcastd flags for a node on redis (plus more)."""
    flags = {"redis_url": redis.url, "key_prefix": PREFIX}
    flags.update(more)
    return flags


def run_cli(*args, env=None, timeout=15.0, stdin=None):
    """Run the roomcast CLI; return (rc, stdout, stderr)."""
    e = clean_env()
    e.update(env or {})
    p = subprocess.run([ROOMCAST_CLI] + [str(a) for a in args], input=stdin,
                       capture_output=True, text=True, timeout=timeout,
                       env=e)
    return p.returncode, p.stdout, p.stderr


# A publisher in its own process: `python3 harness.py publisher PORT ...`
# publishes durable messages {"k": k, "room": room} round-robin over the
# rooms with FCALL, one every interval seconds, until count attempts were
# made or SIGTERM. It reconnects and carries on when Redis fails; each
# attempt is one stdout line: "ok k room seq", or "err k room reason".

def publisher_main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="harness.py publisher")
    ap.add_argument("port", type=int)
    ap.add_argument("--rooms", required=True, help="comma separated")
    ap.add_argument("--count", type=int, default=0, help="0: until SIGTERM")
    ap.add_argument("--interval", type=float, default=0.005)
    ap.add_argument("--first-k", type=int, default=0)
    a = ap.parse_args(argv)
    rooms = a.rooms.split(",")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    conn = None
    k = a.first_k
    attempts = 0
    out = sys.stdout
    while not stop and (a.count == 0 or attempts < a.count):
        room = rooms[attempts % len(rooms)]
        attempts += 1
        data = json.dumps({"k": k, "room": room}, separators=(",", ":"))
        try:
            if conn is None:
                conn = Resp(a.port, timeout=2.0)
            seq = conn.call("FCALL", "roomcast_publish", "1", room, data)
            out.write(f"ok {k} {room} {seq}\n")
            out.flush()
        except (OSError, ConnectionError, RespError) as e:
            out.write(f"err {k} {room} {type(e).__name__}:"
                      f"{str(e).replace(' ', '_')[:80]}\n")
            out.flush()
            if conn is not None and not isinstance(e, RespError):
                conn.close()
                conn = None
            time.sleep(0.02)
        k += 1
        if a.interval:
            time.sleep(a.interval)
    out.flush()
    return 0


class Publisher:
    """The publisher process above, started and stopped by the test."""

    def __init__(self, port, rooms, count=0, interval=0.005, first_k=0):
        self.cmd = [sys.executable, os.path.abspath(__file__), "publisher",
                    str(port), "--rooms", ",".join(rooms), "--count",
                    str(count), "--interval", str(interval), "--first-k",
                    str(first_k)]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        self.lines = None
        self.stderr = ""

    def stop(self, timeout=10.0):
        """SIGTERM, then its results: a list of (status, k, room, seq or
        reason)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout=30.0):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"publisher still running after "
                                 f"{timeout}s; stderr: {err[-2000:]}")
        self.stderr = err
        if self.proc.returncode != 0:
            raise AssertionError(f"publisher exited {self.proc.returncode}"
                                 f": {err[-2000:]}")
        self.lines = []
        for ln in out.splitlines():
            st, k, room, rest = ln.split(" ", 3)
            self.lines.append((st, int(k), room,
                               int(rest) if st == "ok" else rest))
        return self.lines

    def accepted(self, room=None):
        """[(k, room, seq)] of the publishes Redis answered with a seq."""
        return [(k, r, s) for st, k, r, s in self.lines
                if st == "ok" and (room is None or r == room)]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "publisher":
        sys.exit(publisher_main(sys.argv[2:]))
    print("usage: harness.py publisher PORT --rooms R1,R2 [--count N] "
          "[--interval S] [--first-k K]", file=sys.stderr)
    sys.exit(2)
