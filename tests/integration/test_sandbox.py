"""Sandbox integration tests: run tests/helpers/sandbox-probe inside sandboxes made by
tests/helpers/sandbox-run (a thin CLI over src/sandbox) and check the exact outcome of
each forbidden action (crun's tests/init.c approach).

Needs root. Skips when not root, unless BERTH_MUST_WORK=1, which turns a skip into a
failure. The build dir comes from BERTH_BUILD_DIR (default /work/main/build-test).
"""

import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid

import pytest

BUILD = os.environ.get("BERTH_BUILD_DIR", "/work/main/build-test")
RUN = os.path.join(BUILD, "tests/helpers/sandbox-run")
PROBE = os.path.join(BUILD, "tests/helpers/sandbox-probe")
MUST_WORK = os.environ.get("BERTH_MUST_WORK") == "1"
UID_A = 250101
UID_B = 250102
UID_C = 250103
AF_VSOCK = 40


def host_has_i386_abi():
    """Whether int 0x80 works at all here, outside any sandbox: some kernels and
    hypervisors (this machine's PVM guests) fault it for every process, so there is
    no i386 ABI for the filter to close."""
    res = subprocess.run([PROBE, "personality_i386", "0xffffffff"], capture_output=True, text=True)
    return res.returncode == 0 and res.stdout.startswith("personality_i386 ok")


def skip_or_fail(reason):
    if MUST_WORK:
        pytest.fail(reason + " (BERTH_MUST_WORK=1)")
    pytest.skip(reason)


def own_cgroup_dirs(parent):
    """Every directory <mount><own>/<parent> that sandbox_cgroup_root_open may create."""
    dirs = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrl, path = line.rstrip("\n").split(":", 2)
            if ctrl.startswith("name="):
                continue
            mount = "/sys/fs/cgroup/unified" if ctrl == "" else "/sys/fs/cgroup/" + ctrl
            if ctrl == "" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
                mount = "/sys/fs/cgroup"
            dirs.append(os.path.normpath(mount + path + "/" + parent))
    return dirs


class Site:
    def __init__(self, name, uid, root, cgroup_parent):
        self.name = name
        self.uid = uid
        self.dir = os.path.join(root, name)
        self.cgroup_parent = cgroup_parent
        os.mkdir(self.dir)
        shutil.copy(PROBE, os.path.join(self.dir, "probe"))
        os.chown(self.dir, uid, uid)
        os.chmod(self.dir, 0o750)

    def args(self, *extra, cgroup=True):
        a = [RUN, "--name", self.name, "--uid", str(self.uid), "--site-dir", self.dir]
        if cgroup:
            a += ["--cgroup-parent", self.cgroup_parent]
        return a + list(extra)

    def run(self, *cmd, opts=(), timeout=30, **kw):
        return subprocess.run(self.args(*opts, "--", *cmd), capture_output=True, text=True,
                              timeout=timeout, **kw)

    def probe(self, *action, opts=(), **kw):
        return self.run("/site/probe", *action, opts=opts, **kw)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if os.geteuid() != 0:
        skip_or_fail("sandbox tests need root")
    for p in (RUN, PROBE):
        if not os.access(p, os.X_OK):
            skip_or_fail(f"{p} is not built (set BERTH_BUILD_DIR)")
    root = tmp_path_factory.mktemp("sandbox")
    os.chmod(root, 0o755)
    parent = "berth-test-" + uuid.uuid4().hex[:10]
    sites = {"a": Site("site-a", UID_A, str(root), parent),
             "b": Site("site-b", UID_B, str(root), parent)}
    with open(os.path.join(sites["b"].dir, "secret"), "w") as f:
        f.write("b's secret\n")
    yield sites
    for d in own_cgroup_dirs(parent):
        for sub in (os.path.join(d, s.name) for s in sites.values()):
            if os.path.isdir(sub):
                remove_cgroup(sub)
        if os.path.isdir(d):
            os.rmdir(d)


def remove_cgroup(path):
    """rmdir a site cgroup a failed test may have left populated: SIGKILL what it
    lists (these are only the test's own sandboxes) and retry while it drains."""
    for _ in range(200):
        try:
            os.rmdir(path)
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
        with open(os.path.join(path, "cgroup.procs")) as f:
            for pid in f.read().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.01)
    os.rmdir(path)


def line(res):
    assert res.stdout.endswith("\n"), (res.returncode, res.stdout, res.stderr)
    return res.stdout.strip()


def parse_kv(text):
    return dict(kv.split("=", 1) for kv in text.split() if "=" in kv)


# ---- identity and privileges ----

def test_identity_and_capabilities(env):
    res = env["a"].probe("status")
    assert res.returncode == 0, res.stderr
    kv = parse_kv(line(res))
    u = str(UID_A)
    assert kv["Uid"] == ",".join([u] * 4)
    assert kv["Gid"] == ",".join([u] * 4)
    assert kv["Groups"] == ""
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert kv[cap] == "0" * 16, cap
    assert kv["NoNewPrivs"] == "1"
    assert kv["Seccomp"] == "2"
    assert kv["pid"] == "2"          # pid 1 is the reaper


def test_no_reaper_makes_program_pid_1(env):
    kv = parse_kv(line(env["a"].probe("status", opts=["--no-reaper"])))
    assert kv["pid"] == "1"
    assert line(env["a"].probe("pids", opts=["--no-reaper"])) == "pids ok 1"


def test_hostname_and_cwd(env):
    assert line(env["a"].probe("hostname")) == "hostname ok site-a cwd=/site"


# ---- file system ----

def test_other_site_is_not_in_the_namespace(env):
    b_secret = os.path.join(env["b"].dir, "secret")
    assert os.path.exists(b_secret)
    assert line(env["a"].probe("read", b_secret)) == "read errno=ENOENT"
    assert line(env["a"].probe("write", os.path.join(env["b"].dir, "x"))) == "write errno=ENOENT"
    # not even its own host path: only /site exists
    assert line(env["a"].probe("stat", env["a"].dir)) == "stat errno=ENOENT"


def test_generated_etc(env):
    assert line(env["a"].probe("read", "/etc/shadow")) == "read errno=ENOENT"
    res = env["a"].run("/bin/cat", "/etc/passwd")
    assert res.returncode == 0, res.stderr
    users = [l.split(":")[0] for l in res.stdout.splitlines()]
    assert users == ["root", "site", "nobody"]
    assert f"site:x:{UID_A}:{UID_A}:" in res.stdout
    res = env["a"].run("/usr/bin/id", "-un")
    assert res.stdout.strip() == "site"


def test_readonly_root_and_usr(env):
    assert line(env["a"].probe("write", "/usr/x")) == "write errno=EROFS"
    assert line(env["a"].probe("mkdir", "/usr/lib/x")) == "mkdir errno=EROFS"
    assert line(env["a"].probe("write", "/x")) == "write errno=EROFS"
    assert line(env["a"].probe("write", "/etc/passwd")) == "write errno=EROFS"


def test_site_dir_writable_and_tmp_private(env):
    a = env["a"]
    assert line(a.probe("write", "/site/out")) == "write ok"
    st = os.stat(os.path.join(a.dir, "out"))
    assert (st.st_uid, st.st_gid) == (UID_A, UID_A)
    marker = "berth-tmp-" + uuid.uuid4().hex
    assert line(a.probe("write", "/tmp/" + marker)) == "write ok"
    assert not os.path.exists("/tmp/" + marker)


def test_host_kernel_settings_and_cgroups_out_of_reach(env):
    a = env["a"]
    assert line(a.probe("write", "/proc/sys/kernel/hostname")) == "write errno=EROFS"
    assert line(a.probe("write", "/proc/sys/vm/drop_caches")) == "write errno=EROFS"
    # no /sys: neither the site's own cgroup limits nor any other kernel knob
    assert line(a.probe("stat", "/sys/fs/cgroup")) == "stat errno=ENOENT"
    # pid 1 (the reaper) shares the site's uid but is not dumpable
    assert line(a.probe("read", "/proc/1/mem")) == "read errno=EACCES"


def test_setuid_root_file_in_site_dir_gives_nothing(env):
    # A setuid-root program in /site (say, left by a compromised admin tool) runs
    # with the site's ids: /site is nosuid and no_new_privs is set.
    a = env["a"]
    path = os.path.join(a.dir, "suid-probe")
    shutil.copy(PROBE, path)
    os.chown(path, 0, 0)
    os.chmod(path, 0o4755)
    try:
        kv = parse_kv(line(a.run("/site/suid-probe", "status")))
        assert kv["Uid"] == ",".join([str(UID_A)] * 4)
        assert kv["CapEff"] == "0" * 16
    finally:
        os.unlink(path)


def test_dev_is_minimal(env):
    res = env["a"].run("/bin/ls", "/dev")
    assert res.returncode == 0, res.stderr
    assert set(res.stdout.split()) == {"fd", "full", "null", "ptmx", "pts", "random", "shm",
                                       "stderr", "stdin", "stdout", "tty", "urandom", "zero"}


# ---- seccomp and namespaces ----

@pytest.mark.parametrize("action,expect", [
    (["mount"], "errno=EPERM"),
    (["umount"], "errno=EPERM"),
    (["ptrace", "1"], "errno=EPERM"),
    (["init_module"], "errno=EPERM"),
    (["bpf"], "errno=EPERM"),
    (["keyctl"], "errno=EPERM"),
    (["clock_settime"], "errno=EPERM"),
    (["unshare_user"], "errno=EPERM"),
    (["unshare_net"], "errno=EPERM"),
    (["setns"], "errno=EPERM"),
    (["clone_newns"], "errno=EPERM"),
    (["clone_plain"], "ok"),
    (["clone3"], "errno=ENOSYS"),
    (["open_by_handle_at"], "errno=EPERM"),
    (["tiocsti"], "errno=EPERM"),
    (["tiocsti_hi"], "errno=EPERM"),
    (["personality", "0x400000"], "errno=EPERM"),
    (["personality", "0xffffffff"], "ok"),
    (["personality", "8"], "ok"),
    (["personality_i386", "0x400000"], "errno=EPERM"),
    (["unshare_i386"], "errno=EPERM"),
    (["setuid0"], "errno=EPERM"),
    (["chroot"], "errno=EPERM"),
    # vsock is not confined by network namespaces: from any sandbox it would reach
    # the hypervisor host and every vsock service of this machine.
    (["socket", str(AF_VSOCK)], "errno=EAFNOSUPPORT"),
    (["socket_hi", str(AF_VSOCK)], "errno=EAFNOSUPPORT"),
    (["socket_i386", str(AF_VSOCK)], "errno=EAFNOSUPPORT"),
    (["socketcall_i386", str(AF_VSOCK)], "errno=EAFNOSUPPORT"),
    (["socket", str(socket.AF_INET)], "ok"),
    (["socket", str(socket.AF_UNIX)], "ok"),
    (["socket_i386", str(socket.AF_INET)], "ok"),
])
def test_forbidden_actions(env, action, expect):
    if "_i386" in action[0] and not host_has_i386_abi():
        pytest.skip("this kernel refuses int 0x80 to every process (no i386 ABI to confine)")
    assert line(env["a"].probe(*action)) == f"{action[0]} {expect}"


@pytest.mark.parametrize("args", [
    ["272", str(0x10000000)],     # unshare(CLONE_NEWUSER)
    ["521"],                      # ptrace (x32's own number)
    ["514", "0", "0x5412"],       # ioctl(TIOCSTI) (x32's own number)
    ["250"],                      # keyctl
    ["165"],                      # mount
])
def test_x32_abi_is_refused(env, args):
    # The x32 numbers of denied calls are refused (EPERM) or the process is killed
    # (SIGSYS); what must never happen is the kernel running them (this kernel,
    # without x32, would then answer ENOSYS).
    res = env["a"].probe("x32", *args)
    assert res.stdout == "x32 errno=EPERM\n" or \
        (res.stdout == "" and res.returncode == 128 + signal.SIGSYS), (res.returncode, res.stdout)


def test_pid_namespace_hides_host(env):
    assert line(env["a"].probe("pids")) == "pids ok 1 2"
    # the test's own pid is a host pid: it does not exist in the sandbox
    assert line(env["a"].probe("kill", str(os.getpid()))) == "kill errno=ESRCH"


def test_network_none_has_only_loopback(env):
    assert line(env["a"].probe("net")) == "net ok lo"


def test_network_host_sees_host_interfaces(env):
    with open("/proc/net/dev") as f:
        host = sorted(l.split(":")[0].strip() for l in f.readlines()[2:])
    out = line(env["a"].probe("net", opts=["--network", "host"]))
    assert sorted(out.split()[2:]) == host


# ---- fds ----

def test_only_given_fds_are_inherited(env):
    r, w = os.pipe()
    try:
        res = env["a"].probe("fds", pass_fds=(r, w))
        assert line(res) == "fds ok 0 1 2"
    finally:
        os.close(r)
        os.close(w)


def test_passed_fd_and_listen_env(env):
    r, w = os.pipe()
    try:
        opts = ["--pass-fd", str(r), "--listen-env"]
        assert line(env["a"].probe("fds", opts=opts, pass_fds=(r,))) == "fds ok 0 1 2 3"
        assert line(env["a"].probe("env", "LISTEN_FDS", opts=opts, pass_fds=(r,))) == \
            "env ok LISTEN_FDS=1"
        assert line(env["a"].probe("env", "LISTEN_PID", opts=opts, pass_fds=(r,))) == \
            "env ok LISTEN_PID=2"
        assert line(env["a"].probe("env", "LISTEN_PID", opts=opts + ["--no-reaper"],
                                   pass_fds=(r,))) == "env ok LISTEN_PID=1"
    finally:
        os.close(r)
        os.close(w)


# ---- exit status and errors ----

def test_exit_status_is_forwarded(env):
    assert env["a"].probe("exit", "7").returncode == 7


def test_set_up_failure_names_the_step(env):
    a = env["a"]
    res = subprocess.run([RUN, "--name", "site-a", "--uid", str(UID_A), "--site-dir",
                          a.dir + "-missing", "--", "/bin/true"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 125
    assert "step site-dir: No such file or directory" in res.stderr
    res = a.run("/nonexistent")
    assert res.returncode == 125
    assert "step exec: No such file or directory" in res.stderr


# ---- cgroups ----

def test_pids_limit_stops_fork_bomb(env):
    res = env["a"].probe("forkbomb", "200", opts=["--pids", "16"])
    m = re.fullmatch(r"forkbomb errno=EAGAIN after=(\d+)", line(res))
    assert m, res.stdout
    assert int(m.group(1)) <= 14      # 16 minus the reaper and the probe
    assert subprocess.run(["/bin/true"]).returncode == 0   # the host can still fork


def test_site_named_tasks_gets_its_limits(env):
    # Every v1 cgroup directory holds a file "tasks": a site of that name must
    # still get a cgroup directory of its own, and its limits.
    if "tasks" not in env:
        env["tasks"] = Site("tasks", UID_C, os.path.dirname(env["a"].dir), env["a"].cgroup_parent)
    res = env["tasks"].probe("forkbomb", "200", opts=["--pids", "16"])
    m = re.fullmatch(r"forkbomb errno=EAGAIN after=(\d+)", line(res))
    assert m, res.stdout
    assert int(m.group(1)) <= 14


def test_memory_limit_oom_kills_inside_only(env, tmp_path):
    sentinel = subprocess.Popen(["sleep", "60"])
    usage = tmp_path / "usage"
    try:
        res = env["a"].probe("alloc", "256", opts=["--memory", "32M", "--usage-file", str(usage)])
        assert res.returncode == 128 + signal.SIGKILL, (res.stdout, res.stderr)
        kv = parse_kv(usage.read_text())
        assert int(kv["oom_kills"]) >= 1
        assert int(kv["memory_peak"]) >= 30 << 20
        assert sentinel.poll() is None     # nothing outside the site was killed
    finally:
        sentinel.kill()
        sentinel.wait()


def test_memory_under_limit_is_fine(env, tmp_path):
    usage = tmp_path / "usage"
    res = env["a"].probe("alloc", "16", opts=["--memory", "128M", "--usage-file", str(usage)])
    assert line(res) == "alloc ok mb=16"
    kv = parse_kv(usage.read_text())
    assert int(kv["oom_kills"]) == 0
    assert int(kv["memory_peak"]) >= 16 << 20
    assert int(kv["cpu_usec"]) > 0


def test_cgroup_namespace_and_removal(env):
    res = env["a"].run("/bin/cat", "/proc/self/cgroup", opts=["--pids", "64"])
    assert res.returncode == 0, res.stderr
    for l in res.stdout.splitlines():
        assert l.split(":", 2)[2] == "/", l      # rooted at the site's cgroup
    for d in own_cgroup_dirs(env["a"].cgroup_parent):
        assert not os.path.exists(os.path.join(d, env["a"].name))


# ---- joining a running sandbox ----

def test_exec_joins_running_sandbox(env, tmp_path):
    a = env["a"]
    pidfile = tmp_path / "pid"
    main = subprocess.Popen(a.args("--pids", "64", "--pid-file", str(pidfile), "--", "/site/probe",
                                   "sleep", "30"), stdout=subprocess.PIPE, text=True)
    pid = None
    try:
        assert main.stdout.readline() == "sleep ok\n"
        # sandbox-run writes the pid file after sandbox_spawn returns, which may be
        # just after the program's first output
        for _ in range(500):
            if pidfile.exists() and pidfile.read_text().endswith("\n"):
                break
            time.sleep(0.01)
        pid = int(pidfile.read_text())
        join = [RUN, "--name", a.name, "--uid", str(UID_A), "--join-pid", str(pid),
                "--cgroup-parent", a.cgroup_parent, "--", "/site/probe"]
        res = subprocess.run(join + ["pids"], capture_output=True, text=True, timeout=30)
        assert line(res) == "pids ok 1 2 3"     # reaper, main program, us
        kv = parse_kv(line(subprocess.run(join + ["status"], capture_output=True, text=True,
                                          timeout=30)))
        assert kv["CapEff"] == "0" * 16 and kv["Seccomp"] == "2" and kv["NoNewPrivs"] == "1"
        assert kv["Uid"] == ",".join([str(UID_A)] * 4)
        res = subprocess.run(join + ["hostname"], capture_output=True, text=True, timeout=30)
        assert line(res) == "hostname ok site-a cwd=/site"
        # same /tmp as the running program
        assert line(subprocess.run(join + ["write", "/tmp/shared"], capture_output=True,
                                   text=True, timeout=30)) == "write ok"
        # SIGTERM to the sandbox's pid 1 reaches the program; its status comes back
        os.kill(pid, signal.SIGTERM)
        assert main.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        if main.poll() is None:
            if pid:
                os.kill(pid, signal.SIGKILL)    # pid 1: takes the namespace down
            main.kill()
            main.wait()


def test_cgroup_kill_kills_every_process(env):
    # A shell with background children that all outlive a plain kill of pid 1's
    # child: sandbox_cgroup_kill must take the whole cgroup down.
    t0 = time.monotonic()
    res = env["a"].run("/bin/sh", "-c", "trap '' TERM; sleep 100 & sleep 100 & echo up; wait",
                       opts=["--timeout", "500"], timeout=30)
    assert res.stdout == "up\n"
    assert res.returncode == 128 + signal.SIGKILL
    assert time.monotonic() - t0 < 10
    for d in own_cgroup_dirs(env["a"].cgroup_parent):
        assert not os.path.exists(os.path.join(d, env["a"].name))


def test_v2_layout_in_private_mount_namespace(env):
    # The development machines are hybrid; a pure-v2 layout is simulated by mounting
    # cgroup2 over /sys/fs/cgroup in a mount namespace this test creates. It is the
    # same unified hierarchy (without the controllers v1 holds), which is enough for
    # v2 detection, CLONE_INTO_CGROUP, cgroup.kill and removal.
    if not os.path.exists("/sys/fs/cgroup/unified/cgroup.procs") and \
            not os.path.exists("/sys/fs/cgroup/cgroup.procs"):
        skip_or_fail("no cgroup2 hierarchy")
    a = env["a"]

    def in_v2(*args):
        cmd = " ".join(["'%s'" % x for x in args])
        script = "mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && exec " + cmd
        return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                              text=True, timeout=30)

    res = in_v2(*a.args("--", "/bin/cat", "/proc/self/cgroup"))
    assert res.returncode == 0, res.stderr
    assert "0::/\n" in res.stdout
    res = in_v2(*a.args("--timeout", "300", "--", "/bin/sh", "-c",
                        "sleep 100 & sleep 100 & wait"))
    assert res.returncode == 128 + signal.SIGKILL, res.stderr
    assert res.stderr == ""      # the kill emptied the cgroup and it was removed
