# pytest fixtures for the roomcast integration tests: every test gets its own
# roomcastd process(es) on free ports, stopped (SIGTERM, exit code checked)
# after the test and killed by PID if they do not go; tests that ask for
# `redis` get their own real redis-server (no persistence) on a free loopback
# port, stopped by PID after the nodes. A failing test gets the node (and
# Redis) logs attached to its report.
# SPDX-License-Identifier: MIT
import os
import sys

import pytest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Node, RedisServer, redis_flags, stop_nodes  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for n in getattr(item, "rc_nodes", []):
            rep.sections.append((f"roomcastd log: {n.name}",
                                 n.log_tail(200)))
        for r in getattr(item, "rc_redis", []):
            rep.sections.append((f"redis-server log: {r.name}",
                                 r.log_tail(40)))


@pytest.fixture
def nodes(tmp_path, request):
    """Factory: nodes(flags={...}, name=..., start=True) -> a started Node.
    Every node is stopped at teardown and must exit 0 on SIGTERM."""
    started = []
    request.node.rc_nodes = started

    def factory(flags=None, name=None, start=True, **kw):
        n = Node(tmp_path / "nodes", name=name or f"node{len(started) + 1}",
                 flags=flags, **kw)
        started.append(n)
        if start:
            n.start()
        return n

    yield factory
    problems = stop_nodes(started)
    if problems:
        pytest.fail("node shutdown:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def node(nodes):
    """One node with default flags."""
    return nodes()


@pytest.fixture
def redis(tmp_path, request):
    """A real redis-server on a free loopback port in a temp dir, with
    --save '' --appendonly no; .restart() brings it back on the same port
    (empty), .kill() is SIGKILL, .cli(*args) runs redis-cli, .call(*args)
    speaks RESP. Stopped by PID at teardown. Ask for it before `nodes` so
    the nodes stop first."""
    r = RedisServer(tmp_path / "redis")
    request.node.rc_redis = [r]
    r.start()
    yield r
    r.stop()
    r.kill()


@pytest.fixture
def redis_cli(redis):
    """redis_cli(*args) -> stdout of redis-cli against the test's Redis."""
    return redis.cli


@pytest.fixture
def rnodes(redis, nodes):
    """Factory like `nodes`, for nodes on the test's Redis: rnodes(name,
    flags={...}, ready=True) -> a started Node (ready: /readyz is 200, so
    its Redis links are up)."""
    def factory(name=None, flags=None, ready=True, **kw):
        n = nodes(flags=redis_flags(redis, **(flags or {})), name=name, **kw)
        if ready and kw.get("start", True):
            n.wait_ready(10)
        return n
    return factory
