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


def scenario(name, *args, timeout=120, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    e.update({k: str(v) for k, v in env.items()})
    p = subprocess.run([os.path.join(SCEN, name + ".sh"), *args], env=e,
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


def test_soak_redis_samples_windows_and_redis_memory(tmp_path):
    """soak_redis.sh (issue 15's soak, small): the publisher goes through
    Redis, a churn process runs beside it, every sample has the window's
    latency, Redis memory is sampled, and plot_soak.py draws it all."""
    out = tmp_path / "soak"
    e = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    e.update(N="300", ROOMS="10", RATE="100", CHURN="10", DURATION="6",
             SAMPLE="1", OUT_DIR=str(out))
    p = subprocess.run([os.path.join(SCEN, "soak_redis.sh")], env=e,
                       capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads((out / "soak.json").read_text())
    assert r["ok"] is True and r["config"]["via"] == "redis", r["config"]
    assert_whole(r)
    windows = [s for s in r["series"] if s.get("lat_count")]
    assert len(windows) >= 3, r["series"]
    assert sum(s["lat_count"] for s in windows) > 0.5 * r["deliveries"]
    assert all(0 < s["p50_ms"] <= s["p99_ms"] <= s["max_ms"]
               for s in windows), windows
    mem = (out / "redis_memory.tsv").read_text().splitlines()
    assert len(mem) >= 3 and int(mem[-1].split()[1]) > 0, mem
    ch = json.loads((out / "churn.json").read_text())["churn"]
    assert ch["cycles_completed"] > 0 and ch["cycles_failed"] == 0, ch
    p = subprocess.run(["python3", os.path.join(HERE, "..", "..", "loadtest",
                                                "plot_soak.py"), str(out)],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert (out / "soak.svg").read_text().startswith("<svg")
    assert b"| node open fds |" in p.stdout


def test_churn_cycles_complete():
    r = scenario("churn", N=200, DURATION=2)
    ch = r["churn"]
    assert ch["cycles_failed"] == 0 and ch["cycles_completed"] > 0, ch
    assert r["joins"]["error"] == 0, r["joins"]


def test_calibrate_bytes_arrive():
    r = scenario("calibrate", N=200, DURATION=1)
    assert r["bytes_received"] == r["bytes_sent"] > 0, r


def test_calibrate_paced_writes_the_fanout_shape():
    # 100 msgs/s for 2 s over 10 rooms of 20 sockets: 200 messages of 20
    # send()s each, all read
    r = scenario("calibrate", "--paced", "--rooms", "10", "--rate", "100",
                 "--duration", "2", N=200)
    assert r["mode"] == "paced", r
    assert r["sends"] == 200 * 20, r
    assert r["bytes_received"] == r["bytes_sent"], r


def test_burst_counts_add_up():
    # --burst 5: five messages to one room per tick, written together, so
    # every member has several frames queued at once; nothing may be lost,
    # duplicated or reordered.
    r = scenario("fanout", "--burst", "5", N=200, ROOMS=10, RATE=200,
                 DURATION=2)
    assert_whole(r)
    assert r["config"]["burst"] == 5, r["config"]
    assert r["publishes"]["sent"] > 0 and r["publishes"]["sent"] % 5 == 0, \
        r["publishes"]
    assert r["deliveries"] == r["publishes"]["acked"] * 20, r


def test_backlog_two_nodes_sums_every_gateway_pid():
    # backlog.sh is redis_fanout.sh with --burst; with NODES=2 it passes
    # --gateway-pid for both nodes, and every sample is their sum: the
    # clients' sockets are split over the two, so only the sum holds all
    # N of them.
    r = scenario("backlog", N=200, NODES=2, ROOMS=10, RATE=200, BURST=4,
                 DURATION=2)
    assert_whole(r)
    assert r["config"]["burst"] == 4, r["config"]
    g = r["gateway"]
    assert len(g["pids"]) == 2 and len(set(g["pids"])) == 2, g
    assert g["pid"] == g["pids"][0], g
    for k in ("before_connect", "measure_start", "measure_end"):
        assert g[k]["ok"] is True, g
    assert g["measure_start"]["fds"] >= 200 + g["before_connect"]["fds"], g
    assert g.get("deliveries_per_cpu_s", 0) > 0, g


def test_gateway_pid_bound():
    p = subprocess.run([os.environ.get("RC_LOAD", "roomcast-load"), "idle",
                        "--secret", "x"] + ["--gateway-pid", "1"] * 17,
                       capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 1 and b"--gateway-pid" in p.stderr, p


def test_efficiency_pairs_a_ceiling_with_a_fanout():
    # one round at one rate: a paced calibrate and a Redis fanout on two
    # nodes, both complete (ok: nothing lost), and the ratio of the two
    e = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    e.update(REPEAT="1", RATES="50", N="200", ROOMS="10", DURATION="1")
    p = subprocess.run([os.path.join(SCEN, "efficiency.sh")], env=e,
                       capture_output=True, timeout=180,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [json.loads(ln) for ln in p.stdout.decode().splitlines()]
    assert len(rows) == 1, rows
    r = rows[0]
    assert r["ok"] is True and r["rate"] == 50, r
    assert r["ceiling"] > 0, r
    # a run this small may use under one clock tick of node CPU (then no
    # per-CPU figure and no ratio); when there is one, it is the quotient
    if r["deliveries_per_cpu_s"]:
        assert r["ratio"] == pytest.approx(
            r["deliveries_per_cpu_s"] / r["ceiling"]), r
    assert b"rate 50: " in p.stderr, p.stderr[-1000:]
