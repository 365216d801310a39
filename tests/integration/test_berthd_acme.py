"""berthd getting its sites' certificates from an ACME CA (acme: in berth.yaml):
Debian's pebble with pebble-challtestsrv as its DNS (every name is 127.0.0.1), its
http-01 checks going to berthd's own HTTP listener, so the challenge answers are the
front's. The client is src/acme, run by berthd in an unprivileged child per order."""

import functools
import subprocess
import time

import pytest

import conftest
from test_acme import make_pebble
from test_certs import certificate   # (hosts, cert, key, not_after, issuer)


# Orders take seconds against pebble: wait longer, look less often.
wait_for = functools.partial(conftest.wait_for, timeout=60.0, step=0.2)


def assert_no_more_orders(d, site, settle=1.5):
    """After a change that must end a site's orders: none starts from now on."""
    time.sleep(settle)
    mark = f"ACME: ordering a certificate for site {site}"
    n = d.log().count(mark)
    time.sleep(3)
    assert d.log().count(mark) == n, d.log()[-3000:]


def acme_daemon(daemon_factory, pebble, http_port, env=None, base_domain=None):
    d = daemon_factory()
    if base_domain:
        d.base_domain = base_domain
    d.http = [f"127.0.0.1:{http_port}"]
    d.https = ["127.0.0.1:0"]
    d.root.mkdir(parents=True, exist_ok=True)
    path = d.config_path()
    path.write_text(path.read_text() + f"acme:\n  directory: {pebble.directory}\n  ca_file: {pebble.ca_file}\n"
                    "  email: ops@example.org\n")
    d.start(env=env)
    return d


def https_port(d):
    return int([l for l in d.status()["listeners"] if l["kind"] == "https"][0]["address"].rsplit(":", 1)[1])


def curl(d, host, cafile, path="/"):
    port = https_port(d)
    return subprocess.run(["curl", "-sS", "--cacert", str(cafile), "--resolve", f"{host}:{port}:127.0.0.1",
                           f"https://{host}:{port}{path}"], capture_output=True, timeout=30)


@pytest.fixture
def pebble(tmp_path):
    p = make_pebble(tmp_path)
    yield p
    p.stop()


def test_sites_get_certificates_from_the_acme_ca(daemon_factory, pebble, tmp_path):
    from test_berthd_front import write_page
    d = acme_daemon(daemon_factory, pebble, pebble.http_port)
    assert (d.state_dir / "acme/account.key").stat().st_mode & 0o777 == 0o600
    d.ok("site", "create", "blog", "--domain", "blog.example.org")
    write_page(d, "blog", "index.html", "<h1>blog</h1>")
    row = wait_for(lambda: (c := certificate(d, "blog")) and c[4] == "acme" and c)
    assert row, d.log()[-3000:]
    assert row[0] == "blog.example.org\nblog.test.berth"
    assert d.ok("site", "show", "blog")["certificate"]["issuer"] == "acme"
    assert "certificate  from the ACME CA, until " in d.berth("site", "show", "blog").stdout
    root = tmp_path / "pebble-root.pem"
    root.write_text(pebble.root())
    # Served under it: a client trusting only the ACME CA's root checks both names.
    for host in ("blog.example.org", "blog.test.berth"):
        r = wait_for(lambda: (c := curl(d, host, root)).returncode == 0 and c, timeout=10)
        assert r and r.stdout == b"<h1>blog</h1>", curl(d, host, root).stderr
    assert "ACME: site blog has a certificate from its CA for 2 names" in d.log()
    # Trusted for every name now: plain HTTP is sent to HTTPS.
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", pebble.http_port, timeout=10)
    conn.request("GET", "/index.html?x=1", headers={"Host": "blog.example.org"})
    r = conn.getresponse()
    assert r.status == 308
    assert r.getheader("Location") == f"https://blog.example.org:{https_port(d)}/index.html?x=1"
    conn.close()

    # A restart keeps it: no new order.
    d.stop()
    d.log_path.write_text("")
    d.start()
    assert curl(d, "blog.example.org", root).returncode == 0
    assert "ACME: ordering" not in d.log()

    # A new domain: a new order; meanwhile the old certificate still serves the old names.
    d.ok("site", "set", "blog", "--domain", "www.example.org")
    row = wait_for(lambda: (c := certificate(d, "blog")) and "www.example.org" in c[0] and c[4] == "acme" and c)
    assert row, d.log()[-3000:]
    assert wait_for(lambda: curl(d, "www.example.org", root).returncode == 0, timeout=10)


def test_the_panel_gets_its_certificate_from_the_acme_ca(daemon_factory, pebble, tmp_path):
    """panel.<base> is not a site, but browsers must trust it too: it gets the ACME
    CA's certificate, kept across restarts in <state>/acme/panel.pem (0600), and
    plain HTTP to it goes to HTTPS once it has. A damaged kept file is said so in
    the log and a new certificate is ordered."""
    import http.client
    d = acme_daemon(daemon_factory, pebble, pebble.http_port)
    root = tmp_path / "pebble-root.pem"
    root.write_text(pebble.root())
    r = wait_for(lambda: (c := curl(d, "panel.test.berth", root)).returncode == 0 and c)
    assert r, d.log()[-3000:]
    assert b"<html" in r.stdout.lower()
    kept = d.state_dir / "acme/panel.pem"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert "-----BEGIN PRIVATE KEY-----" in kept.read_text()
    assert "ACME: the panel (panel.test.berth) has a certificate from its CA" in d.log()
    conn = http.client.HTTPConnection("127.0.0.1", pebble.http_port, timeout=10)
    conn.request("GET", "/", headers={"Host": "panel.test.berth"})
    resp = conn.getresponse()
    assert resp.status == 308
    assert resp.getheader("Location") == f"https://panel.test.berth:{https_port(d)}/"
    conn.close()

    # A restart keeps it: served at once, no new order.
    d.stop()
    d.log_path.write_text("")
    d.start()
    assert curl(d, "panel.test.berth", root).returncode == 0
    assert "ACME: ordering" not in d.log()

    # Damaged: said so, served under the local CA meanwhile, and ordered again.
    d.stop()
    kept.write_text(kept.read_text().split("-----BEGIN PRIVATE KEY-----")[0])
    d.log_path.write_text("")
    d.start()
    assert "ACME: the panel's certificate in" in d.log() and "no private key after the chain" in d.log()
    assert wait_for(lambda: "ACME: the panel (panel.test.berth) has a certificate" in d.log()), d.log()[-3000:]
    assert wait_for(lambda: curl(d, "panel.test.berth", root).returncode == 0, timeout=10)
    assert "-----BEGIN PRIVATE KEY-----" in kept.read_text()


def test_a_failed_order_is_retried_and_the_site_keeps_a_local_certificate(daemon_factory, pebble):
    """pebble checks the challenges on a port where nothing answers: every order
    fails; the site is served under berth's local CA meanwhile, and the order is
    tried again after the backoff."""
    from conftest import free_port
    d = acme_daemon(daemon_factory, pebble, free_port(), env={"BERTH_TEST_ACME_RETRY_MS": "500"})
    d.ok("site", "create", "shop")
    assert wait_for(lambda: d.log().count("ACME: no certificate for site shop") >= 2), d.log()[-3000:]
    assert "urn:ietf:params:acme:error" in d.log()
    row = certificate(d, "shop")
    assert row and row[4] == "local"
    # Under the local CA only: no redirect, visitors would be sent into a warning.
    from test_berthd_front import get
    assert get(d.http_port(), "shop.test.berth")[0] == 403   # served over HTTP: an empty site, no listing
    r = curl(d, "shop.test.berth", d.state_dir / "tls/ca.pem")
    assert r.returncode == 0, r.stderr
    # Removing the site ends its orders for good.
    d.ok("site", "rm", "shop")
    assert_no_more_orders(d, "shop")


def test_a_bad_acme_section_stops_the_start(daemon_factory):
    d = daemon_factory()
    d.root.mkdir(parents=True, exist_ok=True)
    path = d.config_path()
    path.write_text(path.read_text() + "acme:\n  directory: http://insecure.example/dir\n")
    d.start(wait=False)
    assert d.proc.wait(timeout=20) == 2 or d.proc.returncode != 0
    d.proc = None
    assert "acme.directory must be the https:// URL" in d.log()


def test_orders_stop_when_the_site_has_no_public_name_left(daemon_factory, pebble):
    """Under a base domain no public CA issues for, only the custom domains are
    ordered; once the last is removed, the failing order for it must not go on
    being retried (nor its certificate be stored if one came)."""
    from conftest import free_port
    d = acme_daemon(daemon_factory, pebble, free_port(), env={"BERTH_TEST_ACME_RETRY_MS": "300"},
                    base_domain="berth.test")
    d.ok("site", "create", "shop", "--domain", "shop.example.org")
    assert wait_for(lambda: d.log().count("ACME: no certificate for site shop") >= 1), d.log()[-3000:]
    d.ok("site", "set", "shop", "--no-domain", "shop.example.org")
    assert_no_more_orders(d, "shop", settle=2)
    row = certificate(d, "shop")
    assert row and row[4] == "local" and row[0] == "shop.berth.test"


def test_names_changed_mid_order_get_their_order_at_once(daemon_factory, pebble):
    """The order running when a site's names change ends with a certificate for the
    old names; the order for the new ones starts right then, and must not be taken
    for the old child (its exit is reported with its last message) and killed."""
    d = acme_daemon(daemon_factory, pebble, pebble.http_port)
    d.ok("site", "create", "blog", "--domain", "a.example.org")
    assert wait_for(lambda: "ACME: ordering a certificate for site blog" in d.log(), step=0.01)
    d.ok("site", "set", "blog", "--domain", "b.example.org")
    row = wait_for(lambda: (c := certificate(d, "blog")) and "b.example.org" in c[0] and c[4] == "acme" and c)
    assert row, d.log()[-3000:]
    assert "exited without a result" not in d.log(), d.log()[-3000:]


def test_a_short_lived_certificate_is_not_reordered_at_every_check(daemon_factory, tmp_path):
    """A CA that issues certificates for 7 days (short-lived certificates are what
    public CAs move to): renewing when 30 days are left would order a new one at
    every renewal check, into the CA's rate limits. It is renewed when a third of
    its life is left."""
    p = make_pebble(tmp_path, validity=7 * 86400)
    try:
        d = acme_daemon(daemon_factory, p, p.http_port, env={"BERTH_TEST_CERT_RENEW_MS": "300"})
        d.ok("site", "create", "blog")
        assert wait_for(lambda: (c := certificate(d, "blog")) and c[4] == "acme"), d.log()[-3000:]
        time.sleep(3)
        assert d.log().count("ACME: ordering a certificate for site blog") == 1, d.log()[-3000:]
    finally:
        p.stop()


def test_a_short_backoff_is_not_held_behind_a_longer_one(daemon_factory, pebble):
    """Two sites whose orders fail: one that has failed often waits long; the other,
    failing for the first time, is tried again after its own short backoff, not
    when the first one's timer comes."""
    from conftest import free_port
    d = acme_daemon(daemon_factory, pebble, free_port(), env={"BERTH_TEST_ACME_RETRY_MS": "200"})
    d.ok("site", "create", "old")
    assert wait_for(lambda: d.log().count("ACME: no certificate for site old") >= 5, step=0.05), d.log()[-3000:]
    d.ok("site", "create", "new")   # old now waits 3.2 s
    assert wait_for(lambda: d.log().count("ACME: no certificate for site new") >= 2, timeout=2.5, step=0.05), \
        d.log()[-3000:]


def test_a_failing_order_stops_when_the_names_go_back_to_a_certificate(daemon_factory, tmp_path):
    """A site with a certificate from the CA gets a domain the CA refuses: that order
    fails and waits out its backoff. Once the domain is removed the certificate it
    has covers its names again, and the order for the old names must end."""
    p = make_pebble(tmp_path, blocklist=["bad.example.org"])
    try:
        d = acme_daemon(daemon_factory, p, p.http_port, env={"BERTH_TEST_ACME_RETRY_MS": "300"})
        d.ok("site", "create", "blog")
        assert wait_for(lambda: (c := certificate(d, "blog")) and c[4] == "acme"), d.log()[-3000:]
        d.ok("site", "set", "blog", "--domain", "bad.example.org")
        assert wait_for(lambda: d.log().count("ACME: no certificate for site blog") >= 1), d.log()[-3000:]
        d.ok("site", "set", "blog", "--no-domain", "bad.example.org")
        assert_no_more_orders(d, "blog")
        assert certificate(d, "blog")[0] == "blog.test.berth"
    finally:
        p.stop()


def test_an_order_runs_in_a_fresh_unprivileged_process(daemon_factory):
    """The ACME client runs in a process of its own: berthd exec'd anew (none of the
    daemon's memory, so no CA or site key to leak), as nobody, with no capabilities,
    no_new_privs, and no descriptor but its socket to berthd."""
    import os
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)   # accepts and never answers: the order waits
    d = daemon_factory()
    d.root.mkdir(parents=True, exist_ok=True)
    path = d.config_path()
    path.write_text(path.read_text() + f"acme:\n  directory: https://127.0.0.1:{silent.getsockname()[1]}/dir\n")
    try:
        d.start()
        d.ok("site", "create", "blog", "--domain", "blog.example.org")

        def child():
            for pid in os.listdir("/proc"):
                try:
                    if pid.isdigit() and open(f"/proc/{pid}/stat").read().split(") ")[1].split()[1] == str(d.proc.pid) \
                            and open(f"/proc/{pid}/cmdline", "rb").read() == b"berthd\0--acme-order\0":
                        return int(pid)
                except OSError:
                    pass
            return None

        pid = wait_for(child, timeout=15)
        assert pid, "no ACME child under berthd"
        def status_of():
            return dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())

        # Caught right after the exec, it may not have dropped its privileges yet.
        wait_for(lambda: status_of()["Uid"].split()[0] != "0", timeout=10, step=0.02)
        status = status_of()
        assert status["Uid"].split() == ["65534"] * 4 and status["Gid"].split() == ["65534"] * 4
        assert status["CapEff"].strip() == "0000000000000000" and status["NoNewPrivs"].strip() == "1"
        assert status["Groups"].strip() == ""
        # Its own files: stdin/out/err, its socket to berthd, and what it opened itself
        # (its connection to the CA); nothing of berthd's (database, listeners, keys).
        targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        assert not any("berth.db" in t or t.endswith(".key") or t.endswith(".pem") for t in targets), targets
        assert os.readlink(f"/proc/{pid}/exe") == os.readlink(f"/proc/{d.proc.pid}/exe")
        # Removing the site ends it.
        d.ok("site", "rm", "blog")
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=10)
    finally:
        silent.close()
