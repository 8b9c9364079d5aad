# The Redis Cluster harness (cluster.py) itself, and the Redis 7.0 behaviour
# the Cluster design (docs/CLUSTER.md) rests on: sharded pub/sub lives on
# the slot's owner (MOVED elsewhere, CROSSSLOT across slots), a slot that
# leaves a master sends its sharded subscribers an unsolicited sunsubscribe
# per channel, a script SPUBLISHing on the importing side during a
# migration reaches only the importing side's subscribers, and a killed
# master is replaced by its replica.
# SPDX-License-Identifier: MIT
import socket
import time

import pytest

from cluster import RedisCluster
from harness import Resp, RespError

CH = "roomcast:{lobby}"
SCRIPT = "return redis.call('SPUBLISH', KEYS[1], ARGV[1])"


@pytest.fixture
def cl(tmp_path):
    c = RedisCluster(tmp_path, node_timeout_ms=1000)
    c.start()
    yield c
    c.stop()


def test_sharded_pubsub_follows_the_slot(cl):
    slot = cl.keyslot(CH)
    src = cl.owner_of(slot)
    dst = [m for m in cl.masters() if m != src][0]
    assert len(cl.masters()) == 3 and len(cl.live()) == 6

    with Resp(src) as sub, Resp(dst) as other:
        sub.send("SSUBSCRIBE", CH, CH + ":x")  # one slot: one batch
        assert sub.read() == [b"ssubscribe", CH.encode(), 1]
        assert sub.read() == [b"ssubscribe", (CH + ":x").encode(), 2]
        other.send("SSUBSCRIBE", CH)
        assert str(other.read()).startswith(f"MOVED {slot} ")
        other.send("SSUBSCRIBE", "{a}", "{b}")
        assert str(other.read()).startswith("CROSSSLOT")

        cl.call(src, "SET", CH, "state")
        cl.begin_move(slot, src, dst)
        # Migrating, key still on src: the script runs there.
        assert cl.call(src, "EVAL", SCRIPT, 1, CH, "a") == 1
        assert sub.read() == [b"smessage", CH.encode(), b"a"]
        cl.migrate_keys(slot, src, dst)
        with pytest.raises(RespError, match="^ASK "):
            cl.call(src, "EVAL", SCRIPT, 1, CH, "b")
        with Resp(dst) as asked:
            asked.call("ASKING")
            # ...and on dst it reaches nobody: src's subscribers miss it.
            assert asked.call("EVAL", SCRIPT, 1, CH, "b") == 0
        t0 = time.monotonic()
        cl.finish_move(slot, dst)
        sub.sock.settimeout(5)
        assert sub.read() == [b"sunsubscribe", CH.encode(), 1]
        assert sub.read() == [b"sunsubscribe", (CH + ":x").encode(), 0]
        assert time.monotonic() - t0 < 2
        assert sub.call("PING") == "PONG"  # the link stays up


def test_replica_subscriber(cl):
    """A READONLY subscriber on the owner's replica gets the owner's
    SPUBLISHes (which reach the replica over the bus)."""
    slot = cl.keyslot(CH)
    owner = cl.owner_of(slot)
    replica = [p for p in cl.live()
               if cl.call(p, "ROLE")[0] == b"slave"
               and cl.call(p, "ROLE")[2] == owner][0]
    with Resp(replica) as ro:
        ro.call("READONLY")
        ro.send("SSUBSCRIBE", CH)
        assert ro.read() == [b"ssubscribe", CH.encode(), 1]
        time.sleep(0.2)
        assert cl.call(owner, "SPUBLISH", CH, "m") == 0  # replicas not counted
        ro.sock.settimeout(3)
        assert ro.read() == [b"smessage", CH.encode(), b"m"]


def test_failover(cl):
    slot = cl.keyslot(CH)
    owner = cl.owner_of(slot)
    cl.kill(owner)
    t0 = time.monotonic()
    cl.wait_failover(owner, timeout=20)
    took = time.monotonic() - t0
    new = cl.owner_of(slot)
    assert new != owner and new in cl.masters()
    assert cl.call(new, "SET", CH, "v") == "OK"
    print(f"failover in {took:.2f}s (cluster-node-timeout 1000 ms)")
    assert took < 15
