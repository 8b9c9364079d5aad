# A real Redis Sentinel setup for integration tests: one redis-server master,
# one replica and three redis-sentinel processes (quorum 2,
# down-after-milliseconds 1000, failover-timeout 5000), each on a free
# loopback port, in a temp dir, no persistence; stopped by PID. And a
# publisher process that follows the master through the sentinels and
# confirms each durable publish with WAIT.
# SPDX-License-Identifier: MIT
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import (REDIS_SERVER, RedisServer, Resp,
                     RespError, free_port, wait_until)

REDIS_SENTINEL = os.environ.get("REDIS_SENTINEL") or "/usr/bin/redis-sentinel"
MASTER_NAME = "rcm"
NSENTINELS = 3

# The master refuses writes once it has had no replica acknowledging for
# MAX_LAG seconds: an old master cut off by a failover stops numbering
# messages (that would be lost) within that time, not after the ~10 s until
# Sentinel demotes it. Replicas send REPLCONF ACK every second, so the lag
# reads 0 or 1 while all is well.
MIN_REPLICAS = 1
MAX_LAG = 2


def _resp_call(port, *args, timeout=1.0):
    """One command on a fresh connection; None when nothing answers."""
    try:
        with Resp(port, timeout=timeout) as c:
            return c.call(*args)
    except (OSError, ConnectionError, RespError):
        return None


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


class Sentinel:
    """One redis-sentinel process with its own config file (Sentinel
    rewrites it)."""

    def __init__(self, workdir, port, master_port, name):
        self.workdir = Path(workdir)
        self.port = port
        self.name = name
        self.conf = self.workdir / f"{name}.conf"
        self.log_path = self.workdir / f"{name}.log"
        self.conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndaemonize no\n"
            f"dir {self.workdir}\nlogfile {self.log_path}\n"
            "sentinel resolve-hostnames no\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n")
        self.proc = None

    def start(self):
        cmd = [REDIS_SENTINEL, str(self.conf)]
        if not os.path.exists(REDIS_SENTINEL):
            cmd = [REDIS_SERVER, str(self.conf), "--sentinel"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        return self

    def call(self, *args):
        return _resp_call(self.port, *args)

    def master_port(self):
        r = self.call("SENTINEL", "get-master-addr-by-name", MASTER_NAME)
        if isinstance(r, list) and len(r) == 2:
            return int(_s(r[1]))
        return None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)

    def log_tail(self, n=30):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"---- {self.log_path} ----\n" + "\n".join(lines[-n:])


class SentinelEnv:
    """Master + replica + NSENTINELS sentinels. .url is the
    redis-sentinel:// URL of roomcastd's redis_url; .master / .replica are
    RedisServer objects (swapped by nothing: ask master_port())."""

    def __init__(self, workdir, min_replicas=MIN_REPLICAS, max_lag=MAX_LAG,
                 replicas=1):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        guard = ["--min-replicas-to-write", str(min_replicas),
                 "--min-replicas-max-lag", str(max_lag)] \
            if min_replicas else []
        common = ["--repl-diskless-sync-delay", "0"]
        self.master = RedisServer(self.workdir, name="master",
                                  extra=common + guard)
        self.replicas = [RedisServer(
            self.workdir, name=f"replica{i}" if i else "replica",
            extra=common + guard
            + ["--replicaof", f"127.0.0.1 {self.master.port}"])
            for i in range(replicas)]
        self.replica = self.replicas[0]
        self.sentinels = [Sentinel(self.workdir, free_port(),
                                   self.master.port, f"sentinel{i}")
                          for i in range(NSENTINELS)]
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        self.url = f"redis-sentinel://{hosts}#{MASTER_NAME}"
        self.servers = [self.master] + self.replicas

    @property
    def rc_redis(self):
        """What conftest attaches to a failing test's report."""
        return self.servers + self.sentinels

    def start(self, timeout=30.0):
        t0 = time.monotonic()
        self.master.start()
        for r in self.replicas:
            r.start()
        wait_until(lambda: all(self.synced(r.port) for r in self.replicas),
                   10, what="replicas in sync")
        for s in self.sentinels:
            s.start()
        wait_until(lambda: self.agree(self.master.port,
                                      [r.port for r in self.replicas]),
                   timeout, interval=0.2, what="sentinels agree")
        self.setup_s = time.monotonic() - t0
        return self

    def stop(self):
        for s in self.sentinels:
            s.stop()
        for r in self.servers:
            r.kill()

    # -- state
    def by_port(self, port):
        for r in self.servers:
            if r.port == port:
                return r
        return None

    @staticmethod
    def role(port):
        r = _resp_call(port, "ROLE")
        return _s(r[0]) if isinstance(r, list) and r else None

    @staticmethod
    def synced(port):
        info = _resp_call(port, "INFO", "replication")
        return info is not None and b"master_link_status:up" in info

    def master_port(self):
        """The master most sentinels name (None without a majority)."""
        votes = {}
        for s in self.sentinels:
            p = s.master_port()
            if p:
                votes[p] = votes.get(p, 0) + 1
        best = max(votes.items(), key=lambda kv: kv[1], default=(None, 0))
        return best[0] if best[1] >= 2 else None

    def agree(self, master_port, replica_ports):
        """Every sentinel names master_port, sees every port of
        replica_ports as a healthy replica, and knows the other
        sentinels."""
        for s in self.sentinels:
            if s.master_port() != master_port:
                return False
            reps = s.call("SENTINEL", "replicas", MASTER_NAME) or []
            healthy = set()
            for kv in reps:
                d = {_s(kv[i]): _s(kv[i + 1]) for i in range(0, len(kv), 2)}
                if d.get("flags") == "slave" and \
                        d.get("master-link-status") == "ok":
                    healthy.add(int(d.get("port", 0)))
            if not set(replica_ports) <= healthy:
                return False
            peers = s.call("SENTINEL", "sentinels", MASTER_NAME)
            if not isinstance(peers, list) or len(peers) != NSENTINELS - 1:
                return False
        return True

    def restart_as_replica(self, port, master_port):
        """Start the (dead) server of port again, empty, as a replica of
        master_port (Sentinel then counts it as one)."""
        old = self.by_port(port)
        old.kill()
        extra = [x for x in old.extra]
        if "--replicaof" in extra:
            i = extra.index("--replicaof")
            del extra[i:i + 2]
        new = RedisServer(self.workdir, port=port, name=old.name + "-again",
                          extra=extra + ["--replicaof",
                                         f"127.0.0.1 {master_port}"])
        self.servers[self.servers.index(old)] = new
        new.start()
        return new

    def failover(self, timeout=15.0):
        """SENTINEL FAILOVER (graceful); retried while a sentinel answers
        NOGOODSLAVE. Returns the port that was master."""
        old = self.master_port()
        deadline = time.monotonic() + timeout
        while True:
            r = self.sentinels[0].call("SENTINEL", "FAILOVER", MASTER_NAME)
            if r == "OK":
                return old
            if time.monotonic() > deadline:
                raise AssertionError(f"SENTINEL FAILOVER refused: {r!r}")
            time.sleep(0.1)

    def wait_new_master(self, old_port, timeout=20.0):
        """Until a majority names another master whose ROLE says master;
        returns its port."""
        def new():
            p = self.master_port()
            return p if p and p != old_port and self.role(p) == "master" \
                else None
        return wait_until(new, timeout, interval=0.05,
                          what="a new master")

    def log_tails(self):
        return "\n".join([r.log_tail(30) for r in self.servers]
                         + [s.log_tail(30) for s in self.sentinels])


# --------------------------------------------------------------------------
# A publisher that follows the master: `python3 sentinel_env.py publisher
# SPORT1,SPORT2,... --rooms R1,R2 [--wait N] [--wait-ms T]`. It asks the
# sentinels for the master (confirmed by ROLE) before every publish round
# of 100 ms and after every error, publishes {"k": k, "room": room} with
# FCALL, then WAIT N T when --wait N > 0. One stdout line per attempt:
# "ok k room seq acked t" (acked: WAIT reached N replicas, or 1 without
# --wait; t: time.monotonic() after the reply), or "err k room reason".

def _find_master(sports):
    for sp in sports:
        r = _resp_call(sp, "SENTINEL", "get-master-addr-by-name", MASTER_NAME,
                       timeout=0.5)
        if not isinstance(r, list) or len(r) != 2:
            continue
        port = int(_s(r[1]))
        role = _resp_call(port, "ROLE", timeout=0.5)
        if isinstance(role, list) and role and _s(role[0]) == "master":
            return port
    return None


def publisher_main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="sentinel_env.py publisher")
    ap.add_argument("sentinels")
    ap.add_argument("--rooms", required=True)
    ap.add_argument("--interval", type=float, default=0.005)
    ap.add_argument("--wait", type=int, default=0)
    ap.add_argument("--wait-ms", type=int, default=200)
    a = ap.parse_args(argv)
    sports = [int(p) for p in a.sentinels.split(",")]
    rooms = a.rooms.split(",")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    conn, port, asked = None, None, 0.0
    k = 0
    out = sys.stdout
    while not stop:
        room = rooms[k % len(rooms)]
        data = json.dumps({"k": k, "room": room}, separators=(",", ":"))
        try:
            if conn is None or time.monotonic() - asked > 0.1:
                asked = time.monotonic()
                p = _find_master(sports)
                if p is None:
                    raise ConnectionError("no master")
                if p != port or conn is None:
                    if conn is not None:
                        conn.close()
                    conn, port = Resp(p, timeout=2.0), p
            seq = conn.call("FCALL", "roomcast_publish", "1", room, data)
            acked = 1
            if a.wait > 0:
                n = conn.call("WAIT", str(a.wait), str(a.wait_ms))
                acked = 1 if n >= a.wait else 0
            out.write(f"ok {k} {room} {seq} {acked} {time.monotonic():.4f}\n")
        except (OSError, ConnectionError, RespError) as e:
            out.write(f"err {k} {room} {type(e).__name__}:"
                      f"{str(e).replace(' ', '_')[:80]}\n")
            if not isinstance(e, RespError) and conn is not None:
                conn.close()
                conn = None
            time.sleep(0.02)
        out.flush()
        k += 1
        if a.interval:
            time.sleep(a.interval)
    return 0


class SentinelPublisher:
    """The publisher above, started and stopped (by PID) by the test."""

    def __init__(self, env, rooms, wait=1, wait_ms=200, interval=0.005):
        self.cmd = [sys.executable, os.path.abspath(__file__), "publisher",
                    ",".join(str(s.port) for s in env.sentinels),
                    "--rooms", ",".join(rooms), "--wait", str(wait),
                    "--wait-ms", str(wait_ms), "--interval", str(interval)]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        self.lines = []

    def stop(self, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"publisher still running: {err[-2000:]}")
        if self.proc.returncode != 0:
            raise AssertionError(f"publisher exited {self.proc.returncode}"
                                 f": {err[-2000:]}")
        for ln in out.splitlines():
            parts = ln.split(" ")
            if parts[0] == "ok":
                self.lines.append(("ok", int(parts[1]), parts[2],
                                   int(parts[3]), parts[4] == "1",
                                   float(parts[5])))
            else:
                self.lines.append(("err", int(parts[1]), parts[2],
                                   " ".join(parts[3:]), False, None))
        return self.lines

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "publisher":
        sys.exit(publisher_main(sys.argv[2:]))
    print("usage: sentinel_env.py publisher SPORTS --rooms R1,R2 "
          "[--wait N] [--wait-ms T]", file=sys.stderr)
    sys.exit(2)
