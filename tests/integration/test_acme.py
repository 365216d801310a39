"""The ACME client (src/acme) against a real ACME server: Debian's pebble, with
pebble-challtestsrv as its DNS (every name is 127.0.0.1), driven by acme-tool, which
answers the http-01 challenges itself on a free loopback port.

Pebble's own HTTPS certificate comes from a throwaway CA made with the openssl
command; the issued certificates are checked against pebble's issuing root, fetched
from its management interface. Runs acme-tool from $BERTH_BUILD_DIR."""

import http.server
import json
import os
import threading
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

from conftest import BUILD_DIR, SANITIZER_MARKS, free_port, require

ACME_TOOL = BUILD_DIR / "src" / "acme" / "acme-tool"


def openssl(*args, input=None):
    r = subprocess.run(["openssl", *args], capture_output=True, input=input, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def wait_port(port, proc, log, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} never opened: {log.read_text()}")


def make_tls(d):
    """A throwaway CA and a leaf for localhost/127.0.0.1 in d: (ca, cert, key)."""
    ca_key, ca = str(d / "ca.key"), str(d / "ca.pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=berth test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    key, csr, cert, ext = (str(d / n) for n in ("server.key", "server.csr", "server.pem", "server.ext"))
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
            "-extfile", ext, "-out", cert)
    return ca, cert, key


class Pebble:
    """pebble + pebble-challtestsrv on free loopback ports, in directory d."""

    def __init__(self, d, env=None, http_port=None, validity=None, blocklist=None):
        self.dir = d
        self.procs = []
        self.http_port = http_port or free_port()    # where pebble's VA looks for http-01 answers
        self.port = free_port()
        self.mgmt_port = free_port()
        self.dns_port = free_port()
        self.ca_file, cert, key = make_tls(d)
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": cert, "privateKey": key,
            "httpPort": self.http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
        }}
        if validity:
            config["pebble"]["certificateValidityPeriod"] = validity   # seconds
        if blocklist:
            config["pebble"]["domainBlocklist"] = blocklist            # names pebble refuses
        (d / "pebble.json").write_text(json.dumps(config))
        self.directory = f"https://127.0.0.1:{self.port}/dir"

        # DNS only: every A query answers 127.0.0.1, no AAAA (the tool listens on IPv4).
        self.dns_log = d / "challtestsrv.log"
        self.start(["pebble-challtestsrv", "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "",
                    "-https01", "", "-tlsalpn01", "", "-management", f"127.0.0.1:{free_port()}",
                    "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""], self.dns_log, {})
        self.log = d / "pebble.log"
        penv = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_AUTHZREUSE": "0"}
        penv.update(env or {})
        self.pebble = self.start(["pebble", "-config", str(d / "pebble.json"),
                                  "-dnsserver", f"127.0.0.1:{self.dns_port}"], self.log, penv)
        wait_port(self.port, self.pebble, self.log)
        wait_port(self.mgmt_port, self.pebble, self.log)

    def start(self, argv, log, env):
        f = open(log, "wb")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, cwd=self.dir,
                             env={**os.environ, **env}, start_new_session=True)
        f.close()
        self.procs.append(p)
        return p

    def root(self):
        ctx = ssl.create_default_context(cafile=self.ca_file)
        with urllib.request.urlopen(f"https://127.0.0.1:{self.mgmt_port}/roots/0", context=ctx, timeout=10) as r:
            return r.read().decode()

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()


def make_pebble(tmp_path, env=None, http_port=None, validity=None, blocklist=None):
    require(shutil.which("pebble") and shutil.which("pebble-challtestsrv"), "pebble is not installed")
    require(ACME_TOOL.exists(), f"{ACME_TOOL} is not built")
    d = tmp_path / "pebble"
    d.mkdir()
    return Pebble(d, env, http_port, validity, blocklist)


@pytest.fixture
def pebble(tmp_path):
    p = make_pebble(tmp_path)
    yield p
    p.stop()


@pytest.fixture
def account_key(tmp_path):
    path = tmp_path / "account.key"
    r = subprocess.run([str(ACME_TOOL), "--new-account-key", str(path)], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return path


def run_tool(pebble, key, hosts, tmp_path, *extra, directory=None, timeout=120):
    cert, out_key = tmp_path / "cert.pem", tmp_path / "cert.key"
    for p in (cert, out_key):
        if p.exists():
            p.unlink()
    argv = [str(ACME_TOOL), "--directory", directory or pebble.directory, "--ca-file", pebble.ca_file,
            "--account-key", str(key), "--http-port", str(pebble.http_port),
            "--out-cert", str(cert), "--out-key", str(out_key), *extra, *hosts]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    for mark in SANITIZER_MARKS:
        assert mark not in r.stderr, r.stderr
    return r, cert, out_key


def check_certificate(pebble, cert, key, hosts, tmp_path):
    root = tmp_path / "root.pem"
    root.write_text(pebble.root())
    pem = cert.read_text()
    blocks = pem.count("-----BEGIN CERTIFICATE-----")
    assert blocks >= 2, pem   # leaf + pebble's intermediate
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n")
    chain = tmp_path / "chain.pem"
    chain.write_text(pem[len(leaf.read_text()):].strip() + "\n")
    out = openssl("verify", "-CAfile", str(root), "-untrusted", str(chain), str(leaf)).decode()
    assert out.strip().endswith(": OK"), out
    text = openssl("x509", "-in", str(leaf), "-noout", "-ext", "subjectAltName").decode()
    for h in hosts:
        assert f"DNS:{h}" in text, text
    # The key is the leaf's: the same public key.
    assert openssl("pkey", "-in", str(key), "-pubout") == openssl("x509", "-in", str(leaf), "-noout", "-pubkey")
    assert (os.stat(key).st_mode & 0o777) == 0o600


def test_issue_two_hosts(pebble, account_key, tmp_path):
    hosts = ["blog.example.org", "www.blog.example.org"]
    r, cert, key = run_tool(pebble, account_key, hosts, tmp_path, "--email", "ops@example.org")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("account: https://127.0.0.1:"), r.stdout
    check_certificate(pebble, cert, key, hosts, tmp_path)


def test_same_account_key_reuses_the_account(tmp_path, account_key):
    # Pebble reuses valid authorizations here, so the second order is ready at once.
    p = make_pebble(tmp_path, {"PEBBLE_AUTHZREUSE": "100"})
    try:
        r1, cert, key = run_tool(p, account_key, ["a.example.com"], tmp_path)
        assert r1.returncode == 0, r1.stderr
        first = cert.read_text()
        r2, cert, key = run_tool(p, account_key, ["a.example.com"], tmp_path)
        assert r2.returncode == 0, r2.stderr
        assert r1.stdout == r2.stdout, (r1.stdout, r2.stdout)   # the same account URL
        assert cert.read_text() != first                          # a new certificate
        check_certificate(p, cert, key, ["a.example.com"], tmp_path)
        # A different key is a different account.
        other = tmp_path / "other.key"
        subprocess.run([str(ACME_TOOL), "--new-account-key", str(other)], check=True, timeout=30)
        r3, _, _ = run_tool(p, other, ["a.example.com"], tmp_path)
        assert r3.returncode == 0, r3.stderr
        assert r3.stdout != r1.stdout
    finally:
        p.stop()


def test_wrong_key_authorization_fails_unauthorized(pebble, account_key, tmp_path):
    r, cert, key = run_tool(pebble, account_key, ["bad.example.org"], tmp_path, "--bad-key-authorization")
    assert r.returncode == 1, r
    line = r.stderr.strip()
    assert "\n" not in line, line
    assert line.startswith("acme-tool: authorization for bad.example.org failed: "
                           "urn:ietf:params:acme:error:unauthorized: "), line
    assert not cert.exists() and not key.exists()


def test_unreachable_directory_fails_quickly(tmp_path, account_key):
    require(ACME_TOOL.exists(), f"{ACME_TOOL} is not built")
    port = free_port()   # nothing listens there
    argv = [str(ACME_TOOL), "--directory", f"https://127.0.0.1:{port}/dir", "--account-key", str(account_key),
            "--http-port", str(free_port()), "--out-cert", str(tmp_path / "c"), "--out-key", str(tmp_path / "k"),
            "x.example.org"]
    start = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 5
    assert r.returncode == 1, r
    assert r.stderr.startswith(f"acme-tool: fetching the ACME directory: GET https://127.0.0.1:{port}/dir: "
                               "Couldn't connect to server"), r.stderr
    assert r.stderr.count("\n") == 1


def test_refused_identifier_fails_with_the_problem(pebble, account_key, tmp_path):
    r, cert, _ = run_tool(pebble, account_key, ["ok.example.org", "127.0.0.1"], tmp_path)
    assert r.returncode == 1, r
    assert r.stderr.startswith("acme-tool: ordering the certificate: urn:ietf:params:acme:error:"), r.stderr
    assert "127.0.0.1" in r.stderr, r.stderr
    assert r.stderr.endswith('"127.0.0.1"\n'), r.stderr   # pebble's detail, one line
    assert not cert.exists()


def test_bad_nonces_are_retried(tmp_path, account_key):
    # A longer chain too (PEBBLE_CHAIN_LENGTH=4: leaf + 4 intermediates): every
    # certificate is passed on, in order (openssl verify builds the path).
    p = make_pebble(tmp_path, {"PEBBLE_WFE_NONCEREJECT": "30", "PEBBLE_CHAIN_LENGTH": "4"})
    try:
        hosts = ["n1.example.net", "n2.example.net"]
        for _ in range(2):
            r, cert, key = run_tool(p, account_key, hosts, tmp_path)
            assert r.returncode == 0, r.stderr
            check_certificate(p, cert, key, hosts, tmp_path)
            assert cert.read_text().count("-----BEGIN CERTIFICATE-----") == 5
        # Pebble does not log its rejections; but each issuance signs about 15
        # requests, so without the retry two in a row would succeed with a
        # probability of 0.7^30 (about 2e-5).
    finally:
        p.stop()


def test_parallel_issuances_on_threads(pebble, account_key, tmp_path):
    # berthd runs issuances on threads of their own: three at once in one process.
    hosts = ["t1.example.org", "t2.example.org"]
    r, cert, key = run_tool(pebble, account_key, hosts, tmp_path, "--parallel", "3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and len(set(lines)) == 1, lines
    check_certificate(pebble, cert, key, hosts, tmp_path)


def test_silent_server_ends_at_the_time_limit(tmp_path, account_key):
    require(ACME_TOOL.exists(), f"{ACME_TOOL} is not built")
    with socket.socket() as s:   # accepts connections (the kernel does) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]
        argv = [str(ACME_TOOL), "--directory", f"https://127.0.0.1:{port}/dir", "--account-key",
                str(account_key), "--timeout", "2", "--http-port", str(free_port()),
                "--out-cert", str(tmp_path / "c"), "--out-key", str(tmp_path / "k"), "x.example.org"]
        start = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        took = time.monotonic() - start
    assert r.returncode == 1, r
    assert 1.5 < took < 5, took
    assert r.stderr.startswith("acme-tool: fetching the ACME directory: GET "), r.stderr
    assert "Timeout was reached" in r.stderr, r.stderr


@pytest.mark.parametrize("where", ["request", "poll"])
def test_cancel_from_another_thread(tmp_path, account_key, where):
    """berthd stops an issuance by setting cfg->cancel: inside a request to a silent
    server, or while polling an authorization that stays pending because pebble's
    validator is stuck on a challenge port that never answers."""
    require(ACME_TOOL.exists(), f"{ACME_TOOL} is not built")
    silent = socket.socket()   # the kernel accepts connections; nobody ever answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    p = None
    try:
        if where == "request":
            argv = ["--directory", f"https://127.0.0.1:{silent.getsockname()[1]}/dir", "--http-port", str(free_port())]
        else:
            p = make_pebble(tmp_path, http_port=silent.getsockname()[1])
            argv = ["--directory", p.directory, "--ca-file", p.ca_file, "--http-port", str(free_port())]
        argv = [str(ACME_TOOL), *argv, "--account-key", str(account_key), "--timeout", "60",
                "--cancel-after", "1500", "--out-cert", str(tmp_path / "c"), "--out-key", str(tmp_path / "k"),
                "x.example.org"]
        start = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        took = time.monotonic() - start
    finally:
        silent.close()
        if p:
            p.stop()
    assert r.returncode == 1, r
    for mark in SANITIZER_MARKS:
        assert mark not in r.stderr, r.stderr
    assert 1.4 < took < 4, (took, r.stderr)
    if where == "request":
        assert r.stderr.startswith("acme-tool: fetching the ACME directory: GET "), r.stderr
        assert r.stderr.endswith("/dir: cancelled\n"), r.stderr
    else:
        assert r.stderr == "acme-tool: authorization for x.example.org: cancelled while pending\n", r.stderr


class FakeAcme:
    """A hostile ACME server: a correct flow by default (without checking signatures),
    with one route replaced per test by a bad answer."""

    def __init__(self, d):
        ca, cert, key = make_tls(d)
        self.ca_file = ca
        self.hits = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self, method):
                if method == "POST":
                    self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = (method, self.path)
                server.hits[key] = server.hits.get(key, 0) + 1
                status, headers, body = server.routes.get(key, (404, [], b"not here"))(self) \
                    if callable(server.routes.get(key)) else server.routes.get(key, (404, [], b"not here"))
                if isinstance(body, str):
                    body = body.encode()
                self.send_response_only(status)
                headers = list(headers)
                for k, v in [("Replay-Nonce", f"n{sum(server.hits.values())}")] + headers:
                    if v is not None:
                        self.send_header(k, v)
                if ("Connection", "close") in headers:
                    self.close_connection = True   # the body ends with the connection: no length
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                self.answer("GET")

            def do_HEAD(self):
                self.answer("HEAD")

            def do_POST(self):
                self.answer("POST")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        b = self.base
        j = {"Content-Type": "application/json"}
        self.routes = {
            ("GET", "/dir"): (200, j.items(), json.dumps({"newNonce": b + "/nonce", "newAccount": b + "/acct",
                                                          "newOrder": b + "/order"})),
            ("HEAD", "/nonce"): (200, [], b""),
            ("POST", "/acct"): (201, [("Location", b + "/acct/1")], '{"status":"valid"}'),
            ("POST", "/order"): (201, [("Location", b + "/order/1")], json.dumps(
                {"status": "pending", "authorizations": [b + "/authz/1"], "finalize": b + "/fin/1"})),
            ("POST", "/authz/1"): (200, [], json.dumps(
                {"status": "pending", "identifier": {"type": "dns", "value": "x.example.org"},
                 "challenges": [{"type": "http-01", "url": b + "/chal/1", "token": "tok", "status": "pending"}]})),
            ("POST", "/chal/1"): (200, [], "{}"),
        }
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def fake(tmp_path):
    require(ACME_TOOL.exists(), f"{ACME_TOOL} is not built")
    d = tmp_path / "fake"
    d.mkdir()
    f = FakeAcme(d)
    yield f
    f.stop()


def run_fake(fake, account_key, tmp_path, *extra):
    argv = [str(ACME_TOOL), "--directory", fake.base + "/dir", "--ca-file", fake.ca_file, "--account-key",
            str(account_key), "--http-port", str(free_port()), "--out-cert", str(tmp_path / "c"),
            "--out-key", str(tmp_path / "k"), *extra, "x.example.org"]
    start = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    for mark in SANITIZER_MARKS:
        assert mark not in r.stderr, r.stderr
    assert r.returncode == 1, r
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("acme-tool: "), r.stderr
    assert time.monotonic() - start < 10
    return r.stderr[len("acme-tool: "):].rstrip("\n")


def test_hostile_huge_directory(fake, account_key, tmp_path):
    fake.routes[("GET", "/dir")] = (200, [], b"{" + b" " * (2 << 20) + b"}")
    err = run_fake(fake, account_key, tmp_path)
    assert err == f"fetching the ACME directory: GET {fake.base}/dir: the server's answer is too large", err


def test_hostile_huge_body_without_length(fake, account_key, tmp_path):
    fake.routes[("GET", "/dir")] = (200, [("Connection", "close")], b"{" + b" " * (2 << 20) + b"}")
    err = run_fake(fake, account_key, tmp_path)
    assert err == f"fetching the ACME directory: GET {fake.base}/dir: the server's answer is too large", err


def test_hostile_header_flood(fake, account_key, tmp_path):
    fake.routes[("GET", "/dir")] = (200, [(f"X-Junk-{i}", "y" * 1000) for i in range(100)], b"{}")
    err = run_fake(fake, account_key, tmp_path)
    assert err.endswith("the server's answer is too large"), err


def test_hostile_directory_types(fake, account_key, tmp_path):
    fake.routes[("GET", "/dir")] = (200, [], '{"newNonce":["x"],"newAccount":1,"newOrder":null}')
    err = run_fake(fake, account_key, tmp_path)
    assert err == "fetching the ACME directory: the server's \"newNonce\" is not an https URL", err


def test_hostile_no_nonce(fake, account_key, tmp_path):
    fake.routes[("HEAD", "/nonce")] = (200, [("Replay-Nonce", "bad nonce!")], b"")
    err = run_fake(fake, account_key, tmp_path)
    assert err == "registering the account: getting a nonce: the server sent no valid Replay-Nonce", err


def test_hostile_endless_bad_nonces(fake, account_key, tmp_path):
    fake.routes[("POST", "/acct")] = (400, [("Content-Type", "application/problem+json")],
                                      '{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce"}')
    err = run_fake(fake, account_key, tmp_path)
    assert err == ("registering the account: urn:ietf:params:acme:error:badNonce: "
                   "JWS has an invalid anti-replay nonce"), err
    assert fake.hits[("POST", "/acct")] == 9   # the first try and 8 retries, each with the fresh nonce
    assert fake.hits.get(("HEAD", "/nonce")) == 1


def test_hostile_problem_text_is_one_clean_line(fake, account_key, tmp_path):
    fake.routes[("POST", "/order")] = (403, [], json.dumps(
        {"type": "urn:ietf:params:acme:error:unauthorized\nforged: line",
         "detail": "\u001b[2J\u001b[31mred\r\nforged line " + "z" * 5000}))
    err = run_fake(fake, account_key, tmp_path)
    assert err.startswith("ordering the certificate: urn:ietf:params:acme:error:unauthorized forged: line: "
                          "?[2J?[31mred  forged line zzz"), err
    assert len(err) < 1100


def test_hostile_error_without_problem(fake, account_key, tmp_path):
    fake.routes[("POST", "/acct")] = (500, [], "<html>oops</html>")
    err = run_fake(fake, account_key, tmp_path)
    assert err == "registering the account: the server answered HTTP 500", err


def test_hostile_token_and_account(fake, account_key, tmp_path):
    fake.routes[("POST", "/authz/1")] = (200, [], json.dumps(
        {"status": "pending", "identifier": {"type": "dns", "value": "x.example.org"},
         "challenges": [{"type": "http-01", "url": fake.base + "/chal/1", "token": "../../etc/passwd",
                         "status": "pending"}]}))
    err = run_fake(fake, account_key, tmp_path)
    assert err == "fetching an authorization: the server's http-01 challenge has no valid token", err

    fake.routes[("POST", "/acct")] = (201, [], '{"status":"valid"}')   # no Location
    err = run_fake(fake, account_key, tmp_path)
    assert err == "registering the account: the server sent no account URL", err


def test_hostile_endless_pending_ends_at_the_time_limit(fake, account_key, tmp_path):
    # Retry-After asks for an hour: capped, and the poll gives up at the deadline.
    authz = fake.routes[("POST", "/authz/1")]
    fake.routes[("POST", "/authz/1")] = (200, [("Retry-After", "3600")], authz[2])
    start = time.monotonic()
    err = run_fake(fake, account_key, tmp_path, "--timeout", "3")
    assert err == "authorization for x.example.org: still pending when the time limit of 3 s ran out", err
    assert time.monotonic() - start < 2   # a 30 s wait cannot fit in 3 s: no point in sleeping


def test_hostile_redirect_is_not_followed(fake, account_key, tmp_path):
    fake.routes[("GET", "/dir")] = (301, [("Location", "http://127.0.0.1:1/dir")], b"")
    err = run_fake(fake, account_key, tmp_path)
    assert err == "fetching the ACME directory: the server answered HTTP 301", err


def test_retry_after_is_honoured(fake, account_key, tmp_path):
    # The authorization stays pending twice, asking for 1 s each time, then fails.
    pending = fake.routes[("POST", "/authz/1")][2]
    invalid = json.loads(pending)
    invalid["status"] = "invalid"
    invalid["challenges"][0]["error"] = {"type": "urn:ietf:params:acme:error:connection", "detail": "refused"}
    times = []

    def authz(handler):
        times.append(time.monotonic())
        if len(times) <= 3:   # the fetch before answering, then two polls
            return 200, [("Retry-After", "1")], pending
        return 200, [], json.dumps(invalid)

    fake.routes[("POST", "/authz/1")] = authz
    err = run_fake(fake, account_key, tmp_path)
    assert err == "authorization for x.example.org failed: urn:ietf:params:acme:error:connection: refused", err
    assert len(times) == 4, times
    assert 0.9 < times[2] - times[1] < 1.5 and 0.9 < times[3] - times[2] < 1.5, times
