"""berthd's local CA and the sites' HTTPS certificates: the https listeners, the CA in
<state>/tls (created once, never replaced), one stored certificate per site.
The TLS handshake itself is the front's, tested with it."""
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

from conftest import wait_for



def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def https_listeners(d):
    return [l for l in d.status()["listeners"] if l["kind"] == "https"]


def certificate(d, site):
    """The certificate row of site, straight from the file."""
    db = sqlite3.connect(f"file:{d.state_dir / 'berth.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT c.hosts, c.cert_pem, c.key_pem, c.not_after, c.issuer FROM certificates c "
                          "JOIN sites s ON s.id = c.site_id WHERE s.name = ?", (site,)).fetchone()
    finally:
        db.close()


def openssl_verify(ca, cert_pem, host, tmp_path):
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(cert_pem)
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), "-purpose", "sslserver",
                           "-verify_hostname", host, str(leaf)], capture_output=True, text=True)


def test_https_listener_ca_and_status(daemon_factory):
    d = daemon_factory()
    d.https = ["127.0.0.1:0"]
    d.start()
    st = d.status()
    [https] = https_listeners(d)
    assert https["requested"] == "127.0.0.1:0"
    host, port = https["address"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    socket.create_connection(("127.0.0.1", int(port)), timeout=5).close()   # really listening

    tls = d.state_dir / "tls"
    ca, key = tls / "ca.pem", tls / "ca.key"
    assert st["tls_ca"] == str(ca)
    assert mode(tls) == 0o700 and mode(ca) == 0o644 and mode(key) == 0o600
    assert mode(d.state_dir / "berth.db") == 0o600
    for side in ("berth.db-wal", "berth.db-shm"):
        if (d.state_dir / side).exists():
            assert mode(d.state_dir / side) == 0o600, side
    assert f"HTTPS certificates are issued by berth's local CA; clients trust it with {ca}" in d.log()
    assert "HTTPS and SSH listeners are not served" not in d.log()

    human = d.berth("status")
    assert human.returncode == 0
    assert f"https {https['address']} (asked 127.0.0.1:0)" in human.stdout
    assert f"tls ca       {ca}\n" in human.stdout

    text = subprocess.run(["openssl", "x509", "-in", str(ca), "-noout", "-subject", "-ext",
                           "basicConstraints,keyUsage"], capture_output=True, text=True, check=True).stdout
    assert "CN = berth local CA (" in text and "CA:TRUE, pathlen:0" in text
    assert "Certificate Sign, CRL Sign" in text

    # A restart keeps the CA: clients that trust it go on trusting berth.
    ca_before, key_before = ca.read_bytes(), key.read_bytes()
    d.stop()
    d.start()
    assert ca.read_bytes() == ca_before and key.read_bytes() == key_before
    assert d.log().count("created berth's local CA") == 1
    [https] = https_listeners(d)
    assert int(https["address"].rsplit(":", 1)[1]) > 0


def test_damaged_ca_key_refuses_to_start(daemon_factory):
    d = daemon_factory()
    d.start()
    d.stop()
    key, ca = d.state_dir / "tls/ca.key", d.state_dir / "tls/ca.pem"
    ca_before = ca.read_bytes()
    key.write_text("-----BEGIN PRIVATE KEY-----\ndamaged\n-----END PRIVATE KEY-----\n")
    d.log_path.write_text("")
    d.start(wait=False)
    assert d.proc.wait(timeout=20) == 1
    d.proc = None
    d.check_sanitizers()
    assert f"the CA key {key} is damaged" in d.log(), d.log()
    # Left as it was: never silently replaced.
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----\ndamaged")
    assert ca.read_bytes() == ca_before

    key.unlink()
    d.log_path.write_text("")
    d.start(wait=False)
    assert d.proc.wait(timeout=20) == 1
    d.proc = None
    assert f"the CA certificate {ca} is there without its key {key}" in d.log(), d.log()
    assert ca.read_bytes() == ca_before and not key.exists()


def test_site_certificate_issued_stored_and_reused(daemon_factory, tmp_path):
    d = daemon_factory()
    d.https = ["127.0.0.1:0"]
    d.start()
    ca = d.state_dir / "tls/ca.pem"
    d.ok("site", "create", "blog", "--domain", "blog.example.org")
    row = wait_for(lambda: certificate(d, "blog"))
    hosts, cert_pem, key_pem, not_after, issuer = row
    assert hosts == "blog.example.org\nblog.test.berth" and issuer == "local"
    assert key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert abs(not_after - (time.time() + 90 * 86400)) < 600
    for name in ("blog.test.berth", "blog.example.org"):
        r = openssl_verify(ca, cert_pem, name, tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
    assert openssl_verify(ca, cert_pem, "shop.test.berth", tmp_path).returncode != 0
    assert "issued an HTTPS certificate for site blog (2 host names" in d.log()
    # `site show` tells whose certificate the site has, until when, for which names.
    shown = d.ok("site", "show", "blog")["certificate"]
    assert shown == {"issuer": "local", "not_after": not_after, "hosts": ["blog.example.org", "blog.test.berth"]}
    day = time.strftime("%Y-%m-%d", time.gmtime(not_after))
    human = d.berth("site", "show", "blog").stdout
    assert f"certificate  from berth's local CA, until {day}, for blog.example.org, blog.test.berth\n" in human

    # A start with a current certificate issues nothing.
    d.stop()
    d.log_path.write_text("")
    d.start()
    assert certificate(d, "blog")[1] == cert_pem
    assert "issued an HTTPS certificate" not in d.log()

    # New hosts, new certificate.
    d.ok("site", "set", "blog", "--domain", "www.blog.example.org")
    row = wait_for(lambda: (c := certificate(d, "blog")) and c[1] != cert_pem and c)
    assert row, "no new certificate for the new hosts"
    assert row[0] == "blog.example.org\nblog.test.berth\nwww.blog.example.org"
    assert openssl_verify(ca, row[1], "www.blog.example.org", tmp_path).returncode == 0

    # Gone with the site.
    d.ok("site", "rm", "blog")
    assert certificate(d, "blog") is None
    db = sqlite3.connect(f"file:{d.state_dir / 'berth.db'}?mode=ro", uri=True)
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 0
    db.close()


def test_certificate_near_its_end_is_renewed(daemon_factory, tmp_path):
    d = daemon_factory()
    d.start(env={"BERTH_TEST_CERT_RENEW_MS": "200"})
    d.ok("site", "create", "blog")
    _, cert_pem, _, _, _ = wait_for(lambda: certificate(d, "blog"))
    # Ten days left: the next check reissues it.
    db = sqlite3.connect(str(d.state_dir / "berth.db"), timeout=10)
    db.execute("UPDATE certificates SET not_after = ?", (int(time.time()) + 10 * 86400,))
    db.commit()
    db.close()
    row = wait_for(lambda: (c := certificate(d, "blog")) and c[1] != cert_pem and c, timeout=10)
    assert row, "the certificate was not renewed"
    assert row[3] > time.time() + 80 * 86400
    r = openssl_verify(d.state_dir / "tls/ca.pem", row[1], "blog.test.berth", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    # ... and only then: a fresh certificate stays as it is.
    time.sleep(1)
    assert certificate(d, "blog")[1] == row[1]


def test_https_from_the_config_file_and_inherited(daemon_factory):
    """https: in berth.yaml is bound like --https, and a socket handed over by a
    service manager for an https address is adopted, not bound again."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    d = daemon_factory()
    d.root.mkdir(parents=True, exist_ok=True)
    path = d.config_path()
    path.write_text(path.read_text() + f'https: ["127.0.0.1:{port}", "127.0.0.1:0"]\n')
    try:
        d.start(listen_fds=[listener])
        assert f"adopted the inherited socket for 127.0.0.1:{port}" in d.log()
        https = [l["address"] for l in https_listeners(d)]
        assert https[0] == f"127.0.0.1:{port}"
        assert len(https) == 2 and int(https[1].rsplit(":", 1)[1]) not in (0, port)
    finally:
        listener.close()


def https_port(d):
    return int(https_listeners(d)[0]["address"].rsplit(":", 1)[1])


def curl_https(d, host, path="/", *extra):
    """curl trusting only berth's CA: (exit code, status, body)."""
    port = https_port(d)
    r = subprocess.run(["curl", "-sS", "--cacert", str(d.state_dir / "tls/ca.pem"), "--resolve",
                        f"{host}:{port}:127.0.0.1", "-o", "-", "-w", "\n%{http_code}", *extra,
                        f"https://{host}:{port}{path}"], capture_output=True, timeout=30)
    body, _, code = r.stdout.rpartition(b"\n")
    return r.returncode, int(code or 0), body


def served_subject(d, servername):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{https_port(d)}", "-servername",
                        servername], input=b"", capture_output=True, timeout=30)
    for line in r.stdout.decode().splitlines():
        if line.startswith("subject="):
            return line.split("CN = ", 1)[1].strip()
    return None


def test_sites_are_served_over_https_with_their_own_certificate(daemon_factory):
    from test_berthd_front import write_page
    d = daemon_factory()
    d.https = ["127.0.0.1:0"]
    d.start()
    d.ok("site", "create", "blog", "--domain", "blog.example.org")
    write_page(d, "blog", "index.html", "<h1>blog over https</h1>")
    # A client that trusts berth's CA checks each of the site's names.
    for host in ("blog.test.berth", "blog.example.org", "BLOG.test.berth"):
        assert wait_for(lambda: curl_https(d, host)[1] == 200), curl_https(d, host)
        assert curl_https(d, host) == (0, 200, b"<h1>blog over https</h1>")
    assert served_subject(d, "blog.example.org") == "blog.test.berth"   # one certificate, both names
    # Unknown names get the default certificate (the base domain's) and berth's 404.
    assert served_subject(d, "nobody.test.berth") == "test.berth"
    rc, code, body = curl_https(d, "nobody.test.berth", "/", "-k")
    assert (rc, code) == (0, 404) and b"berth" in body
    # The panel is reached over HTTPS too, under its own certificate.
    rc, code, _ = curl_https(d, "panel.test.berth", "/")
    assert (rc, code) == (0, 200)

    # A domain added later is served under a new certificate at once, and an old
    # name removed is no longer in it.
    d.ok("site", "set", "blog", "--domain", "www.example.org", "--no-domain", "blog.example.org")
    assert wait_for(lambda: curl_https(d, "www.example.org")[:2] == (0, 200), timeout=5)
    assert curl_https(d, "blog.example.org", "/", "-k")[1] == 404
    # Stopped and removed sites answer as over HTTP.
    d.ok("site", "stop", "blog")
    assert wait_for(lambda: curl_https(d, "blog.test.berth")[1] == 503)
    d.ok("site", "rm", "blog")
    assert wait_for(lambda: served_subject(d, "blog.test.berth") == "test.berth")
    assert curl_https(d, "blog.test.berth", "/", "-k")[1] == 404


def shown_certificate(port, *s_client_args):
    """The certificate the front shows on port to a client that names no host
    (the default one), as PEM, and whether the session was resumed."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-noservername",
                        *s_client_args], input="", capture_output=True, text=True, timeout=15)
    out = r.stdout
    begin, end = out.find("-----BEGIN CERTIFICATE-----"), out.find("-----END CERTIFICATE-----")
    assert begin >= 0 and end > begin, r.stdout + r.stderr
    return out[begin:end + len("-----END CERTIFICATE-----")] + "\n", "\nReused," in out


def valid_for_days(cert_pem, days):
    return subprocess.run(["openssl", "x509", "-noout", "-checkend", str(days * 86400)], input=cert_pem,
                          capture_output=True, text=True).returncode == 0


def front_workers(d):
    return [int(p) for p in (Path(f"/proc/{d.proc.pid}/task/{d.proc.pid}/children").read_text().split())]


def test_the_default_certificate_is_renewed_without_a_restart(daemon_factory, tmp_path):
    d = daemon_factory()
    d.https = ["127.0.0.1:0"]
    # Started with 10 days left: the check after 5 s renews it.
    d.start(env={"BERTH_TEST_DEFAULT_CERT_DAYS": "10", "BERTH_TEST_CERT_RENEW_MS": "5000"})
    [https] = https_listeners(d)
    port = int(https["address"].rsplit(":", 1)[1])
    ticket = tmp_path / "session.pem"
    old, _ = shown_certificate(port, "-tls1_2", "-sess_out", str(ticket))
    assert "renewed the default HTTPS certificate" not in d.log(), "renewed too early for this test"
    assert not valid_for_days(old, 11)

    assert wait_for(lambda: "renewed the default HTTPS certificate for test.berth" in d.log(), timeout=15)
    new, _ = shown_certificate(port)
    assert new != old and valid_for_days(new, 80)
    r = openssl_verify(d.state_dir / "tls/ca.pem", new, "test.berth", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    # The session ticket keys stayed: a client resumes the session it had before.
    _, reused = shown_certificate(port, "-tls1_2", "-sess_in", str(ticket))
    assert reused, "a session from before the renewal was not resumed"

    # A worker started after the renewal shows the new one too.
    workers = front_workers(d)
    assert workers
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: (now := front_workers(d)) and not set(now) & set(workers), timeout=10)
    shown = wait_for(lambda: shown_certificate(port)[0], timeout=10)
    assert shown == new
    # And it is not renewed again: 90 days are left.
    time.sleep(6)
    assert d.log().count("renewed the default HTTPS certificate") == 1
