"""Per-site figures: the front's workers count the requests they answer and report
them to berthd, which keeps the last hour (GET /api/v1/sites/NAME/stats, `site show`)
and treats a site getting requests as busy (never stopped as idle). The history is
saved to <state>/stats.bin every minute and at shutdown, and survives a restart."""
import os
import signal
import stat
import struct
import time

import pytest

from conftest import require
from test_berthd_front import get, wait_for, write_page
from test_lifecycle import make_app
from test_panel_api import Browser, add_user


def worker_pids(d):
    """The front's workers: berthd's children running as the front user."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = open(f"/proc/{entry}/status").read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["PPid"]) == d.proc.pid and fields["Uid"].split()[0] == "199999":
            pids.append(int(entry))
    return sorted(pids)


def _stats(d, site):
    b = Browser(d)
    # api.sock with a root peer is the admin; speak HTTP to it as the CLI does.
    b.path = d.socket
    a = b.request("GET", f"/api/v1/sites/{site}/stats")
    assert a.status == 200, a
    return a.json


def wait_until(fetch, check, timeout=15):
    """Polls fetch() until check(value) holds; returns the last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if check(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.fixture
def two_workers(daemon_factory):
    d = daemon_factory()
    d.root.mkdir(parents=True, exist_ok=True)
    d.config_path().write_text(d.config_path().read_text() + "workers: 2\n")
    return d.start()


def test_requests_from_both_workers_are_summed(two_workers):
    d = two_workers
    port = d.http_port()
    d.ok("site", "create", "blog")
    write_page(d, "blog", "index.html", "<h1>blog</h1>")
    assert wait_for(lambda: get(port, "blog.test.berth")[0] == 200)
    workers = worker_pids(d)
    assert len(workers) == 2, workers
    # A stopped worker is not woken for new connections (EPOLLEXCLUSIVE wakes a
    # waiter that can run), so stopping one at a time makes each serve a known share.
    served = {}
    for paused, n in ((workers[0], 7), (workers[1], 5)):
        os.kill(paused, signal.SIGSTOP)
        try:
            for _ in range(n):
                assert get(port, "blog.test.berth")[0] == 200
                assert get(port, "blog.test.berth", "/missing")[0] == 404
        finally:
            os.kill(paused, signal.SIGCONT)
        served[paused] = n
    want = 1 + 2 * 12   # the first probe, then 12 pairs
    s = wait_until(lambda: _stats(d, "blog"), lambda s: s["totals"]["requests"] >= want)
    assert s["totals"]["requests"] == want, s["totals"]
    assert s["totals"]["2xx"] == 13 and s["totals"]["4xx"] == 12 and s["totals"]["5xx"] == 0
    assert s["totals"]["bytes"] >= 13 * len("<h1>blog</h1>")
    assert s["last_hour"] == want
    assert len(s["minutes"]) == 60
    times = [m["time"] for m in s["minutes"]]
    assert times == sorted(times) and all(b - a == 60 for a, b in zip(times, times[1:]))
    assert times[-1] <= s["now"] < times[-1] + 60
    assert sum(m["requests"] for m in s["minutes"]) == want

    # The same figures in the site's record, for `site show` and `site ls`.
    shown = d.ok("site", "show", "blog")
    assert shown["requests"]["last_hour"] == want and shown["requests"]["last_minute"] == want
    text = d.berth("site", "show", "blog").stdout
    assert f"requests     {want} in the last hour" in text
    ls = d.berth("site", "ls").stdout.splitlines()
    assert ls[1].split()[-1] == str(want)


def test_5xx_counted_and_other_sites_apart(daemon):
    port = daemon.http_port()
    daemon.ok("site", "create", "shop")
    daemon.ok("site", "create", "quiet")
    write_page(daemon, "shop", "index.html", "shop")
    sent = []   # every status the site answered, to know what the figures must say

    def probe(want):
        status = get(port, "shop.test.berth")[0]
        sent.append(status)
        return status == want
    assert wait_for(lambda: probe(200))
    daemon.ok("site", "stop", "shop")
    assert wait_for(lambda: probe(503))
    for _ in range(4):
        assert probe(503)
    n5xx, n2xx = sent.count(503), sent.count(200)
    assert n5xx == 5 and len(sent) == n2xx + n5xx
    s = wait_until(lambda: _stats(daemon, "shop"), lambda s: s["totals"]["requests"] >= len(sent))
    assert s["totals"]["5xx"] == 5 and s["totals"]["2xx"] == n2xx and s["totals"]["requests"] == len(sent)
    assert sum(m["errors"] for m in s["minutes"]) == 5
    q = _stats(daemon, "quiet")
    assert q["totals"]["requests"] == 0 and q["last_hour"] == 0
    # Unknown hosts belong to no site; a site removed takes its figures with it.
    assert get(port, "nobody.test.berth")[0] == 404
    daemon.ok("site", "rm", "shop")
    daemon.ok("site", "create", "shop")
    assert _stats(daemon, "shop")["totals"]["requests"] == 0


def test_site_removed_and_created_again_at_once_starts_with_no_history(daemon):
    # The front reports a site's requests up to a couple of seconds after they
    # end: those of the removed site must not land in the history of a new site
    # that took its name in the meantime.
    port = daemon.http_port()
    daemon.ok("site", "create", "shop")
    write_page(daemon, "shop", "index.html", "shop")
    assert wait_for(lambda: get(port, "shop.test.berth")[0] == 200)
    for _ in range(20):
        assert get(port, "shop.test.berth")[0] == 200
    daemon.ok("site", "rm", "shop")
    daemon.ok("site", "create", "shop")
    time.sleep(4)   # past the workers' and the supervisor's report intervals
    s = _stats(daemon, "shop")
    assert s["totals"]["requests"] == 0 and s["last_hour"] == 0, s["totals"]
    assert daemon.ok("site", "show", "shop")["requests"]["total"] == 0


def test_stats_follow_site_access_rules(daemon):
    add_user(daemon, "alice")
    add_user(daemon, "bob")
    alice, bob = Browser(daemon), Browser(daemon, client="192.0.2.11")
    assert alice.login("alice").status == 200 and bob.login("bob").status == 200
    assert alice.request("POST", "/api/v1/sites", {"name": "mine"}).status == 201
    a = alice.request("GET", "/api/v1/sites/mine/stats")
    assert a.status == 200 and len(a.json["minutes"]) == 60
    a = bob.request("GET", "/api/v1/sites/mine/stats")
    assert a.status == 404 and a.error() == 'no site named "mine"', a
    assert bob.request("GET", "/api/v1/sites/nosuch/stats").status == 404
    assert Browser(daemon).request("GET", "/api/v1/sites/mine/stats").status == 401
    assert alice.request("POST", "/api/v1/sites/mine/stats", {}).status == 405


def test_busy_site_is_not_stopped_as_idle(daemon):
    require(os.geteuid() == 0, "site sandboxes need root")
    require(os.path.isdir("/sys/fs/cgroup"), "no cgroup file system")
    port = daemon.http_port()
    make_app(daemon, "app", idle=10)   # the shortest idle time berth accepts
    status, _, body = get(port, "app.test.berth")
    assert status == 200 and b"hello from app" in body
    pid = daemon.ok("site", "show", "app")["runtime"]["pid"]
    assert pid
    # Twice the idle time and more of short requests (each connection closed at
    # once, so only the front's reports show the site is busy).
    end = time.monotonic() + 21
    n = 1
    while time.monotonic() < end:
        assert get(port, "app.test.berth")[0] == 200
        n += 1
        info = daemon.ok("site", "show", "app")
        assert info["state"] == "running" and info["runtime"]["pid"] == pid, info
        time.sleep(0.5)
    s = wait_until(lambda: _stats(daemon, "app"), lambda s: s["totals"]["requests"] >= n)
    assert s["totals"]["requests"] == n
    # Quiet now: stopped after the idle time (bounded wait, no timing asserted).
    info = wait_until(lambda: daemon.ok("site", "show", "app"), lambda i: i["state"] == "idle", timeout=20)
    assert info["state"] == "idle" and info["runtime"]["pid"] is None, info
    # Memory and CPU were sampled while it ran.
    s = wait_until(lambda: _stats(daemon, "app"), lambda s: any(m["memory"] for m in s["minutes"]), timeout=10)
    assert any(m["memory"] for m in s["minutes"]), s["minutes"][-3:]


def serve_requests(d, site, n):
    """Creates site with a page and asks it n times; waits until berthd counted them."""
    port = d.http_port()
    d.ok("site", "create", site)
    write_page(d, site, "index.html", f"<h1>{site}</h1>")
    assert wait_for(lambda: get(port, f"{site}.test.berth")[0] == 200)
    for _ in range(n - 1):
        assert get(port, f"{site}.test.berth")[0] == 200
    s = wait_until(lambda: _stats(d, site), lambda s: s["totals"]["requests"] >= n)
    assert s["totals"]["requests"] == n, s["totals"]
    return s


def assert_history_kept(before, after):
    """The minutes and totals of before, as reported again by a new berthd."""
    assert after["since"] == before["since"]
    assert after["totals"] == before["totals"]
    kept = {m["time"]: m["requests"] for m in after["minutes"] if m["requests"]}
    had = {m["time"]: m["requests"] for m in before["minutes"] if m["requests"]}
    assert kept == had, (had, kept)
    assert after["last_hour"] == before["last_hour"]


def read_stats_file(path):
    """Totals of requests per site in stats.bin, parsed after its format in
    docs/internals/sites-runtime.md; None while the file is missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    magic, version, n_sites, _since = struct.unpack_from("<8sIIq", data, 0)
    assert magic == b"BERTHSTS" and version == 1
    off, totals = 24, {}
    for _ in range(n_sites):
        name_len = data[off]
        name = data[off + 1:off + 1 + name_len].decode()
        n_slots = data[off + 1 + name_len]
        off += 2 + name_len
        totals[name] = struct.unpack_from("<Q", data, off)[0]
        off += 7 * 8 + n_slots * 49
    assert off + 8 == len(data)
    return totals


def test_history_survives_a_clean_restart(daemon):
    before = serve_requests(daemon, "blog", 9)
    daemon.stop()
    path = daemon.state_dir / "stats.bin"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_stats_file(path) == {"blog": 9}
    daemon.start()
    assert "loaded the usage history of 1 site" in daemon.log()
    assert_history_kept(before, _stats(daemon, "blog"))
    shown = daemon.ok("site", "show", "blog")
    assert shown["requests"]["last_hour"] == 9
    # ... and goes on counting from there.
    port = daemon.http_port()
    assert get(port, "blog.test.berth")[0] == 200
    s = wait_until(lambda: _stats(daemon, "blog"), lambda s: s["totals"]["requests"] >= 10)
    assert s["totals"]["requests"] == 10 and s["last_hour"] == 10


def test_history_survives_kill9_after_a_periodic_save(daemon_factory):
    d = daemon_factory()
    d.start(env={"BERTH_TEST_STATS_SAVE_MS": "200"})
    before = serve_requests(d, "blog", 6)
    path = d.state_dir / "stats.bin"
    # The counted requests are in a periodic save once the file says so.
    assert wait_until(lambda: read_stats_file(path), lambda t: t == {"blog": 6}, timeout=10) == {"blog": 6}
    d.kill9()
    d.start()
    assert_history_kept(before, _stats(d, "blog"))


def test_history_of_a_site_gone_is_not_loaded(daemon):
    serve_requests(daemon, "gone", 3)
    serve_requests(daemon, "kept", 2)
    daemon.stop()
    saved = (daemon.state_dir / "stats.bin").read_bytes()
    daemon.start()
    daemon.ok("site", "rm", "gone")
    daemon.stop()
    # A file that still has the site (as after a crash before the next save).
    (daemon.state_dir / "stats.bin").write_bytes(saved)
    daemon.start()
    assert "loaded the usage history of 1 site" in daemon.log()
    daemon.ok("site", "create", "gone")
    assert _stats(daemon, "gone")["totals"]["requests"] == 0
    assert _stats(daemon, "kept")["totals"]["requests"] == 2


def test_damaged_history_is_refused_and_replaced(daemon_factory):
    d = daemon_factory()
    d.state_dir.mkdir(parents=True)
    path = d.state_dir / "stats.bin"
    path.write_bytes(b"BERTHSTS" + os.urandom(100))
    d.start()
    assert "is damaged or not berth's" in d.log()
    d.ok("site", "create", "blog")
    assert _stats(d, "blog")["totals"]["requests"] == 0
    d.stop()
    assert read_stats_file(path) == {}
