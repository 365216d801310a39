"""Shared fixtures for berth's integration tests.

Every test gets its own daemon (state dir, run dir, API socket, ports) in a temp
dir, and every process a test starts is stopped by pid when it ends. The daemon is
the sanitized build: when it exits, any ASan/UBSan/LSan report fails the test.
"""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

BUILD_DIR = Path(os.environ.get("BERTH_BUILD_DIR", Path(__file__).resolve().parents[2] / "build-test"))
BERTHD = BUILD_DIR / "berthd"
BERTH = BUILD_DIR / "berth"
MUST_WORK = os.environ.get("BERTH_MUST_WORK") == "1"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY: UndefinedBehavior")


def require(condition, reason):
    """Skips the test when it cannot run here, or fails it under BERTH_MUST_WORK=1."""
    if not condition:
        if MUST_WORK:
            pytest.fail(f"cannot run here (BERTH_MUST_WORK=1): {reason}")
        pytest.skip(reason)


def wait_for(predicate, timeout=5.0, step=0.05):
    """predicate's first true value, or its last false one once timeout has passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Result:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def json(self):
        return json.loads(self.stdout)

    def __repr__(self):
        return f"<exit {self.returncode} stdout={self.stdout!r} stderr={self.stderr!r}>"


class Daemon:
    """One berthd in its own directories."""

    def __init__(self, root: Path, base_domain="test.berth"):
        self.root = root
        self.state_dir = root / "state"
        self.run_dir = root / "run"
        self.socket = self.run_dir / "api.sock"
        self.base_domain = base_domain
        self.proc = None
        self.log_path = root / "berthd.log"
        self.logs = []  # every log of every start, for the sanitizer check
        self.http = ["127.0.0.1:0"]
        self.https = []
        # No SFTP unless a test asks for it: the default port (2222) is one for
        # every daemon on the machine.
        self.ssh = ["off"]
        # Sites' uids come from a range of this test's own, so that tests running
        # side by side never hand out the same uid.
        base = 300000 + (os.getpid() % 500) * 1000 + (abs(hash(str(root))) % 100) * 10
        self.uid_range = (base, base + 9)

    def argv(self, *extra):
        args = [str(BERTHD), "--state-dir", str(self.state_dir), "--run-dir", str(self.run_dir),
                "--config", str(self.config_path())]
        if self.base_domain:
            args += ["--base-domain", self.base_domain]
        for h in self.http:
            args += ["--http", h]
        # --dev alone binds HTTPS on 8443, which tests side by side would share.
        https = self.https or (["127.0.0.1:0"] if "--dev" in extra else [])
        for h in https:
            args += ["--https", h]
        for h in self.ssh:
            args += ["--ssh", h]
        return args + list(extra)

    def config_path(self):
        path = self.root / "berth.yaml"
        if not path.exists():
            path.write_text(f"site_uid_range: {self.uid_range[0]}-{self.uid_range[1]}\n")
        return path

    def open_path_to_root(self):
        """The front's workers run as an unprivileged user: they must be able to walk
        down to the sites' public/ dirs, which pytest's 0700 temp dirs forbid."""
        self.root.mkdir(parents=True, exist_ok=True)
        p = self.root
        while p != p.parent:
            mode = p.stat().st_mode
            if mode & 0o011 != 0o011:
                os.chmod(p, mode | 0o011)
            p = p.parent

    def start(self, *extra, env=None, wait=True, listen_fds=()):
        """listen_fds: sockets handed over as a service manager would (LISTEN_FDS,
        fds 3..), so that they outlive the daemon."""
        assert self.proc is None, "already running"
        self.open_path_to_root()
        log = open(self.log_path, "ab")
        full_env = dict(os.environ, **(env or {}))
        argv = self.argv(*extra)
        kw = {}
        if listen_fds:
            fds = [s.fileno() for s in listen_fds]
            full_env["LISTEN_FDS"] = str(len(fds))
            # LISTEN_PID must be berthd's own pid: a shell sets it, then execs berthd.
            argv = ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh"] + argv
            targets = list(range(3, 3 + len(fds)))

            def move_fds():
                # Park first, so that a source fd sitting on a target number is not clobbered.
                parked = [os.dup(fd) for fd in fds]
                for fd, target in zip(parked, targets):
                    os.dup2(fd, target)
            kw = {"preexec_fn": move_fds, "pass_fds": targets}
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env, **kw)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"berthd exited with {self.proc.returncode}:\n{self.log()}")
            if self.socket.exists():
                r = self.berth("status")
                if r.returncode == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"berthd did not become ready:\n{self.log()}")

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def check_sanitizers(self):
        text = self.log()
        for mark in SANITIZER_MARKS:
            assert mark not in text, f"sanitizer report in berthd's log:\n{text}"

    def stop(self, sig=signal.SIGTERM, expect_code=0):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"berthd did not stop on {sig!r}:\n{self.log()}")
        self.proc = None
        self.check_sanitizers()
        if expect_code is not None:
            assert code == expect_code, f"berthd exited with {code}:\n{self.log()}"
        return code

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def berth(self, *args, input=None, json_out=False, env=None, timeout=60):
        argv = [str(BERTH), "--socket", str(self.socket)]
        if json_out:
            argv.append("--json")
        full_env = dict(os.environ, **(env or {}))
        proc = subprocess.run(argv + [str(a) for a in args], input=input, capture_output=True, text=True,
                              timeout=timeout, env=full_env)
        for mark in SANITIZER_MARKS:
            assert mark not in proc.stderr, f"sanitizer report from berth {args}:\n{proc.stderr}"
        return Result(proc)

    def ok(self, *args, **kw):
        """Runs berth and asserts it succeeded; returns its JSON output."""
        r = self.berth(*args, json_out=True, **kw)
        assert r.returncode == 0, r
        return r.json()

    def status(self):
        return self.ok("status")

    def ssh_port(self):
        for listener in self.status()["listeners"]:
            if listener["kind"] == "ssh":
                return int(listener["address"].rsplit(":", 1)[1])
        raise AssertionError("no ssh listener")

    def http_port(self):
        for listener in self.status()["listeners"]:
            if listener["kind"] == "http":
                return int(listener["address"].rsplit(":", 1)[1])
        raise AssertionError("no http listener")


@pytest.fixture
def daemon_factory(tmp_path):
    daemons = []

    def make(name="d", **kw):
        d = Daemon(tmp_path / name, **kw)
        daemons.append(d)
        return d

    yield make
    errors = []
    for d in daemons:
        if d.proc is not None:
            try:
                d.stop()
            except AssertionError as e:
                errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def daemon(daemon_factory):
    """A running berthd with its own state, run dir and ports."""
    return daemon_factory().start()
