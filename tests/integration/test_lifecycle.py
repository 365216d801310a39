"""Site lifecycle: on-demand start through the site's socket, idle stop, always-on,
crash loops, live limits, shutdown and crash recovery of berthd, and `site exec`.

Runs real sandboxes, so it needs root (skips otherwise; BERTH_MUST_WORK=1 makes that
a failure). The test mostly acts as the front: it speaks HTTP/1.0 straight to the
site's unix socket in <run>/sites/<name>.sock.
"""
import concurrent.futures
import os
import shutil
import signal
import socket
import stat
import time
from pathlib import Path

import pytest

from conftest import require
from front_helpers import build_request, open_conn, read_response, request, wait_until

APP = Path(__file__).resolve().parents[1] / "helpers" / "app.py"
APP_CMD = "exec python3 /site/private/app.py"


@pytest.fixture(autouse=True)
def needs_root():
    require(os.geteuid() == 0, "site sandboxes need root")
    require(os.path.isdir("/sys/fs/cgroup"), "no cgroup file system")


def fnv1a(text):
    h = 2166136261
    for b in text.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def cgroup_read(dirs, name):
    """A cgroup file of the site, from whichever hierarchy has it; None: none has."""
    for dr in dirs:
        p = os.path.join(dr, name)
        if os.path.exists(p):
            return open(p).read().strip()
    return None


def cgroup_dirs(d, site):
    """Every directory of the site's cgroup (one per hierarchy), as berthd makes them:
    <own cgroup>/berth-<fnv1a(run dir)>/<site>. berthd inherits our cgroup."""
    parent = "berth-%08x" % fnv1a(str(d.run_dir))
    dirs = []
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrl, path = line.rstrip("\n").split(":", 2)
            if ctrl.startswith("name="):
                continue
            if ctrl == "":
                mount = "/sys/fs/cgroup" if v2 else "/sys/fs/cgroup/unified"
            else:
                mount = "/sys/fs/cgroup/" + ctrl.split(",")[0]
                if not os.path.isdir(mount):
                    mount = "/sys/fs/cgroup/" + ctrl
            if path.endswith("/berthd"):
                path = path[: -len("/berthd")]
            dirs.append(os.path.normpath(f"{mount}{path}/{parent}/{site}"))
    return [x for x in dirs if os.path.isdir(os.path.dirname(x))]


def cgroup_pids(d, site):
    pids = set()
    for dr in cgroup_dirs(d, site):
        try:
            with open(os.path.join(dr, "cgroup.procs")) as f:
                pids.update(int(x) for x in f.read().split())
        except FileNotFoundError:
            pass
    return pids


def sock_path(d, site):
    return d.run_dir / "sites" / f"{site}.sock"


def http_get(d, site, path="/", timeout=20):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path(d, site)))
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {site}.test.berth\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode()


def show(d, site):
    return d.ok("site", "show", site)


def wait_state(d, site, states, timeout=20):
    if isinstance(states, str):
        states = (states,)
    deadline = time.monotonic() + timeout
    while True:
        info = show(d, site)
        if info["state"] in states:
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"site {site} stayed {info['state']}, wanted {states}: {info}\n{d.log()}")
        time.sleep(0.1)


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def make_app(d, name, cmd=APP_CMD, always_on=False, idle=None):
    """Creates an app site (on demand first, so that nothing runs before the app is
    in place), ships app.py into its private/ as the site's user, then applies
    always_on/idle."""
    info = d.ok("site", "create", name, "--type", "app", "--cmd", cmd)
    uid = info["uid"]
    dst = Path(info["dir"]) / "private" / "app.py"
    shutil.copy(APP, dst)
    os.chown(dst, uid, uid)
    args = []
    if idle is not None:
        args += ["--idle", str(idle)]
    if always_on:
        args.append("--always-on")
    if args:
        info = d.ok("site", "set", name, *args)
    return info


def test_on_demand_start_then_idle_stop(daemon):
    info = make_app(daemon, "blog", idle=10)
    assert info["state"] == "idle"
    assert info["runtime"]["pid"] is None
    st = os.stat(sock_path(daemon, "blog"))
    assert oct(st.st_mode & 0o777) == "0o660" and st.st_uid == 0
    assert not cgroup_pids(daemon, "blog")

    status, body = http_get(daemon, "blog")
    assert status == 200, body
    assert "hello from blog" in body
    # The app is the program (pid 2 under the sandbox's reaper) and got LISTEN_PID.
    assert "pid 2 listen_pid=2" in body
    assert f"listen={sock_path(daemon, 'blog')}" in body
    info = show(daemon, "blog")
    assert info["state"] == "running"
    pid = info["runtime"]["pid"]
    assert pid and pid_alive(pid)
    assert pid in cgroup_pids(daemon, "blog")
    usage = info["runtime"]["usage"]
    assert usage["processes"] >= 2 and usage["memory_current"] > 0

    # After the idle time (10 s, checked at 10 s after the start) the sandbox goes.
    time.sleep(8)
    assert show(daemon, "blog")["state"] == "running"
    info = wait_state(daemon, "blog", "idle", timeout=15)
    assert info["runtime"]["pid"] is None
    assert not pid_alive(pid)
    assert not cgroup_pids(daemon, "blog")
    assert all(not os.path.exists(x) for x in cgroup_dirs(daemon, "blog"))

    # Idle again means watched again: the next request starts a new sandbox.
    status, body = http_get(daemon, "blog")
    assert status == 200 and "hello from blog" in body
    assert show(daemon, "blog")["runtime"]["pid"] != pid
    log = (Path(info["dir"]) / "logs" / "error.log").read_text()
    assert "app: serving on fd 3" in log


def test_fifty_parallel_first_requests(daemon):
    make_app(daemon, "rush")
    assert show(daemon, "rush")["state"] == "idle"
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda _: http_get(daemon, "rush"), range(50)))
    assert [s for s, _ in results] == [200] * 50
    assert all("hello from rush" in b for _, b in results)
    # One sandbox served them all.
    info = show(daemon, "rush")
    assert info["state"] == "running" and info["runtime"]["restarts"] == 0
    assert len({b.split(" pid ")[1].split()[0] for _, b in results}) == 1


def test_always_on_runs_with_berthd_and_sigterm_cleans_up(daemon_factory):
    d = daemon_factory().start()
    make_app(d, "svc", always_on=True)
    info = wait_state(d, "svc", "running", timeout=10)
    pid = info["runtime"]["pid"]
    dirs = cgroup_dirs(d, "svc")
    assert dirs and all(os.path.isdir(x) for x in dirs)
    assert http_get(d, "svc")[0] == 200

    d.stop()   # SIGTERM
    assert not pid_alive(pid)
    assert all(not os.path.exists(x) for x in dirs), dirs
    assert not sock_path(d, "svc").exists()
    assert not (d.run_dir / "exec.sock").exists()

    d.start()
    info = wait_state(d, "svc", "running", timeout=10)   # without any request
    assert info["runtime"]["pid"] != pid
    assert http_get(d, "svc")[0] == 200


def test_stop_unwatches_and_start_rewatches(daemon):
    make_app(daemon, "shop")
    assert http_get(daemon, "shop")[0] == 200
    pid = show(daemon, "shop")["runtime"]["pid"]
    daemon.ok("site", "stop", "shop")
    info = wait_state(daemon, "shop", "stopped", timeout=10)
    assert info["runtime"]["pid"] is None and not pid_alive(pid)
    assert not cgroup_pids(daemon, "shop")
    # Nothing listens: a connection is refused rather than starting the site.
    with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
        http_get(daemon, "shop", timeout=2)
    time.sleep(0.5)
    assert show(daemon, "shop")["state"] == "stopped"
    assert daemon.berth("site", "ls").stdout.split("\n")[1].split()[2] == "stopped"

    daemon.ok("site", "start", "shop")
    assert show(daemon, "shop")["state"] == "idle"
    assert http_get(daemon, "shop")[0] == 200


def test_crash_loop_fails_and_restart_clears_it(daemon):
    cmd = ("if [ -e /site/private/crash ]; then echo boom-$$ starting; echo cannot go on >&2; exit 3; fi; "
           + APP_CMD)
    info = make_app(daemon, "flaky", cmd=cmd)
    crash = Path(info["dir"]) / "private" / "crash"
    crash.write_text("")
    t0 = time.monotonic()
    daemon.ok("site", "set", "flaky", "--always-on")
    info = wait_state(daemon, "flaky", "failed", timeout=20)
    # Backoff 0.5 + 1 + 2 + 4 s between the five crashes.
    assert time.monotonic() - t0 >= 7
    rt = info["runtime"]
    assert rt["restarts"] == 4 and rt["last_exit"] == 3 and rt["pid"] is None
    assert "cannot go on" in rt["last_output"] and "boom-" in rt["last_output"]
    assert "crashed 5 times" in rt["error"]
    text = daemon.berth("site", "show", "flaky").stdout
    assert "state        failed" in text and "  | cannot go on" in text
    assert not cgroup_pids(daemon, "flaky")
    time.sleep(1.5)
    assert show(daemon, "flaky")["state"] == "failed"   # no more restarts

    crash.unlink()
    daemon.ok("site", "restart", "flaky")
    info = wait_state(daemon, "flaky", "running", timeout=10)
    assert info["runtime"]["restarts"] == 0 and info["runtime"]["last_output"] is None
    assert http_get(daemon, "flaky")[0] == 200


def test_program_exiting_while_a_request_waits_backs_off_then_fails(daemon):
    # A program that exits with status 0 without taking the waiting request (it
    # daemonized, or is no server at all) left its work undone: restarting it at
    # once, request after request, would start sandboxes in a tight loop for as
    # long as the request waits. It is a crash, with backoff and an end.
    make_app(daemon, "quits", cmd="sleep 30 & exit 0")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as waiting:
        waiting.connect(str(sock_path(daemon, "quits")))
        waiting.sendall(b"GET / HTTP/1.0\r\nHost: quits.test.berth\r\n\r\n")
        info = wait_state(daemon, "quits", "failed", timeout=30)
    assert daemon.log().count("site quits: started (pid") == 5, daemon.log()
    assert "last exit status 0" in info["runtime"]["error"]
    assert "foreground" in info["runtime"]["error"]
    assert not cgroup_pids(daemon, "quits")


def test_lowering_the_idle_time_applies_to_a_running_site(daemon):
    make_app(daemon, "lazy")   # idle time 300 s
    assert http_get(daemon, "lazy")[0] == 200
    pid = show(daemon, "lazy")["runtime"]["pid"]
    daemon.ok("site", "set", "lazy", "--idle", "10")
    info = wait_state(daemon, "lazy", "idle", timeout=40)
    assert info["runtime"]["pid"] is None and not pid_alive(pid)


def test_app_site_turned_static_leaves_the_runtime(daemon):
    from test_sites import api
    make_app(daemon, "always", always_on=True)
    make_app(daemon, "ondemand")
    wait_state(daemon, "always", "running")
    assert http_get(daemon, "ondemand")[0] == 200
    pids = [show(daemon, name)["runtime"]["pid"] for name in ("always", "ondemand")]
    for name in ("always", "ondemand"):
        status, body = api(daemon, "PATCH", f"/api/v1/sites/{name}", {"type": "static", "cmd": None})
        assert status == 200, body
    for name, pid in zip(("always", "ondemand"), pids):
        # A static site is served by the front: nothing of the runtime is left.
        deadline = time.monotonic() + 15
        while "runtime" in show(daemon, name):
            assert time.monotonic() < deadline, show(daemon, name)
            time.sleep(0.1)
        info = show(daemon, name)
        assert info["type"] == "static" and info["state"] == "running", info
        assert not pid_alive(pid)
        assert not sock_path(daemon, name).exists()
        assert not cgroup_pids(daemon, name)
    r = daemon.berth("site", "exec", "always", "--", "true")
    assert r.returncode == 1 and "does not run code" in r.stderr, r


def test_stop_then_start_gives_a_crashing_site_a_fresh_count(daemon):
    # Crashes before a `site stop` do not count after the next `site start`: the
    # operator stopped the loop (and maybe fixed something); the site gets its
    # five tries again, with the backoff from the start.
    cmd = "if [ -e /site/private/crash ]; then exit 3; fi; " + APP_CMD
    info = make_app(daemon, "flaky", cmd=cmd)
    (Path(info["dir"]) / "private" / "crash").write_text("")
    daemon.ok("site", "set", "flaky", "--always-on")
    deadline = time.monotonic() + 20
    while show(daemon, "flaky")["runtime"]["restarts"] < 3:
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.05)
    daemon.ok("site", "stop", "flaky")
    wait_state(daemon, "flaky", "stopped")
    before = daemon.log().count("site flaky: started (pid")
    daemon.ok("site", "start", "flaky")
    info = wait_state(daemon, "flaky", "failed", timeout=30)
    assert daemon.log().count("site flaky: started (pid") - before == 5, daemon.log()
    assert "crashed 5 times" in info["runtime"]["error"]


def test_a_site_killed_at_its_memory_limit_is_told_so(daemon):
    # Exit status 137 alone does not tell an operator that the site needs more
    # memory (or has a leak): the crash log lines and the failure reason say it.
    make_app(daemon, "fat", cmd="exec python3 -c 'x = bytearray(200 << 20)\n"
                                "for i in range(0, len(x), 4096): x[i] = 1\n"
                                "import time; time.sleep(60)'")
    daemon.ok("site", "set", "fat", "--memory", "64M", "--always-on")
    info = wait_state(daemon, "fat", "failed", timeout=40)
    why = info["runtime"]["error"]
    assert "crashed 5 times" in why and "out of memory" in why and "64M" in why, why
    assert "out of memory" in daemon.berth("site", "show", "fat").stdout
    assert "restarting in" in daemon.log() and "out of memory" in daemon.log()


def test_stop_while_stopping_still_kills_a_program_that_ignores_sigterm(daemon):
    # A restart sends SIGTERM and arms the SIGKILL for 5 s later; a `site stop`
    # meanwhile must not lose that SIGKILL, or the site stays "stopping" for good.
    make_app(daemon, "stubborn", cmd="trap '' TERM; " + APP_CMD, always_on=True)
    pid = wait_state(daemon, "stubborn", "running")["runtime"]["pid"]
    daemon.ok("site", "restart", "stubborn")
    assert show(daemon, "stubborn")["state"] == "stopping"
    daemon.ok("site", "stop", "stubborn")
    info = wait_state(daemon, "stubborn", "stopped", timeout=20)
    assert info["runtime"]["pid"] is None and not pid_alive(pid)
    assert "did not stop within 5 s of SIGTERM; killing it" in daemon.log()
    assert not cgroup_pids(daemon, "stubborn")


def test_site_over_its_request_limit_gets_503(daemon_factory):
    d = daemon_factory()
    d.open_path_to_root()
    with open(d.config_path(), "a") as f:
        f.write("workers: 1\nsite_max_requests: 1\n")
    d.start()
    info = make_app(d, "busy", always_on=True)
    make_app(d, "calm", always_on=True)
    wait_state(d, "busy", "running")
    port = d.http_port()
    held = open_conn(port, timeout=15)
    held.sendall(build_request("busy.test.berth", "/hold"))
    try:
        # While the held request is at the app, the site's one place is taken.
        assert wait_until(lambda: request(port, "busy.test.berth", "/")[0] == 503, 5)
        st, h, body = request(port, "busy.test.berth", "/")
        assert st == 503 and h.get("retry-after") == "5" and b"<html>" in body
        assert request(port, "calm.test.berth", "/")[0] == 200
        (Path(info["dir"]) / "private" / "release").write_text("")
        assert read_response(held)[0] == 200
    finally:
        held.close()
    assert request(port, "busy.test.berth", "/")[0] == 200

    d.stop()
    d.config_path().write_text("site_max_requests: lots\n")
    d.start(wait=False)
    assert d.proc.wait(timeout=20) == 1
    d.proc = None
    assert "site_max_requests must be a number" in d.log()


def test_error_log_planted_as_a_hard_link_or_a_fifo_is_made_anew(daemon):
    # logs/ belongs to the front's user: a compromised front could plant these.
    info = make_app(daemon, "blog")
    err = Path(info["dir"]) / "logs" / "error.log"
    victim = Path(info["dir"]).parents[1] / "victim"   # same file system as the site
    victim.write_text("not the site's\n")
    os.chmod(victim, 0o600)
    if err.exists() or err.is_symlink():
        err.unlink()
    os.link(victim, err)
    assert http_get(daemon, "blog")[0] == 200
    st = victim.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777, st.st_nlink) == (0, 0, 0o600, 1)
    assert victim.read_text() == "not the site's\n"
    assert err.stat().st_ino != st.st_ino and err.stat().st_gid == info["uid"]

    daemon.ok("site", "stop", "blog")
    wait_state(daemon, "blog", ("stopped", "idle"))
    err.unlink()
    os.mkfifo(err)
    daemon.ok("site", "start", "blog")
    # A FIFO without a reader would block berthd's open for good.
    assert http_get(daemon, "blog", timeout=10)[0] == 200
    assert stat.S_ISREG(err.lstat().st_mode)


def test_restart_really_restarts(daemon):
    make_app(daemon, "again", always_on=True)
    pid = wait_state(daemon, "again", "running")["runtime"]["pid"]
    daemon.ok("site", "restart", "again")
    deadline = time.monotonic() + 10
    while show(daemon, "again")["runtime"]["pid"] in (None, pid):
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.1)
    assert not pid_alive(pid)
    assert http_get(daemon, "again")[0] == 200


def test_limits_change_live(daemon):
    make_app(daemon, "tight", always_on=True)
    wait_state(daemon, "tight", "running")
    dirs = cgroup_dirs(daemon, "tight")

    def read(name):
        value = cgroup_read(dirs, name)
        assert value is not None, f"no {name} in {dirs}"
        return value

    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    mem_file = "memory.max" if v2 else "memory.limit_in_bytes"
    assert int(read(mem_file)) == 256 << 20
    assert read("pids.max") == "128"
    daemon.ok("site", "set", "tight", "--memory", "300M", "--pids", "77", "--cpu", "0.25")
    assert int(read(mem_file)) == 300 << 20
    assert read("pids.max") == "77"
    if v2:
        assert read("cpu.max").split()[0] == "25000"
    else:
        assert int(read("cpu.cfs_quota_us")) * 4 == int(read("cpu.cfs_period_us"))
    # Still the same sandbox, now serving under the new limits.
    assert show(daemon, "tight")["runtime"]["restarts"] == 0
    assert http_get(daemon, "tight")[0] == 200
    text = daemon.berth("site", "show", "tight").stdout
    assert "memory used" in text and "processes    " in text and "oom kills    0" in text


def disk_of(path):
    """major:minor of the whole disk holding path, as the io controller names it."""
    st = os.stat(path)
    sysdir = os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if os.path.exists(os.path.join(sysdir, "partition")):
        sysdir = os.path.dirname(sysdir)
    return open(os.path.join(sysdir, "dev")).read().strip()


def test_disk_limits_throttle_the_sites_writes_and_change_live(daemon):
    st = os.stat(daemon.state_dir)
    require(os.major(st.st_dev) != 0, "the state dir is on no block device (tmpfs, overlay)")
    info = make_app(daemon, "disk", always_on=True)
    wait_state(daemon, "disk", "running")
    dev = disk_of(daemon.state_dir)
    dirs = cgroup_dirs(daemon, "disk")
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    require(cgroup_read(dirs, "io.max" if v2 else "blkio.throttle.write_bps_device") is not None,
            "no io (blkio) controller for site cgroups")

    shown = daemon.ok("site", "set", "disk", "--io-write", "2M", "--io-read", "4M")
    assert shown["limits"]["io_write_bps"] == 2 << 20 and shown["limits"]["io_write"] == "2M/s", shown
    assert shown["limits"]["io_read_bps"] == 4 << 20
    if v2:
        assert f"{dev} rbps={4 << 20} wbps={2 << 20}" in cgroup_read(dirs, "io.max")
    else:
        assert cgroup_read(dirs, "blkio.throttle.write_bps_device") == f"{dev} {2 << 20}"
        assert cgroup_read(dirs, "blkio.throttle.read_bps_device") == f"{dev} {4 << 20}"
    assert "disk         read 4M/s, write 2M/s" in daemon.berth("site", "show", "disk").stdout

    # 6 MiB written past the page cache at 2 MiB/s take about 3 s; unthrottled, a
    # fraction of one. (A lower bound only: a slow machine cannot fail it.)
    dd = ["dd", "if=/dev/zero", "of=/site/private/big", "bs=1M", "count=6", "oflag=direct"]
    started = time.monotonic()
    r = daemon.berth("site", "exec", "disk", "--", *dd, timeout=60)
    took = time.monotonic() - started
    assert r.returncode == 0, r
    assert took >= 2.0, f"6 MiB went out in {took:.2f} s under a 2 MiB/s limit"

    # Lifted live: the rule is gone, the same sandbox goes on.
    daemon.ok("site", "set", "disk", "--io-write", "unlimited", "--io-read", "unlimited")
    if v2:
        assert f"{dev} " not in (cgroup_read(dirs, "io.max") or "")
    else:
        assert cgroup_read(dirs, "blkio.throttle.write_bps_device") == ""
    assert show(daemon, "disk")["runtime"]["restarts"] == 0
    assert os.path.getsize(os.path.join(info["dir"], "private", "big")) == 6 << 20

    r = daemon.berth("site", "set", "disk", "--io-write", "100K")
    assert r.returncode == 1 and "disk limits must be at least 1M per second" in r.stderr, r
    r = daemon.berth("site", "set", "disk", "--io-write", "fast")
    assert r.returncode == 1 and "invalid io_write limit" in r.stderr, r


def test_limit_the_running_sandbox_cannot_take_is_reported_and_the_others_apply(daemon):
    import subprocess
    from conftest import BERTH
    make_app(daemon, "full", always_on=True)
    wait_state(daemon, "full", "running")
    dirs = cgroup_dirs(daemon, "full")

    def read(name):
        return cgroup_read(dirs, name)

    # 60M in use, in the site's cgroup, then a memory limit below that.
    hog = subprocess.Popen([str(BERTH), "--socket", str(daemon.socket), "site", "exec", "full", "--", "python3", "-c",
                            "x = bytearray(60 << 20)\nfor i in range(0, len(x), 4096): x[i] = 1\n"
                            "import time; print('ready', flush=True); time.sleep(60)"],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert hog.stdout.readline().strip() == "ready"
        daemon.ok("site", "set", "full", "--memory", "16M", "--pids", "50")
        # The limits the kernel takes apply even when another is refused.
        assert read("pids.max") == "50"
        v1 = read("memory.limit_in_bytes")
        if v1 is not None and int(v1) != 16 << 20:
            # v1 refuses a limit below what is in use (EBUSY; v2 reclaims or
            # OOM-kills instead): said in `site show`, and swap is not left open.
            info = show(daemon, "full")
            assert "memory" in (info["runtime"]["error"] or ""), info["runtime"]
            assert "next start" in info["runtime"]["error"]
            memsw = read("memory.memsw.limit_in_bytes")
            assert memsw is None or memsw == v1, (memsw, v1)
            assert "cannot apply" in daemon.log()
    finally:
        hog.kill()
        hog.wait()


def test_network_change_applies_to_a_running_site(daemon):
    # Cutting a running site off the network (--network none) must not wait for
    # its next start: the sandbox is started again in the new network.
    make_app(daemon, "net", always_on=True)
    wait_state(daemon, "net", "running")
    host_net = os.readlink("/proc/self/ns/net")

    def sandbox_net_after(old_pid):
        deadline = time.monotonic() + 15
        while True:
            info = show(daemon, "net")
            pid = info["runtime"]["pid"]
            if info["state"] == "running" and pid not in (None, old_pid):
                return os.readlink(f"/proc/{pid}/ns/net"), pid
            assert time.monotonic() < deadline, (info, daemon.log())
            time.sleep(0.1)

    pid = show(daemon, "net")["runtime"]["pid"]
    assert os.readlink(f"/proc/{pid}/ns/net") != host_net
    daemon.ok("site", "set", "net", "--network", "host")
    net, pid = sandbox_net_after(pid)
    assert net == host_net
    daemon.ok("site", "set", "net", "--network", "none")
    net, pid = sandbox_net_after(pid)
    assert net != host_net
    assert http_get(daemon, "net")[0] == 200
    assert show(daemon, "net")["runtime"]["restarts"] == 0


def test_kill9_berthd_then_restart_kills_old_sandbox(daemon_factory):
    d = daemon_factory().start()
    make_app(d, "phoenix", always_on=True)
    old = wait_state(d, "phoenix", "running")["runtime"]["pid"]
    d.kill9()
    assert pid_alive(old)   # nothing killed it yet: it was re-parented
    d.start()
    deadline = time.monotonic() + 5
    while pid_alive(old):
        assert time.monotonic() < deadline, "the old sandbox survived berthd's restart"
        time.sleep(0.05)
    info = wait_state(d, "phoenix", "running")
    assert info["runtime"]["pid"] != old
    assert cgroup_pids(d, "phoenix") and old not in cgroup_pids(d, "phoenix")
    assert http_get(d, "phoenix")[0] == 200
    assert "killing the sandbox a previous berthd left running" in d.log()


def test_berthd_leaves_no_cgroup_behind(daemon_factory):
    # Its parent cgroup (one per run dir, in every hierarchy) goes at shutdown with
    # the sites' own: a host that starts many berthds (tests, a run dir per
    # instance) would otherwise pile up cgroups, and v1 memory cgroups are a
    # kernel-wide limited resource (65535 ids).
    d = daemon_factory().start()
    make_app(d, "blog")
    assert http_get(d, "blog")[0] == 200
    parents = {os.path.dirname(x) for x in cgroup_dirs(d, "blog")}
    assert parents and all(os.path.isdir(p) for p in parents)
    d.stop()
    assert [p for p in parents if os.path.exists(p)] == []


def test_sites_do_not_inherit_berthds_open_file_limit(daemon):
    # berthd may be allowed far more open files than a site needs (the shipped unit
    # gives it 1048576); a site's processes get at most 16384 and cannot raise it.
    limits = open(f"/proc/{daemon.proc.pid}/limits").read()
    hard = next(line.split()[4] for line in limits.splitlines() if line.startswith("Max open files"))
    require(hard == "unlimited" or int(hard) > 16384, f"berthd's own open-file limit is {hard}, not above 16384")
    make_app(daemon, "blog")
    r = daemon.berth("site", "exec", "blog", "--", "sh", "-c", "ulimit -Hn; ulimit -Hn 20000")
    assert r.stdout.split() == ["16384"] and r.returncode != 0, r
    # the sandbox's pid 1 too, the pid berth shows: it runs as the site's user
    assert http_get(daemon, "blog")[0] == 200
    pid = daemon.ok("site", "show", "blog")["runtime"]["pid"]
    limits = open(f"/proc/{pid}/limits").read()
    assert [line.split()[3:5] for line in limits.splitlines() if line.startswith("Max open files")] == \
        [["16384", "16384"]], limits


def test_exec(daemon):
    info = make_app(daemon, "blog")
    uid = info["uid"]
    # No sandbox runs: the command gets a fresh one.
    r = daemon.berth("site", "exec", "blog", "--", "id", "-u")
    assert r.returncode == 0, r
    assert r.stdout.strip() == str(uid)
    assert show(daemon, "blog")["state"] == "idle"

    assert http_get(daemon, "blog")[0] == 200
    r = daemon.berth("site", "exec", "blog", "--", "id", "-u")
    assert (r.returncode, r.stdout.strip()) == (0, str(uid))
    r = daemon.berth("site", "exec", "blog", "--", "sh", "-c", "exit 7")
    assert r.returncode == 7, r
    r = daemon.berth("site", "exec", "blog", "--", "sh", "-c", "kill -9 $$")
    assert r.returncode == 128 + 9, r
    r = daemon.berth("site", "exec", "blog", "--", "cat", input="hi\n")
    assert (r.returncode, r.stdout) == (0, "hi\n")
    r = daemon.berth("site", "exec", "blog", "--", "pwd")
    assert r.stdout.strip() == "/site"
    r = daemon.berth("site", "exec", "blog", "--", "echo", "--json")   # the command's own
    assert (r.returncode, r.stdout) == (0, "--json\n"), r
    # Same pid namespace as the running app: its pid 2 is the app.
    r = daemon.berth("site", "exec", "blog", "--", "cat", "/proc/2/cmdline")
    assert r.returncode == 0 and "/site/private/app.py" in r.stdout, r
    r = daemon.berth("site", "exec", "blog", "--", "nosuchcommand")
    assert r.returncode == 1 and "command not found" in r.stderr
    r = daemon.berth("site", "exec", "nosite", "--", "true")
    assert r.returncode == 1 and "berth:" in r.stderr
    assert show(daemon, "blog")["runtime"]["pid"]   # the app still runs


def test_exec_with_api_socket_outside_run_dir(daemon_factory, tmp_path):
    # --api-socket may put the API anywhere; `site exec` must still find berthd.
    d = daemon_factory()
    d.socket = tmp_path / "elsewhere" / "api.sock"
    d.socket.parent.mkdir()
    d.start("--api-socket", str(d.socket))
    info = make_app(d, "blog")
    r = d.berth("site", "exec", "blog", "--", "id", "-u")
    assert (r.returncode, r.stdout.strip()) == (0, str(info["uid"])), r


def test_exec_names_what_is_missing(daemon):
    r = daemon.berth("site", "exec", "ghost", "--", "true")
    assert (r.returncode, r.stderr) == (1, 'berth: no site named "ghost"\n'), r
    daemon.ok("site", "create", "docs")
    r = daemon.berth("site", "exec", "docs", "--", "true")
    assert r.returncode == 1, r
    assert r.stderr == "berth: site docs does not run code (only app and PHP sites have a sandbox)\n"


def test_exec_client_gone_kills_command(daemon):
    import subprocess
    make_app(daemon, "blog")
    http_get(daemon, "blog")
    argv = [str(daemon.socket.parent.parent), ]
    from conftest import BERTH
    p = subprocess.Popen([str(BERTH), "--socket", str(daemon.socket), "site", "exec", "blog", "--",
                          "sleep", "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not any(open(f"/proc/{x}/cmdline").read().startswith("/usr/bin/sleep\0") if os.path.exists(f"/proc/{x}/cmdline") else False
                  for x in cgroup_pids(daemon, "blog")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.monotonic() + 5
    while any("sleep" in (open(f"/proc/{x}/cmdline").read() if os.path.exists(f"/proc/{x}/cmdline") else "")
              for x in cgroup_pids(daemon, "blog")):
        assert time.monotonic() < deadline, "berthd did not kill the command of a client that went away"
        time.sleep(0.05)
    del argv


def read_pty_until(master, marker, out, deadline):
    """Adds what the terminal's master gives to out until marker shows up (or the
    terminal's last user is gone: EIO); returns it."""
    while marker not in out:
        assert time.monotonic() < deadline, out
        try:
            out += os.read(master, 1024)
        except OSError:
            break
    return out


def exec_on_a_terminal(daemon, site, script, stdin=None, raw=False, env=None):
    """`berth site exec SITE -- sh -c SCRIPT` with its stdout and stderr (and stdin,
    unless given) on a fresh terminal; returns the process and the terminal's
    master."""
    import subprocess
    from conftest import BERTH
    master, slave = os.openpty()
    if raw:
        import tty
        tty.setraw(slave)   # no echo: only what the command prints comes back
    p = subprocess.Popen([str(BERTH), "--socket", str(daemon.socket), "site", "exec", site, "--", "sh", "-c", script],
                         stdin=slave if stdin is None else stdin, stdout=slave, stderr=slave, close_fds=True,
                         env=env)
    os.close(slave)
    return p, master


def test_exec_on_a_terminal_gets_a_pty(daemon):
    make_app(daemon, "term")
    p, master = exec_on_a_terminal(daemon, "term",
                                   "test -t 0 && test -t 1 && echo on-a-tty term-$TERM; read x; echo got-$x; exit 5",
                                   env=dict(os.environ, TERM="xterm-256color"))
    deadline = time.monotonic() + 10
    out = read_pty_until(master, b"on-a-tty", b"", deadline)
    os.write(master, b"abc\r")
    out = read_pty_until(master, b"got-abc", out, deadline)
    assert p.wait(timeout=10) == 5
    os.close(master)
    assert b"on-a-tty" in out and b"got-abc" in out, out
    assert b"term-xterm-256color" in out, out   # the caller's terminal type
    # without a terminal, programs are told so
    r = daemon.berth("site", "exec", "term", "--", "sh", "-c", "echo $TERM", env={"TERM": "xterm-256color"})
    assert (r.returncode, r.stdout.strip()) == (0, "dumb"), r


def test_exec_output_to_a_stalled_terminal_does_not_stall_berthd(daemon):
    # A command on a terminal prints without end while the caller's terminal takes
    # nothing (a stalled ssh link, a scroll lock): berthd, which copies the
    # command's pty to that terminal, must keep serving everyone else.
    make_app(daemon, "chatty")
    p, master = exec_on_a_terminal(daemon, "chatty", "exec yes flood")
    try:
        # nobody reads master: the terminal's buffer fills within moments
        deadline = time.monotonic() + 10
        while not any("yes" in (open(f"/proc/{x}/cmdline").read() if os.path.exists(f"/proc/{x}/cmdline") else "")
                      for x in cgroup_pids(daemon, "chatty")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1)
        t = time.monotonic()
        r = daemon.berth("site", "show", "chatty", json_out=True, timeout=10)
        assert r.returncode == 0, r
        assert time.monotonic() - t < 5
    finally:
        p.kill()
        p.wait()
        os.close(master)


def test_exec_output_to_a_slow_terminal_arrives_whole_before_the_status(daemon):
    # The command writes more than the terminals in between can hold and exits
    # while the caller's terminal is not read yet: every byte still arrives, then
    # the exit status.
    make_app(daemon, "bulk")
    p, master = exec_on_a_terminal(daemon, "bulk", "head -c 300000 /dev/zero | tr '\\0' x; exit 3")
    time.sleep(2)
    out = b""
    deadline = time.monotonic() + 30
    while out.count(b"x") < 300000:
        assert time.monotonic() < deadline, len(out)
        try:
            out += os.read(master, 65536)
        except OSError:
            break
    assert p.wait(timeout=10) == 3
    os.close(master)
    assert out.count(b"x") == 300000


def test_exec_input_pasted_before_the_command_reads_arrives_whole(daemon):
    # 20000 bytes typed (pasted) while the command does not read yet: more than
    # its terminal's input queue holds. berthd must hold back, not drop the rest.
    import select
    make_app(daemon, "paste")
    p, master = exec_on_a_terminal(daemon, "paste", "sleep 2; echo count=$(head -n 200 | wc -c)")
    time.sleep(0.5)
    os.write(master, b"".join(b"%099d\n" % i for i in range(200)))
    out = b""
    deadline = time.monotonic() + 20
    while p.poll() is None and time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
    while select.select([master], [], [], 0.2)[0]:
        try:
            out += os.read(master, 65536)
        except OSError:
            break
    if p.poll() is None:
        p.kill()
    assert p.wait(timeout=10) == 0, out[-300:]
    os.close(master)
    assert b"count=20000" in out, out[-300:]


def test_exec_never_hands_the_callers_terminal_to_the_site(daemon):
    # stdin redirected, stdout and stderr on the caller's terminal: the command
    # (and anything of the site it forks, which may outlive it) must not get that
    # terminal itself, or it could read what is typed there afterwards. Here it
    # reads from its fd 2 while the "admin" types a secret.
    import subprocess
    make_app(daemon, "snoop")
    p, master = exec_on_a_terminal(daemon, "snoop", "x=$(timeout 3 head -c 6 <&2); echo read:$x.",
                                   stdin=subprocess.DEVNULL, raw=True)
    os.write(master, b"secret")
    out = read_pty_until(master, b".", b"", time.monotonic() + 15)
    assert p.wait(timeout=10) == 0
    os.close(master)
    assert b"read:" in out, out
    assert b"secret" not in out, out


def test_exec_refuses_a_directory_as_stdio(daemon):
    # A directory fd is a way out of the sandbox's mount namespace: through
    # /proc/self/fd/0 the command would walk the host's tree from it.
    import subprocess
    from conftest import BERTH
    make_app(daemon, "dirfd")
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        r = subprocess.run([str(BERTH), "--socket", str(daemon.socket), "site", "exec", "dirfd", "--",
                            "cat", "/proc/self/fd/0/etc/hostname"],
                           stdin=fd, capture_output=True, text=True, timeout=30)
    finally:
        os.close(fd)
    assert r.returncode == 1, r
    assert r.stdout == ""
    assert "berth: " in r.stderr and "directory" in r.stderr, r.stderr
