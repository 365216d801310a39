"""The ACME client (src/acme) against a real ACME server: Debian's pebble, with
pebble-challtestsrv as its DNS (every name is 127.0.0.1), driven by acme-tool, which
answers the http-01 challenges itself on a free loopback port.

Pebble's own HTTPS certificate comes from a throwaway CA made with the openssl
command; the issued certificates are checked against pebble's issuing root, fetched
from its management interface. Runs acme-tool from $BERTH_BUILD_DIR."""

import json
import os
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


class Pebble:
    """pebble + pebble-challtestsrv on free loopback ports, in directory d."""

    def __init__(self, d, env=None, http_port=None):
        self.dir = d
        self.procs = []
        self.http_port = http_port or free_port()    # where pebble's VA looks for http-01 answers
        self.port = free_port()
        self.mgmt_port = free_port()
        self.dns_port = free_port()
        ca_key, ca = str(d / "ca.key"), str(d / "ca.pem")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=pebble test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        key, csr, cert, ext = (str(d / n) for n in ("pebble.key", "pebble.csr", "pebble.pem", "pebble.ext"))
        (d / "pebble.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
                "-extfile", ext, "-out", cert)
        self.ca_file = ca
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": cert, "privateKey": key,
            "httpPort": self.http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
        }}
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


def make_pebble(tmp_path, env=None, http_port=None):
    require(shutil.which("pebble") and shutil.which("pebble-challtestsrv"), "pebble is not installed")
    require(ACME_TOOL.exists(), f"{ACME_TOOL} is not built")
    d = tmp_path / "pebble"
    d.mkdir()
    return Pebble(d, env, http_port)


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
