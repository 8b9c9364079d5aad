# A real Redis Cluster for integration tests: 3 masters and 3 replicas of
# redis-server --cluster-enabled yes on free loopback ports (each port and
# its cluster bus port, port + 10000, free) in a temp dir, created with
# `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`,
# waited for (cluster_state:ok on every node, one slot map), and stopped by
# PID. The C twin is tests/adapter/cluster_server.c.
#
#     with RedisCluster(tmp_path) as cl:
#         url = cl.url                      # redis-cluster://h:p,h:p,...
#         owner = cl.owner_of(cl.keyslot("roomcast:{lobby}"))
#         cl.move_slot(slot, src_port, dst_port)         # MOVED from now on
#         cl.kill(owner); cl.wait_failover(owner)         # replica promoted
# SPDX-License-Identifier: MIT
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

from harness import REDIS_CLI, REDIS_SERVER, Resp, RespError

NODES = 6  # 3 masters (the first three), 3 replicas


def _port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def cluster_ports(n=NODES, taken=()):
    """n ports whose bus ports (+10000) are free too, below the usual
    ephemeral range so neither meets an outgoing connection."""
    out = []
    for _ in range(5000):
        p = random.randrange(20000, 32000)
        if p in out or p in taken:
            continue
        if _port_free(p) and _port_free(p + 10000):
            out.append(p)
            if len(out) == n:
                return out
    raise AssertionError("no free cluster ports")


class RedisCluster:
    def __init__(self, workdir, node_timeout_ms=2000, name="cluster"):
        self.dir = Path(workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.node_timeout_ms = node_timeout_ms
        self.ports = []
        self.procs = {}  # port -> Popen
        self.ids = {}    # port -> node id

    # ---------------------------------------------------------- lifecycle

    @property
    def url(self):
        return "redis-cluster://" + ",".join(
            f"127.0.0.1:{p}" for p in self.ports)

    def start(self, timeout=30.0):
        self.ports = cluster_ports()
        try:
            for p in self.ports:
                self._spawn(p)
            for p in self.ports:
                self._wait_ping(p)
                self.ids[p] = self.call(p, "CLUSTER", "MYID").decode()
            cmd = [REDIS_CLI, "--cluster", "create"]
            cmd += [f"127.0.0.1:{p}" for p in self.ports]
            cmd += ["--cluster-replicas", "1", "--cluster-yes"]
            r = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=timeout)
            if r.returncode != 0:
                raise AssertionError(f"cluster create failed: {r.stdout}"
                                     f"{r.stderr}")
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, port):
        log = open(self.dir / f"redis-{port}.log", "ab")
        try:
            self.procs[port] = subprocess.Popen(
                [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                 "--daemonize", "no", "--protected-mode", "no",
                 "--cluster-enabled", "yes",
                 "--cluster-config-file", f"nodes-{port}.conf",
                 "--cluster-node-timeout", str(self.node_timeout_ms),
                 "--cluster-require-full-coverage", "no",
                 "--repl-diskless-sync-delay", "0"],
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT)
        finally:
            log.close()

    def _wait_ping(self, port, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if self.call(port, "PING") == "PONG":
                    return
            except (OSError, RespError):
                pass
            time.sleep(0.02)
        raise AssertionError(f"redis-server on {port}: no PONG")

    def running(self, port):
        pr = self.procs.get(port)
        return pr is not None and pr.poll() is None

    def stop(self):
        """SIGKILL every server still running, by PID (SIGCONT first for a
        stopped one)."""
        for port in list(self.procs):
            self.kill(port)

    def kill(self, port):
        pr = self.procs.pop(port, None)
        if pr is None or pr.poll() is not None:
            return
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pr.pid, sig)
            except ProcessLookupError:
                pass
        pr.wait(timeout=10)

    def pause(self, port):
        os.kill(self.procs[port].pid, signal.SIGSTOP)

    def resume(self, port):
        os.kill(self.procs[port].pid, signal.SIGCONT)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------- queries

    @staticmethod
    def call(port, *args, timeout=2.0):
        with Resp(port, timeout=timeout) as c:
            return c.call(*args)

    def live(self):
        return [p for p in self.ports if self.running(p)]

    def node_ok(self, port):
        try:
            info = self.call(port, "CLUSTER", "INFO").decode()
        except (OSError, RespError):
            return False
        return ("cluster_state:ok" in info
                and "cluster_slots_ok:16384" in info)

    def slot_map(self, port):
        """{slot range (a, b): master port} as port sees it."""
        out = {}
        for e in self.call(port, "CLUSTER", "SLOTS"):
            out[(e[0], e[1])] = e[2][1]
        return out

    def owner_of(self, slot, via=None):
        for (a, b), m in self.slot_map(via or self.live()[0]).items():
            if a <= slot <= b:
                return m
        return None

    def keyslot(self, key):
        return self.call(self.live()[0], "CLUSTER", "KEYSLOT", key)

    def masters(self):
        out = []
        for p in self.live():
            try:
                if self.call(p, "ROLE")[0] == b"master":
                    out.append(p)
            except (OSError, RespError):
                pass
        return sorted(out)

    def wait_ok(self, timeout=30.0):
        """Every running node: cluster_state:ok, and one slot map."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                live = self.live()
                if all(self.node_ok(p) for p in live):
                    maps = [self.slot_map(p) for p in live]
                    if all(m == maps[0] for m in maps):
                        return
            except (OSError, RespError):
                pass
            time.sleep(0.1)
        raise AssertionError("cluster not ok within %.0fs" % timeout)

    def wait_failover(self, dead_port, timeout=20.0):
        """Until a replica replaced the (killed) master dead_port: no live
        node names it as the owner of any slot."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                live = self.live()
                if all(dead_port not in self.slot_map(p).values()
                       for p in live) and all(self.node_ok(p)
                                              for p in live):
                    return
            except (OSError, RespError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"no failover of {dead_port} in {timeout}s")

    # ------------------------------------------------------- moving slots

    def begin_move(self, slot, src, dst):
        """SETSLOT IMPORTING on dst, MIGRATING on src."""
        self.call(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", self.ids[src])
        self.call(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", self.ids[dst])

    def migrate_keys(self, slot, src, dst, limit=None):
        """MIGRATE the slot's keys from src to dst, key by key (all of them,
        or the first limit). Returns how many moved."""
        moved = 0
        while limit is None or moved < limit:
            keys = self.call(src, "CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            for k in keys[:None if limit is None else limit - moved]:
                self.call(src, "MIGRATE", "127.0.0.1", dst, k, 0, 5000,
                          timeout=10.0)
                moved += 1
        return moved

    def finish_move(self, slot, dst):
        """SETSLOT NODE dst: on dst first, then on every other master."""
        self.call(dst, "CLUSTER", "SETSLOT", slot, "NODE", self.ids[dst])
        for p in self.masters():
            if p != dst:
                self.call(p, "CLUSTER", "SETSLOT", slot, "NODE",
                          self.ids[dst])

    def move_slot(self, slot, src, dst):
        """The whole move, as redis-cli --cluster reshard does it."""
        self.begin_move(slot, src, dst)
        self.migrate_keys(slot, src, dst)
        self.finish_move(slot, dst)
