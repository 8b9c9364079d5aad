# pytest fixtures for the roomcast integration tests: every test gets its own
# roomcastd process(es) on free ports, stopped (SIGTERM, exit code checked)
# after the test and killed by PID if they do not go. A failing test gets the
# node logs attached to its report.
# SPDX-License-Identifier: MIT
import os
import sys

import pytest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Node  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for n in getattr(item, "rc_nodes", []):
            rep.sections.append((f"roomcastd log: {n.name}",
                                 n.log_tail(200)))


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
    problems = []
    for n in started:
        try:
            if n.proc is not None:
                n.stop(expect=getattr(n, "expect_exit", 0))
        except AssertionError as e:
            problems.append(str(e))
        finally:
            n.kill()
    if problems:
        pytest.fail("node shutdown:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def node(nodes):
    """One node with default flags."""
    return nodes()
