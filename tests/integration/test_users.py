"""Users: argon2id passwords read from stdin or a terminal, never from argv."""
import os
import pty
import select
import sqlite3
import subprocess
import time

from conftest import BERTH


def rows(daemon, sql):
    con = sqlite3.connect(f"file:{daemon.state_dir / 'berth.db'}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_add_list_passwd_remove(daemon):
    r = daemon.berth("user", "add", "alice", "--password-stdin", input="s3cret-enough\n")
    assert r.returncode == 0 and r.stdout == "created user alice\n", r
    r = daemon.berth("user", "add", "root-ish", "--admin", "--password-stdin", input="another-secret\n")
    assert r.returncode == 0, r
    ls = daemon.berth("user", "ls")
    assert ls.stdout.splitlines()[1].split() == ["alice", "user", "active"]
    assert ls.stdout.splitlines()[2].split() == ["root-ish", "admin", "active"]

    (hash1,) = rows(daemon, "SELECT password_hash FROM users WHERE name = 'alice'")[0]
    assert hash1.startswith("$argon2id$")
    r = daemon.berth("user", "passwd", "alice", "--password-stdin", input="a-new-password\n")
    assert r.returncode == 0, r
    (hash2,) = rows(daemon, "SELECT password_hash FROM users WHERE name = 'alice'")[0]
    assert hash2.startswith("$argon2id$") and hash2 != hash1

    r = daemon.berth("user", "rm", "alice")
    assert r.returncode == 0 and r.stdout == "removed user alice\n"
    assert [u["name"] for u in daemon.ok("user", "ls")["users"]] == ["root-ish"]


def test_passwords_never_stored_or_logged_in_clear(daemon):
    daemon.berth("user", "add", "alice", "--password-stdin", input="unmistakable-pw-123\n")
    daemon.berth("user", "passwd", "alice", "--password-stdin", input="second-unmistakable-456\n")
    daemon.stop()
    for path in daemon.state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"unmistakable" not in data, path
    assert "unmistakable" not in daemon.log()
    daemon.start()


def test_user_errors(daemon):
    daemon.berth("user", "add", "alice", "--password-stdin", input="s3cret-enough\n")
    r = daemon.berth("user", "add", "alice", "--password-stdin", input="s3cret-enough\n")
    assert r.returncode == 1 and r.stderr == 'berth: a user named "alice" already exists\n'
    r = daemon.berth("user", "add", "bob", "--password-stdin", input="short\n")
    assert r.returncode == 1 and "too short" in r.stderr
    r = daemon.berth("user", "add", "Bad Name", "--password-stdin", input="s3cret-enough\n")
    assert r.returncode == 1 and "invalid user name" in r.stderr
    r = daemon.berth("user", "add", "bob", "--password-stdin", input="")
    assert r.returncode == 1 and "no password on standard input" in r.stderr
    r = daemon.berth("user", "rm", "ghost")
    assert r.returncode == 1 and r.stderr == 'berth: no user named "ghost"\n'
    r = daemon.berth("user", "passwd", "ghost", "--password-stdin", input="s3cret-enough\n")
    assert r.returncode == 1 and "no user named" in r.stderr
    # Without --password-stdin and without a terminal there is nobody to ask.
    r = daemon.berth("user", "add", "bob", input="s3cret-enough\n")
    assert r.returncode == 1 and "--password-stdin" in r.stderr
    assert [u["name"] for u in daemon.ok("user", "ls")["users"]] == ["alice"]


def test_user_owning_sites_cannot_be_removed(daemon):
    daemon.berth("user", "add", "alice", "--password-stdin", input="s3cret-enough\n")
    daemon.ok("site", "create", "blog", "--owner", "alice")
    r = daemon.berth("user", "rm", "alice")
    assert r.returncode == 1 and "still owns sites (blog)" in r.stderr
    daemon.ok("site", "rm", "blog")
    assert daemon.berth("user", "rm", "alice").returncode == 0


def test_password_prompt_on_a_terminal(daemon):
    """On a tty the password is asked twice with echo off, and must match."""
    def run_with_tty(answers, timeout=20):
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(str(BERTH), [str(BERTH), "--socket", str(daemon.socket), "user", "add", "carol"])
        out = b""
        deadline = time.monotonic() + timeout
        pending = list(answers)

        def read_some():
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            try:
                return os.read(fd, 1024)
            except OSError:
                return b""

        try:
            while time.monotonic() < deadline:
                if pending and out.rstrip(b" ").endswith(b":"):
                    os.write(fd, pending.pop(0) + b"\n")
                    out += b"|"
                    continue
                chunk = read_some()
                if not chunk:
                    break
                out += chunk
            else:
                raise AssertionError(f"berth did not finish; it printed {out!r}")
        finally:
            try:
                os.kill(pid, 9) if time.monotonic() >= deadline else None
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        return os.waitstatus_to_exitcode(status), out.decode(errors="replace")

    code, out = run_with_tty([b"first-password", b"different-one"])
    assert code == 1 and "do not match" in out
    assert "first-password" not in out, "echo is off"
    code, out = run_with_tty([b"good-password-1", b"good-password-1"])
    assert code == 0, out
    assert "created user carol" in out
    assert [u["name"] for u in daemon.ok("user", "ls")["users"]] == ["carol"]
