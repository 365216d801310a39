"""Site records through the CLI and the API: validation, conflicts, the directory
tree, atomic create and remove, crash recovery."""
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import threading

import pytest

from conftest import BERTH, wait_for


def db_rows(daemon, sql, *args):
    con = sqlite3.connect(f"file:{daemon.state_dir / 'berth.db'}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def site_dirs(daemon):
    """The trees under <state>/sites, once a removed site's trash is gone (a process
    of its own removes it, so berthd answers meanwhile; it must not linger)."""
    root = daemon.state_dir / "sites"

    def names():
        return sorted(p.name for p in root.iterdir()) if root.exists() else []
    assert wait_for(lambda: not any(n.startswith(".trash-") for n in names()), timeout=20), names()
    return names()


def test_create_list_show_remove(daemon):
    created = daemon.ok("site", "create", "blog", "--domain", "Blog.Example.ORG.", "--memory", "128M",
                        "--cpu", "0.5", "--pids", "64")
    assert created["name"] == "blog" and created["type"] == "static"
    assert created["domains"] == ["blog.example.org"], "lowercased, trailing dot stripped"
    assert created["host"] == "blog.test.berth"
    assert created["limits"]["memory"] == "128M" and created["limits"]["cpu"] == "0.5"
    assert created["limits"]["pids"] == 64

    ls = daemon.berth("site", "ls")
    assert ls.returncode == 0
    header, row = ls.stdout.splitlines()
    assert header.split() == ["NAME", "TYPE", "STATE", "ADDRESS", "OWNER", "REQ/HOUR"]
    assert row.split()[:3] == ["blog", "static", "running"]

    show = daemon.berth("site", "show", "blog")
    assert show.returncode == 0 and "blog.example.org" in show.stdout and "128M" in show.stdout

    r = daemon.berth("site", "rm", "blog")
    assert r.returncode == 0 and r.stdout == "removed site blog\n"
    assert daemon.ok("site", "ls")["sites"] == []
    assert site_dirs(daemon) == []


def test_site_tree_owners_and_modes(daemon):
    site = daemon.ok("site", "create", "blog")
    uid = site["uid"]
    lo, hi = daemon.uid_range
    assert lo <= uid <= hi
    root = daemon.state_dir / "sites" / "blog"
    expect = {
        "": (0, uid, 0o751),
        "public": (uid, 199999, 0o2750),
        "private": (uid, uid, 0o700),
        "logs": (199999, uid, 0o750),
        "tmp": (uid, uid, 0o700),
        "backups": (0, uid, 0o750),
    }
    for name, (owner, group, mode) in expect.items():
        st = os.lstat(root / name)
        assert stat.S_ISDIR(st.st_mode), name
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (owner, group, mode), name


@pytest.mark.parametrize("name", ["Blog", "-blog", "blog-", "a" * 64, "a_b", "a.b", "é", "panel"])
def test_bad_names_are_refused(daemon, name):
    r = daemon.berth("site", "create", "--", name)
    assert r.returncode == 1, r
    assert r.stderr.startswith("berth: ") and r.stderr.count("\n") == 1
    assert "site name" in r.stderr
    assert daemon.ok("site", "ls")["sites"] == []


def test_longest_valid_name(daemon):
    name = "a" + "-" * 61 + "z"
    assert daemon.ok("site", "create", name)["name"] == name


@pytest.mark.parametrize("domain,why", [
    ("localhost", "at least two labels"),
    ("bad_domain.example", ""),
    ("-x.example", ""),
    ("x" * 64 + ".example", "63"),
    ("blog.example.123", ""),
    ("other.test.berth", "reserved for a site named"),
])
def test_bad_domains_are_refused(daemon, domain, why):
    r = daemon.berth("site", "create", "blog", "--domain", domain)
    assert r.returncode == 1, r
    assert "domain" in r.stderr and why in r.stderr
    assert daemon.ok("site", "ls")["sites"] == []


def test_idn_domain_is_stored_as_punycode(daemon):
    site = daemon.ok("site", "create", "books", "--domain", "bücher.example")
    assert site["domains"] == ["xn--bcher-kva.example"]
    # The same domain given in either form is the same domain.
    r = daemon.berth("site", "create", "other", "--domain", "xn--bcher-kva.example")
    assert r.returncode == 1 and "already belongs to site books" in r.stderr


def test_duplicates_are_refused(daemon):
    daemon.ok("site", "create", "blog", "--domain", "blog.example.org")
    r = daemon.berth("site", "create", "blog")
    assert r.returncode == 1 and r.stderr == 'berth: a site named "blog" already exists\n'
    r = daemon.berth("site", "create", "news", "--domain", "BLOG.example.org")
    assert r.returncode == 1 and "domain blog.example.org already belongs to site blog" in r.stderr
    # The failed create left nothing behind: no row, no directory, no domain.
    assert [s["name"] for s in daemon.ok("site", "ls")["sites"]] == ["blog"]
    assert site_dirs(daemon) == ["blog"]
    r = daemon.berth("site", "create", "news", "--domain", "a.example", "--domain", "a.example")
    assert r.returncode == 1 and "given twice" in r.stderr


def test_unknown_sites(daemon):
    for verb in ("show", "rm", "start", "stop", "restart"):
        r = daemon.berth("site", verb, "ghost")
        assert r.returncode == 1, (verb, r)
        assert r.stderr == 'berth: no site named "ghost"\n'
    r = daemon.berth("site", "set", "ghost", "--memory", "1G")
    assert r.returncode == 1 and "no site named" in r.stderr


@pytest.mark.parametrize("argv", [
    ["site", "create", "blog", "--bogus"],
    ["site", "create"],
    ["site", "create", "a", "b"],
    ["site", "ls", "extra"],
    ["site", "create", "blog", "--pids", "many"],
    ["site", "create", "blog", "--domain"],
    ["site", "set", "blog"],
    ["site", "set", "blog", "--type", "php"],
    ["site", "frobnicate", "blog"],
    ["site"],
    ["nonsense"],
    ["--bogus", "status"],
    ["status", "extra"],
    ["user", "add"],
    ["user", "add", "bob", "--admin", "--bogus"],
    ["token", "create", "ci", "--user"],
    ["site", "set", "blog", "--always-on", "--on-demand"],
])
def test_wrong_usage_exits_2(daemon, argv):
    r = daemon.berth(*argv)
    assert r.returncode == 2, r
    assert r.stderr.startswith("berth: ") or r.stderr.startswith("Usage:")
    assert "unknown option" not in r.stderr or "bogus" in r.stderr, r


def test_bad_values_are_explained(daemon):
    cases = [
        (["--memory", "lots"], "invalid memory limit"),
        (["--memory", "1M"], "at least 16M"),
        (["--cpu", "fast"], "invalid CPU limit"),
        (["--type", "java"], "invalid site type"),
        (["--network", "wifi"], "invalid network"),
        (["--owner", "nobody-here"], 'no user named "nobody-here"'),
        (["--type", "app"], "needs a command"),
        (["--cmd", "true"], "only app sites take a command"),
        (["--idle", "1"], "idle time"),
    ]
    for extra, message in cases:
        r = daemon.berth("site", "create", "blog", *extra)
        assert r.returncode == 1, (extra, r)
        assert message in r.stderr, (extra, r.stderr)
    assert daemon.ok("site", "ls")["sites"] == []


def test_set_changes_limits_and_domains(daemon):
    daemon.ok("site", "create", "blog", "--domain", "a.example")
    site = daemon.ok("site", "set", "blog", "--memory", "1G", "--cpu", "2", "--pids", "500", "--idle", "60",
                     "--always-on", "--domain", "b.example", "--no-domain", "a.example")
    assert site["limits"]["memory"] == "1G" and site["limits"]["cpu"] == "2"
    assert site["limits"]["pids"] == 500 and site["idle_seconds"] == 60 and site["always_on"] is True
    assert site["domains"] == ["b.example"]
    site = daemon.ok("site", "set", "blog", "--on-demand")
    assert site["always_on"] is False
    # A domain another site holds cannot be taken.
    daemon.ok("site", "create", "shop", "--domain", "shop.example")
    r = daemon.berth("site", "set", "blog", "--domain", "shop.example")
    assert r.returncode == 1 and "already belongs to site shop" in r.stderr
    r = daemon.berth("site", "set", "blog", "--no-domain", "zzz.example")
    assert r.returncode == 1 and "has no domain zzz.example" in r.stderr
    assert daemon.ok("site", "show", "blog")["domains"] == ["b.example"]


def test_set_changes_owner_command_and_network(daemon):
    daemon.ok("user", "add", "alice", "--password-stdin", input="correct horse battery\n")
    daemon.ok("site", "create", "blog")
    assert daemon.ok("site", "set", "blog", "--owner", "alice")["owner"] == "alice"
    daemon.ok("site", "create", "app", "--type", "app", "--cmd", "exec sleep 1000")
    site = daemon.ok("site", "set", "app", "--cmd", "exec sleep 2000", "--network", "host")
    assert site["cmd"] == "exec sleep 2000" and site["network"] == "host", site
    r = daemon.berth("site", "set", "blog", "--owner", "nobody-here")
    assert r.returncode == 1 and 'no user named "nobody-here"' in r.stderr


def test_start_stop_restart_record_desired_state(daemon):
    daemon.ok("site", "create", "blog")
    r = daemon.berth("site", "stop", "blog")
    assert r.returncode == 0 and r.stdout == "stopped site blog\n"
    assert daemon.ok("site", "show", "blog")["state"] == "stopped"
    daemon.ok("site", "start", "blog")
    assert daemon.ok("site", "show", "blog")["state"] == "running"
    daemon.ok("site", "restart", "blog")
    actions = [a for (a,) in db_rows(daemon, "SELECT action FROM events WHERE target = 'blog' ORDER BY id")]
    assert actions == ["site.create", "site.update", "site.update", "site.update"]
    actors = {a for (a,) in db_rows(daemon, "SELECT actor FROM events")}
    assert actors == {"root"}


def test_uids_are_distinct_and_not_reused(daemon):
    a = daemon.ok("site", "create", "a")["uid"]
    b = daemon.ok("site", "create", "b")["uid"]
    assert a != b
    daemon.ok("site", "rm", "b")
    c = daemon.ok("site", "create", "c")["uid"]
    assert c not in (a, b), "a removed site's uid is not handed out while others are free"


def test_uid_range_exhausted_is_a_clear_error(daemon):
    lo, hi = daemon.uid_range
    for i in range(hi - lo + 1):
        daemon.ok("site", "create", f"s{i}")
    r = daemon.berth("site", "create", "onemore")
    assert r.returncode == 1 and "no free uid" in r.stderr
    assert "onemore" not in site_dirs(daemon)


def test_concurrent_creates_of_one_name_exactly_one_wins(daemon):
    results = []

    def create():
        results.append(subprocess.run([str(BERTH), "--socket", str(daemon.socket), "site", "create", "race"],
                                      capture_output=True, text=True, timeout=60))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results)
    assert codes == [0] + [1] * 7, [(r.returncode, r.stderr) for r in results]
    assert all("already exists" in r.stderr for r in results if r.returncode == 1)
    assert site_dirs(daemon) == ["race"]


@pytest.mark.parametrize("point,exists_after", [
    ("site-create:staged", False),
    ("site-create:stored", True),
])
def test_kill9_during_create_then_store_and_disk_agree(daemon_factory, point, exists_after):
    d = daemon_factory().start(env={"BERTH_TEST_CRASH": point})
    r = d.berth("site", "create", "blog")
    assert r.returncode == 1, "the daemon died mid-request"
    assert d.proc.wait(timeout=20) == -9
    d.proc = None
    d.start()
    names = [s["name"] for s in d.ok("site", "ls")["sites"]]
    assert names == (["blog"] if exists_after else [])
    assert site_dirs(d) == names
    if exists_after:
        uid = d.ok("site", "show", "blog")["uid"]
        for sub in ("public", "private", "logs", "tmp", "backups"):
            assert (d.state_dir / "sites/blog" / sub).is_dir()
        assert os.stat(d.state_dir / "sites/blog/public").st_uid == uid
    if exists_after:
        assert "repaired" in d.log()


def test_kill9_during_remove_leaves_no_trace(daemon_factory):
    d = daemon_factory().start()
    d.ok("site", "create", "blog")
    (d.state_dir / "sites/blog/public/index.html").write_text("hello")
    d.stop()
    d.start(env={"BERTH_TEST_CRASH": "site-rm:stored"})
    r = d.berth("site", "rm", "blog")
    assert r.returncode == 1
    assert d.proc.wait(timeout=20) == -9
    d.proc = None
    assert site_dirs(d) == ["blog"], "the tree outlived the row"
    d.start()
    assert d.ok("site", "ls")["sites"] == []
    assert site_dirs(d) == []


def test_restart_repairs_half_made_directories(daemon):
    daemon.ok("site", "create", "blog")
    uid = daemon.ok("site", "show", "blog")["uid"]
    root = daemon.state_dir / "sites/blog"
    shutil.rmtree(root / "logs")
    os.chmod(root / "private", 0o777)
    (daemon.state_dir / "sites/stray").mkdir()
    daemon.stop()
    daemon.start()
    assert stat.S_IMODE(os.stat(root / "private").st_mode) == 0o700
    assert os.stat(root / "logs").st_gid == uid
    assert site_dirs(daemon) == ["blog"]


def test_json_output_is_one_document(daemon):
    r = daemon.berth("site", "create", "blog", json_out=True)
    assert r.returncode == 0 and r.json()["name"] == "blog"
    r = daemon.berth("site", "show", "ghost", json_out=True)
    assert r.returncode == 1
    assert r.json()["error"]["status"] == 404
    assert r.stderr == 'berth: no site named "ghost"\n'
    # --json after the command works too, but not inside what `site exec` runs
    r = daemon.berth("site", "ls", "--json")
    assert r.returncode == 0 and [s["name"] for s in json.loads(r.stdout)["sites"]] == ["blog"], r


def test_cli_without_daemon_fails_clearly(tmp_path):
    r = subprocess.run([str(BERTH), "--socket", str(tmp_path / "none.sock"), "status"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "cannot reach berthd" in r.stderr and "is berthd running?" in r.stderr
    env = dict(os.environ, BERTH_SOCKET=str(tmp_path / "env.sock"))
    r = subprocess.run([str(BERTH), "status"], capture_output=True, text=True, env=env)
    assert "env.sock" in r.stderr


def api(daemon, method, path, body=None):
    """One raw API request over the unix socket, as a script would send it."""
    import http.client
    import json
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(daemon.socket))

    conn = UnixConnection("berthd", timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    r = conn.getresponse()
    answer = r.status, json.loads(r.read())
    conn.close()
    return answer


def test_api_takes_zero_as_unlimited_for_every_limit(daemon):
    daemon.ok("site", "create", "blog")
    for key in ("memory", "cpu", "pids"):
        for zero in (0, "0") if key != "pids" else (0,):
            status, body = api(daemon, "PATCH", "/api/v1/sites/blog", {key: zero})
            assert status == 200 and body["limits"][key] in ("unlimited", 0), (key, zero, body)
            status, body = api(daemon, "PATCH", "/api/v1/sites/blog", {key: "64M" if key == "memory" else 8})
            assert status == 200, body


def test_api_refuses_unknown_fields_and_bad_json(daemon):
    status, body = api(daemon, "POST", "/api/v1/sites", {"name": "blog", "colour": "blue"})
    assert status == 400 and body["error"]["message"] == 'unknown field "colour"'
    daemon.ok("site", "create", "blog")
    status, body = api(daemon, "PATCH", "/api/v1/sites/blog", {"memroy": "1G"})
    assert status == 400 and body["error"]["message"] == 'unknown field "memroy"'
    status, body = api(daemon, "GET", "/api/v1/nowhere")
    assert status == 404
    status, body = api(daemon, "DELETE", "/api/v1/sites")
    assert status == 405
    assert daemon.ok("site", "show", "blog")["limits"]["memory"] == "256M"


def test_site_logs_tail_and_follow(daemon):
    """`site logs NAME [--error] [--follow]` is part of the interface contract."""
    import select
    import time

    daemon.ok("site", "create", "blog")
    log = daemon.state_dir / "sites" / "blog" / "logs" / "error.log"
    log.write_text("".join(f"line {i}\n" for i in range(300)))

    r = daemon.berth("site", "logs", "blog", "--error", "--lines", "3")
    assert r.returncode == 0, r
    assert r.stdout == "line 297\nline 298\nline 299\n"
    r = daemon.berth("site", "logs", "blog", "--error")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 100, r
    j = daemon.ok("site", "logs", "blog", "--error", "--lines", "2")
    assert j["kind"] == "error" and j["lines"] == ["line 298", "line 299"]
    assert daemon.ok("site", "logs", "blog")["kind"] == "access"

    r = daemon.berth("site", "logs", "ghost")
    assert r.returncode == 1 and r.stderr == 'berth: no site named "ghost"\n', r
    for argv in (["site", "logs", "blog", "--memory", "1G"], ["site", "logs", "blog", "--lines", "0"],
                 ["site", "logs"], ["site", "create", "x", "--follow"]):
        assert daemon.berth(*argv).returncode == 2, argv
    r = daemon.berth("site", "logs", "blog", "--follow", json_out=True)
    assert r.returncode == 2 and "--follow" in r.stderr and r.stdout == "", r

    # --follow prints the tail, then each whole line as it is written, once.
    proc = subprocess.Popen([str(BERTH), "--socket", str(daemon.socket), "site", "logs", "blog", "--error",
                             "--follow", "--lines", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        got = []

        def read_until(n, timeout=10):
            deadline = time.monotonic() + timeout
            while len(got) < n and time.monotonic() < deadline:
                if select.select([proc.stdout], [], [], 0.2)[0]:
                    line = proc.stdout.readline()
                    if not line:
                        break
                    got.append(line)

        read_until(1)
        with open(log, "a") as f:
            f.write("new 1\nnew 2\nhalf ")
        read_until(3)
        with open(log, "a") as f:
            f.write("written\n")
        read_until(4)
        time.sleep(1.5)
        read_until(5, timeout=0.5)
        assert got == ["line 299\n", "new 1\n", "new 2\n", "half written\n"]
        assert proc.poll() is None, "--follow keeps going"
    finally:
        proc.kill()
        proc.wait()
    assert "runtime error" not in proc.stderr.read()


def holds_fd3_on(pid, path):
    """Whether process pid has fd 3 open on path (and is not berthd itself)."""
    try:
        return os.readlink(f"/proc/{pid}/fd/3") == path and "berthd" in os.readlink(f"/proc/{pid}/exe") and \
            len(os.listdir(f"/proc/{pid}/fd")) < 10
    except OSError:
        return False


def test_removing_a_big_site_does_not_hold_berthd_up(daemon_factory, tmp_path):
    """A tree of many files is removed by a process of its own, so berthd answers
    meanwhile (held here at a gate); the trash is gone soon after, and a restart
    in between neither fails on a port nor keeps the trash."""
    gate = tmp_path / "gate"
    d = daemon_factory().start(env={"BERTH_TEST_REMOVE_GATE": str(gate)})
    info = d.ok("site", "create", "big")
    public = os.path.join(info["dir"], "public")
    for i in range(50):
        sub = os.path.join(public, f"d{i}")
        os.mkdir(sub)
        for j in range(100):
            open(os.path.join(sub, f"f{j}"), "w").close()
    r = d.berth("site", "rm", "big")
    assert r.returncode == 0, r
    root = d.state_dir / "sites"
    [trash] = [p.name for p in root.iterdir()]
    assert trash.startswith(".trash-big-"), trash
    assert d.ok("site", "ls")["sites"] == []
    # The remover holds the sites' directory and nothing else of berthd's.
    remover = [pid for pid in os.listdir("/proc") if pid.isdigit() and holds_fd3_on(pid, str(root))]
    assert len(remover) == 1, remover
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{remover[0]}/fd"))
    assert fds == [0, 1, 2, 3], fds
    assert d.ok("site", "create", "big")["name"] == "big"   # the name is free again
    # berthd restarts while the removal waits: its ports are its own again.
    d.stop()
    d.start()
    gate.touch()
    assert site_dirs(d) == ["big"]
