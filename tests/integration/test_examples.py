# The backend examples in clients/examples/ run against a real roomcastd on
# a real redis-server: the token each one mints lets a real WebSocket client
# in, and what each one publishes reaches that client (durable with the seq
# the example printed, ephemeral without one).
# - fastapi_publish.py: redis-py (Debian's python3-redis) and the stdlib;
# - node_publish.mjs: node-redis, installed by `npm ci` from the committed
#   lock into a temp copy (needs node and npm: the test fails without them).
# SPDX-License-Identifier: MIT
import json
import os
import shutil
import subprocess
import sys

from harness import (REPO, SECRET, assert_no_msgs, close_all, connect, ok,
                     recv_msgs, run)

EXAMPLES = REPO / "clients" / "examples"


def _runner(cmd, redis, cwd=None):
    env = dict(os.environ, ROOMCAST_JWT_SECRET=SECRET,
               ROOMCAST_REDIS_URL=redis.url)

    def call(*args):
        p = subprocess.run(cmd + list(args), env=env, cwd=cwd,
                           capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout, p.stderr
    return call


def _exercise(node, call, who):
    """token -> connect -> join; durable publish -> msg with that seq;
    ephemeral -> msg without seq; bad input -> non-zero exit, nothing sent."""
    rc, out, errs = call("token", who)
    assert rc == 0, errs
    token = json.loads(out)["token"]

    async def main():
        c = await connect(node, token)  # the example's token is accepted
        assert c.rc_welcome["node"] == node.name
        await ok(c, "join", room="chat:lobby")
        rc, out, errs = call("publish", "chat:lobby",
                             json.dumps({"text": f"hi from {who}"}))
        assert rc == 0, (out, errs)
        seq = json.loads(out)["seq"]
        assert isinstance(seq, int), out
        [m] = await recv_msgs(c, 1)
        assert m["room"] == "chat:lobby" and m["seq"] == seq, (m, seq)
        assert m["data"]["text"] == f"hi from {who}", m

        rc, out, errs = call("publish", "chat:lobby", '{"typing":true}',
                             "--ephemeral")
        assert rc == 0, (out, errs)
        [e] = await recv_msgs(c, 1)
        assert "seq" not in e and e["data"]["typing"] is True, e

        rc, _, errs = call("publish", "chat:lobby", "{not json")
        assert rc == 2, errs
        rc, _, errs = call("publish", "no spaces allowed", "{}")
        assert rc != 0, errs
        await assert_no_msgs(c, 0.3)

        # the next durable seq follows the first: nothing else was numbered
        rc, out, _ = call("publish", "chat:lobby", '{"n":2}')
        assert rc == 0 and json.loads(out)["seq"] == seq + 1, out
        [m2] = await recv_msgs(c, 1)
        assert m2["seq"] == seq + 1, m2
        await close_all([c])

    run(main(), 60)


def test_fastapi_publish_py(redis, rnodes):
    a = rnodes("A")
    _exercise(a, _runner([sys.executable,
                          str(EXAMPLES / "fastapi_publish.py")], redis),
              "py")


def test_node_publish_mjs(redis, rnodes, tmp_path):
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, ("node and npm are needed for node_publish.mjs "
                          "(apt-get install nodejs npm)")
    work = tmp_path / "examples"
    work.mkdir()
    for f in ("package.json", "package-lock.json", "node_publish.mjs"):
        shutil.copy(EXAMPLES / f, work / f)
    p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=work,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, f"npm ci: {p.stdout}{p.stderr}"
    a = rnodes("A")
    _exercise(a, _runner([node, str(work / "node_publish.mjs")], redis,
                         cwd=work), "node")
