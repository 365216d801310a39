"""berthd with its front: what a visitor sees as sites are created, changed,
stopped and removed with the CLI, over IPv4 and IPv6."""
import http.client
import os
import time

import pytest

from conftest import require


def get(port, host, path="/", addr="127.0.0.1", method="GET"):
    conn = http.client.HTTPConnection(addr, port, timeout=10)
    try:
        conn.request(method, path, headers={"Host": host})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def wait_for(predicate, timeout=2.0):
    """Route changes are pushed to the workers asynchronously; they must land fast."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def write_page(daemon, site, name, text):
    path = daemon.state_dir / "sites" / site / "public" / name
    path.write_text(text)
    uid = daemon.ok("site", "show", site)["uid"]
    os.chown(path, uid, 199999)
    os.chmod(path, 0o640)


def test_sites_are_served_by_host(daemon):
    port = daemon.http_port()
    daemon.ok("site", "create", "blog", "--domain", "www.blog.example")
    write_page(daemon, "blog", "index.html", "<h1>blog</h1>")
    daemon.ok("site", "create", "shop")
    write_page(daemon, "shop", "index.html", "<h1>shop</h1>")

    assert wait_for(lambda: get(port, "blog.test.berth")[0] == 200)
    assert get(port, "blog.test.berth")[2] == b"<h1>blog</h1>"
    assert get(port, "WWW.Blog.Example.:80")[2] == b"<h1>blog</h1>"
    assert get(port, "shop.test.berth")[2] == b"<h1>shop</h1>"
    status, headers, body = get(port, "nobody.test.berth")
    assert status == 404 and headers["Content-Type"].startswith("text/html") and b"berth" in body


def test_ipv6_listener_serves_too(daemon_factory):
    d = daemon_factory()
    d.http = ["127.0.0.1:0", "[::1]:0"]
    d.start()
    d.ok("site", "create", "blog")
    write_page(d, "blog", "index.html", "v6")
    v6 = [l["address"] for l in d.status()["listeners"] if l["address"].startswith("[::1]")][0]
    port = int(v6.rsplit(":", 1)[1])
    assert wait_for(lambda: get(port, "blog.test.berth", addr="::1")[0] == 200)
    assert get(port, "blog.test.berth", addr="::1")[2] == b"v6"


def test_stop_start_and_remove_are_live(daemon):
    port = daemon.http_port()
    daemon.ok("site", "create", "blog")
    write_page(daemon, "blog", "index.html", "hello")
    assert wait_for(lambda: get(port, "blog.test.berth")[0] == 200)

    daemon.ok("site", "stop", "blog")
    assert wait_for(lambda: get(port, "blog.test.berth")[0] == 503)
    daemon.ok("site", "start", "blog")
    assert wait_for(lambda: get(port, "blog.test.berth")[0] == 200)

    daemon.ok("site", "set", "blog", "--domain", "new.example")
    assert wait_for(lambda: get(port, "new.example")[0] == 200)
    daemon.ok("site", "set", "blog", "--no-domain", "new.example")
    assert wait_for(lambda: get(port, "new.example")[0] == 404)

    daemon.ok("site", "rm", "blog")
    assert wait_for(lambda: get(port, "blog.test.berth")[0] == 404)


def test_sites_survive_a_restart_and_are_served_at_once(daemon):
    daemon.ok("site", "create", "blog")
    write_page(daemon, "blog", "index.html", "persisted")
    daemon.stop()
    daemon.start()
    port = daemon.http_port()
    assert get(port, "blog.test.berth")[2] == b"persisted"


def test_front_workers_run_unprivileged(daemon):
    pids = [int(p) for p in os.popen(f"pgrep -P {daemon.proc.pid}").read().split()]
    assert pids, "berthd has front workers"
    for pid in pids:
        status = open(f"/proc/{pid}/status").read()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        assert fields["Uid"].split()[0] == "199999"
        assert fields["CapEff"].strip() == "0000000000000000"
        assert fields["NoNewPrivs"].strip() == "1"
        assert fields["Seccomp"].strip() == "2"   # the services' filter: no exec, no new namespaces...


def test_access_log_per_site(daemon):
    port = daemon.http_port()
    daemon.ok("site", "create", "blog")
    write_page(daemon, "blog", "index.html", "x")
    assert wait_for(lambda: get(port, "blog.test.berth", "/index.html")[0] == 200)
    log = daemon.state_dir / "sites/blog/logs/access.log"
    assert wait_for(lambda: log.exists() and "GET /index.html HTTP/1.1\" 200" in log.read_text(), timeout=5)


def test_dev_demo_site_is_served(daemon_factory):
    d = daemon_factory()
    d.start("--dev")
    port = d.http_port()
    status, _, body = get(port, "demo.test.berth")
    assert status == 200 and b"It works." in body
    assert f"http://hello-php.test.berth:{port}/".encode() in body
    if os.geteuid() == 0:   # PHP runs in a sandbox: root only
        hello = d.ok("site", "show", "hello-php")
        status, _, body = get(port, "hello-php.test.berth")
        assert status == 200, body
        assert b"Hello from PHP 8.2" in body
        assert f"as user\nsite (uid {hello['uid']})".encode() in body, body


def test_restart_keeps_the_listeners_open(daemon_factory):
    """With socket activation the listening socket outlives berthd: a visitor who
    connects while berthd restarts waits in the backlog and is then served."""
    import socket
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    d = daemon_factory()
    d.http = [f"127.0.0.1:{port}"]
    try:
        d.start(listen_fds=[listener])
        assert "adopted the inherited socket" in d.log()
        d.ok("site", "create", "blog")
        write_page(d, "blog", "index.html", "still here")
        assert wait_for(lambda: get(port, "blog.test.berth")[0] == 200)

        d.stop()
        # berthd is gone; the kernel still accepts into the backlog.
        waiting = socket.create_connection(("127.0.0.1", port), timeout=20)
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: blog.test.berth\r\nConnection: close\r\n\r\n")
        d.start(listen_fds=[listener])
        answer = b""
        while chunk := waiting.recv(65536):
            answer += chunk
        waiting.close()
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"still here")
    finally:
        listener.close()


def test_site_created_under_load_is_served_at_once(daemon):
    """wrk keeps one site busy while another is created through the CLI: the new
    site answers at once and the load sees no error and no non-2xx answer."""
    import shutil
    import subprocess
    from conftest import require
    require(shutil.which("wrk"), "wrk is not installed")
    port = daemon.http_port()
    daemon.ok("site", "create", "busy")
    write_page(daemon, "busy", "index.html", "x" * 1024)
    assert wait_for(lambda: get(port, "busy.test.berth")[0] == 200)

    load = subprocess.Popen(["wrk", "-t1", "-c16", "-d3s", "-H", "Host: busy.test.berth",
                             f"http://127.0.0.1:{port}/"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        daemon.ok("site", "create", "fresh")
        write_page(daemon, "fresh", "index.html", "fresh")
        created = time.monotonic()
        assert wait_for(lambda: get(port, "fresh.test.berth")[0] == 200, timeout=1.0)
        assert time.monotonic() - created < 1.0
        out, _ = load.communicate(timeout=30)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    assert "requests in" in out, out
    assert "Non-2xx" not in out and "Socket errors" not in out, out


def worker_cpus(d):
    """Cpus_allowed_list of each front worker (berthd's children running as the front user)."""
    cpus = []
    for pid in os.popen(f"pgrep -P {d.proc.pid}").read().split():
        fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
        if fields["Uid"].split()[0] == "199999":
            cpus.append(fields["Cpus_allowed_list"].strip())
    return cpus


def test_workers_are_pinned_one_per_cpu_unless_told_not_to(daemon_factory):
    allowed = os.sched_getaffinity(0)
    require(len(allowed) >= 2, "needs two CPUs")
    d = daemon_factory()
    d.open_path_to_root()   # makes its directory, where the config file goes
    with open(d.config_path(), "a") as f:
        f.write("workers: 2\n")
    d.start()
    cpus = sorted(worker_cpus(d))
    assert len(cpus) == 2 and cpus == sorted(str(c) for c in sorted(allowed)[:2]), cpus
    d.stop()
    with open(d.config_path(), "a") as f:
        f.write("front_cpu_affinity: false\n")
    d.start()
    cpus = worker_cpus(d)
    assert len(cpus) == 2 and all(c not in (str(x) for x in allowed) for c in cpus), cpus
