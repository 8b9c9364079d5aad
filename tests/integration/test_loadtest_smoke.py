# Smoke runs of every loadtest scenario at a small size: they assert
# correctness only (nothing lost, nothing duplicated, counts add up), never
# speed. Speed is measured in docs/BENCHMARKS.md, not in tests.
# SPDX-License-Identifier: MIT
import json
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCEN = os.path.join(HERE, "..", "..", "loadtest", "scenarios")


def scenario(name, timeout=120, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    e.update({k: str(v) for k, v in env.items()})
    p = subprocess.run([os.path.join(SCEN, name + ".sh")], env=e,
                       capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, (name, p.returncode, p.stderr[-3000:])
    report = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert report.get("ok") is True and not report.get("timed_out"), report
    return report


def assert_whole(r):
    c = r["connections"]
    assert c["failed"] == 0 and c["established"] == c["attempted"], c
    assert r["gaps"] == 0 and r["duplicates"] == 0, r
    assert r["deliveries"] == r["expected_deliveries"], r


@pytest.mark.parametrize("name,env", [
    ("idle", dict(N=200)),
    ("fanout", dict(N=200, ROOMS=10, RATE=100, DURATION=2)),
    ("broadcast", dict(N=200, MESSAGES=3)),
    ("soak", dict(N=200, ROOMS=10, RATE=50, DURATION=4, SAMPLE=1)),
])
def test_scenario_counts_add_up(name, env):
    r = scenario(name, **env)
    assert_whole(r)
    if name != "idle":
        assert r["deliveries"] > 0, r
    if name == "idle":
        assert r["joins"]["clients_joined"] == 200, r["joins"]


def test_churn_cycles_complete():
    r = scenario("churn", N=200, DURATION=2)
    ch = r["churn"]
    assert ch["cycles_failed"] == 0 and ch["cycles_completed"] > 0, ch
    assert r["joins"]["error"] == 0, r["joins"]


def test_calibrate_bytes_arrive():
    r = scenario("calibrate", N=200, DURATION=1)
    assert r["bytes_received"] == r["bytes_sent"] > 0, r
