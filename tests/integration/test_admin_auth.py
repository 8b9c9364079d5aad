"""The admin port's guard (issue 15): admin_token for POST routes (and
optionally /stats), probes and scrapers left open, a non-loopback listener
refused without a token, and the listener's bounds (connections at once,
time for a request to arrive). Real roomcastd, real sockets."""
import os
import socket
import time
from pathlib import Path

from harness import (SECRET, free_port, run_roomcastd, wait_until)

TOKEN = "admin-test-token-0123456789abcdef"


def req(port, method, path, token=None, timeout=5.0, raw_auth=None):
    """(status, headers text, body) of one admin request."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
        if token is not None:
            head += f"Authorization: Bearer {token}\r\n"
        if raw_auth is not None:
            head += f"Authorization: {raw_auth}\r\n"
        s.sendall((head + "\r\n").encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    hdr, _, body = data.partition(b"\r\n\r\n")
    status = int(hdr.split(b" ", 2)[1]) if hdr else 0
    return status, hdr.decode(errors="replace"), body


def test_post_routes_need_the_token_probes_do_not(nodes):
    n = nodes(flags={"admin_token": TOKEN})
    p = n.admin_port
    for path in ("/healthz", "/readyz", "/metrics", "/stats"):
        st, _, _ = req(p, "GET", path)
        assert st == 200, (path, st)
    st, hdr, body = req(p, "POST", "/drain")
    assert st == 401 and "WWW-Authenticate: Bearer" in hdr, hdr
    assert b"unauthorized" in body
    for bad in ("wrong-token-0123456789abcdef0000", TOKEN[:-1], TOKEN + "x",
                TOKEN.upper()):
        st, _, _ = req(p, "POST", "/drain", token=bad)
        assert st == 401, bad
    st, _, _ = req(p, "POST", "/drain", raw_auth=f"Basic {TOKEN}")
    assert st == 401
    # nothing of that drained the node
    assert n.readyz() == 200 and n.running()
    log = n.log_text()
    assert "event=admin_refused" in log and "reason=no_token" in log \
        and "reason=bad_token" in log
    own = "\n".join(ln for ln in log.splitlines() if ln.startswith("ts="))
    assert TOKEN not in own, "the token must never be logged"
    # the right token (any case of the scheme and header name) drains
    st, _, _ = req(p, "POST", "/drain", raw_auth=f"bearer {TOKEN}")
    assert st == 202
    assert n.wait_exit(15) == 0


def test_stats_protected_when_asked(nodes):
    n = nodes(flags={"admin_token": TOKEN, "admin_token_stats": None})
    assert req(n.admin_port, "GET", "/stats")[0] == 401
    assert req(n.admin_port, "GET", "/stats", token=TOKEN)[0] == 200
    assert req(n.admin_port, "GET", "/metrics")[0] == 200


def test_token_from_a_file_and_refusals(tmp_path):
    f = tmp_path / "tok"
    f.write_text(TOKEN + "\n")
    common = ["--jwt-secret", SECRET, "--listen", f"127.0.0.1:{free_port()}"]
    # a public admin listener without a token: refused at start
    rc, _, err, _ = run_roomcastd(common + [
        "--admin-listen", f"0.0.0.0:{free_port()}"])
    assert rc != 0 and "admin_token" in err and "not loopback" in err, err
    # a short token, a token with a space, stats protection without one
    for extra in (["--admin-token", "short"],
                  ["--admin-token", "has a space 0123456789"],
                  ["--admin-token-stats"]):
        rc, _, err, _ = run_roomcastd(common + [
            "--admin-listen", f"127.0.0.1:{free_port()}"] + extra)
        assert rc != 0 and "admin_token" in err, (extra, err)


def listen_admin_on(n, addr):
    """Rebuild n's command line so that admin_listen is addr (the last
    --admin-listen wins over the harness's 127.0.0.1 one)."""
    n.flags["admin_listen"] = addr
    n._build_cmd()


def test_public_listener_with_token_file(nodes, tmp_path):
    f = tmp_path / "tok"
    f.write_text(TOKEN + "\n")
    n = nodes(flags={"admin_token_file": str(f)}, start=False)
    port = n.admin_port
    listen_admin_on(n, f"0.0.0.0:{port}")
    n.start()
    assert f"admin=0.0.0.0:{port}" in n.log_text()
    # reached on another address than 127.0.0.1: the wildcard is bound
    s = socket.create_connection(("127.0.0.2", port), timeout=5)
    s.close()
    assert req(port, "GET", "/readyz")[0] == 200
    assert req(port, "POST", "/drain")[0] == 401
    assert req(port, "POST", "/drain", token=TOKEN)[0] == 202
    assert n.wait_exit(15) == 0


def test_localhost_is_loopback_and_binds(nodes):
    """admin_listen localhost:PORT passed the loopback check but the
    listener refused the name; it is 127.0.0.1 now, for both listeners,
    and a name it cannot bind without a resolver is refused at start."""
    n = nodes(start=False)
    port = n.admin_port
    listen_admin_on(n, f"localhost:{port}")
    n.start()
    assert f"admin=127.0.0.1:{port}" in n.log_text()
    assert req(port, "GET", "/readyz")[0] == 200
    n.stop()
    rc, _, err, _ = run_roomcastd([
        "--jwt-secret", SECRET, "--listen", f"127.0.0.1:{free_port()}",
        "--admin-listen", f"admin.example:{free_port()}"])
    assert rc != 0 and "admin_listen" in err and "ip:port" in err, err


def test_admin_connection_and_time_bounds(nodes):
    n = nodes(flags={"admin_max_conns": 4, "admin_timeout_ms": 600})
    p = n.admin_port
    idle = [socket.create_connection(("127.0.0.1", p), timeout=5)
            for _ in range(4)]
    try:
        time.sleep(0.1)
        # a fifth at once: closed unanswered
        try:
            st, _, body = req(p, "GET", "/healthz")
        except ConnectionResetError:
            st = 0
        assert st == 0, "a connection over admin_max_conns was served"
        # the idle ones are closed after admin_timeout_ms ...
        t0 = time.monotonic()
        for s in idle:
            s.settimeout(3)
            assert s.recv(100) == b""
        took = time.monotonic() - t0
        assert took < 2.5, took
        # ... and a real request is served again
        wait_until(lambda: req(p, "GET", "/healthz")[0] == 200, 3,
                   what="the listener free again")
    finally:
        for s in idle:
            s.close()
    # a request dribbled slower than the bound is cut off
    s = socket.create_connection(("127.0.0.1", p), timeout=5)
    try:
        s.sendall(b"GET /heal")
        time.sleep(1.0)
        try:
            s.sendall(b"thz HTTP/1.1\r\n\r\n")
            got = s.recv(100)
        except OSError:
            got = b""
        assert not got.startswith(b"HTTP/1.1 200"), got
    finally:
        s.close()
    log = n.log_text()
    assert "event=admin_timeout" in log and "event=admin_busy" in log


def test_workers_supervisor_applies_the_same_guard(redis, nodes):
    from harness import redis_flags
    n = nodes(flags=redis_flags(redis, workers=2, admin_token=TOKEN))
    n.wait_ready(15)
    assert req(n.admin_port, "GET", "/readyz")[0] == 200
    assert req(n.admin_port, "POST", "/drain")[0] == 401
    assert n.readyz() == 200
    assert req(n.admin_port, "POST", "/drain", token=TOKEN)[0] == 202
    assert n.wait_exit(20) == 0


K8S = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / \
    "roomcast.yaml"


def test_kubernetes_example_token_and_prestop_work(nodes, tmp_path):
    """deploy/kubernetes/roomcast.yaml as a kubelet would use it, on a real
    node: the token file it names is the Secret's mount, readable by the
    non-root user it runs as (group-readable, fsGroup); the node listens
    as its args say; and its preStop command, run with only the token
    path and port changed, drains the node (202, exit 0). A wrong token in
    the same command drains nothing."""
    import subprocess
    import yaml

    docs = [d for d in yaml.safe_load_all(K8S.read_text()) if d]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    ctr = pod["containers"][0]
    args = ctr["args"]
    listen = args[args.index("--admin-listen") + 1]
    tok_path = args[args.index("--admin-token-file") + 1]
    # the token file is in the admin-token Secret's mount
    mount = next(m for m in ctr["volumeMounts"] if m["name"] == "admin-token")
    assert os.path.dirname(tok_path) == mount["mountPath"], tok_path
    vol = next(v for v in pod["volumes"] if v["name"] == "admin-token")
    mode = vol["secret"]["defaultMode"]
    sc = pod["securityContext"]
    assert sc["runAsNonRoot"] and sc["runAsUser"] != 0
    # kubelet makes the files group-owned by fsGroup: the group must read
    assert sc["fsGroup"] == sc["runAsGroup"] and mode & 0o040, (sc, oct(mode))
    assert mode & 0o007 == 0, "the token must not be world-readable"
    host, port = listen.rsplit(":", 1)
    assert host == "0.0.0.0"
    hook = ctr["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[:2] == ["sh", "-c"], hook

    tok = tmp_path / "token"
    tok.write_text(TOKEN + "\n")
    os.chmod(tok, mode)
    n = nodes(flags={"admin_token_file": str(tok)}, start=False)
    listen_admin_on(n, f"0.0.0.0:{n.admin_port}")
    n.start()

    def run_hook(path):
        cmd = hook[2].replace(tok_path, str(path)).replace(
            f"127.0.0.1:{port}", f"127.0.0.1:{n.admin_port}")
        assert str(path) in cmd and str(n.admin_port) in cmd, cmd
        return subprocess.run(hook[:2] + [cmd], capture_output=True,
                              text=True, timeout=10)

    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token-0123456789abcdef\n")
    r = run_hook(wrong)
    assert r.returncode != 0, r  # curl -f: the 401 fails the hook
    assert n.readyz() == 200 and n.running()
    r = run_hook(tok)
    assert r.returncode == 0, r
    assert "draining" in r.stdout, r.stdout
    assert n.wait_exit(15) == 0
