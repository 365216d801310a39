"""HTTP/2 over TLS on the front with real clients (curl --http2, nghttp, h2load,
openssl s_client) and HTTP/2 frames written by hand over Python's ssl where a
client must misbehave: ALPN, every kind of request (files, proxy, FastCGI, ACME,
berth's pages), many streams on one connection, flow control and back-pressure,
the limits (streams, header lists, bodies, timeouts) and the floods (rapid reset,
CONTINUATION, HPACK, PING, SETTINGS).

Runs front-harness from $BERTH_BUILD_DIR (default /work/main/build-test)."""

import ctypes
import gzip
import hashlib
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import pytest

from front_helpers import Backend, Front, build_request, harness_path, read_response, wait_until
from test_front_php import FakeFpm
from test_front_tls import CA, TlsConn

pytestmark = pytest.mark.skipif(
    not os.path.exists(harness_path()) and os.environ.get("BERTH_MUST_WORK") != "1",
    reason="front-harness not built")

BIG = 700 * 1024 + 17
HUGE = 24 * 1024 * 1024


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="berth-h2-pki-")
    os.chmod(d, 0o755)
    yield CA(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def front(pki):
    state = tempfile.mkdtemp(prefix="berth-h2-front-")
    default = pki.leaf("default", ["default.invalid"])
    f = Front(state, tls=default, extra_args=["--header-timeout", "1500", "--idle-timeout", "4000",
                                              "--read-timeout", "1500"])
    cert = pki.leaf("all", ["blog.localhost", "app.localhost", "php.localhost", "down.localhost",
                            "small.localhost", "gone.localhost", "nobody.localhost", "slow.localhost"])
    tls = dict(cert=cert[0], key=cert[1])
    blog = f.add_site("blog", 1001, reload=False, **tls)
    blog.write("hello.txt", "hello over h2\n", mtime=1700000000)
    blog.write("big.bin", os.urandom(BIG))
    blog.write("huge.bin", os.urandom(1024) * (HUGE // 1024))
    blog.write("index.html", "<h1>blog</h1>\n")
    blog.write("docs/index.html", "docs index\n")
    blog.write(".secret", "dotfile\n")
    text = ("compressible text " * 200).encode()
    blog.write("page.css", text)
    blog.write("page.css.gz", gzip.compress(text))
    blog.write("page.css.br", b"pretend brotli")
    blog.write("own-target.txt", "mine\n")
    blog.symlink("own-link.txt", "own-target.txt")
    blog.write("foreign.txt", "foreign\n", owner=1002)
    blog.symlink("foreign-link.txt", "foreign.txt")
    blog.symlink("shadow", "/etc/shadow")
    f.add_site("down", 1003, reload=False, state="stopped", **tls)
    backend_path = os.path.join(state, "app.sock")
    f.backend = Backend(backend_path)
    f.add_site("app", 1004, reload=False, type="app", backend=backend_path, **tls)
    f.add_site("small", 1005, reload=False, type="app", backend=backend_path, max_body=1000, **tls)
    f.add_site("gone", 1006, reload=False, type="app", backend=os.path.join(state, "none.sock"), **tls)
    f.fpm = FakeFpm(os.path.join(state, "fpm.sock"))
    php = f.add_site("php", 1007, reload=False, type="php", backend=os.path.join(state, "fpm.sock"), **tls)
    php.write("info.php", "<?php\n")
    f.challenges["tok-h2"] = "tok-h2.keyauth"
    f.start()
    yield f
    f.fpm.close()
    f.backend.stop()
    f.stop()
    shutil.rmtree(state, ignore_errors=True)


# ---- real clients ----

def curl(front, pki, host, path, *extra, http="--http2"):
    """curl over HTTPS: (status, headers dict, body, HTTP version curl used)."""
    url = f"https://{host}:{front.tls_port}{path}"
    with tempfile.NamedTemporaryFile() as hf, tempfile.NamedTemporaryFile() as bf:
        r = subprocess.run(["curl", "-sS", http, "--cacert", pki.cert, "--resolve",
                            f"{host}:{front.tls_port}:127.0.0.1", "-D", hf.name, "-o", bf.name,
                            "-w", "%{http_version}", *extra, url], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        head, body = open(hf.name, "rb").read(), open(bf.name, "rb").read()
    lines = head.decode().strip().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body, r.stdout.decode()


def test_alpn_offers_h2_then_http11(front, pki):
    for offer, want in ((["h2", "http/1.1"], "h2"), (["http/1.1", "h2"], "h2"), (["http/1.1"], "http/1.1"),
                        (["h2"], "h2")):
        c = TlsConn(front, pki, "blog.localhost", alpn=offer)
        try:
            assert c.s.selected_alpn_protocol() == want, offer
            if want == "http/1.1":
                # The fallback is the HTTP/1.1 front as before.
                c.sendall(build_request("blog.localhost", "/hello.txt"))
                assert read_response(c)[2] == b"hello over h2\n"
        finally:
            c.close()
    status, _, body, version = curl(front, pki, "blog.localhost", "/hello.txt")
    assert (status, body, version) == (200, b"hello over h2\n", "2")
    status, _, body, version = curl(front, pki, "blog.localhost", "/hello.txt", http="--http1.1")
    assert (status, body, version) == (200, b"hello over h2\n", "1.1")


def test_static_files_over_h2(front, pki):
    st, h, body, _ = curl(front, pki, "blog.localhost", "/big.bin")
    want = open(os.path.join(front.sites["blog"].public, "big.bin"), "rb").read()
    assert st == 200 and hashlib.sha256(body).digest() == hashlib.sha256(want).digest()
    assert int(h["content-length"]) == BIG
    assert curl(front, pki, "blog.localhost", "/")[2] == b"<h1>blog</h1>\n"
    st, h, _, _ = curl(front, pki, "blog.localhost", "/docs")
    assert st == 301 and h["location"] == "/docs/"
    assert curl(front, pki, "blog.localhost", "/docs/")[2] == b"docs index\n"
    # HEAD: the length, no body.
    st, h, body, _ = curl(front, pki, "blog.localhost", "/big.bin", "-I")
    assert st == 200 and int(h["content-length"]) == BIG and body.startswith(b"HTTP/2 200") and len(body) < 1000
    # Validators and conditional requests.
    st, h, _, _ = curl(front, pki, "blog.localhost", "/hello.txt")
    etag, lm = h["etag"], h["last-modified"]
    assert curl(front, pki, "blog.localhost", "/hello.txt", "-H", f"If-None-Match: {etag}")[0] == 304
    assert curl(front, pki, "blog.localhost", "/hello.txt", "-H", f"If-Modified-Since: {lm}")[0] == 304
    # Ranges: one range 206, past the end 416.
    st, h, body, _ = curl(front, pki, "blog.localhost", "/big.bin", "-r", "100000-100009")
    assert (st, body) == (206, want[100000:100010]) and h["content-range"] == f"bytes 100000-100009/{BIG}"
    # A big range: the file goes from its fd into DATA frames from the offset on.
    st, h, body, _ = curl(front, pki, "blog.localhost", "/big.bin", "-r", "12345-312344")
    assert (st, body) == (206, want[12345:312345]) and h["content-length"] == "300000"
    st, h, _, _ = curl(front, pki, "blog.localhost", "/big.bin", "-r", f"{BIG + 5}-")
    assert st == 416 and h["content-range"] == f"bytes */{BIG}"
    # Precompressed siblings.
    st, h, body, _ = curl(front, pki, "blog.localhost", "/page.css", "-H", "Accept-Encoding: gzip")
    assert st == 200 and h["content-encoding"] == "gzip" and "accept-encoding" in h["vary"].lower()
    assert gzip.decompress(body) == ("compressible text " * 200).encode()
    st, h, body, _ = curl(front, pki, "blog.localhost", "/page.css", "-H", "Accept-Encoding: br")
    assert (st, h["content-encoding"], body) == (200, "br", b"pretend brotli")
    # Dotfiles and the symlink owner rule.
    assert curl(front, pki, "blog.localhost", "/.secret")[0] == 404
    assert curl(front, pki, "blog.localhost", "/own-link.txt")[2] == b"mine\n"
    for path in ("/foreign-link.txt", "/shadow"):
        st, _, body, _ = curl(front, pki, "blog.localhost", path)
        assert st == 404 and b"root:" not in body and b"foreign" not in body
    # Methods other than GET/HEAD.
    assert curl(front, pki, "blog.localhost", "/hello.txt", "-X", "DELETE")[0] == 405


def test_routing_and_berths_pages_over_h2(front, pki):
    st, _, body, v = curl(front, pki, "nobody.localhost", "/x", "-k")
    assert st == 404 and b"berth" in body and v == "2"
    assert curl(front, pki, "down.localhost", "/")[0] == 503
    # :authority routes, whatever the certificate's name (as Host does).
    st, _, body, _ = curl(front, pki, "blog.localhost", "/hello.txt", "-H", "Host: app.localhost")
    assert st == 404 and b"no such backend route" in body
    # ACME challenge answers, for any host.
    st, _, body, _ = curl(front, pki, "nobody.localhost", "/.well-known/acme-challenge/tok-h2", "-k")
    assert (st, body) == (200, b"tok-h2.keyauth")


def test_proxy_over_h2(front, pki):
    st, _, body, _ = curl(front, pki, "app.localhost", "/headers?x=1", "-H", "X-Forwarded-For: 6.6.6.6",
                          "-H", "Cookie: a=1", "-H", "Cookie: b=2")
    assert st == 200
    seen = json.loads(body)
    hd = {k.lower(): v for k, v in seen["headers"]}
    assert seen["target"] == "/headers?x=1"
    assert hd["x-forwarded-proto"] == "https" and "proto=https" in hd["forwarded"]
    assert hd["x-forwarded-for"] == "127.0.0.1" and hd["host"] == "app.localhost:%d" % front.tls_port
    assert hd["cookie"] == "a=1; b=2"
    # A body streamed to the backend (no length: chunked) comes back whole.
    payload = os.urandom(2 * 1024 * 1024 + 3)
    p = os.path.join(front.state, "upload.bin")
    open(p, "wb").write(payload)
    st, h, body, _ = curl(front, pki, "app.localhost", "/echo", "--data-binary", "@" + p)
    assert st == 200 and hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    st, _, body, _ = curl(front, pki, "app.localhost", "/echo", "-H", "Transfer-Encoding:", "-T", p)
    assert st == 200 and len(body) == len(payload)
    # Limits and failures.
    assert curl(front, pki, "small.localhost", "/echo", "--data-binary", "x" * 5000)[0] == 413
    assert curl(front, pki, "gone.localhost", "/")[0] == 502
    t0 = time.time()
    assert curl(front, pki, "app.localhost", "/sleep?s=4")[0] == 504
    assert time.time() - t0 < 3.5
    # A close-delimited answer ends the stream cleanly.
    assert curl(front, pki, "app.localhost", "/close")[2] == b"until close"
    # A backend that dies before answering: 502.
    assert curl(front, pki, "app.localhost", "/vanish")[0] == 502


def test_php_over_h2(front, pki):
    n = len(front.fpm.params_seen)
    st, _, body, _ = curl(front, pki, "php.localhost", "/info.php?q=1")
    assert st == 200
    params = front.fpm.params_seen[n]
    assert params["HTTPS"] == "on" and params["REQUEST_SCHEME"] == "https"
    assert params["SERVER_PROTOCOL"] == "HTTP/2.0"
    assert params["SERVER_PORT"] == str(front.tls_port) and params["REQUEST_URI"] == "/info.php?q=1"


def test_access_log_says_http2(front, pki):
    curl(front, pki, "blog.localhost", "/hello.txt?logged-h2")
    log = front.sites["blog"].access_log
    assert wait_until(lambda: "GET /hello.txt?logged-h2 HTTP/2.0\" 200 14" in log(), 5), log()


def test_nghttp_and_h2load(front, pki):
    # Neither checks certificates; the site is named by :authority.
    base = f"https://127.0.0.1:{front.tls_port}"
    auth = ["-H", ":authority: blog.localhost"]
    r = subprocess.run(["nghttp", "-v", *auth, f"{base}/hello.txt", f"{base}/big.bin", f"{base}/index.html"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode(errors="replace")
    assert out.count(":status: 200") == 3 and "hello over h2" in out and "<h1>blog</h1>" in out
    assert out.count("recv HEADERS frame") == 3
    r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "20", *auth, f"{base}/hello.txt"],
                       capture_output=True, timeout=120)
    out = r.stdout.decode()
    assert "2000 succeeded, 0 failed, 0 errored" in out and "2000 2xx" in out, out


def test_sessions_resume_on_any_worker_over_h2(front, pki):
    sess = os.path.join(pki.dir, "session-h2.pem")
    cpus = sorted(os.sched_getaffinity(0))
    base = ["s_client", "-connect", f"127.0.0.1:{front.tls_port}", "-servername", "blog.localhost",
            "-tls1_2", "-alpn", "h2"]
    r = subprocess.run(["taskset", "-c", str(cpus[0]), "openssl", *base, "-sess_out", sess], input=b"",
                       capture_output=True, timeout=30, check=True)
    assert "ALPN protocol: h2" in r.stdout.decode(errors="replace")
    for cpu in cpus[1:] + cpus[:1]:
        r = subprocess.run(["taskset", "-c", str(cpu), "openssl", *base, "-sess_in", sess], input=b"",
                           capture_output=True, timeout=30, check=True)
        out = r.stdout.decode(errors="replace")
        assert "Reused, TLSv1.2" in out and "ALPN protocol: h2" in out, out


# ---- frames by hand ----

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 1, 4, 1
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
NO_ERROR, PROTOCOL_ERROR, SETTINGS_TIMEOUT, REFUSED_STREAM, CANCEL, CALM = 0, 1, 4, 7, 8, 11

def hpack_int(v, prefix, first=0):
    top = (1 << prefix) - 1
    if v < top:
        return bytes([first | v])
    out = [first | top]
    v -= top
    while v >= 128:
        out.append(v % 128 + 128)
        v //= 128
    out.append(v)
    return bytes(out)


def hpack_str(s):
    s = s.encode() if isinstance(s, str) else s
    return hpack_int(len(s), 7) + s


def hpack(fields, index=False):
    """Literal fields, new names, without (or with) indexing; no Huffman."""
    return b"".join((b"\x40" if index else b"\x00") + hpack_str(k) + hpack_str(v) for k, v in fields)


class Inflater:
    """HPACK decoding by libnghttp2 itself (ctypes): berth's answers use its dynamic
    table and Huffman codes, which a test should not have to reimplement."""

    class _NV(ctypes.Structure):
        _fields_ = [("name", ctypes.POINTER(ctypes.c_uint8)), ("value", ctypes.POINTER(ctypes.c_uint8)),
                    ("namelen", ctypes.c_size_t), ("valuelen", ctypes.c_size_t), ("flags", ctypes.c_uint8)]

    lib = ctypes.CDLL("libnghttp2.so.14")
    lib.nghttp2_hd_inflate_hd2.restype = ctypes.c_ssize_t
    lib.nghttp2_hd_inflate_hd2.argtypes = [ctypes.c_void_p, ctypes.POINTER(_NV), ctypes.POINTER(ctypes.c_int),
                                           ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

    def __init__(self):
        self.p = ctypes.c_void_p()
        assert self.lib.nghttp2_hd_inflate_new(ctypes.byref(self.p)) == 0

    def decode(self, block):
        out, nv, fl = [], self._NV(), ctypes.c_int()
        buf = ctypes.create_string_buffer(block, len(block))
        off = 0
        while True:
            n = self.lib.nghttp2_hd_inflate_hd2(self.p, ctypes.byref(nv), ctypes.byref(fl),
                                                ctypes.addressof(buf) + off, len(block) - off, 1)
            assert n >= 0, n
            off += n
            if fl.value & 0x02:   # NGHTTP2_HD_INFLATE_EMIT
                out.append((ctypes.string_at(nv.name, nv.namelen).decode(),
                            ctypes.string_at(nv.value, nv.valuelen).decode()))
            if fl.value & 0x01:   # NGHTTP2_HD_INFLATE_FINAL
                self.lib.nghttp2_hd_inflate_end_headers(self.p)
                return out
            if n == 0 and off == len(block):
                return out

    def __del__(self):
        self.lib.nghttp2_hd_inflate_del(self.p)


class H2:
    """A client connection speaking frames written by hand."""

    def __init__(self, front, pki, host="blog.localhost", settings=(), preface=True, ack=True):
        ctx = ssl.create_default_context(cafile=pki.cert)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", front.tls_port), timeout=10)
        self.s = ctx.wrap_socket(raw, server_hostname=host)
        assert self.s.selected_alpn_protocol() == "h2"
        self.host = host
        self.front = front
        self.buf = b""
        self.ack = ack
        self.server_settings = None
        self.inflater = Inflater()
        self.fields = {}   # stream -> the fields of its answer's head
        self.pending = []  # frames read aside (while uploading), for the next readers
        if preface:
            self.s.sendall(PREFACE + self.frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v)
                                                                          for k, v in settings)))

    @staticmethod
    def frame(ftype, flags, sid, payload=b""):
        return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload

    def send(self, ftype, flags, sid, payload=b""):
        self.s.sendall(self.frame(ftype, flags, sid, payload))

    def request(self, sid, path, host=None, method="GET", extra=(), end_stream=True):
        fields = [(":method", method), (":scheme", "https"),
                  (":authority", host or self.host), (":path", path)] + list(extra)
        self.send(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, hpack(fields))

    def read_frame(self, timeout=10, aside=True):
        """(type, flags, stream, payload), or None at the end of the connection.
        aside: frames read aside earlier come first."""
        if aside and self.pending:
            return self.pending.pop(0)
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + n:
                    f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
                         self.buf[9:9 + n])
                    self.buf = self.buf[9 + n:]
                    if f[0] == HEADERS:
                        # Every block must be decoded, in order: the table changes.
                        self.fields.setdefault(f[2], dict(self.inflater.decode(self.block_of(f))))
                    if f[0] == SETTINGS and not f[1] & ACK:
                        self.server_settings = {struct.unpack(">H", f[3][i:i + 2])[0]:
                                                struct.unpack(">I", f[3][i + 2:i + 6])[0]
                                                for i in range(0, len(f[3]), 6)}
                        if self.ack:
                            self.send(SETTINGS, ACK, 0)
                    return f
            try:
                d = self.s.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                return None
            if not d:
                return None
            self.buf += d

    @staticmethod
    def block_of(f):
        p, flags = f[3], f[1]
        if flags & 0x08:   # PADDED
            p = p[1:len(p) - p[0]]
        if flags & 0x20:   # PRIORITY
            p = p[5:]
        return p

    def responses(self, sids, timeout=20):
        """Reads until every stream in sids ended: {sid: (status, body, rst code)}."""
        out = {sid: [None, b"", None] for sid in sids}
        done = set()
        deadline = time.time() + timeout
        while done != set(sids):
            assert time.time() < deadline, "streams still open: %s" % (set(sids) - done)
            f = self.read_frame()
            assert f is not None, "connection closed"
            t, fl, sid, p = f
            if sid not in out:
                continue
            if t == HEADERS and out[sid][0] is None:
                out[sid][0] = int(self.fields[sid][":status"])
            elif t == DATA:
                out[sid][1] += p
                if p:
                    self.send(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(p)))
                    self.send(WINDOW_UPDATE, 0, sid, struct.pack(">I", len(p)))
            elif t == RST_STREAM:
                out[sid][2] = struct.unpack(">I", p)[0]
                done.add(sid)
            if t in (HEADERS, DATA) and fl & END_STREAM:
                done.add(sid)
        return {k: tuple(v) for k, v in out.items()}

    def until(self, pred, timeout=10):
        """Reads frames until pred(frame) holds; returns that frame, or None at EOF."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            f = self.read_frame(timeout=max(0.1, deadline - time.time()))
            if f is None or pred(f):
                return f
        raise AssertionError("timed out")

    def close(self):
        self.s.close()


def goaway_code(f):
    return struct.unpack(">I", f[3][4:8])[0]


def test_settings_advertise_the_limits(front, pki):
    c = H2(front, pki)
    c.until(lambda f: f[0] == SETTINGS and not f[1] & ACK)
    # MAX_CONCURRENT_STREAMS 100, MAX_HEADER_LIST_SIZE the head limit, no push.
    assert c.server_settings[3] == 100 and c.server_settings[6] == 65536 and c.server_settings[2] == 0
    c.close()


def test_many_streams_on_one_connection_mix_every_kind(front, pki):
    c = H2(front, pki)
    sids, want = [], {}
    n = len(front.fpm.params_seen)
    for i in range(90):
        sid = 1 + 2 * i
        kind = i % 3
        if kind == 0:
            c.request(sid, f"/hello.txt?many={i}")
            want[sid] = b"hello over h2\n"
        elif kind == 1:
            c.request(sid, f"/echo?i={i}", host="app.localhost", method="POST",
                      extra=[("content-length", str(len(b"body %d" % i)))], end_stream=False)
            c.send(DATA, END_STREAM, sid, b"body %d" % i)
            want[sid] = b"body %d" % i
        else:
            c.request(sid, f"/info.php?i={i}", host="php.localhost")
            want[sid] = None
        sids.append(sid)
    got = c.responses(sids, timeout=60)
    for sid in sids:
        status, body, rst = got[sid]
        assert status == 200 and rst is None, (sid, got[sid])
        if want[sid] is not None:
            assert body == want[sid], sid
    assert len(front.fpm.params_seen) - n == 30
    # Each stream is logged as a request.
    log = front.sites["blog"].access_log
    assert wait_until(lambda: len([l for l in log().splitlines()
                                   if "many=" in l and " HTTP/2.0\" 200 14 " in l]) == 30, 5), log()
    c.close()


def test_one_after_another_on_one_connection(front, pki):
    """Streams one after the other reuse the relay to the serving connection: every
    kind of answer (files, HEAD, 304, 404, bodies both ways, PHP, a close-delimited
    proxied answer, a refused body) leaves it fit for the next, or closes it."""
    c = H2(front, pki)
    etag = None
    sid = 1
    for rnd in range(3):
        steps = [("blog.localhost", "GET", "/hello.txt", [], None, 200, b"hello over h2\n"),
                 ("blog.localhost", "HEAD", "/big.bin", [], None, 200, b""),
                 ("blog.localhost", "GET", "/nope", [], None, 404, None),
                 ("app.localhost", "POST", "/echo", [("content-length", "5")], b"abcde", 200, b"abcde"),
                 ("app.localhost", "POST", "/echo", [], b"chunked body", 200, b"chunked body"),
                 ("php.localhost", "GET", "/info.php", [], None, 200, None),
                 ("app.localhost", "GET", "/close", [], None, 200, b"until close"),
                 ("small.localhost", "POST", "/echo", [("content-length", "5000")], b"x" * 5000, 413, None),
                 ("blog.localhost", "GET", "/big.bin", [], None, 200, None),
                 ("blog.localhost", "GET", "/hello.txt", [("if-none-match", etag or '"x"')], None,
                  304 if etag else 200, None)]
        for host, method, path, extra, body, status, want in steps:
            c.request(sid, path, host=host, method=method, extra=extra, end_stream=body is None)
            if body is not None:
                c.send(DATA, END_STREAM, sid, body)
            got = c.responses([sid])[sid]
            assert got[0] == status and got[2] is None, (rnd, path, got[:1], got[2])
            if want is not None:
                assert got[1] == want, (rnd, path)
            if path == "/big.bin" and method == "GET":
                assert len(got[1]) == BIG
            sid += 2
        if etag is None:
            etag = curl(front, pki, "blog.localhost", "/hello.txt")[1]["etag"]
    c.close()


def test_streams_up_to_the_limit_and_past_it(front, pki):
    c = H2(front, pki)
    c.until(lambda f: f[0] == SETTINGS and f[1] & ACK)   # our ack of its settings is in
    sids = [1 + 2 * i for i in range(100)]
    for sid in sids:
        c.request(sid, "/stream?n=3&delay=0.3", host="app.localhost")
    got = c.responses(sids, timeout=60)
    assert all(got[s][:2] == (200, b"chunk 0\nchunk 1\nchunk 2\n") for s in sids), got
    c.close()
    # One past the limit, once the client acknowledged it: nghttp2 makes that a
    # connection error (RFC 9113 §5.1.2 allows a stream or a connection error).
    c = H2(front, pki)
    c.until(lambda f: f[0] == SETTINGS and f[1] & ACK)
    for sid in [1 + 2 * i for i in range(101)]:
        c.request(sid, "/stream?n=3&delay=0.3", host="app.localhost")
    f = c.until(lambda f: f[0] == GOAWAY or (f[0] == RST_STREAM and f[2] == 201), timeout=10)
    assert f is not None and (goaway_code(f) if f[0] == GOAWAY else struct.unpack(">I", f[3])[0]) in (
        PROTOCOL_ERROR, REFUSED_STREAM), f
    c.close()


def test_proxied_answer_is_streamed(front, pki):
    c = H2(front, pki)
    t0 = time.time()
    c.request(1, "/stream?n=4&delay=0.5", host="app.localhost")
    f = c.until(lambda f: f[0] == DATA and f[2] == 1 and f[3])
    assert f[3] == b"chunk 0\n" and time.time() - t0 < 1.0
    rest = c.responses([1])[1][1]
    assert rest == b"chunk 1\nchunk 2\nchunk 3\n" and time.time() - t0 >= 1.4
    c.close()


def test_oversized_header_list_gets_431(front, pki):
    c = H2(front, pki)
    block = hpack([(":method", "GET"), (":scheme", "https"), (":authority", "blog.localhost"),
                   (":path", "/hello.txt")] + [("x-big-%d" % i, "v" * 8000) for i in range(9)])
    # In frames of 16 KiB: HEADERS then CONTINUATIONs.
    parts = [block[i:i + 16384] for i in range(0, len(block), 16384)]
    c.send(HEADERS, END_STREAM | (END_HEADERS if len(parts) == 1 else 0), 1, parts[0])
    for i, p in enumerate(parts[1:]):
        c.send(CONTINUATION, END_HEADERS if i == len(parts) - 2 else 0, 1, p)
    got = c.responses([1])
    assert got[1][0] == 431 or got[1][2] is not None, got
    # The connection goes on.
    c.request(3, "/hello.txt")
    assert c.responses([3])[3][1] == b"hello over h2\n"
    c.close()


def test_hpack_bomb_is_refused_and_the_connection_survives(front, pki):
    c = H2(front, pki)
    # One 4000-byte entry in the dynamic table, then referenced 4000 times: 16 MB of
    # fields from 8 KB of block.
    block = hpack([(":method", "GET"), (":scheme", "https"), (":authority", "blog.localhost"),
                   (":path", "/hello.txt")]) + hpack([("x-bomb", "b" * 4000)], index=True)
    block += bytes([0x80 | 62]) * 4000
    c.send(HEADERS, END_STREAM | END_HEADERS, 1, block)
    got = c.responses([1])
    assert got[1][0] == 431 or got[1][2] is not None, got
    c.close()
    c = H2(front, pki)
    c.request(1, "/hello.txt")
    assert c.responses([1])[1][0] == 200
    c.close()


def test_connection_specific_fields_are_refused(front, pki):
    c = H2(front, pki)
    for sid, field in ((1, ("connection", "keep-alive")), (3, ("transfer-encoding", "chunked")),
                       (5, ("te", "gzip")), (7, ("upgrade", "websocket")), (9, ("keep-alive", "1"))):
        c.request(sid, "/hello.txt", extra=[field])
    got = c.responses([1, 3, 5, 7, 9])
    assert all(got[s][2] == PROTOCOL_ERROR for s in (1, 3, 5, 7, 9)), got
    # te: trailers is allowed.
    c.request(11, "/hello.txt", extra=[("te", "trailers")])
    assert c.responses([11])[11][0] == 200
    c.close()


def test_content_length_mismatch_is_a_stream_error(front, pki):
    c = H2(front, pki)
    c.request(1, "/echo", host="app.localhost", method="POST", extra=[("content-length", "10")],
              end_stream=False)
    c.send(DATA, END_STREAM, 1, b"12345")
    c.request(3, "/echo", host="app.localhost", method="POST", extra=[("content-length", "2")],
              end_stream=False)
    c.send(DATA, END_STREAM, 3, b"12345")
    got = c.responses([1, 3])
    assert got[1][2] == PROTOCOL_ERROR and got[3][2] == PROTOCOL_ERROR, got
    c.close()


def test_rapid_reset_gets_goaway(front, pki):
    c = H2(front, pki)
    burst = b""
    for i in range(1000):
        sid = 1 + 2 * i
        burst += c.frame(HEADERS, END_HEADERS | END_STREAM, sid,
                         hpack([(":method", "GET"), (":scheme", "https"), (":authority", "app.localhost"),
                                (":path", "/sleep?s=1")]))
        burst += c.frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL))
    try:
        c.s.sendall(burst)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass
    f = c.until(lambda f: f[0] == GOAWAY, timeout=15)
    assert f is not None and goaway_code(f) == CALM
    # berth's allowance (a burst of 200), well before nghttp2's own 1000 if it has one.
    assert struct.unpack(">I", f[3][:4])[0] < 2 * 250
    c.close()
    # Everyone else is still served.
    assert curl(front, pki, "blog.localhost", "/hello.txt")[0] == 200


def test_continuation_flood_gets_goaway(front, pki):
    c = H2(front, pki)
    c.send(HEADERS, 0, 1, hpack([(":method", "GET"), (":scheme", "https"), (":authority", "blog.localhost"),
                                 (":path", "/hello.txt")]))
    try:
        for i in range(500):
            c.send(CONTINUATION, 0, 1, hpack([("x-c", "v")]))
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass
    f = c.until(lambda f: f[0] == GOAWAY, timeout=10)
    assert f is not None and goaway_code(f) == CALM
    c.close()


def test_ping_and_settings_floods_end_the_connection(front, pki):
    for kind in (PING, SETTINGS):
        c = H2(front, pki)
        c.s.settimeout(10)
        frames = (c.frame(PING, 0, 0, b"12345678") if kind == PING else c.frame(SETTINGS, 0, 0)) * 5000
        t0 = time.time()
        closed = False
        try:
            # Never reading: the ACKs pile up on berth's side until it gives up.
            for _ in range(40):
                c.s.sendall(frames)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout, OSError):
            closed = True
        if not closed:
            f = c.until(lambda f: f[0] == GOAWAY, timeout=15)
            closed = f is None or goaway_code(f) == CALM
        assert closed and time.time() - t0 < 20
        c.close()
    assert curl(front, pki, "blog.localhost", "/hello.txt")[0] == 200


def test_settings_not_acknowledged_time_out(front, pki):
    c = H2(front, pki, ack=False)
    t0 = time.time()
    f = c.until(lambda f: f[0] == GOAWAY, timeout=10)
    assert f is not None and goaway_code(f) == SETTINGS_TIMEOUT and time.time() - t0 < 5
    c.close()


def test_idle_connection_gets_goaway(front, pki):
    c = H2(front, pki)
    c.request(1, "/hello.txt")
    assert c.responses([1])[1][0] == 200
    t0 = time.time()
    f = c.until(lambda f: f[0] == GOAWAY, timeout=15)
    assert f is not None and goaway_code(f) == NO_ERROR and 3 < time.time() - t0 < 8
    assert c.until(lambda f: False, timeout=5) is None   # then it closes
    c.close()


def worker_rss_kb(front):
    total = 0
    for pid in front.worker_pids():
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def test_slow_reader_of_big_files_is_not_buffered(front, pki):
    """Ten streams of a 24 MiB file to a client whose windows stay shut: the worker
    holds a bounded amount per stream (the pair's buffers and 64 KiB), not the
    files; opened again, every byte arrives."""
    c = H2(front, pki, settings=[(4, 16384)])   # INITIAL_WINDOW_SIZE 16 KiB
    c.until(lambda f: f[0] == SETTINGS and f[1] & ACK)
    before = worker_rss_kb(front)
    sids = [1 + 2 * i for i in range(10)]
    for sid in sids:
        c.request(sid, "/huge.bin")
    time.sleep(2)
    grown = worker_rss_kb(front) - before
    assert grown < 40 * 1024, grown   # 10 x 24 MiB would be 240 MiB
    # Now read it all (responses() opens the windows as it reads).
    want = hashlib.sha256(open(os.path.join(front.sites["blog"].public, "huge.bin"), "rb").read()).digest()
    c.send(WINDOW_UPDATE, 0, 0, struct.pack(">I", 64 * 1024 * 1024))
    for sid in sids:
        c.send(WINDOW_UPDATE, 0, sid, struct.pack(">I", 8 * 1024 * 1024))
    got = c.responses(sids, timeout=120)
    for sid in sids:
        assert got[sid][0] == 200 and hashlib.sha256(got[sid][1]).digest() == want, sid
    c.close()


def upload(c, sid, payload, window):
    """Sends payload as sid's body within the windows berth opens (window: {0:
    connection, sid: stream} as left), reading frames while it waits."""
    sent = 0
    while sent < len(payload):
        n = min(16384, len(payload) - sent, window[0], window[sid])
        if n <= 0:
            f = c.read_frame(aside=False)
            assert f is not None
            if f[0] == WINDOW_UPDATE and f[2] in window:
                window[f[2]] += struct.unpack(">I", f[3])[0] & 0x7fffffff
            else:
                c.pending.append(f)   # an answer's frames: for responses()
            continue
        c.send(DATA, END_STREAM if sent + n == len(payload) else 0, sid, payload[sent:sent + n])
        window[0] -= n
        window[sid] -= n
        sent += n


def test_upload_is_flow_controlled(front, pki):
    """The client may send only what the window allows; the window opens as the
    backend takes the bytes, and the body arrives whole."""
    c = H2(front, pki)
    payload = os.urandom(1024 * 1024)
    c.request(1, "/echo", host="app.localhost", method="POST", extra=[("content-length", str(len(payload)))],
              end_stream=False)
    c.until(lambda f: f[0] == SETTINGS and not f[1] & ACK)
    upload(c, 1, payload, {0: 65535, 1: c.server_settings.get(4, 65535)})
    got = c.responses([1], timeout=30)
    assert got[1][0] == 200 and got[1][1] == payload
    c.close()


def test_slow_reader_of_proxied_answers_is_not_buffered(pki):
    """Six 4 MiB answers from the backend to a client that does not read them: the
    backend is held back (the pairs and the proxy's buffers fill: it cannot write
    its answers whole), the worker does not take them in; read later, they arrive
    whole. (Its own front: the module's times a silent client out in 1.5 s.)"""
    state = tempfile.mkdtemp(prefix="berth-h2-slow-")
    f = Front(state, workers=1, tls=pki.leaf("default-slow", ["app.localhost"]))
    backend = Backend(os.path.join(state, "app.sock"))
    f.add_site("app", 1004, reload=False, type="app", backend=os.path.join(state, "app.sock"))
    f.start()
    try:
        c = H2(f, pki, host="app.localhost", settings=[(4, 16384)])
        c.until(lambda fr: fr[0] == SETTINGS and not fr[1] & ACK)
        window = {0: 65535}
        payloads = {}
        for i in range(6):
            sid = 1 + 2 * i
            payloads[sid] = os.urandom(4 * 1024 * 1024)
            c.request(sid, "/echo", method="POST", extra=[("content-length", str(len(payloads[sid])))],
                      end_stream=False)
            window[sid] = c.server_settings.get(4, 65535)
        for sid, p in payloads.items():
            upload(c, sid, p, window)
        time.sleep(2)
        # Had the front read the answers in, the backend would have written them whole.
        assert backend.echoed == []
        c.send(WINDOW_UPDATE, 0, 0, struct.pack(">I", 64 * 1024 * 1024))
        for sid in payloads:
            c.send(WINDOW_UPDATE, 0, sid, struct.pack(">I", 8 * 1024 * 1024))
        got = c.responses(list(payloads), timeout=120)
        for sid, p in payloads.items():
            assert got[sid][0] == 200 and got[sid][1] == p, sid
        assert len(backend.echoed) == 6
        c.close()
    finally:
        backend.stop()
        f.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_per_client_connection_cap_applies_to_h2(pki):
    state = tempfile.mkdtemp(prefix="berth-h2-cap-")
    default = pki.leaf("default-cap", ["blog.localhost"])
    f = Front(state, workers=1, tls=default, extra_args=["--max-conns-per-client", "2"])
    site = f.add_site("blog", 1001, reload=False)
    site.write("hello.txt", "capped\n")
    f.start()
    try:
        a, b = H2(f, pki), H2(f, pki)
        for c in (a, b):
            c.request(1, "/hello.txt")
        # Each connection's many streams do not count; a third connection does.
        for c in (a, b):
            sids = [3 + 2 * i for i in range(20)]
            for sid in sids:
                c.request(sid, "/hello.txt")
            got = c.responses([1] + sids)
            assert all(v[0] == 200 for v in got.values())
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError, AssertionError)):
            c3 = H2(f, pki)
            c3.request(1, "/hello.txt")
            c3.responses([1], timeout=5)
        a.close()
        b.close()
    finally:
        f.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_streams_count_against_the_workers_connection_cap(pki):
    """A stream's request is served by a connection of the worker, which counts
    against --max-conns like any: past it, streams are refused (REFUSED_STREAM),
    not served without bound."""
    state = tempfile.mkdtemp(prefix="berth-h2-wcap-")
    f = Front(state, workers=1, tls=pki.leaf("default-wcap", ["app.localhost"]), extra_args=["--max-conns", "5"])
    backend = Backend(os.path.join(state, "app.sock"))
    f.add_site("app", 1004, reload=False, type="app", backend=os.path.join(state, "app.sock"))
    f.start()
    try:
        c = H2(f, pki, host="app.localhost")
        sids = [1 + 2 * i for i in range(10)]
        for sid in sids:
            c.request(sid, "/stream?n=2&delay=0.5")
        got = c.responses(sids, timeout=30)
        served = [s for s in sids if got[s][0] == 200 and got[s][1] == b"chunk 0\nchunk 1\n"]
        refused = [s for s in sids if got[s][2] == REFUSED_STREAM]
        # The h2 connection is one of the five.
        assert len(served) == 4 and len(refused) == 6, got
        # Once they are done, the connection serves again.
        c.request(21, "/stream?n=1")
        assert c.responses([21])[21][:2] == (200, b"chunk 0\n")
        c.close()
    finally:
        backend.stop()
        f.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_http2_can_be_turned_off(pki):
    state = tempfile.mkdtemp(prefix="berth-h2-off-")
    default = pki.leaf("default-off", ["blog.localhost"])
    f = Front(state, workers=1, tls=default, extra_args=["--no-http2"])
    site = f.add_site("blog", 1001, reload=False)
    site.write("hello.txt", "off\n")
    f.start()
    try:
        for offer, want in ((["h2", "http/1.1"], "http/1.1"), (["h2"], None)):
            ctx = ssl.create_default_context(cafile=pki.cert)
            ctx.set_alpn_protocols(offer)
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", f.tls_port), timeout=5),
                                 server_hostname="blog.localhost") as s:
                assert s.selected_alpn_protocol() == want
    finally:
        f.stop()
        shutil.rmtree(state, ignore_errors=True)


# ---- berthd ----

def test_berthd_serves_sites_and_the_panel_over_h2(daemon_factory):
    """The whole daemon: a site and the panel (proxied to berthd's panel socket)
    over HTTP/2 with berthd's own CA, and front_http2: false in berth.yaml."""
    d = daemon_factory()
    d.https = ["127.0.0.1:0"]
    d.start()
    st = d.status()
    port = int([l for l in st["listeners"] if l["kind"] == "https"][0]["address"].rsplit(":", 1)[1])
    ca = st["tls_ca"]
    d.ok("site", "create", "blog")
    page = d.state_dir / "sites" / "blog" / "public" / "index.html"
    page.write_text("<h1>blog over h2</h1>")
    os.chown(page, d.ok("site", "show", "blog")["uid"], 199999)
    os.chmod(page, 0o640)

    def get(host, path="/", http="--http2"):
        r = subprocess.run(["curl", "-sS", http, "--cacert", ca, "--resolve", f"{host}:{port}:127.0.0.1",
                            "-o", "-", "-w", "\n%{http_code} %{http_version}", f"https://{host}:{port}{path}"],
                           capture_output=True, timeout=30)
        body, _, tail = r.stdout.rpartition(b"\n")
        code, version = tail.decode().split() if r.returncode == 0 else ("0", "-")
        return int(code), version, body

    assert wait_until(lambda: get("blog.test.berth")[0] == 200, 10)
    assert get("blog.test.berth") == (200, "2", b"<h1>blog over h2</h1>")
    code, version, body = get("panel.test.berth")
    assert (code, version) == (200, "2") and b'<script src="/assets/panel.js"' in body
    assert get("panel.test.berth", "/api/v1/sites")[:2] == (401, "2")
    log = d.state_dir / "sites" / "blog" / "logs" / "access.log"
    assert wait_until(lambda: log.exists() and '"GET / HTTP/2.0" 200' in log.read_text(), 5)
    d.stop()
    with open(d.config_path(), "a") as f:
        f.write("front_http2: false\n")
    d.start()
    st = d.status()
    port = int([l for l in st["listeners"] if l["kind"] == "https"][0]["address"].rsplit(":", 1)[1])
    assert wait_until(lambda: get("blog.test.berth")[0] == 200, 10)
    assert get("blog.test.berth")[:2] == (200, "1.1")
