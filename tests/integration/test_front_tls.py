"""HTTPS on the front with real clients (curl, openssl s_client, Python's ssl, wrk):
certificates chosen by SNI per site, everything HTTP does working through TLS
(static files large and small, ranges, keep-alive, pipelining, proxying with the
scheme passed on, WebSocket), and what a bad client or a bad certificate gets.

Certificates come from a throwaway CA made with the openssl command in the test.
Runs front-harness from $BERTH_BUILD_DIR (default /work/main/build-test)."""

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from front_helpers import (Backend, Front, build_request, harness_path, read_response, recv_until_close,
                           request, wait_until, ws_frame, ws_read_frame)
from test_front_php import FakeFpm

pytestmark = pytest.mark.skipif(
    not os.path.exists(harness_path()) and os.environ.get("BERTH_MUST_WORK") != "1",
    reason="front-harness not built")


def openssl(*args, input=None):
    r = subprocess.run(["openssl", *args], capture_output=True, input=input, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


class CA:
    """A CA and leaf certificates made by the openssl command, as an operator or a
    certificate authority would hand them to berth."""

    def __init__(self, d):
        self.dir = d
        self.cert = os.path.join(d, "ca.pem")
        self.key = os.path.join(d, "ca.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=berth test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")

    def leaf(self, name, hosts):
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".pem")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join("DNS:" + h for h in hosts) + "\n"
                    "extendedKeyUsage=serverAuth\n")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=" + hosts[0])
        openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial",
                "-days", "2", "-extfile", ext, "-out", cert)
        for p in (cert, key):
            os.chmod(p, 0o644)   # the harness reads them as root; tests read them too
        return cert, key


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="berth-tls-pki-")
    os.chmod(d, 0o755)
    yield CA(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def front(pki):
    state = tempfile.mkdtemp(prefix="berth-tls-front-")
    default = pki.leaf("default", ["default.invalid"])
    f = Front(state, tls=default, extra_args=["--header-timeout", "1500"])
    blog_cert = pki.leaf("blog", ["blog.localhost", "www.example.com"])
    blog = f.add_site("blog", 1001, reload=False, hosts=["blog.localhost", "www.example.com"],
                      cert=blog_cert[0], key=blog_cert[1])
    blog.write("hello.txt", "hello over tls\n")
    blog.write("big.bin", os.urandom(700 * 1024 + 17))
    blog.write("index.html", "<h1>blog</h1>\n")
    other_cert = pki.leaf("other", ["other.localhost"])
    other = f.add_site("other", 1002, reload=False, cert=other_cert[0], key=other_cert[1])
    other.write("hello.txt", "other site\n")
    plain = f.add_site("plain", 1003, reload=False)   # no certificate of its own
    plain.write("hello.txt", "plain site\n")
    backend_path = os.path.join(state, "app.sock")
    f.backend = Backend(backend_path)
    app_cert = pki.leaf("app", ["app.localhost"])
    f.add_site("app", 1004, reload=False, type="app", backend=backend_path,
               cert=app_cert[0], key=app_cert[1])
    f.fpm = FakeFpm(os.path.join(state, "fpm.sock"))
    php = f.add_site("php", 1007, reload=False, type="php", backend=os.path.join(state, "fpm.sock"))
    php.write("info.php", "<?php\n")
    f.start()
    yield f
    f.fpm.close()
    f.backend.stop()
    f.stop()
    shutil.rmtree(state, ignore_errors=True)


def curl(front, pki, host, path, *extra):
    """curl over HTTPS with the test CA as the only trusted one: (status, body)."""
    url = f"https://{host}:{front.tls_port}{path}"
    r = subprocess.run(["curl", "-sS", "--cacert", pki.cert, "--resolve", f"{host}:{front.tls_port}:127.0.0.1",
                        "-o", "-", "-w", "\n%{http_code}", *extra, url], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code), body


def subject_for(front, servername):
    """The subject of the certificate the front shows a client that names servername
    (None: no SNI at all)."""
    args = ["s_client", "-connect", f"127.0.0.1:{front.tls_port}"]
    args += ["-servername", servername] if servername else ["-noservername"]
    r = subprocess.run(["openssl", *args], input=b"", capture_output=True, timeout=30)
    for line in r.stdout.decode().splitlines():
        if line.startswith("subject="):
            return line.split("CN = ", 1)[1].strip()
    raise AssertionError("no certificate: " + r.stdout.decode() + r.stderr.decode())


class TlsConn:
    """An HTTPS connection from Python's ssl module that read_response() can read."""

    def __init__(self, front, pki, host, alpn=None):
        ctx = ssl.create_default_context(cafile=pki.cert)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        raw = socket.create_connection(("127.0.0.1", front.tls_port), timeout=10)
        self.s = ctx.wrap_socket(raw, server_hostname=host)
        self._berth_buf = b""

    def recv(self, n):
        return self.s.recv(n)

    def sendall(self, d):
        self.s.sendall(d)

    def close(self):
        self.s.close()


def test_static_files_over_https_with_the_sites_certificate(front, pki):
    assert curl(front, pki, "blog.localhost", "/hello.txt") == (200, b"hello over tls\n")
    # The second host of the same site, under the same certificate.
    assert curl(front, pki, "www.example.com", "/hello.txt") == (200, b"hello over tls\n")
    assert curl(front, pki, "other.localhost", "/hello.txt") == (200, b"other site\n")
    # A file larger than any one write goes through whole.
    code, body = curl(front, pki, "blog.localhost", "/big.bin")
    assert code == 200
    want = open(os.path.join(front.sites["blog"].public, "big.bin"), "rb").read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(want).hexdigest()
    # A range of it, and a directory's index.
    code, body = curl(front, pki, "blog.localhost", "/big.bin", "-r", "100000-100009")
    assert (code, body) == (206, want[100000:100010])
    assert curl(front, pki, "blog.localhost", "/") == (200, b"<h1>blog</h1>\n")


def test_sni_chooses_the_certificate(front):
    assert subject_for(front, "blog.localhost") == "blog.localhost"
    assert subject_for(front, "WWW.Example.COM.") == "blog.localhost"   # case and trailing dot
    assert subject_for(front, "other.localhost") == "other.localhost"
    # A site without a certificate of its own, a name no site has, and no name at all
    # get the default one.
    assert subject_for(front, "plain.localhost") == "default.invalid"
    assert subject_for(front, "nobody.localhost") == "default.invalid"
    assert subject_for(front, None) == "default.invalid"


def test_routing_is_by_host_over_https_too(front, pki):
    # The default certificate does not cover plain.localhost: curl is told not to check.
    code, body = curl(front, pki, "plain.localhost", "/hello.txt", "-k")
    assert (code, body) == (200, b"plain site\n")
    code, body = curl(front, pki, "nobody.localhost", "/hello.txt", "-k")
    assert code == 404 and b"berth" in body
    # A client that checks the certificate refuses the wrong one.
    r = subprocess.run(["curl", "-sS", "--cacert", pki.cert, "--resolve",
                        f"plain.localhost:{front.tls_port}:127.0.0.1",
                        f"https://plain.localhost:{front.tls_port}/hello.txt"], capture_output=True, timeout=30)
    assert r.returncode != 0


def test_keep_alive_and_pipelining_over_https(front, pki):
    c = TlsConn(front, pki, "blog.localhost", alpn=["http/1.1"])
    try:
        assert c.s.selected_alpn_protocol() == "http/1.1"
        for _ in range(3):
            c.sendall(build_request("blog.localhost", "/hello.txt"))
            assert read_response(c)[2] == b"hello over tls\n"
        # Three requests in one write come back in order on the same connection.
        c.sendall(build_request("blog.localhost", "/hello.txt") + build_request("other.localhost", "/hello.txt") +
                  build_request("blog.localhost", "/big.bin", method="HEAD"))
        assert read_response(c)[2] == b"hello over tls\n"
        assert read_response(c)[2] == b"other site\n"
        status, headers, _ = read_response(c, method="HEAD")
        assert status == 200 and int(headers["content-length"]) == 700 * 1024 + 17
    finally:
        c.close()


def test_a_client_without_alpn_gets_http11(front, pki):
    # h2 only for clients that ask for it (test_front_h2.py); no ALPN is HTTP/1.1.
    c = TlsConn(front, pki, "blog.localhost")
    try:
        assert c.s.selected_alpn_protocol() is None
        c.sendall(build_request("blog.localhost", "/hello.txt"))
        assert read_response(c)[0] == 200
    finally:
        c.close()


def test_old_protocols_are_refused(front):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{front.tls_port}", "-tls1_1",
                        "-servername", "blog.localhost"], input=b"", capture_output=True, timeout=30)
    assert b"BEGIN CERTIFICATE" not in r.stdout
    for proto in ("-tls1_2", "-tls1_3"):
        out = openssl("s_client", "-connect", f"127.0.0.1:{front.tls_port}", proto, "-servername",
                      "blog.localhost", input=b"").decode()
        assert "BEGIN CERTIFICATE" in out


def test_proxied_requests_say_https_and_websocket_works(front, pki):
    c = TlsConn(front, pki, "app.localhost")
    try:
        c.sendall(build_request("app.localhost", "/headers"))
        status, _, body = read_response(c)
        assert status == 200
        import json
        seen = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert seen["x-forwarded-proto"] == "https"
        assert "proto=https" in seen["forwarded"]
        # A body streamed in chunks through TLS arrives whole.
        payload = os.urandom(300 * 1024)
        chunked = b"".join(b"%x\r\n" % len(payload[i:i + 50000]) + payload[i:i + 50000] + b"\r\n"
                           for i in range(0, len(payload), 50000)) + b"0\r\n\r\n"
        c.sendall(build_request("app.localhost", "/echo", method="POST",
                                headers={"Transfer-Encoding": "chunked"}) + chunked)
        status, _, body = read_response(c)
        assert status == 200 and body == payload
    finally:
        c.close()
    # A WebSocket through TLS: the upgrade, then frames both ways.
    c = TlsConn(front, pki, "app.localhost")
    try:
        c.sendall(b"GET /ws HTTP/1.1\r\nHost: app.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        fh = c.s.makefile("rb")
        assert b" 101 " in fh.readline()
        while fh.readline() not in (b"\r\n", b""):
            pass
        for msg in (b"hello", os.urandom(70000)):
            c.sendall(ws_frame(msg, opcode=2))
            assert ws_read_frame(fh) == (2, msg)
    finally:
        c.close()


def test_php_is_told_the_request_came_over_https(front, pki):
    code, body = curl(front, pki, "php.localhost", "/info.php", "-k")
    assert (code, body) == (200, b"ok")
    p = front.fpm.params_seen[-1]
    assert p["HTTPS"] == "on" and p["REQUEST_SCHEME"] == "https"
    assert p["SERVER_PORT"] == str(front.tls_port)
    # The same site over plain HTTP says so too.
    assert request(front.port, "php.localhost", "/info.php")[0] == 200
    p = front.fpm.params_seen[-1]
    assert "HTTPS" not in p and p["REQUEST_SCHEME"] == "http"


def test_bad_clients_on_the_https_port(front, pki):
    # Plain HTTP on the HTTPS port: no HTTP answer, the connection ends.
    s = socket.create_connection(("127.0.0.1", front.tls_port), timeout=5)
    s.sendall(build_request("blog.localhost", "/hello.txt"))
    assert not recv_until_close(s).startswith(b"HTTP/")
    s.close()
    # A client that starts a handshake and stalls is dropped at the head timeout.
    s = socket.create_connection(("127.0.0.1", front.tls_port), timeout=10)
    s.sendall(b"\x16\x03\x01\x00\xf0\x01\x00\x00\xec\x03\x03")   # the first bytes of a ClientHello
    t0 = time.time()
    assert recv_until_close(s) == b""
    assert time.time() - t0 < 8
    s.close()
    # And everyone else is still served.
    assert curl(front, pki, "blog.localhost", "/hello.txt") == (200, b"hello over tls\n")


def test_sessions_resume_on_any_worker(front, pki):
    """Session tickets are shared by the workers: a client comes back to whichever
    worker takes its connection and skips the full handshake."""
    sess = os.path.join(pki.dir, "session.pem")
    cpus = sorted(os.sched_getaffinity(0))
    base = ["s_client", "-connect", f"127.0.0.1:{front.tls_port}", "-servername", "blog.localhost", "-tls1_2"]
    # Connections are steered to the worker of the CPU their client runs on.
    subprocess.run(["taskset", "-c", str(cpus[0]), "openssl", *base, "-sess_out", sess], input=b"",
                   capture_output=True, timeout=30, check=True)
    for cpu in cpus[1:] + cpus[:1]:
        r = subprocess.run(["taskset", "-c", str(cpu), "openssl", *base, "-sess_in", sess], input=b"",
                           capture_output=True, timeout=30, check=True)
        assert "Reused, TLSv1.2" in r.stdout.decode(), r.stdout.decode()


def test_load_over_https_sees_no_errors(front, pki):
    """Many connections from wrk over TLS for a few seconds: the workers even out and
    follow CPUs by moving connections, which a TLS session must never do."""
    r = subprocess.run(["wrk", "-t2", "-c40", "-d3s", "-H", "Host: blog.localhost",
                        f"https://127.0.0.1:{front.tls_port}/hello.txt"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Socket errors" not in r.stdout and "Non-2xx" not in r.stdout, r.stdout
    assert "requests in" in r.stdout


def test_a_site_and_its_certificate_change_live(front, pki):
    cert, key = pki.leaf("late", ["late.localhost"])
    late = front.add_site("late", 1005, cert=cert, key=key)
    late.write("hello.txt", "late site\n")
    wait_until(lambda: subject_for(front, "late.localhost") == "late.localhost", timeout=5)
    assert curl(front, pki, "late.localhost", "/hello.txt") == (200, b"late site\n")
    # A certificate for more names replaces it at once.
    cert2, key2 = pki.leaf("late2", ["late.localhost", "late2.localhost"])
    late.opts.update(cert=cert2, key=key2, hosts=["late.localhost", "late2.localhost"])
    front.reload()
    wait_until(lambda: subject_for(front, "late2.localhost") == "late.localhost", timeout=5)
    assert curl(front, pki, "late2.localhost", "/hello.txt") == (200, b"late site\n")
    front.remove_site("late")
    wait_until(lambda: subject_for(front, "late.localhost") == "default.invalid", timeout=5)


def test_a_certificate_that_does_not_match_its_key_falls_back(front, pki):
    cert, _ = pki.leaf("wrong", ["wrong.localhost"])
    _, other_key = pki.leaf("wrong-key", ["wrong.localhost"])
    wrong = front.add_site("wrong", 1006, cert=cert, key=other_key)
    wrong.write("hello.txt", "still served\n")
    wait_until(lambda: curl(front, pki, "wrong.localhost", "/hello.txt", "-k")[0] == 200, timeout=5)
    assert subject_for(front, "wrong.localhost") == "default.invalid"
    assert curl(front, pki, "wrong.localhost", "/hello.txt", "-k") == (200, b"still served\n")
    wait_until(lambda: "site wrong" in front.stderr_text(), timeout=5)
    front.remove_site("wrong")


def test_a_bad_default_certificate_stops_the_front_at_start(pki, tmp_path):
    cert, _ = pki.leaf("lonely", ["lonely.invalid"])
    _, key = pki.leaf("stranger", ["stranger.invalid"])
    os.chmod(tmp_path, 0o755)
    routes = tmp_path / "routes"
    routes.write_text("")
    r = subprocess.run([harness_path(), "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0",
                        "--tls-cert", cert, "--tls-key", key, "--routes", str(routes), "--no-drop"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "default HTTPS certificate" in r.stderr


def test_tls_connections_stay_with_their_worker(front, pki):
    """Connections that all arrive on one CPU pile up on its worker, which hands idle
    plain ones to the other; a TLS session lives in its worker's memory and must stay
    (moved, its next request would be read as garbage)."""
    import threading
    errors = []

    def run():
        try:
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
            conns = [TlsConn(front, pki, "blog.localhost") for _ in range(16)]
            try:
                for c in conns:
                    c.sendall(build_request("blog.localhost", "/hello.txt"))
                    assert read_response(c)[2] == b"hello over tls\n"
                time.sleep(1.5)   # many ticks: time enough to even out
                for _ in range(3):
                    for c in conns:
                        c.sendall(build_request("blog.localhost", "/hello.txt"))
                        assert read_response(c)[2] == b"hello over tls\n"
            finally:
                for c in conns:
                    c.close()
        except Exception as e:   # reported by the test thread
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    assert not errors, errors


TOKEN = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
KEY_AUTH = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


def test_acme_challenges_are_answered_for_any_host(front, pki):
    blog = front.sites["blog"]
    blog.write(".well-known/acme-challenge/own-file", "the site's own\n")
    front.challenges[TOKEN] = KEY_AUTH
    front.reload()
    path = "/.well-known/acme-challenge/" + TOKEN
    assert wait_until(lambda: request(front.port, "blog.localhost", path)[0] == 200)
    for host in ("blog.localhost", "nobody.localhost", "app.localhost", "php.localhost"):
        status, headers, body = request(front.port, host, path)
        assert (status, body) == (200, KEY_AUTH.encode()), host
        assert headers["content-type"] == "text/plain"
    status, headers, body = request(front.port, "blog.localhost", path, method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) == len(KEY_AUTH)
    assert curl(front, pki, "blog.localhost", path) == (200, KEY_AUTH.encode())
    # Other tokens are the site's business: served from its files like any path.
    assert request(front.port, "blog.localhost", "/.well-known/acme-challenge/other")[0] == 404
    # A worker started later learns it too.
    victim = front.worker_pids()[0]
    os.kill(victim, 9)
    assert wait_until(lambda: len(front.worker_pids()) == 2 and victim not in front.worker_pids(), timeout=10)
    time.sleep(1)   # until it serves its own sockets (the other covers them meanwhile)
    allowed = os.sched_getaffinity(0)
    try:
        for cpu in sorted(allowed):   # connections go to the worker of their CPU: ask both
            os.sched_setaffinity(0, {cpu})
            for _ in range(4):
                assert request(front.port, "nobody.localhost", path)[2] == KEY_AUTH.encode()
    finally:
        os.sched_setaffinity(0, allowed)
    # Withdrawn: the path is the site's again.
    del front.challenges[TOKEN]
    front.reload()
    assert wait_until(lambda: request(front.port, "blog.localhost", path)[0] == 404)
    assert request(front.port, "nobody.localhost", path)[0] == 404


def test_a_malformed_challenge_is_refused(front):
    front.challenges["../../etc/passwd"] = "x.y"
    front.reload()
    try:
        assert wait_until(lambda: "bad challenge line" in front.stderr_text(), timeout=5)
        assert request(front.port, "nobody.localhost", "/.well-known/acme-challenge/../../etc/passwd")[0] in (400, 404)
    finally:
        del front.challenges["../../etc/passwd"]
        front.reload()


def test_a_site_may_send_plain_http_to_https(front, pki):
    cert, key = pki.leaf("secure", ["secure.localhost"])
    secure = front.add_site("secure", 1008, cert=cert, key=key, redirect=True)
    secure.write("page.html", "secure page\n")
    try:
        assert wait_until(lambda: request(front.port, "secure.localhost", "/page.html")[0] == 308)
        status, headers, _ = request(front.port, "Secure.localhost:80", "/page.html?a=1&b=%20")
        assert status == 308
        assert headers["location"] == f"https://secure.localhost:{front.tls_port}/page.html?a=1&b=%20"
        # A POST keeps its method and body through a 308: the client sends them again.
        status, headers, _ = request(front.port, "secure.localhost", "/form", method="POST", body=b"x=1")
        assert status == 308 and headers["connection"] == "close"
        # Over HTTPS the page itself; and curl follows the redirect there.
        assert curl(front, pki, "secure.localhost", "/page.html") == (200, b"secure page\n")
        r = subprocess.run(["curl", "-sSL", "--cacert", pki.cert, "--resolve", f"secure.localhost:{front.port}:127.0.0.1",
                            "--resolve", f"secure.localhost:{front.tls_port}:127.0.0.1",
                            f"http://secure.localhost:{front.port}/page.html"], capture_output=True, timeout=30)
        assert r.stdout == b"secure page\n", r.stderr
        # ACME challenges stay answered over plain HTTP, as CAs ask them.
        front.challenges[TOKEN] = KEY_AUTH
        front.reload()
        path = "/.well-known/acme-challenge/" + TOKEN
        assert wait_until(lambda: request(front.port, "secure.localhost", path)[0] == 200)
        # Sites without it are served over HTTP as before.
        assert request(front.port, "blog.localhost", "/hello.txt")[0] == 200
    finally:
        front.challenges.pop(TOKEN, None)
        front.remove_site("secure")


def test_large_answers_to_a_slow_reader_arrive_whole(front, pki):
    """The socket fills while records wait in the session's gathering buffer: what
    is left must go out when the client reads again, in order, nothing lost."""
    ctx = ssl.create_default_context(cafile=pki.cert)
    raw_sock = socket.socket()
    raw_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw_sock.settimeout(20)
    raw_sock.connect(("127.0.0.1", front.tls_port))
    c = TlsConn.__new__(TlsConn)
    c.s = ctx.wrap_socket(raw_sock, server_hostname="blog.localhost")
    c._berth_buf = b""
    try:
        want = open(os.path.join(front.sites["blog"].public, "big.bin"), "rb").read()
        c.sendall(build_request("blog.localhost", "/big.bin") + build_request("blog.localhost", "/hello.txt") +
                  build_request("blog.localhost", "/big.bin"))
        time.sleep(1)   # the server blocks on a full socket meanwhile
        assert read_response(c)[2] == want
        assert read_response(c)[2] == b"hello over tls\n"
        assert read_response(c)[2] == want
    finally:
        c.close()
