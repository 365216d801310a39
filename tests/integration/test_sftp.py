"""SFTP on one shared port: real berthd, real OpenSSH clients (sftp, ssh, sshpass).

Each test's daemon listens for SSH on 127.0.0.1:0 and the tests read the real port
from `berth status`. Keys are made by ssh-keygen in the test's temp dir; the
client's known_hosts is the test's own, checked strictly after the first login.
"""
import os
import re
import select
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import require, wait_for
from test_panel_api import PASSWORDS, Browser, add_user, db_exec

SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def need_tools():
    for tool in ("/usr/bin/sftp", "/usr/bin/ssh", "/usr/bin/ssh-keygen", SFTP_SERVER):
        require(os.path.exists(tool), f"{tool} is missing (openssh-client, openssh-sftp-server)")
    require(os.geteuid() == 0, "sandboxes need root")


@pytest.fixture
def sd(daemon_factory):
    """A berthd serving SFTP on a free loopback port."""
    need_tools()
    d = daemon_factory()
    d.ssh = ["127.0.0.1:0"]
    d.start()
    return d


def keygen(tmp_path, name, kind="ed25519"):
    path = tmp_path / f"key-{name}"
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"{name}@test", "-f", str(path)]
    if kind == "rsa":
        args += ["-b", "2048"]
    subprocess.run(args, check=True)
    return path


def ssh_opts(d, tmp_path, key=None, strict="accept-new"):
    opts = ["-F", "/dev/null", "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
            "-o", f"StrictHostKeyChecking={strict}", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
    if key:
        opts += ["-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no",
                 "-o", "KbdInteractiveAuthentication=no", "-o", "BatchMode=yes"]
    return opts


def sftp(d, tmp_path, site, key, commands, strict="accept-new", timeout=30):
    argv = ["sftp", "-b", "-"] + ssh_opts(d, tmp_path, key, strict) + ["-P", str(d.ssh_port()), f"{site}@127.0.0.1"]
    return subprocess.run(argv, input=commands, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


def sftp_password(d, tmp_path, site, password, commands, timeout=30):
    """sftp -b disables password prompts (BatchMode); without it, sftp reads its
    commands from stdin and sshpass types the password at the prompt."""
    argv = ["sshpass", "-p", password, "sftp"] + ssh_opts(d, tmp_path) + [
        "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
        "-o", "NumberOfPasswordPrompts=1", "-P", str(d.ssh_port()), f"{site}@127.0.0.1"]
    return subprocess.run(argv, input=commands, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


def add_key(d, site, key):
    r = d.berth("site", "key", "add", site, "--file", f"{key}.pub")
    assert r.returncode == 0, r
    return re.search(r"SHA256:\S+", r.stdout).group(0)


def site_uid(d, name):
    return d.ok("site", "show", name)["uid"]


def fetch(d, site, path):
    req = urllib.request.Request(f"http://127.0.0.1:{d.http_port()}{path}",
                                 headers={"Host": f"{site}.{d.base_domain}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Session:
    """An interactive sftp client kept open (commands on its stdin)."""

    def __init__(self, d, tmp_path, site, key):
        argv = ["sftp"] + ssh_opts(d, tmp_path, key) + ["-P", str(d.ssh_port()), f"{site}@127.0.0.1"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     cwd=tmp_path)
        self.out = b""

    def run(self, line, expect, timeout=15):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while expect.encode() not in self.out:
            left = deadline - time.monotonic()
            assert left > 0, f"no {expect!r} from sftp: {self.out!r}"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, f"sftp ended: {self.out!r}"
                self.out += chunk

    def ended_by_server(self, timeout=10):
        """Whether the server closed the connection: ssh says so (sftp itself stays
        until it reads its next command)."""
        deadline = time.monotonic() + timeout
        while b"closed by remote host" not in self.out and b"Received disconnect" not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return self.proc.wait() is not None
                self.out += chunk
        return True

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def sessions():
    opened = []
    yield opened
    for s in opened:
        s.close()


def sftp_server_pids(d, site):
    """The sftp-server processes of site, as berthd logged them (the pid it started:
    in a fresh sandbox, the sandbox's reaper, whose child sftp-server is)."""
    return [int(p) for p in re.findall(rf"site {site}: sftp session for \S+ \(sftp-server pid (\d+)\)", d.log())]


def sftp_server_process(pid):
    """pid itself when it is sftp-server, else its child that is."""
    if os.readlink(f"/proc/{pid}/exe") == SFTP_SERVER:
        return pid
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    found = [int(c) for c in children if os.readlink(f"/proc/{c}/exe") == SFTP_SERVER]
    assert found, f"no sftp-server under pid {pid}"
    return found[0]


def test_upload_download_rename_remove_served_at_once(sd, tmp_path):
    sd.ok("site", "create", "blog")
    key = keygen(tmp_path, "blog")
    add_key(sd, "blog", key)
    (tmp_path / "hello.html").write_text("<p>hello over sftp</p>\n")
    r = sftp(sd, tmp_path, "blog", key,
             "pwd\nls\nput hello.html public/hello.html\nput hello.html public/old.html\n"
             "rename public/old.html public/new.html\nrm public/new.html\nget public/hello.html back.html\n"
             "ls -l public\n")
    assert r.returncode == 0, r
    # The user lands in the site's directory and sees its folders.
    assert "Remote working directory: /site" in r.stdout
    for folder in ("public", "private", "logs"):
        assert folder in r.stdout
    assert "new.html" not in r.stdout.split("ls -l public", 1)[1] and "old.html" not in r.stdout.split("ls -l public", 1)[1]
    assert (tmp_path / "back.html").read_text() == "<p>hello over sftp</p>\n"
    # On disk as the site's user, and served by the front at once.
    uploaded = sd.state_dir / "sites" / "blog" / "public" / "hello.html"
    assert uploaded.stat().st_uid == site_uid(sd, "blog")
    assert fetch(sd, "blog", "/hello.html") == (200, b"<p>hello over sftp</p>\n")
    assert fetch(sd, "blog", "/new.html")[0] == 404
    # The login is in berthd's log and the audit log, with the key and the client.
    assert re.search(r"ssh: site blog: login from 127\.0\.0\.1:\d+ with key SHA256:", sd.log())
    rows = db_exec(sd, "SELECT actor, detail FROM events WHERE action = 'ssh.login' AND target = 'blog'")
    assert rows and rows[0][0] == "ssh-key" and '"method":"publickey"' in rows[0][1] and "127.0.0.1:" in rows[0][1]


def test_no_way_out_of_the_site(sd, tmp_path):
    sd.ok("site", "create", "a")
    sd.ok("site", "create", "b")
    secret = sd.state_dir / "sites" / "b" / "private" / "secret.txt"
    secret.write_text("b's secret\n")
    key = keygen(tmp_path, "a")
    add_key(sd, "a", key)
    # A symlink the site plants to another site's file and to the host's shadow file.
    r = sftp(sd, tmp_path, "a", key, f"symlink {secret} public/steal\nsymlink /etc/shadow public/shadow\n")
    assert r.returncode == 0, r
    for attempt in (f"get {secret} x1", "get /etc/shadow x2", "get public/steal x3", "get public/shadow x4",
                    f"get {sd.state_dir}/berth.db x5", "get ../../sites/b/private/secret.txt x6",
                    f"get {sd.state_dir}/ssh_host_ed25519_key x7"):
        r = sftp(sd, tmp_path, "a", key, attempt + "\n")
        assert r.returncode != 0, (attempt, r)
    assert not any((tmp_path / f"x{i}").exists() for i in range(1, 8))
    # cd .. leads to the sandbox's own small root, not the host's.
    r = sftp(sd, tmp_path, "a", key, "cd ..\npwd\nls /\nls /etc\n")
    assert r.returncode == 0, r
    listing = r.stdout
    assert "Remote working directory: /" in listing
    assert "shadow" not in listing and "berth.db" not in listing
    assert str(sd.state_dir) not in listing
    # The front did not serve the planted links either.
    assert fetch(sd, "a", "/steal")[0] in (403, 404)
    assert fetch(sd, "a", "/shadow")[0] in (403, 404)


def test_keys_are_per_site_and_wrong_credentials_refused(sd, tmp_path):
    sd.ok("site", "create", "a")
    sd.ok("site", "create", "b")
    key_a, stranger = keygen(tmp_path, "a"), keygen(tmp_path, "stranger")
    add_key(sd, "a", key_a)
    assert sftp(sd, tmp_path, "a", key_a, "ls\n").returncode == 0
    for site, key in (("b", key_a), ("a", stranger), ("nosuch", key_a)):
        r = sftp(sd, tmp_path, site, key, "ls\n")
        assert r.returncode != 0 and "Permission denied" in r.stderr, (site, r)
    assert re.search(r'failed login to site "b" from 127\.0\.0\.1:\d+ \(key SHA256:', sd.log())


def test_password_of_owner_or_admin(sd, tmp_path):
    require(os.path.exists("/usr/bin/sshpass"), "sshpass is missing")
    add_user(sd, "alice")
    add_user(sd, "bob")
    add_user(sd, "boss", admin=True)
    sd.ok("site", "create", "shop", "--owner", "alice")
    ok = sftp_password(sd, tmp_path, "shop", PASSWORDS["alice"], "ls\n")
    assert ok.returncode == 0 and "public" in ok.stdout, ok
    assert sftp_password(sd, tmp_path, "shop", PASSWORDS["boss"], "ls\n").returncode == 0
    # Another user's password, a wrong one, an unknown site: all the same refusal.
    answers = [sftp_password(sd, tmp_path, site, pw, "ls\n")
               for site, pw in (("shop", PASSWORDS["bob"]), ("shop", "not-the-password"), ("ghost", PASSWORDS["alice"]))]
    for a in answers:
        assert a.returncode != 0 and "Permission denied" in a.stderr, a
    # (The lines after it come from two processes, in either order.)
    denials = {next(l for l in a.stderr.splitlines() if "Permission denied" in l).replace("ghost", "shop")
               for a in answers}
    assert len(denials) == 1, answers
    assert re.search(r"ssh: site shop: login from \S+ with the password of user alice", sd.log())
    assert re.search(r'failed login to site "ghost" from \S+ \(no such site\)', sd.log())


def test_revoked_key_refused_and_its_session_ended(sd, tmp_path, sessions):
    sd.ok("site", "create", "blog")
    key, other = keygen(tmp_path, "blog"), keygen(tmp_path, "other")
    fp = add_key(sd, "blog", key)
    add_key(sd, "blog", other)
    s, kept = Session(sd, tmp_path, "blog", key), Session(sd, tmp_path, "blog", other)
    sessions += [s, kept]
    s.run("pwd", "Remote working directory")
    kept.run("pwd", "Remote working directory")
    r = sd.berth("site", "key", "rm", "blog", fp)
    assert r.returncode == 0 and "ended 1 open session" in r.stdout, r
    assert s.ended_by_server(), f"the revoked key's session is still open: {s.out!r}"
    # The other key's session goes on; the revoked key is refused from now on.
    kept.run("ls", "public")
    assert sftp(sd, tmp_path, "blog", key, "ls\n").returncode != 0
    assert fp not in sd.berth("site", "key", "ls", "blog").stdout


def test_site_rm_ends_its_sessions(sd, tmp_path, sessions):
    sd.ok("site", "create", "gone")
    key = keygen(tmp_path, "gone")
    add_key(sd, "gone", key)
    s = Session(sd, tmp_path, "gone", key)
    sessions.append(s)
    s.run("pwd", "Remote working directory")
    pids = sftp_server_pids(sd, "gone")
    assert pids
    sd.ok("site", "rm", "gone")
    assert s.ended_by_server(), s.out
    assert wait_for(lambda: not os.path.exists(f"/proc/{pids[-1]}"))
    # A site of the same name starts without the old keys.
    sd.ok("site", "create", "gone")
    assert sd.ok("site", "key", "ls", "gone")["keys"] == []
    assert sftp(sd, tmp_path, "gone", key, "ls\n").returncode != 0


def test_host_key_stable_and_checked(sd, tmp_path):
    sd.ok("site", "create", "blog")
    key = keygen(tmp_path, "blog")
    add_key(sd, "blog", key)
    host_key = sd.state_dir / "ssh_host_ed25519_key"
    st = host_key.stat()
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == 0
    shown = sd.status()["ssh_host_key"]
    printed = subprocess.run(["ssh-keygen", "-lf", str(host_key)], capture_output=True, text=True, check=True).stdout
    assert shown in printed
    assert sd.berth("status").stdout.count(shown) == 1
    assert sftp(sd, tmp_path, "blog", key, "ls\n").returncode == 0
    before = host_key.read_bytes()
    port = sd.ssh_port()
    sd.stop()
    # The same port: known_hosts pins a key per [host]:port.
    sd.ssh = [f"127.0.0.1:{port}"]
    sd.start()
    assert host_key.read_bytes() == before and sd.status()["ssh_host_key"] == shown
    # known_hosts pinned the key at the first login: a strict check passes after the restart.
    r = sftp(sd, tmp_path, "blog", key, "ls\n", strict="yes")
    assert r.returncode == 0, r


def test_damaged_host_key_stops_the_start(sd, tmp_path):
    host_key = sd.state_dir / "ssh_host_ed25519_key"
    sd.stop()
    host_key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n")
    sd.start(wait=False)
    assert sd.proc.wait(timeout=20) == 1
    sd.proc = None
    assert "is damaged or not an unencrypted ed25519 private key" in sd.log()
    assert "garbage" in host_key.read_text(), "the damaged key was replaced"


def test_shell_and_commands_for_sites_that_run_code(sd, tmp_path):
    require(os.path.exists("/usr/sbin/php-fpm8.2"), "php-fpm8.2 is missing")
    sd.ok("site", "create", "app", "--type", "php")
    key = keygen(tmp_path, "app")
    add_key(sd, "app", key)
    base = ["ssh"] + ssh_opts(sd, tmp_path, key) + ["-p", str(sd.ssh_port())]
    uid = site_uid(sd, "app")
    # A command: its output, its exit status, as the site's user, in /site.
    r = subprocess.run(base + ["app@127.0.0.1", "id -u; pwd; ls; cat /etc/shadow; exit 7"], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 7, r
    assert r.stdout.split()[:2] == [str(uid), "/site"] and "public" in r.stdout, r
    assert "No such file" in r.stdout   # stderr joins stdout without a terminal; no host shadow file
    # An interactive shell on a terminal (ssh -tt), typed into.
    r = subprocess.run(base + ["-tt", "app@127.0.0.1"], input="echo $((6*7)); exit 3\n", capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 3 and "42" in r.stdout, r
    assert re.search(r"ssh: site app: shell session for \S+ \(/bin/bash pid \d+\)", sd.log())


def test_shell_and_forwarding_refused(sd, tmp_path):
    sd.ok("site", "create", "blog")
    key = keygen(tmp_path, "blog")
    add_key(sd, "blog", key)
    base = ["ssh"] + ssh_opts(sd, tmp_path, key) + ["-p", str(sd.ssh_port())]
    # A static site has no program of its own to run: SFTP only, said in words.
    shell = subprocess.run(base + ["blog@127.0.0.1", "id"], capture_output=True, text=True, timeout=30)
    assert shell.returncode == 1 and "SFTP only for static sites" in shell.stderr, shell
    assert "uid=" not in shell.stdout
    local = subprocess.run(base + ["-W", "127.0.0.1:22", "blog@127.0.0.1"], capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
    assert local.returncode != 0 and "forwarding failed" in local.stderr, local
    remote = subprocess.run(base + ["-N", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:22", "blog@127.0.0.1"],
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert remote.returncode != 0 and "forwarding failed" in remote.stderr, remote


def test_auth_attempts_per_connection_are_limited(sd, tmp_path):
    sd.ok("site", "create", "blog")
    keys = [keygen(tmp_path, f"wrong{i}") for i in range(6)]
    argv = ["ssh", "-v"] + ssh_opts(sd, tmp_path) + ["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                                                     "-p", str(sd.ssh_port())]
    for k in keys:
        argv += ["-i", str(k)]
    r = subprocess.run(argv + ["blog@127.0.0.1", "true"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    # berthd was asked about four keys; the connection ended before the last ones.
    assert r.stderr.count("Offering public key") < len(keys), r.stderr
    assert "too many failed logins on one connection" in sd.log()
    assert len(re.findall(r'failed login to site "blog"', sd.log())) == 4


def test_failed_logins_throttled_per_address(sd, tmp_path):
    sd.ok("site", "create", "blog")
    key, wrong = keygen(tmp_path, "blog"), keygen(tmp_path, "wrong")
    add_key(sd, "blog", key)
    for _ in range(5):
        assert sftp(sd, tmp_path, "blog", wrong, "ls\n").returncode != 0
    # Locked: even the right key is refused for now.
    r = sftp(sd, tmp_path, "blog", key, "ls\n")
    assert r.returncode != 0, r
    assert "too many failed logins from this address" in sd.log()


def test_connection_limits_and_login_grace(daemon_factory, tmp_path):
    need_tools()
    d = daemon_factory()
    d.ssh = ["127.0.0.1:0"]
    d.start(env={"BERTH_TEST_SSH_LOGIN_GRACE_S": "2", "BERTH_TEST_SSH_MAX_PER_ADDR": "3"})
    port = d.ssh_port()
    held = []
    try:
        for _ in range(3):
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            assert c.recv(64).startswith(b"SSH-2.0-")
            held.append(c)
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert extra.recv(64) == b"", "a fourth connection from one address was served"
        extra.close()
        assert "too many connections from this address" in d.log()
        # The held connections never log in: the grace time ends them.
        start = time.monotonic()
        for c in held:
            c.settimeout(10)
            while c.recv(4096):
                pass
        assert time.monotonic() - start < 8
    finally:
        for c in held:
            c.close()


def test_hostile_client_does_not_disturb_others(sd, tmp_path, sessions):
    sd.ok("site", "create", "blog")
    key = keygen(tmp_path, "blog")
    add_key(sd, "blog", key)
    s = Session(sd, tmp_path, "blog", key)
    sessions.append(s)
    s.run("pwd", "Remote working directory")
    front_pids = re.findall(r"berth-ssh\[(\d+)\] info: ssh front: serving", sd.log())
    for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096), b"SSH-2.0-x\r\n" + os.urandom(2048)):
        with socket.create_connection(("127.0.0.1", sd.ssh_port()), timeout=5) as c:
            c.sendall(payload)
            c.settimeout(5)
            try:
                while c.recv(4096):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
    (tmp_path / "after.txt").write_text("still here\n")
    s.run("put after.txt public/after.txt", "sftp>")
    s.run("ls public", "after.txt")
    assert re.findall(r"berth-ssh\[(\d+)\] info: ssh front: serving", sd.log()) == front_pids
    assert fetch(sd, "blog", "/after.txt") == (200, b"still here\n")


def cgroup_dir(pid, controller):
    for line in open(f"/proc/{pid}/cgroup"):
        _, controllers, path = line.rstrip("\n").split(":", 2)
        if controller in controllers.split(","):
            return f"/sys/fs/cgroup/{controller}{path}"
        if controllers == "" and os.path.exists(f"/sys/fs/cgroup/cgroup.controllers"):
            return f"/sys/fs/cgroup{path}"
    return None


@pytest.mark.parametrize("kind", ["static", "php"])
def test_sftp_server_runs_in_the_sites_sandbox_and_cgroup(sd, tmp_path, sessions, kind):
    if kind == "php":
        require(os.path.exists("/usr/sbin/php-fpm8.2"), "php-fpm8.2 is missing")
    sd.ok("site", "create", "box", "--type", kind, "--pids", "40", "--memory", "64M")
    key = keygen(tmp_path, "box")
    add_key(sd, "box", key)
    s = Session(sd, tmp_path, "box", key)
    sessions.append(s)
    s.run("pwd", "Remote working directory")
    pid = sftp_server_process(sftp_server_pids(sd, "box")[-1])
    status = open(f"/proc/{pid}/status").read()
    uid = site_uid(sd, "box")
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", status, re.M)
    assert re.search(r"^CapEff:\s+0+$", status, re.M) and re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert re.search(r"^Seccomp:\s+2$", status, re.M)
    assert os.readlink(f"/proc/{pid}/exe") == SFTP_SERVER
    pids_dir = cgroup_dir(pid, "pids")
    assert pids_dir and pids_dir.rstrip("/").endswith("/box"), pids_dir
    assert open(os.path.join(pids_dir, "pids.max")).read().strip() == "40"
    mem_dir = cgroup_dir(pid, "memory")
    if mem_dir and os.path.exists(os.path.join(mem_dir, "memory.limit_in_bytes")):
        assert int(open(os.path.join(mem_dir, "memory.limit_in_bytes")).read()) == 64 << 20
    elif mem_dir:
        assert int(open(os.path.join(mem_dir, "memory.max")).read()) == 64 << 20


def test_ssh_front_restarts_after_a_crash(sd, tmp_path):
    sd.ok("site", "create", "blog")
    key = keygen(tmp_path, "blog")
    add_key(sd, "blog", key)
    first = re.findall(r"berth-ssh\[(\d+)\] info: ssh front: serving", sd.log())[-1]
    os.kill(int(first), signal.SIGKILL)
    assert wait_for(lambda: len(re.findall(r"berth-ssh\[(\d+)\] info: ssh front: serving", sd.log())) > 1, timeout=10)
    assert "the ssh front (pid %s) was killed by signal 9" % first in sd.log()
    assert sftp(sd, tmp_path, "blog", key, "ls\n").returncode == 0


def test_ssh_front_is_unprivileged(sd):
    pid = int(re.findall(r"berth-ssh\[(\d+)\] info: ssh front: serving", sd.log())[-1])
    status = open(f"/proc/{pid}/status").read()
    assert not re.search(r"^Uid:\s+0\s", status, re.M)
    assert re.search(r"^CapEff:\s+0+$", status, re.M) and re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    # Its seccomp filter (no exec, no new namespaces, no io_uring...), which the
    # connection children, where libssh meets the client, inherit.
    assert re.search(r"^Seccomp:\s+2$", status, re.M)
    # Not dumpable: its /proc files stay root's, so the HTTP workers (same uid)
    # cannot read its memory, where the host key is.
    assert os.stat(f"/proc/{pid}/mem").st_uid == 0 and os.stat(f"/proc/{pid}/fd").st_uid == 0
    # stdio, its one listener, berthd's control socket, its signalfd: nothing of
    # berthd's (the store, the API socket, the HTTP listeners).
    targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    assert not any("berth.db" in t or "api.sock" in t for t in targets), targets
    assert len([t for t in targets if t.startswith("socket:")]) == 2, targets


# ---- managing keys: CLI and API ----

def test_cli_keys_validation_and_duplicates(sd, tmp_path):
    sd.ok("site", "create", "blog")
    ed, rsa = keygen(tmp_path, "ed"), keygen(tmp_path, "rsa", "rsa")
    ecdsa = keygen(tmp_path, "ec", "ecdsa")
    for k in (ed, rsa, ecdsa):
        add_key(sd, "blog", k)
    listed = sd.ok("site", "key", "ls", "blog")["keys"]
    assert [k["algorithm"] for k in listed] == ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"]
    fp = subprocess.run(["ssh-keygen", "-lf", f"{ed}.pub"], capture_output=True, text=True).stdout.split()[1]
    assert listed[0]["fingerprint"] == fp and listed[0]["comment"] == "ed@test"
    dup = sd.berth("site", "key", "add", "blog", (tmp_path / "key-ed.pub").read_text())
    assert dup.returncode == 1 and "already has the key" in dup.stderr, dup
    bad = {
        "not a key": "not an accepted public key",
        "from=\"1.2.3.4\" " + (tmp_path / "key-ed.pub").read_text(): "options",
        "ssh-ed25519 @@@@": "not valid base64",
        "ssh-ed25519 AAAA": "does not match",
        (tmp_path / "key-ed").read_text(): "private key",
    }
    for text, reason in bad.items():
        r = sd.berth("site", "key", "add", "blog", text)
        assert r.returncode == 1 and reason in r.stderr, (text, r)
    assert sd.berth("site", "key", "add", "blog").returncode == 2
    assert sd.berth("site", "key", "rm", "blog", "SHA256:nope").returncode == 1
    assert sd.berth("site", "key", "add", "nosuch", "--file", f"{ed}.pub").returncode == 1
    assert len(sd.ok("site", "key", "ls", "blog")["keys"]) == 3
    assert db_exec(sd, "SELECT count(*) FROM events WHERE action = 'site.key.add' AND target = 'blog'") == [(3,)]


def test_api_keys_permissions(sd, tmp_path):
    add_user(sd, "alice")
    add_user(sd, "bob")
    add_user(sd, "boss", admin=True)
    sd.ok("site", "create", "alices", "--owner", "alice")
    keygen(tmp_path, "k")
    line = (tmp_path / "key-k.pub").read_text().strip()
    alice, bob, boss = Browser(sd), Browser(sd, client="192.0.2.11"), Browser(sd, client="192.0.2.12")
    for b, name in ((alice, "alice"), (bob, "bob"), (boss, "boss")):
        assert b.login(name).status == 200
    added = alice.request("POST", "/api/v1/sites/alices/keys", {"key": line})
    assert added.status == 201, added
    url_id = added.json["id"]
    assert "/" not in url_id and "+" not in url_id
    assert alice.request("POST", "/api/v1/sites/alices/keys", {"key": line}).status == 409
    assert alice.request("POST", "/api/v1/sites/alices/keys", {"key": "ssh-rsa AAAA"}).status == 400
    assert alice.request("POST", "/api/v1/sites/alices/keys", {}).status == 400
    # Bob sees nothing of alice's site, keys included.
    assert bob.request("GET", "/api/v1/sites/alices/keys").status == 404
    assert bob.request("POST", "/api/v1/sites/alices/keys", {"key": line}).status == 404
    assert bob.request("DELETE", f"/api/v1/sites/alices/keys/{url_id}").status == 404
    listed = boss.request("GET", "/api/v1/sites/alices/keys").json
    assert len(listed["keys"]) == 1
    # How to connect, for the panel's SFTP section.
    assert listed["sftp"] == {"user": "alices", "port": str(sd.ssh_port()), "host_key": sd.status()["ssh_host_key"]}
    assert alice.request("DELETE", "/api/v1/sites/alices/keys/not-a-fingerprint").status == 400
    # Path segments are percent-decoded, as a script's URL library may encode the ':'
    # (but an escaped '/' names nothing).
    assert alice.request("DELETE", "/api/v1/sites/alices%2Fkeys/x").status == 404
    assert alice.request("GET", "/api/v1/sites/al%69ces/keys").status == 200
    assert alice.request("DELETE", "/api/v1/sites/alices/keys/" + url_id.replace(":", "%3A")).status == 200
    assert alice.request("DELETE", f"/api/v1/sites/alices/keys/{url_id}").status == 404
    assert db_exec(sd, "SELECT actor FROM events WHERE action = 'site.key.remove'") == [("alice",)]


def test_ipv4_and_ipv6_listeners(daemon_factory, tmp_path):
    need_tools()
    require(socket.has_ipv6 and os.path.exists("/proc/net/if_inet6"), "no IPv6 here")
    d = daemon_factory()
    d.ssh = ["127.0.0.1:0", "[::1]:0"]
    d.start()
    ssh = [l["address"] for l in d.status()["listeners"] if l["kind"] == "ssh"]
    assert len(ssh) == 2 and ssh[0].startswith("127.0.0.1:") and ssh[1].startswith("[::1]:"), ssh
    assert not any(a.endswith(":0") for a in ssh)
    d.ok("site", "create", "blog")
    key = keygen(tmp_path, "blog")
    add_key(d, "blog", key)
    v6_port = ssh[1].rsplit(":", 1)[1]
    argv = ["sftp", "-b", "-"] + ssh_opts(d, tmp_path, key) + ["-P", v6_port, "blog@[::1]"]
    r = subprocess.run(argv, input="pwd\n", capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert r.returncode == 0 and "/site" in r.stdout, r
    assert re.search(r"ssh: site blog: login from \[::1\]:\d+ with key", d.log())


def test_big_files_both_ways_intact(sd, tmp_path):
    """32 MiB up and down: the pump's back-pressure (one chunk each way) must not
    lose, reorder or stall bytes."""
    sd.ok("site", "create", "blog", "--memory", "256M")
    key = keygen(tmp_path, "blog")
    add_key(sd, "blog", key)
    big = tmp_path / "big.bin"
    data = os.urandom(1 << 20) * 32
    big.write_bytes(data)
    r = sftp(sd, tmp_path, "blog", key, "put big.bin private/big.bin\nget private/big.bin back.bin\n", timeout=120)
    assert r.returncode == 0, r
    assert (sd.state_dir / "sites" / "blog" / "private" / "big.bin").read_bytes() == data
    assert (tmp_path / "back.bin").read_bytes() == data


def test_taken_ssh_port_fails_only_when_asked_for(daemon_factory):
    need_tools()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        holder.bind(("127.0.0.1", 2222))
        holder.listen()
    except OSError:
        pass   # someone else holds it: taken all the same
    try:
        # --dev's default (127.0.0.1:2222) taken: berthd runs, without SFTP, and says so.
        d = daemon_factory("dev")
        d.ssh = []
        d.start("--dev")
        assert not [l for l in d.status()["listeners"] if l["kind"] == "ssh"]
        assert "SFTP is not served there" in d.log()
        d.stop()
        # Asked for explicitly: a clear refusal to start.
        e = daemon_factory("explicit")
        e.ssh = ["127.0.0.1:2222"]
        e.start(wait=False)
        assert e.proc.wait(timeout=20) == 1
        e.proc = None
        assert "127.0.0.1:2222" in e.log()
    finally:
        holder.close()
