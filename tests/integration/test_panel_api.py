"""The panel's socket: sign-in, sessions, CSRF, throttling, tokens, and who sees what.

These talk HTTP to <run>/panel.sock directly, as the front does: every request
carries the X-Forwarded-For the front would set, and a Host of the panel's name.
"""
import http.client
import json
import subprocess
import socket
import sqlite3
import time

import pytest

HOST = "panel.test.berth"
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-22", "boss": "boss-password-333"}


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(self.unix_path))


class Answer:
    def __init__(self, resp):
        self.status = resp.status
        self.headers = resp.headers
        self.raw = resp.read()
        try:
            self.json = json.loads(self.raw)
        except ValueError:
            self.json = None

    def error(self):
        return (self.json or {}).get("error", {}).get("message")

    def __repr__(self):
        return f"<{self.status} {self.raw[:300]!r}>"


class Browser:
    """A client of panel.sock that keeps the session cookie and CSRF token like the
    panel's page does."""

    def __init__(self, daemon, client="192.0.2.10"):
        self.path = daemon.run_dir / "panel.sock"
        self.client = client
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, headers=None, cookie=True, csrf=True, origin=True):
        h = {"Host": HOST, "X-Forwarded-For": self.client, "X-Forwarded-Proto": "http"}
        if cookie and self.cookie:
            h["Cookie"] = f"berth_session={self.cookie}"
        if csrf and self.csrf and method != "GET":
            h["X-CSRF-Token"] = self.csrf
        if origin and method != "GET":
            h["Origin"] = f"http://{HOST}"
        h.update(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = UnixHTTPConnection(self.path)
        try:
            conn.request(method, path, body=data, headers=h)
            return Answer(conn.getresponse())
        finally:
            conn.close()

    def login(self, name, password=None, **kw):
        a = self.request("POST", "/api/v1/login", {"name": name, "password": password or PASSWORDS[name]}, **kw)
        if a.status == 200:
            cookie = a.headers["Set-Cookie"]
            self.cookie = cookie.split(";", 1)[0].split("=", 1)[1]
            self.csrf = a.json["csrf"]
        return a


def add_user(daemon, name, admin=False):
    args = ["user", "add", name, "--password-stdin"] + (["--admin"] if admin else [])
    r = daemon.berth(*args, input=PASSWORDS[name] + "\n")
    assert r.returncode == 0, r


@pytest.fixture
def panel(daemon):
    add_user(daemon, "alice")
    add_user(daemon, "bob")
    add_user(daemon, "boss", admin=True)
    return daemon


def db_exec(daemon, sql, *args):
    con = sqlite3.connect(daemon.state_dir / "berth.db", timeout=10)
    try:
        with con:
            return con.execute(sql, args).fetchall()
    finally:
        con.close()


def test_panel_socket_mode_and_pages(panel):
    sock = panel.run_dir / "panel.sock"
    st = sock.stat()
    assert oct(st.st_mode & 0o777) == "0o660" and st.st_uid == 0
    b = Browser(panel)
    page = b.request("GET", "/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert b'<script src="/assets/panel.js"' in page.raw and b"<script>" not in page.raw
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    etag = page.headers["ETag"]
    again = b.request("GET", "/", headers={"If-None-Match": etag})
    assert again.status == 304 and again.raw == b""
    js = b.request("GET", "/assets/panel.js")
    assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert js.headers["Cache-Control"] == "no-cache"
    assert b.request("GET", "/assets/nope.js").status == 404
    # The API needs a session on this socket, whoever the peer is (here: root).
    assert b.request("GET", "/api/v1/sites").status == 401


def test_login_sets_a_strict_cookie(panel):
    b = Browser(panel)
    a = b.login("alice")
    assert a.status == 200, a
    assert a.json["user"] == "alice" and a.json["admin"] is False and len(a.json["csrf"]) >= 32
    cookie = a.headers["Set-Cookie"]
    attrs = [p.strip() for p in cookie.split(";")]
    assert attrs[0].startswith("berth_session=") and len(attrs[0]) > 40
    assert "HttpOnly" in attrs and "SameSite=Strict" in attrs and "Path=/" in attrs
    assert "Secure" not in attrs
    me = b.request("GET", "/api/v1/me")
    assert me.status == 200 and me.json["user"] == "alice" and me.json["csrf"] == a.json["csrf"]
    # Behind HTTPS (as the front says) the cookie is Secure.
    s = Browser(panel)
    a = s.login("alice", headers={"X-Forwarded-Proto": "https"})
    assert a.status == 200 and "Secure" in [p.strip() for p in a.headers["Set-Cookie"].split(";")]


def test_session_secret_never_stored_in_clear(panel):
    b = Browser(panel)
    assert b.login("alice").status == 200
    rows = db_exec(panel, "SELECT id, user FROM sessions")
    assert len(rows) == 1 and rows[0][1] == "alice"
    assert rows[0][0] != b.cookie and len(rows[0][0]) == 64
    panel.stop()
    for path in panel.state_dir.rglob("*"):
        if path.is_file():
            assert b.cookie.encode() not in path.read_bytes(), path
    panel.start()


def test_unknown_user_and_wrong_password_look_the_same(panel):
    b = Browser(panel)
    wrong = b.login("alice", "not-her-password")
    unknown = b.login("nobody-here", "not-her-password")
    assert wrong.status == unknown.status == 401
    assert wrong.raw == unknown.raw
    assert wrong.error() == "wrong user name or password"

    # Both pay for an argon2 verification: an unknown name is not answered quicker.
    # The quickest of two tries each, so that a busy machine (another process
    # taking the core for a moment) does not decide.
    def quickest(user, password, client):
        times = []
        other = Browser(panel, client=client)   # each from its own address: none is throttled
        for _ in range(2):
            t0 = time.monotonic()
            assert other.login(user, password).status == 401
            times.append(time.monotonic() - t0)
        return min(times)
    t_unknown = quickest("nobody-else", "not-her-password", "198.51.100.21")
    t_wrong = quickest("alice", "still-not-it", "198.51.100.22")
    assert t_unknown > t_wrong / 3, (t_unknown, t_wrong)
    # A disabled user gets the very same answer, even with the right password.
    panel.ok("user", "disable", "bob")
    disabled = b.login("bob")
    assert disabled.status == 401 and disabled.raw == wrong.raw


def test_throttling_per_address_and_per_account(panel):
    attacker = Browser(panel, client="198.51.100.7")
    for _ in range(5):
        assert attacker.login("alice", "guess-guess").status == 401
    locked = attacker.login("alice", "guess-guess")
    assert locked.status == 429, locked
    retry = int(locked.headers["Retry-After"])
    assert 1 <= retry <= 3600
    # Locked out even with the right password, while the lock lasts.
    assert attacker.login("alice").status == 429
    # The account is protected from another address too...
    elsewhere = Browser(panel, client="203.0.113.9")
    assert elsewhere.login("alice").status == 429
    # ...and that address can still sign in to other accounts.
    assert elsewhere.login("bob").status == 200
    # The attacking address is slowed down for any account, known or not.
    assert attacker.login("bob").status == 429
    assert attacker.login("ghost", "x-x-x-x-x").status == 429


def test_csrf_token_required_and_checked(panel):
    b = Browser(panel)
    assert b.login("alice").status == 200
    missing = b.request("POST", "/api/v1/sites", {"name": "blog"}, csrf=False)
    assert missing.status == 403 and "CSRF" in missing.error()
    wrong = b.request("POST", "/api/v1/sites", {"name": "blog"}, headers={"X-CSRF-Token": "A" * 43})
    assert wrong.status == 403
    assert panel.ok("site", "ls")["sites"] == []
    ok = b.request("POST", "/api/v1/sites", {"name": "blog"})
    assert ok.status == 201, ok
    assert ok.json["owner"] == "alice"


def test_forged_cross_site_post_refused(panel):
    b = Browser(panel)
    assert b.login("alice").status == 200
    # Even with a valid session and CSRF token, another origin is refused.
    forged = b.request("POST", "/api/v1/sites", {"name": "evil"}, headers={"Origin": "http://evil.example"})
    assert forged.status == 403 and "cross-site" in forged.error()
    forged = b.request("POST", "/api/v1/sites", {"name": "evil"}, origin=False,
                       headers={"Referer": "http://evil.example/page"})
    assert forged.status == 403
    # A login from another site's page is refused too (login CSRF).
    c = Browser(panel)
    assert c.login("bob", headers={"Origin": "http://evil.example"}).status == 403
    assert panel.ok("site", "ls")["sites"] == []


def test_logout_and_expiry(panel):
    b = Browser(panel)
    assert b.login("alice").status == 200
    assert b.request("POST", "/api/v1/logout", csrf=False).status == 403
    out = b.request("POST", "/api/v1/logout")
    assert out.status == 200
    assert "Max-Age=0" in out.headers["Set-Cookie"]
    gone = b.request("GET", "/api/v1/me")
    assert gone.status == 401 and "sign in again" in gone.error()

    # Idle for longer than 12 hours: the session has ended.
    assert b.login("alice").status == 200
    db_exec(panel, "UPDATE sessions SET last_seen = last_seen - 13 * 3600")
    assert b.request("GET", "/api/v1/me").status == 401
    assert db_exec(panel, "SELECT count(*) FROM sessions")[0][0] == 0
    # Past the absolute limit, however active.
    assert b.login("alice").status == 200
    db_exec(panel, "UPDATE sessions SET expires_at = strftime('%s','now') - 1")
    assert b.request("GET", "/api/v1/me").status == 401


def test_users_see_only_their_own_sites(panel):
    alice, bob, boss = Browser(panel), Browser(panel), Browser(panel)
    assert alice.login("alice").status == 200
    assert bob.login("bob").status == 200
    assert boss.login("boss").status == 200
    assert alice.request("POST", "/api/v1/sites", {"name": "alices"}).status == 201
    assert bob.request("POST", "/api/v1/sites", {"name": "bobs"}).status == 201

    assert [s["name"] for s in bob.request("GET", "/api/v1/sites").json["sites"]] == ["bobs"]
    for method, path in [("GET", "/api/v1/sites/alices"), ("DELETE", "/api/v1/sites/alices"),
                         ("POST", "/api/v1/sites/alices/start"), ("POST", "/api/v1/sites/alices/stop"),
                         ("PATCH", "/api/v1/sites/alices"), ("GET", "/api/v1/sites/alices/logs")]:
        a = bob.request(method, path, {"memory": "1G"} if method == "PATCH" else None)
        assert a.status == 404, (method, path, a)
        assert a.raw == bob.request("GET", "/api/v1/sites/no-such-site").raw.replace(b"no-such-site", b"alices")
    # Creating a site for someone else is an admin's business.
    assert bob.request("POST", "/api/v1/sites", {"name": "gift", "owner": "alice"}).status == 403
    # Users, events, the daemon's status: admins only.
    for path in ["/api/v1/users", "/api/v1/events", "/api/v1/status"]:
        assert bob.request("GET", path).status == 403
    assert bob.request("PATCH", "/api/v1/users/alice", {"disabled": True}).status == 403

    # The admin sees every site with its owner.
    sites = {s["name"]: s["owner"] for s in boss.request("GET", "/api/v1/sites").json["sites"]}
    assert sites == {"alices": "alice", "bobs": "bob"}
    assert boss.request("GET", "/api/v1/sites/alices").status == 200
    assert boss.request("POST", "/api/v1/sites/alices/stop").status == 200
    assert alice.request("DELETE", "/api/v1/sites/alices").status == 200


def test_users_cannot_lift_their_sites_isolation(panel):
    # The host's network or no limit at all would let a user's site reach the
    # host's local services or starve every other site: an admin's decision.
    alice, boss = Browser(panel), Browser(panel)
    assert alice.login("alice").status == 200
    assert boss.login("boss").status == 200
    app = {"type": "app", "cmd": "exec sleep 1000"}
    for extra in [{"network": "host"}, {"memory": 0}, {"memory": "unlimited"}, {"pids": 0},
                  {"cpu": "unlimited"}, {"io_write": "10M"}, {"io_read": "unlimited"}]:
        a = alice.request("POST", "/api/v1/sites", {"name": "mine", **app, **extra})
        assert a.status == 403, (extra, a)
        assert "only an admin" in a.error(), a
    assert alice.request("GET", "/api/v1/sites/mine").status == 404
    # what a user may choose: the other networks, finite limits
    a = alice.request("POST", "/api/v1/sites", {"name": "mine", **app, "network": "nat", "memory": "512M",
                                                "pids": 64, "cpu": "0.5"})
    assert a.status == 201, a
    for extra in [{"network": "host"}, {"memory": 0}, {"pids": 0}, {"cpu": "0"}, {"io_write": "unlimited"}]:
        a = alice.request("PATCH", "/api/v1/sites/mine", extra)
        assert a.status == 403, (extra, a)
    assert alice.request("PATCH", "/api/v1/sites/mine", {"memory": "1G", "network": "none"}).status == 200
    # an admin may, and the user can still change the rest of that site
    assert boss.request("PATCH", "/api/v1/sites/mine", {"network": "host", "pids": 0, "io_write": "10M"}).status == 200
    assert alice.request("PATCH", "/api/v1/sites/mine", {"idle_seconds": 60}).status == 200
    site = alice.request("GET", "/api/v1/sites/mine").json
    assert (site["network"], site["limits"]["pids"], site["idle_seconds"]) == ("host", 0, 60)
    assert site["limits"]["io_write_bps"] == 10 << 20


def restart_with_config(daemon, yaml_line):
    """Stops berthd, adds yaml_line to its berth.yaml and starts it again; returns
    the file's path."""
    daemon.stop()
    config = daemon.config_path()
    config.write_text(config.read_text() + yaml_line + "\n")
    daemon.start()
    return config


def test_users_stay_within_the_site_limits_berth_yaml_gives_them(panel):
    # user_site_limits is the most a user may give one of their sites (1G, 1 CPU,
    # 512 processes unless berth.yaml says otherwise): a finite but huge limit would
    # starve the other sites as surely as none. A site a user makes without limits
    # gets at most the ceilings; an admin may go past them.
    alice = Browser(panel)
    assert alice.login("alice").status == 200
    for extra, words in [({"memory": "2G"}, "more than 1G of memory"), ({"cpu": 2}, "more than 1 CPU "),
                         ({"pids": 1000}, "more than 512 processes")]:
        a = alice.request("POST", "/api/v1/sites", {"name": "mine", **extra})
        assert a.status == 403 and words in a.error(), (extra, a)
    config = restart_with_config(panel, "user_site_limits: {memory: 128M, cpu: 0.5, pids: 64}")
    alice, boss = Browser(panel), Browser(panel)
    assert alice.login("alice").status == 200 and boss.login("boss").status == 200
    assert alice.request("POST", "/api/v1/sites", {"name": "mine"}).status == 201
    limits = alice.request("GET", "/api/v1/sites/mine").json["limits"]
    assert (limits["memory"], limits["cpu"], limits["pids"]) == ("128M", "0.5", 64), limits
    for extra, words in [({"memory": "256M"}, "more than 128M of memory"), ({"cpu": "0.75"}, "more than 0.5 CPUs"),
                         ({"pids": 65}, "more than 64 processes")]:
        a = alice.request("PATCH", "/api/v1/sites/mine", extra)
        assert a.status == 403 and words in a.error(), (extra, a)
    assert alice.request("PATCH", "/api/v1/sites/mine", {"memory": "64M", "pids": 32}).status == 200
    assert boss.request("POST", "/api/v1/sites", {"name": "big", "memory": "2G", "cpu": 2}).status == 201
    # the admin's own defaults are untouched by the users' ceilings
    assert boss.request("GET", "/api/v1/sites/big").json["limits"]["pids"] == 128
    # a bad ceiling stops berthd with the key named
    panel.stop()
    config.write_text(config.read_text().replace("memory: 128M", "memory: lots"))
    r = subprocess.run(panel.argv(), capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "user_site_limits.memory must be a size" in r.stderr + r.stdout, r


def test_users_own_at_most_the_sites_berth_yaml_gives_them(panel):
    # Per-site ceilings do not bound a user who makes many sites: user_site_limits'
    # sites does. The sites an apply batch makes count as they are made; an admin
    # may give a user more.
    restart_with_config(panel, "user_site_limits: {sites: 2}")
    alice, boss = Browser(panel), Browser(panel)
    assert alice.login("alice").status == 200 and boss.login("boss").status == 200
    assert alice.request("POST", "/api/v1/sites", {"name": "one"}).status == 201
    a = alice.request("POST", "/api/v1/apply", {"changes": [{"create": {"name": "two"}},
                                                            {"create": {"name": "three"}}]})
    assert a.status == 403 and a.error() == (
        "site three: you have 2 sites, the most a user may own (user_site_limits in berth.yaml): "
        "remove one, or ask an admin; nothing was changed"), a
    assert alice.request("POST", "/api/v1/sites", {"name": "two"}).status == 201
    assert alice.request("POST", "/api/v1/sites", {"name": "three"}).status == 403
    assert boss.request("POST", "/api/v1/sites", {"name": "three", "owner": "alice"}).status == 201
    bob = Browser(panel)   # the cap is per user
    assert bob.login("bob").status == 200
    assert bob.request("POST", "/api/v1/sites", {"name": "bobs"}).status == 201
    assert sorted(s["name"] for s in alice.request("GET", "/api/v1/sites").json["sites"]) == ["one", "three", "two"]
    assert alice.request("DELETE", "/api/v1/sites/one").status == 200
    assert alice.request("POST", "/api/v1/sites", {"name": "four"}).status == 403


def test_site_logs_tail(panel):
    alice = Browser(panel)
    assert alice.login("alice").status == 200
    assert alice.request("POST", "/api/v1/sites", {"name": "logged"}).status == 201
    logs = panel.state_dir / "sites" / "logged" / "logs"
    (logs / "error.log").write_text("".join(f"line {i}\n" for i in range(300)))
    a = alice.request("GET", "/api/v1/sites/logged/logs?kind=error&lines=3")
    assert a.status == 200 and a.json["lines"] == ["line 297", "line 298", "line 299"]
    # A symlink planted in logs/ is not followed.
    (logs / "error.log").unlink()
    (logs / "error.log").symlink_to("/etc/passwd")
    a = alice.request("GET", "/api/v1/sites/logged/logs?kind=error")
    assert a.status == 500 and b"root:" not in a.raw
    assert alice.request("GET", "/api/v1/sites/logged/logs?kind=../x").status == 400


def test_api_tokens_create_use_revoke(panel):
    alice = Browser(panel)
    assert alice.login("alice").status == 200
    created = alice.request("POST", "/api/v1/tokens", {"name": "deploy"})
    assert created.status == 201, created
    token = created.json["token"]
    assert token.startswith("berth_")
    listed = alice.request("GET", "/api/v1/tokens").json["tokens"]
    assert [t["name"] for t in listed] == ["deploy"] and "token" not in listed[0]
    assert db_exec(panel, "SELECT count(*) FROM api_tokens WHERE hash = ?", token) == [(0,)]

    script = Browser(panel, client="192.0.2.99")
    bearer = {"Authorization": f"Bearer {token}"}
    me = script.request("GET", "/api/v1/me", headers=bearer)
    assert me.status == 200 and me.json["user"] == "alice" and me.json["via"] == "token"
    # Bearer requests need no CSRF token (no browser sends them on its own).
    made = script.request("POST", "/api/v1/sites", {"name": "scripted"}, headers=bearer, origin=False)
    assert made.status == 201 and made.json["owner"] == "alice"
    # Bob cannot revoke alice's token: it does not exist for him.
    bob = Browser(panel)
    assert bob.login("bob").status == 200
    assert bob.request("DELETE", f"/api/v1/tokens/{created.json['id']}").status == 404
    assert alice.request("DELETE", f"/api/v1/tokens/{created.json['id']}").status == 200
    assert script.request("GET", "/api/v1/me", headers=bearer).status == 401
    assert script.request("GET", "/api/v1/me", headers={"Authorization": "Bearer berth_forged"}).status == 401


def test_an_admins_password_reset_revokes_the_users_api_tokens(panel):
    # Whoever learnt a password could have made tokens with it: the admin's reset,
    # meant to lock them out, revokes those too. The user's own change keeps them.
    alice = Browser(panel)
    assert alice.login("alice").status == 200
    kept = alice.request("POST", "/api/v1/tokens", {"name": "mine"}).json["token"]
    new = "a fresh long password 1"
    assert alice.request("PUT", "/api/v1/me/password", {"current": PASSWORDS["alice"], "new": new}).status == 200
    script = Browser(panel, client="192.0.2.99")
    assert script.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {kept}"}).status == 200
    assert alice.login("alice", new).status == 200
    stolen = alice.request("POST", "/api/v1/tokens", {"name": "thief"}).json["token"]
    r = panel.berth("user", "passwd", "alice", "--password-stdin", input="another long password 2\n")
    assert r.returncode == 0 and r.stdout == "changed the password of alice; revoked 2 API tokens\n", r
    for token in (kept, stolen):
        assert script.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status == 401
    r = panel.berth("user", "passwd", "alice", "--password-stdin", input="a third long password 3\n")
    assert r.returncode == 0 and r.stdout == "changed the password of alice\n", r


def test_token_cli(panel):
    r = panel.berth("token", "create", "ci")
    assert r.returncode == 1 and "name the user" in r.stderr
    r = panel.berth("token", "create", "ci", "--user", "alice")
    assert r.returncode == 0, r
    token = r.stdout.strip()
    ls = panel.berth("token", "ls")
    assert ls.returncode == 0 and "alice" in ls.stdout and "ci" in ls.stdout and token not in ls.stdout
    tid = panel.ok("token", "ls", "--user", "alice")["tokens"][0]["id"]
    b = Browser(panel)
    assert b.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json["user"] == "alice"
    r = panel.berth("token", "rm", str(tid))
    assert r.returncode == 0 and r.stdout == f"revoked token {tid}\n"
    assert b.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status == 401
    assert panel.berth("token", "rm", "9999").returncode == 1


def test_disabled_user_locked_out(panel):
    alice = Browser(panel)
    assert alice.login("alice").status == 200
    token = alice.request("POST", "/api/v1/tokens", {"name": "t"}).json["token"]
    r = panel.berth("user", "disable", "alice")
    assert r.returncode == 0 and r.stdout == "disabled user alice\n"
    assert alice.request("GET", "/api/v1/me").status == 401
    assert db_exec(panel, "SELECT count(*) FROM sessions WHERE user = 'alice'") == [(0,)]
    assert alice.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status == 401
    assert Browser(panel).login("alice").status == 401
    assert panel.berth("user", "enable", "alice").returncode == 0
    assert Browser(panel).login("alice").status == 200
    # The admin does the same from the panel, but not to themselves.
    boss = Browser(panel)
    assert boss.login("boss").status == 200
    assert boss.request("PATCH", "/api/v1/users/alice", {"disabled": True}).json["disabled"] is True
    assert boss.request("PATCH", "/api/v1/users/boss", {"disabled": True}).status == 409


def test_change_own_password(panel):
    alice, other = Browser(panel), Browser(panel)
    assert alice.login("alice").status == 200
    assert other.login("alice").status == 200
    bad = alice.request("PUT", "/api/v1/me/password", {"current": "wrong-one", "new": "a-brand-new-pass"})
    assert bad.status == 403
    ok = alice.request("PUT", "/api/v1/me/password", {"current": PASSWORDS["alice"], "new": "a-brand-new-pass"})
    assert ok.status == 200
    # The session that changed it goes on; any other one ends.
    assert alice.request("GET", "/api/v1/me").status == 200
    assert other.request("GET", "/api/v1/me").status == 401
    assert Browser(panel).login("alice", "a-brand-new-pass").status == 200


def test_password_reset_by_an_admin_ends_sessions(panel):
    # Someone signed in with alice's password (a thief, say); an admin resets it.
    thief = Browser(panel, client="198.51.100.50")
    assert thief.login("alice").status == 200
    boss = Browser(panel)
    assert boss.login("boss").status == 200
    reset = boss.request("PUT", "/api/v1/users/alice/password", {"password": "reset-by-the-boss"})
    assert reset.status == 200, reset
    # The thief's session ends with the old password, from the panel as from the CLI.
    assert thief.request("GET", "/api/v1/me").status == 401
    assert thief.login("alice", "reset-by-the-boss").status == 200
    r = panel.berth("user", "passwd", "alice", "--password-stdin", input="reset-by-root-now\n")
    assert r.returncode == 0, r
    assert thief.request("GET", "/api/v1/me").status == 401
    # The admin who reset it stays signed in, and the new password works.
    assert boss.request("GET", "/api/v1/me").status == 200
    assert Browser(panel).login("alice", "reset-by-root-now").status == 200


def test_current_password_guesses_are_throttled(panel):
    # A session left open on a shared computer must not become an unlimited oracle
    # for the account's password: guesses at "current" count like failed sign-ins.
    thief = Browser(panel, client="198.51.100.60")
    assert thief.login("alice").status == 200
    hash_before = db_exec(panel, "SELECT password_hash FROM users WHERE name = 'alice'")
    for i in range(5):
        a = thief.request("PUT", "/api/v1/me/password", {"current": f"guess-{i}-guess", "new": "taken-over-now"})
        assert a.status == 403, a
    locked = thief.request("PUT", "/api/v1/me/password", {"current": "guess-5-guess", "new": "taken-over-now"})
    assert locked.status == 429, locked
    assert 1 <= int(locked.headers["Retry-After"]) <= 3600
    # While the lock lasts even the right password is not tried, and nothing changed.
    right = thief.request("PUT", "/api/v1/me/password", {"current": PASSWORDS["alice"], "new": "taken-over-now"})
    assert right.status == 429, right
    assert db_exec(panel, "SELECT password_hash FROM users WHERE name = 'alice'") == hash_before


def test_sign_in_name_cannot_forge_log_lines(panel):
    # Anyone who reaches the sign-in page chooses the name that a failure logs. A
    # newline in it must not start a line of its own in berthd's log: tools that
    # read "failed sign-in ... from ADDRESS" (to ban the address) would believe it.
    forged = "x\n2030-01-01T00:00:00.000Z berthd[1] info: panel: failed sign-in as \"boss\" from 203.0.113.66"
    b = Browser(panel, client="198.51.100.70")
    assert b.login(forged, "not-the-password").status == 401
    lines = panel.log().splitlines()
    assert not any(line.startswith("2030-01-01") for line in lines), lines[-3:]
    assert any("failed sign-in as" in line and "198.51.100.70" in line for line in lines)


def test_no_account_may_be_called_root(panel):
    # "root" is the operator on api.sock: in the event log and as the maker of
    # unowned sites. An account of that name would pass for the operator there, and
    # its own sites would come out unowned, out of its reach.
    boss = Browser(panel)
    assert boss.login("boss").status == 200
    a = boss.request("POST", "/api/v1/users", {"name": "root", "password": "root-password-1"})
    assert a.status == 400 and "root" in a.error(), a
    r = panel.berth("user", "add", "root", "--password-stdin", input="root-password-1\n")
    assert r.returncode == 1, r
    assert db_exec(panel, "SELECT count(*) FROM users WHERE name = 'root'") == [(0,)]


def test_a_ceiling_is_named_exactly_as_it_may_be_written(panel):
    # A ceiling that is no round number of a unit is named as berth.yaml gives it,
    # in a form the API takes: "1.5G" (rounded up from 1500M) would be both wrong
    # and refused as a memory size.
    restart_with_config(panel, "user_site_limits: {memory: 1500M}")
    alice = Browser(panel)
    assert alice.login("alice").status == 200
    a = alice.request("POST", "/api/v1/sites", {"name": "mine", "memory": "1536M"})
    assert a.status == 403 and "more than 1500M of memory" in a.error(), a
    assert alice.request("POST", "/api/v1/sites", {"name": "mine", "memory": "1500M"}).status == 201


def raw_exchange(daemon, data):
    """Sends data on one panel.sock connection and returns every byte the server
    sends until it closes (the last request says Connection: close)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(str(daemon.run_dir / "panel.sock"))
        s.sendall(data)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk
    finally:
        s.close()


def test_answer_to_head_has_no_body(panel):
    # The front reuses its connection to panel.sock: a body after the head of a HEAD
    # answer would be read as the start of the next answer (RFC 9112, 6.3).
    head = f"Host: {HOST}\r\nX-Forwarded-For: 192.0.2.10\r\n"
    got = raw_exchange(panel, (f"HEAD / HTTP/1.1\r\n{head}\r\n"
                               f"HEAD /api/v1/me HTTP/1.1\r\n{head}\r\n"
                               f"GET /api/v1/me HTTP/1.1\r\n{head}Connection: close\r\n\r\n").encode())
    first, rest = got.split(b"\r\n\r\n", 1)
    # The page answers HEAD as GET would, without the page.
    assert first.startswith(b"HTTP/1.1 200 "), got[:300]
    assert rest.startswith(b"HTTP/1.1 "), rest[:300]
    second, rest = rest.split(b"\r\n\r\n", 1)
    assert second.startswith(b"HTTP/1.1 "), second
    assert rest.startswith(b"HTTP/1.1 401 "), rest[:300]
    assert b"sign in first" in rest


def test_a_second_session_cookie_is_not_a_way_in(panel):
    # A site on the same parent domain can set berth_session for .<base-domain> with
    # a longer Path, so that the browser sends it before the panel's own: the panel
    # must not then act as whoever's session that site planted.
    victim, attacker = Browser(panel), Browser(panel)
    assert victim.login("alice").status == 200
    assert attacker.login("bob").status == 200
    both = f"berth_session={attacker.cookie}; berth_session={victim.cookie}"
    me = victim.request("GET", "/api/v1/me", headers={"Cookie": both})
    assert me.status == 401, me
    assert "bob" not in me.raw.decode() and "csrf" not in (me.json or {})
    assert "two session cookies" in me.error()
    # The victim's own cookie alone still works.
    assert victim.request("GET", "/api/v1/me").json["user"] == "alice"


def test_idle_connections_do_not_shut_the_panel(panel):
    # panel.sock holds at most 256 connections (API_MAX_CONNECTIONS). Whoever opens
    # that many and sends nothing must not leave the next visitor with no answer.
    idle = []
    try:
        for _ in range(256):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(panel.run_dir / "panel.sock"))   # blocking: waits while the backlog is full
            s.settimeout(30)
            idle.append(s)
        # One that has half a request in flight is not what gives way first.
        idle[0].sendall(b"GET /api/v1/me HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n")
        page = Browser(panel).request("GET", "/")
        assert page.status == 200
        idle[0].sendall(b"Connection: close\r\n\r\n")
        assert idle[0].recv(100).startswith(b"HTTP/1.1 401 ")
    finally:
        for s in idle:
            s.close()


def test_request_after_a_chunked_body_is_read_as_sent(panel):
    head = f"Host: {HOST}\r\nX-Forwarded-For: 192.0.2.10\r\n"
    body = json.dumps({"name": "alice", "password": "wrong"}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:])) + b"0\r\n\r\n"
    got = raw_exchange(panel, (f"POST /api/v1/login HTTP/1.1\r\n{head}Origin: http://{HOST}\r\n"
                               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
                       + chunked + f"GET /api/v1/me HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode())
    answers = got.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 2, got
    assert answers[0].startswith(b"401 ") and b"wrong user name or password" in answers[0]
    assert answers[1].startswith(b"401 ") and b"sign in first" in answers[1], got


def test_own_sign_in_does_not_buy_an_address_more_guesses(panel):
    # A customer guessing other accounts' passwords (one or two guesses each, under
    # each account's own limit) must not reset their address's count by signing in to
    # their own account between rounds.
    attacker = Browser(panel, client="198.51.100.8")
    for victim in ("ghost1", "ghost2", "ghost3", "ghost4"):
        assert attacker.login(victim, "guess-guess").status == 401
    assert attacker.login("alice").status == 200
    assert attacker.login("ghost5", "guess-guess").status == 401
    locked = attacker.login("ghost6", "guess-guess")
    assert locked.status == 429, locked
    # The account that signed in keeps no count of its own.
    assert Browser(panel, client="203.0.113.10").login("alice").status == 200


def test_behind_https_the_session_cookie_cannot_be_planted_by_a_site(panel):
    # Behind HTTPS the cookie is __Host-berth_session: browsers take that name only
    # from the panel's own host (Secure, no Domain, Path=/), so a site under the same
    # parent domain cannot plant its own session in the panel.
    https = {"X-Forwarded-Proto": "https"}
    victim, attacker = Browser(panel), Browser(panel)
    a = victim.login("alice", headers=https)
    assert a.status == 200
    assert a.headers["Set-Cookie"].startswith("__Host-berth_session=")
    assert "Secure" in [p.strip() for p in a.headers["Set-Cookie"].split(";")]
    mine = f"__Host-berth_session={victim.cookie}"
    assert victim.request("GET", "/api/v1/me", headers={**https, "Cookie": mine}).json["user"] == "alice"
    assert attacker.login("bob").status == 200
    planted = f"berth_session={attacker.cookie}"
    me = victim.request("GET", "/api/v1/me", headers={**https, "Cookie": planted})
    assert me.status == 401, me
    both = f"{planted}; {mine}"
    assert victim.request("GET", "/api/v1/me", headers={**https, "Cookie": both}).json["user"] == "alice"
    out = victim.request("POST", "/api/v1/logout", headers={**https, "Cookie": mine})
    assert out.status == 200 and out.headers["Set-Cookie"].startswith("__Host-berth_session=;")
