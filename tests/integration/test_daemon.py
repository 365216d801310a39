"""berthd as a process: start-up, status, config, locking, shutdown, schema guard."""
import hashlib
import signal
import sqlite3

import pytest
import subprocess

from conftest import BERTHD, Daemon


def test_status_shows_version_real_ports_and_counts(daemon):
    st = daemon.status()
    assert st["version"]
    listeners = [l for l in st["listeners"] if l["kind"] == "http"]
    assert listeners[0]["requested"] == "127.0.0.1:0"
    host, port = listeners[0]["address"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert st["counts"] == {"sites": 0, "users": 0}
    assert st["base_domain"] == "test.berth"

    human = daemon.berth("status")
    assert human.returncode == 0
    assert f"127.0.0.1:{port} (asked 127.0.0.1:0)" in human.stdout
    assert f"run dir      {st['run_dir']}\n" in human.stdout


def test_ipv4_and_ipv6_listeners_side_by_side(daemon_factory):
    d = daemon_factory()
    d.http = ["127.0.0.1:0", "[::1]:0"]
    d.start()
    addrs = [l["address"] for l in d.status()["listeners"]]
    assert addrs[0].startswith("127.0.0.1:") and addrs[1].startswith("[::1]:")


def test_second_daemon_on_same_state_dir_refuses(daemon, tmp_path):
    second = Daemon(daemon.root)
    second.log_path = tmp_path / "second.log"
    proc = subprocess.run(second.argv(), capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1
    assert "already using" in proc.stdout + proc.stderr
    # The first one is unharmed.
    assert daemon.berth("status").returncode == 0


def test_sigterm_and_sigint_shut_down_cleanly(daemon_factory):
    for sig in (signal.SIGTERM, signal.SIGINT):
        d = daemon_factory(f"d{int(sig)}").start()
        d.stop(sig)
        assert not d.socket.exists(), "the API socket is removed on shutdown"
        assert "shutting down" in d.log()


def test_unknown_flag_is_a_usage_error(tmp_path):
    proc = subprocess.run([str(BERTHD), "--bogus"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown option --bogus" in proc.stderr
    # A known option without its value is not "unknown".
    proc = subprocess.run([str(BERTHD), "--http"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == "berthd: option --http needs a value\n"


def test_bad_listener_address_fails_clearly(daemon_factory):
    d = daemon_factory()
    d.http = ["not-an-address"]
    d.start(wait=False)
    assert d.proc.wait(timeout=20) == 1
    d.proc = None
    assert "invalid http address" in d.log()


def test_config_file_read_and_overridden_by_flags(daemon_factory):
    d = daemon_factory()
    d.root.mkdir(parents=True)
    d.config_path().write_text(
        f"site_uid_range: {d.uid_range[0]}-{d.uid_range[1]}\nbase_domain: from-file.example\nlog_level: debug\n")
    d.start()
    assert d.status()["base_domain"] == "test.berth", "--base-domain beats the file"
    d.stop()
    d.base_domain = None
    d.start()
    assert d.status()["base_domain"] == "from-file.example"


def test_config_file_errors_are_clear(daemon_factory):
    d = daemon_factory()
    d.root.mkdir(parents=True)
    d.config_path().write_text("colour: blue\n")
    d.start(wait=False)
    assert d.proc.wait(timeout=20) == 1
    d.proc = None
    assert 'unknown setting "colour"' in d.log()

    d.config_path().write_text("http: [unclosed\n")
    d.start(wait=False)
    assert d.proc.wait(timeout=20) == 1
    d.proc = None
    assert "not valid YAML" in d.log()

    # the front's uid inside the sites' range: a site could be handed its identity
    first, last = d.uid_range
    for i, key in enumerate(("front_uid", "front_gid")):
        d.config_path().write_text(f"site_uid_range: {first}-{last}\n{key}: {first + 3}\n")
        d.start(wait=False)
        assert d.proc.wait(timeout=20) == 1
        d.proc = None
        assert d.log().count("lie inside site_uid_range") + d.log().count("lies inside site_uid_range") == i + 1
        assert not (d.state_dir / "berth.db").exists()
    # only what is inside is named: front_gid follows front_uid unless set, while
    # front_uid keeps its default (outside) when only front_gid is set
    assert f"front_uid {first + 3} and front_gid {first + 3} lie inside site_uid_range {first}-{last}" in d.log()
    assert f"error: front_gid {first + 3} lies inside site_uid_range {first}-{last}" in d.log(), d.log()
    assert "front_uid 199999" not in d.log()


def start_with_host_accounts(d, tmp_path, passwd_lines=(), group_lines=()):
    """Starts d's berthd in a mount namespace of the test's own where /etc/passwd and
    /etc/group are the host's plus the given lines."""
    d.root.mkdir(parents=True, exist_ok=True)
    d.open_path_to_root()
    script, args = "", []
    for db, lines in (("passwd", passwd_lines), ("group", group_lines)):
        fake = tmp_path / f"{db}.{len(d.logs)}"
        fake.write_text(open(f"/etc/{db}").read() + "".join(line + "\n" for line in lines))
        script += f'mount --bind "${len(args) + 1}" /etc/{db} && '
        args.append(str(fake))
    script += f'shift {len(args)} && exec "$@"'
    log = open(d.log_path, "ab")
    d.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *args,
                               *d.argv()], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    d.wait_ready()


def test_host_accounts_inside_the_site_uid_range_are_passed_over(daemon_factory, tmp_path):
    # A host user or group holding an id of the sites' range would share its files
    # with the site given that id: new sites never get such an id. A site that has
    # one already (the account came later) is named at start, loudly, and runs.
    d = daemon_factory()
    first, _ = d.uid_range
    start_with_host_accounts(d, tmp_path, [f"intruder:x:{first}:{first}::/:/bin/false"],
                             [f"crew:x:{first + 1}:"])
    assert d.ok("site", "create", "blog")["uid"] == first + 2
    assert "shares that account" not in d.log()
    d.stop()
    start_with_host_accounts(d, tmp_path, [f"latecomer:x:{first + 2}:{first + 2}::/:/bin/false"])
    assert (f"site blog has uid {first + 2}, which host user latecomer also has: the site shares that "
            "account's files and processes") in d.log()
    assert d.ok("site", "show", "blog")["uid"] == first + 2
    assert d.ok("site", "create", "shop")["uid"] == first + 3
    d.stop()


def test_missing_explicit_config_file_fails(daemon_factory, tmp_path):
    d = daemon_factory()
    d.start("--config", str(tmp_path / "nope.yaml"), wait=False)
    assert d.proc.wait(timeout=20) == 1
    d.proc = None
    assert "nope.yaml" in d.log()


def test_newer_schema_is_refused_and_left_untouched(daemon_factory):
    d = daemon_factory().start()
    d.stop()
    db = d.state_dir / "berth.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    d.start(wait=False)
    assert d.proc.wait(timeout=20) == 1
    d.proc = None
    assert "schema version 99" in d.log()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_restart_keeps_sites_and_users(daemon):
    r = daemon.berth("user", "add", "alice", "--password-stdin", input="correct horse battery\n")
    assert r.returncode == 0, r
    daemon.ok("site", "create", "blog", "--domain", "blog.example.org", "--owner", "alice")
    daemon.ok("site", "create", "shop", "--type", "app", "--cmd", "python3 -m http.server", "--memory", "512M")
    daemon.stop()
    daemon.start()
    names = [s["name"] for s in daemon.ok("site", "ls")["sites"]]
    assert names == ["blog", "shop"]
    blog = daemon.ok("site", "show", "blog")
    assert blog["domains"] == ["blog.example.org"] and blog["owner"] == "alice"
    assert daemon.ok("site", "show", "shop")["limits"]["memory"] == "512M"
    assert [u["name"] for u in daemon.ok("user", "ls")["users"]] == ["alice"]


def test_dev_mode_creates_admin_and_demo_site(daemon_factory):
    d = daemon_factory()
    d.start("--dev")
    assert "password:" in d.log()
    assert [u["name"] for u in d.ok("user", "ls")["users"]] == ["admin"]
    demo = d.ok("site", "show", "demo")
    assert (d.state_dir / "sites/demo/public/index.html").read_text().startswith("<!doctype html>")
    assert demo["urls"][0].startswith("http://demo.test.berth:")
    # A second start does not create them again, nor print a password.
    d.stop()
    d.log_path.write_text("")
    d.start("--dev")
    assert "password:" not in d.log()
    assert [s["name"] for s in d.ok("site", "ls")["sites"]] == ["demo", "hello-php"]


def test_second_daemon_on_a_port_in_use_refuses(daemon_factory, tmp_path):
    """berthd's listeners let its workers each have a socket of their own
    (SO_REUSEPORT), yet another berthd, with its own state, still cannot take the
    port: it says so and exits, and the first keeps all its traffic."""
    first = daemon_factory("first").start()
    port = first.http_port()
    # The first one's workers have a listening socket each on that port.
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                               text=True).stdout.splitlines()
    assert len(listening) >= 2, listening
    second = daemon_factory("second")
    second.http = [f"127.0.0.1:{port}"]
    second.open_path_to_root()
    second.log_path = tmp_path / "second.log"
    proc = subprocess.run(second.argv(), capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr + (second.log_path.read_text() if second.log_path.exists() else "")
    assert f"cannot listen on 127.0.0.1:{port}" in out and "Address already in use" in out, out
    assert first.berth("status").returncode == 0
