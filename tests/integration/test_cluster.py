# roomcastd on a real Redis Cluster (cluster.py: 3 masters, 3 replicas) with
# redis_url = redis-cluster://...: fan-out across two nodes on sharded
# pub/sub (PUBSUB SHARDNUMSUB per master, no classic room subscriptions), a
# slot with busy rooms moved under publish load step by step (publishes
# meet the half-moved slot: ASK) and with `redis-cli --cluster reshard`, a
# master SIGKILLed under load with its replica promoted, the roomcast CLI
# (publish, nodes, drain) on the cluster, and the old two-key room layout's
# migration failure (BUSYKEY) that the one-key stream layout removes.
# Each load test checks that every durable message acknowledged reaches
# every member once and in order, and that every request gets one reply.
# SPDX-License-Identifier: MIT
import asyncio
import binascii
import json
import subprocess
import threading
import time

import pytest

from cluster import RedisCluster
from harness import (PREFIX, REDIS_CLI, Resp, RespError, Timeout, connect, ok,
                     recv_json, request, run, run_cli)

ALL = dict(rooms=["*"], pub=["*"])
M_RESYNCS = "roomcast_redis_resyncs_total"


def chan(room):
    return f"{PREFIX}{{{room}}}"


def slot_of(key):
    """Redis's key slot: CRC16/XMODEM of the hash tag, mod 16384."""
    b = key.encode()
    s = b.find(b"{")
    if s >= 0:
        e = b.find(b"}", s + 1)
        if e > s + 1:
            b = b[s + 1:e]
    return binascii.crc_hqx(b, 0) % 16384


def rooms_in_one_slot(n, prefix="busy", pred=lambda slot: True):
    """n room names whose keys share one slot (that pred accepts)."""
    buckets = {}
    for i in range(200000):
        room = f"{prefix}{i}"
        s = slot_of(chan(room))
        if not pred(s):
            continue
        b = buckets.setdefault(s, [])
        b.append(room)
        if len(b) == n:
            return s, b
    raise AssertionError("no slot with enough rooms")


# ----------------------------------------------------------- publisher


class ClusterPublisher(threading.Thread):
    """A backend publishing durably the way a cluster-aware client does:
    FCALL roomcast_publish 1 P{room} <data> to the slot's master, following
    MOVED (map updated), ASK (ASKING on the target, once) and TRYAGAIN.
    With wait, a publish counts as acknowledged only once WAIT says that
    many replicas have it (a failover may drop what only the master had).
    """

    def __init__(self, seeds, rooms, interval=0.005, wait=0):
        super().__init__(daemon=True)
        self.seeds = list(seeds)
        self.rooms = rooms
        self.interval = interval
        self.wait = wait
        self.map = {}
        self.conns = {}
        self.acked = {r: [] for r in rooms}
        # ran (a seq came back) but WAIT found too few replicas: (t, seq)
        self.unreplicated = {r: [] for r in rooms}
        self.errors = []
        self.asks = self.moved = self.tryagain = 0
        self.halt = threading.Event()
        self.refresh()

    def refresh(self):
        for p in list(self.conns) + self.seeds:
            try:
                slots = RedisCluster.call(p, "CLUSTER", "SLOTS", timeout=1.0)
            except (OSError, RespError):
                continue
            m = {}
            for e in slots:
                for s in range(e[0], e[1] + 1):
                    m[s] = e[2][1]
            self.map = m
            return

    def conn(self, port):
        c = self.conns.get(port)
        if c is None:
            c = self.conns[port] = Resp(port, timeout=2.0)
        return c

    def drop(self, port):
        c = self.conns.pop(port, None)
        if c is not None:
            c.close()

    def publish(self, room, data):
        key = chan(room)
        slot = slot_of(key)
        port = self.map.get(slot)
        asking = False
        for _ in range(50):
            if port is None:
                time.sleep(0.05)
                self.refresh()
                port = self.map.get(slot)
                continue
            try:
                c = self.conn(port)
                if asking:
                    c.call("ASKING")
                seq = c.call("FCALL", "roomcast_publish", "1", key, data)
                if self.wait and c.call("WAIT", self.wait, 100) < self.wait:
                    self.unreplicated[room].append((time.monotonic(), seq))
                    return None, "not replicated"
                return seq, None
            except RespError as e:
                msg = str(e)
                if msg.startswith("MOVED "):
                    self.moved += 1
                    port = int(msg.split()[2].rsplit(":", 1)[1])
                    self.map[slot] = port
                    asking = False
                    continue
                if msg.startswith("ASK "):
                    self.asks += 1
                    port = int(msg.split()[2].rsplit(":", 1)[1])
                    asking = True
                    continue
                if msg.startswith(("TRYAGAIN", "CLUSTERDOWN", "LOADING")):
                    self.tryagain += 1
                    time.sleep(0.02)
                    asking = False
                    port = self.map.get(slot)
                    continue
                return None, msg
            except OSError as e:
                # May have run: not acknowledged, and never sent again.
                self.drop(port)
                time.sleep(0.05)
                self.refresh()
                return None, f"io: {e}"
        return None, "too many redirects"

    def run(self):
        k = 0
        while not self.halt.is_set():
            room = self.rooms[k % len(self.rooms)]
            data = json.dumps({"k": k, "room": room}, separators=(",", ":"))
            seq, why = self.publish(room, data)
            if seq is not None:
                self.acked[room].append(seq)
            else:
                self.errors.append(why)
            k += 1
            if self.interval:
                time.sleep(self.interval)

    def stop(self):
        self.halt.set()
        self.join(30)
        assert not self.is_alive()
        for p in list(self.conns):
            self.drop(p)

    def total(self):
        return sum(len(v) for v in self.acked.values())


# ------------------------------------------------------------- members


class Member:
    """A WebSocket client on a node, joined to rooms, collecting msgs."""

    def __init__(self, node, name, rooms):
        self.node, self.name, self.rooms = node, name, rooms
        self.msgs = []
        self.ws = None
        self.task = None

    async def start(self):
        self.ws = await connect(self.node, self.node.mint(self.name, **ALL))
        for room in self.rooms:
            await ok(self.ws, "join", room=room, timeout=10)
        self.task = asyncio.ensure_future(self._read())

    async def _read(self):
        while True:
            try:
                f = await recv_json(self.ws, timeout=0.5)
            except Timeout:
                continue
            if f.get("op") == "msg":
                self.msgs.append(f)

    def seqs(self, room):
        return [f["seq"] for f in self.msgs
                if f["room"] == room and "seq" in f]

    def has_all(self, acked):
        return all(set(v) <= set(self.seqs(r)) for r, v in acked.items())

    async def close(self):
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
        if self.ws:
            await self.ws.close()


async def wait_delivered(members, acked, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(m.has_all(acked) for m in members):
            return
        await asyncio.sleep(0.1)


def check_delivery(members, acked):
    """Every acknowledged durable message reached every member once, in
    order (and nothing arrived twice or out of order)."""
    for m in members:
        for room, want in acked.items():
            got = m.seqs(room)
            assert len(got) == len(set(got)), \
                f"{m.name} {room}: duplicates"
            assert got == sorted(got), f"{m.name} {room}: out of order"
            missing = sorted(set(want) - set(got))
            assert not missing, \
                f"{m.name} {room}: {len(missing)} acked missing: " \
                f"{missing[:5]} (got {len(got)}, acked {len(want)})"


class WsPublisher:
    """Publishes through a node's WebSocket (the gateway's own durable
    publish path on the cluster); every request must get one reply."""

    def __init__(self, node, room):
        self.node, self.room = node, room
        self.acked, self.errors, self.sent = [], [], 0
        self.halt = False

    async def run(self):
        ws = await connect(self.node, self.node.mint("wspub", **ALL))
        k = 0
        while not self.halt:
            self.sent += 1
            r = await request(ws, "publish", room=self.room,
                              data={"ws": k}, timeout=15)
            if r["op"] == "ok":
                self.acked.append(r["seq"])
            else:
                self.errors.append(r.get("code"))
            k += 1
            await asyncio.sleep(0.02)
        await ws.close()


# ------------------------------------------------------------ fixtures


@pytest.fixture
def cl(tmp_path, request):
    c = RedisCluster(tmp_path, node_timeout_ms=1000)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def cnodes(cl, nodes):
    def factory(name, **more):
        flags = {"redis_url": cl.url, "key_prefix": PREFIX,
                 "history_size": 5000}
        flags.update(more)
        n = nodes(flags=flags, name=name)
        n.wait_ready(20)
        return n
    return factory


def shardnumsub(cl, port, rooms):
    r = cl.call(port, "PUBSUB", "SHARDNUMSUB", *[chan(x) for x in rooms])
    return {r[i].decode(): r[i + 1] for i in range(0, len(r), 2)}


# --------------------------------------------------------------- tests


def test_fanout_across_nodes_on_sharded_pubsub(cl, cnodes):
    a, b = cnodes("A"), cnodes("B")
    rooms = [f"fan{i}" for i in range(12)]
    owners = {r: cl.owner_of(slot_of(chan(r))) for r in rooms}
    assert len(set(owners.values())) == 3, owners  # every shard has rooms

    async def main():
        members = [Member(a, "ma", rooms), Member(b, "mb", rooms)]
        for m in members:
            await m.start()
        # Each master holds the sharded subscriptions of its own rooms,
        # one per node; nobody subscribes to a room the classic way.
        for p in cl.masters():
            mine = [r for r in rooms if owners[r] == p]
            counts = shardnumsub(cl, p, rooms)
            for r in rooms:
                assert counts[chan(r)] == (2 if r in mine else 0), \
                    (p, r, counts)
            classic = cl.call(p, "PUBSUB", "NUMSUB",
                              *[chan(r) for r in rooms])
            assert all(classic[i] == 0 for i in range(1, len(classic), 2))
            assert not [c for c in cl.call(p, "PUBSUB", "CHANNELS")
                        if c.decode().startswith(PREFIX + "{")]
        pub = ClusterPublisher(cl.ports, rooms, interval=0.002)
        wsp = WsPublisher(a, rooms[0])
        wtask = asyncio.ensure_future(wsp.run())
        pub.start()
        await asyncio.sleep(2.0)
        pub.stop()
        wsp.halt = True
        await asyncio.wait_for(wtask, 20)
        assert pub.total() > 100 and not pub.errors, pub.errors[:5]
        assert len(wsp.acked) == wsp.sent and wsp.sent > 10, wsp.errors
        acked = dict(pub.acked)
        acked[rooms[0]] = sorted(acked[rooms[0]] + wsp.acked)
        await wait_delivered(members, acked)
        check_delivery(members, acked)
        # an ephemeral SPUBLISH on the owner reaches both nodes' members
        n0 = [len(m.msgs) for m in members]
        assert cl.call(owners[rooms[1]], "SPUBLISH", chan(rooms[1]),
                       '{"typing":1}') == 2
        await asyncio.sleep(0.5)
        assert [len(m.msgs) for m in members] == [x + 1 for x in n0]
        for m in members:
            await m.close()

    run(main(), 90)


def move_under_load(cl, cnodes, mover):
    """Busy rooms in one slot, members on two nodes, a backend publisher
    and a WebSocket publisher running while mover(slot, src, dst) moves
    the slot. Returns the publisher (for its redirect counts)."""
    a, b = cnodes("A"), cnodes("B")
    slot, rooms = rooms_in_one_slot(3, pred=lambda s: s < 100)
    others = [f"calm{i}" for i in range(3)]
    src = cl.owner_of(slot)
    dst = [m for m in cl.masters() if m != src][0]
    out = {}

    async def main():
        members = [Member(a, "ma", rooms + others),
                   Member(b, "mb", rooms + others)]
        for m in members:
            await m.start()
        pub = ClusterPublisher(cl.ports, rooms + others, interval=0.002)
        wsp = WsPublisher(b, rooms[0])
        wtask = asyncio.ensure_future(wsp.run())
        pub.start()
        await asyncio.sleep(1.0)
        resyncs0 = a.m(M_RESYNCS) + b.m(M_RESYNCS)
        await asyncio.get_event_loop().run_in_executor(
            None, mover, slot, src, dst)
        await asyncio.sleep(1.5)
        pub.stop()
        wsp.halt = True
        await asyncio.wait_for(wtask, 30)
        assert cl.owner_of(slot) == dst
        assert not pub.errors, pub.errors[:5]
        assert len(wsp.acked) == wsp.sent, wsp.errors
        acked = dict(pub.acked)
        acked[rooms[0]] = sorted(acked[rooms[0]] + wsp.acked)
        await wait_delivered(members, acked)
        check_delivery(members, acked)
        # the rooms now live on dst, subscribed there by both nodes
        counts = shardnumsub(cl, dst, rooms)
        assert all(counts[chan(r)] == 2 for r in rooms), counts
        assert all(v == 0 for v in shardnumsub(cl, src, rooms).values())
        # each node resubscribed and resynced the moved rooms
        assert a.m(M_RESYNCS) + b.m(M_RESYNCS) >= resyncs0 + 2 * len(rooms)
        print(f"moved: acked {pub.total()} backend + {len(wsp.acked)} ws, "
              f"ASK {pub.asks}, MOVED {pub.moved}, TRYAGAIN {pub.tryagain}, "
              f"resyncs {a.m(M_RESYNCS) + b.m(M_RESYNCS) - resyncs0}")
        for m in members:
            await m.close()
        out["pub"] = pub

    run(main(), 120)
    return out["pub"]


def test_slot_moved_step_by_step_under_load(cl, cnodes):
    """The resharding tool's steps by hand, slowly: publishes meet the
    half-moved slot (a room already moved answers ASK, one not yet moved
    runs on the source) and none runs against a half-moved room."""
    moves = []

    def mover(slot, src, dst):
        cl.begin_move(slot, src, dst)
        time.sleep(0.3)
        while True:
            keys = cl.call(src, "CLUSTER", "GETKEYSINSLOT", slot, 1)
            if not keys:
                break
            # MIGRATE raises on BUSYKEY: the room's one key moves whole
            cl.call(src, "MIGRATE", "127.0.0.1", dst, keys[0], 0, 5000,
                    timeout=10.0)
            moves.append(keys[0])
            time.sleep(0.3)
        time.sleep(0.3)
        cl.finish_move(slot, dst)

    pub = move_under_load(cl, cnodes, mover)
    assert len(moves) == 3, moves  # one key per room
    assert pub.asks > 0, "no publish met the half-moved slot"


def test_slot_moved_by_redis_cli_reshard(cl, cnodes):
    def mover(slot, src, dst):
        # the source's first 100 slots (ours among them) go to dst
        r = subprocess.run(
            [REDIS_CLI, "--cluster", "reshard", f"127.0.0.1:{src}",
             "--cluster-from", cl.ids[src], "--cluster-to", cl.ids[dst],
             "--cluster-slots", "100", "--cluster-yes"],
            capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]

    # the first master owns slots 0..5460 (redis-cli --cluster create)
    move_under_load(cl, cnodes, mover)


def test_master_killed_under_load(cl, cnodes):
    """SIGKILL of the master owning busy rooms: its replica is promoted,
    the nodes resubscribe there and catch their members up. Acknowledged
    means WAIT saw the replica have it (the backend's WAIT, and the nodes'
    redis_wait_replicas for publishes through the WebSocket)."""
    a = cnodes("A", redis_wait_replicas=1, redis_wait_timeout_ms=1000)
    b = cnodes("B", redis_wait_replicas=1, redis_wait_timeout_ms=1000)
    rooms = [f"kill{i}" for i in range(6)]
    victim = cl.owner_of(slot_of(chan(rooms[0])))
    mine = [r for r in rooms if cl.owner_of(slot_of(chan(r))) == victim]

    async def main():
        members = [Member(a, "ma", rooms), Member(b, "mb", rooms)]
        for m in members:
            await m.start()
        pub = ClusterPublisher(cl.ports, rooms, interval=0.003, wait=1)
        wsp = WsPublisher(a, rooms[0])
        wtask = asyncio.ensure_future(wsp.run())
        pub.start()
        await asyncio.sleep(1.0)
        resyncs0 = a.m(M_RESYNCS) + b.m(M_RESYNCS)
        cl.kill(victim)
        await asyncio.get_event_loop().run_in_executor(
            None, cl.wait_failover, victim, 30)
        t_ok = time.monotonic()
        await asyncio.sleep(2.0)
        pub.stop()
        wsp.halt = True
        await asyncio.wait_for(wtask, 30)
        assert a.readyz() == 200 and b.readyz() == 200
        assert pub.total() > 100
        # every request got one reply (ok, or an error while the shard
        # had no master)
        assert len(wsp.acked) + len(wsp.errors) == wsp.sent
        acked = dict(pub.acked)
        acked[rooms[0]] = sorted(acked[rooms[0]] + wsp.acked)
        # The promoted master has no replica left, so WAIT falls short for
        # the dead shard's rooms after the failover; those publishes ran on
        # a master that stays up, so they must arrive too.
        after = {r: [q for t, q in pub.unreplicated[r] if t > t_ok]
                 for r in rooms}
        assert all(after[r] for r in mine), after
        for r in rooms:
            acked[r] = sorted(set(acked[r]) | set(after[r]))
        await wait_delivered(members, acked, timeout=40)
        check_delivery(members, acked)
        assert a.m(M_RESYNCS) + b.m(M_RESYNCS) >= resyncs0 + 2 * len(mine)
        print(f"killed: acked {pub.total()} backend (WAIT 1) + "
              f"{sum(len(v) for v in after.values())} after the failover "
              f"(no replica left) + "
              f"{len(wsp.acked)} ws, not acked {len(pub.errors)} backend + "
              f"{len(wsp.errors)} ws, rooms on the dead shard {len(mine)}, "
              f"resyncs {a.m(M_RESYNCS) + b.m(M_RESYNCS) - resyncs0}")
        for m in members:
            await m.close()

    run(main(), 150)


def test_cli_on_the_cluster(cl, cnodes):
    """roomcast publish routes by slot; roomcast nodes finds registry
    entries on every master; roomcast drain reaches the node."""
    a, b = cnodes("A"), cnodes("B")
    url = cl.url
    env = {"ROOMCAST_REDIS_URL": url}  # key_prefix: the default

    async def main():
        m = Member(a, "m", ["cli1", "cli2"])
        await m.start()
        rc, out, errout = run_cli("publish", "cli1", '{"x":1}', env=env)
        assert rc == 0, errout
        rc, out, errout = run_cli("publish", "cli2", '{"x":2}',
                                  "--ephemeral", env=env)
        assert rc == 0, errout
        deadline = time.monotonic() + 5
        while len(m.msgs) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert sorted(f["room"] for f in m.msgs) == ["cli1", "cli2"]
        assert [f for f in m.msgs if f["room"] == "cli2"][0].get("seq") \
            is None
        await m.close()

    run(main(), 30)
    # the two registry entries (on whichever masters own their slots)
    rc, out, errout = run_cli("nodes", "--json", env=env)
    assert rc == 0, errout
    assert sorted(r["id"] for r in json.loads(out)) == ["A", "B"], out
    owners = {cl.owner_of(slot_of(f"{PREFIX}node:{i}")) for i in "AB"}
    rc, out, errout = run_cli("nodes", env=env)
    assert rc == 0 and len(out.strip().splitlines()) == 3, (out, owners)
    rc, out, errout = run_cli("drain", "B", env=env)
    assert rc == 0, errout
    b.wait_exit(20)
    assert b.running() is False


OLD_PUBLISH = """
local meta, hist = KEYS[1] .. ':meta', KEYS[1] .. ':hist'
local seq = redis.call('HINCRBY', meta, 'seq', 1)
redis.call('RPUSH', hist, seq .. '|' .. ARGV[1])
return seq
"""


def test_old_two_key_layout_splits_a_room(cl):
    """Why the room's state is one key: the old layout (P{room}:meta and
    P{room}:hist, the FCALL naming P{room}, which did not exist) met a
    migration as two keys. Once one of them moved, the source answers ASK
    for the declared key, the script creates a fresh meta on the target,
    and the MIGRATE of the rest fails with BUSYKEY: a room split in two.
    The stream layout has one key, present until it moves."""
    key = chan("split")
    slot = slot_of(key)
    src = cl.owner_of(slot)
    dst = [m for m in cl.masters() if m != src][0]
    for i in range(3):
        assert cl.call(src, "EVAL", OLD_PUBLISH, 1, key, f"m{i}") == i + 1
    cl.begin_move(slot, src, dst)
    cl.call(src, "MIGRATE", "127.0.0.1", dst, key + ":hist", 0, 5000)
    with pytest.raises(RespError, match="^ASK "):
        cl.call(src, "EVAL", OLD_PUBLISH, 1, key, "m3")
    with Resp(dst) as c:
        c.call("ASKING")
        assert c.call("EVAL", OLD_PUBLISH, 1, key, "m3") == 1  # seq reset
    with pytest.raises(RespError, match="BUSYKEY"):
        cl.call(src, "MIGRATE", "127.0.0.1", dst, key + ":meta", 0, 5000)


def test_library_loaded_again_when_a_master_lost_it(cl, cnodes):
    """A master without the function library (a new one that got slots
    before the node's next map refresh, or FUNCTION FLUSH): the node's
    FCALL meets "Function not found", loads the library on every master
    and sends the call once more: the client's publish succeeds."""
    a = cnodes("A")

    async def main():
        m = Member(a, "m", ["lib1"])
        await m.start()
        for p in cl.masters():
            cl.call(p, "FUNCTION", "FLUSH")
        with pytest.raises(RespError, match="Function not found"):
            cl.call(cl.owner_of(slot_of(chan("lib1"))), "FCALL",
                    "roomcast_publish", 1, chan("lib1"), "1")
        ws = await connect(a, a.mint("p", **ALL))
        r = await ok(ws, "publish", room="lib1", data={"again": 1})
        deadline = time.monotonic() + 5
        while not m.seqs("lib1") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert m.seqs("lib1") == [r["seq"]]
        # and every master has it again
        for p in cl.masters():
            libs = cl.call(p, "FUNCTION", "LIST", "LIBRARYNAME", "roomcast")
            assert len(libs) == 1, (p, libs)
        await ws.close()
        await m.close()

    run(main(), 30)
