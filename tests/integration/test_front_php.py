"""PHP sites through the front: the front's FastCGI client (src/front/fcgi.c)
against the real php8.2-fpm, over real HTTP.

php-fpm runs with the configuration berthd generates (tests/helpers/php-fpm-config,
i.e. php_fpm_config_write) plus what the sandbox would otherwise provide: a pool
`chroot` whose tree holds the site at /site (so php-fpm sees /site/public/...
exactly as in a sandbox), and the site's uid as the pool user. As berthd does, the
test binds the unix socket and hands it to php-fpm as fd 3 (FPM_SOCKETS); it then
closes its own copy, so a dead php-fpm means "connection refused".

The front is front-harness (front_helpers.Front) with a PHP route whose backend is
that socket. Every test owns its temp dir, php-fpm and front, and stops them by pid.
"""
import hashlib
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import require
from front_helpers import (Front, build_dir, build_request, open_conn, raw, read_response, request, socket_inodes,
                           wait_until)

PHP_FPM = "/usr/sbin/php-fpm8.2"
UID = 2301
HOST = "php.localhost"
MAX_BODY = 24 << 20

SCRIPTS = {
    "info.php": "<?php phpinfo();\n",
    "hello.php": "<?php echo 'hello from ', PHP_SAPI;\n",
    "env.php": """<?php
header('Content-Type: application/json');
$keys = ['SCRIPT_FILENAME', 'SCRIPT_NAME', 'PATH_INFO', 'DOCUMENT_ROOT', 'REQUEST_URI',
         'QUERY_STRING', 'REQUEST_METHOD', 'REMOTE_ADDR', 'REMOTE_PORT', 'SERVER_NAME',
         'SERVER_PORT', 'HTTPS', 'HTTP_X_TEST', 'HTTP_X_OTHER', 'HTTP_HOST', 'HTTP_PROXY',
         'CONTENT_TYPE', 'CONTENT_LENGTH', 'PHP_SELF'];
$out = [];
foreach ($keys as $k) { $out[$k] = $_SERVER[$k] ?? null; }
echo json_encode($out);
""",
    "post.php": """<?php
header('Content-Type: text/plain');
echo 'length=', $_SERVER['CONTENT_LENGTH'] ?? '', "\\n";
echo 'type=', $_SERVER['CONTENT_TYPE'] ?? '', "\\n";
echo 'name=', $_POST['name'] ?? '', "\\n";
echo 'raw=', file_get_contents('php://input'), "\\n";
""",
    "sha.php": """<?php
$in = fopen('php://input', 'rb');
$h = hash_init('sha256');
$n = 0;
while (!feof($in)) { $d = fread($in, 65536); $n += strlen($d); hash_update($h, $d); }
echo $n, ' ', hash_final($h);
""",
    "index.php": "<?php echo 'router sees ', $_SERVER['REQUEST_URI'], ' via ', $_SERVER['SCRIPT_NAME'];\n",
    "session.php": """<?php
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
echo 'visit ', $_SESSION['n'];
""",
    "cookies.php": "<?php setcookie('a', '1'); setcookie('b', '2'); echo 'cookies';\n",
    "fatal.php": "<?php undefined_function_berth_marker();\n",
    "escape.php": "<?php error_log(\"escape_marker \\x1b[31mred\\x07\"); echo 'ok';\n",
    "sleep.php": "<?php sleep((int)($_GET['s'] ?? 3)); echo 'woke';\n",
    "pid.php": "<?php echo getmypid();\n",
    "big.php": "<?php mt_srand(7); for ($i = 0; $i < 2048; $i++) { echo str_repeat(chr(65 + mt_rand(0, 25)), 1024); }\n",
    "stream.php": """<?php
while (ob_get_level()) { ob_end_flush(); }
echo "first\\n";
flush();
for ($i = 0; $i < 200 && !file_exists('/site/private/go'); $i++) { usleep(50000); }
echo "second\\n";
""",
    "ticks.php": """<?php
while (ob_get_level()) { ob_end_flush(); }
for ($i = 1; $i <= 40; $i++) {
    file_put_contents('/site/private/ticks', (string)$i);
    echo "tick $i\n";
    flush();
    usleep(100000);
}
""",
    "status.php": "<?php http_response_code(503); echo 'custom maintenance page';\n",
    "empty503.php": "<?php http_response_code(503);\n",
    "image.png": "<?php file_put_contents('/site/private/executed', 'yes'); echo 'EXECUTED';\n",
    "logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
}


class Php:
    """The site's php-fpm pool, started and stopped by pid."""

    def __init__(self, site, state_dir, children=1):
        self.site = site
        self.dir = os.path.join(str(state_dir), "fpm")
        os.makedirs(self.dir, exist_ok=True)
        self.sock_path = os.path.join(self.dir, "php.sock")
        self.children = children
        self.proc = None

    def config(self):
        helper = os.path.join(build_dir(), "tests", "helpers", "php-fpm-config")
        settings = '{"pm":"static","pm.max_children":"%d"}' % self.children
        text = subprocess.run([helper, self.site.name, str(MAX_BODY), settings], check=True,
                              capture_output=True, text=True).stdout
        # What the sandbox provides: /site, the site's uid, a private /tmp.
        root = os.path.dirname(self.site.dir)
        text = text.replace("pid = /tmp/php-fpm.pid", f"pid = {self.dir}/php-fpm.pid")
        text = text.replace(f"\n[{self.site.name}]\n",
                            f"\n[{self.site.name}]\nchroot = {root}\nuser = {self.site.uid}\n"
                            f"group = {self.site.uid}\n")
        assert f"chroot = {root}" in text
        return text

    def start(self):
        for d in ("tmp", "tmp/sessions", "tmp/uploads"):
            p = os.path.join(self.site.dir, d)
            os.makedirs(p, exist_ok=True)
            os.chown(p, self.site.uid, self.site.uid)
            os.chmod(p, 0o700)
        conf = os.path.join(self.dir, "php-fpm.conf")
        with open(conf, "w") as f:
            f.write(self.config())
        if os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.sock_path)
        os.chmod(self.sock_path, 0o777)   # the front's workers run as another uid
        sock.listen(128)
        fd = sock.fileno()

        def child():
            os.dup2(fd, 3)
            os.setpgid(0, 0)

        self.log = os.path.join(self.dir, "fpm.log")
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen([PHP_FPM, "-R", "-F", "-y", conf],
                                     env={"FPM_SOCKETS": "/run/berth/php-fpm.sock=3",
                                          "PATH": "/usr/bin:/bin"},
                                     preexec_fn=child, pass_fds=(3,), stdout=self.logf,
                                     stderr=self.logf)
        try:
            ok = wait_until(lambda: "ready to handle connections" in open(self.log).read()
                            or self.proc.poll() is not None, timeout=15)
            assert ok and self.proc.poll() is None, open(self.log).read()
        finally:
            sock.close()   # php-fpm holds the socket now
        return self

    def kill(self):
        """SIGKILL to the whole pool (master and children), like a crash."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self.logf.close()


@pytest.fixture
def php_env(tmp_path):
    """A PHP site served by the front, with php-fpm (1 child) behind it."""
    yield from php_served(tmp_path)


@pytest.fixture
def php_limited(tmp_path):
    """The same with one worker and a limit of one request at the site's backend."""
    yield from php_served(tmp_path, workers=1, extra_args=["--site-max-requests", "1"])


def php_served(tmp_path, workers=2, extra_args=()):
    require(os.path.exists(PHP_FPM), f"{PHP_FPM} is not installed")
    require(os.getuid() == 0, "php-fpm's chroot needs root")
    front = Front(tmp_path / "front", workers=workers, extra_args=extra_args)
    php_sock = os.path.join(str(tmp_path / "front"), "fpm", "php.sock")
    site = front.add_site("site", UID, reload=False, type="php", backend=php_sock,
                          hosts=[HOST], max_body=MAX_BODY, timeout_ms=3000)
    for name, data in SCRIPTS.items():
        site.write(name, data)
    site.write("blog/.hidden.php", "<?php echo 'hidden';\n")
    php = Php(site, tmp_path / "front").start()
    front.start()
    env = {"front": front, "site": site, "php": php, "port": front.port}
    try:
        yield env
    finally:
        try:
            front.stop()
        finally:
            php.stop()


def get(env, path, **kw):
    return request(env["port"], HOST, path, **kw)


def test_http_host_is_the_authority_the_request_was_routed_by(php_env):
    # An absolute-form target wins over the Host field (RFC 9112 3.2.2): the script
    # must not see the other, say when it builds a password-reset link.
    resp = raw(php_env["port"], f"GET http://{HOST}/env.php HTTP/1.1\r\nHost: evil.example\r\n"
               "Connection: close\r\n\r\n".encode())
    env = json.loads(resp.split(b"\r\n\r\n", 1)[1])
    assert env["SERVER_NAME"] == HOST and env["HTTP_HOST"] == HOST, env


def test_early_answers_on_a_php_site_close_when_a_body_is_unread(php_env):
    # The body is a whole request for another page: read as the next request, it
    # would be answered though the client (or a proxy before berth) meant it as data.
    smuggled = f"GET /hello.php HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    for head, status in (("POST /.env", 404), ("POST /%00", 400), ("OPTIONS *", 200), ("POST /nope.php", 404)):
        resp = raw(php_env["port"], f"{head} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(smuggled)}\r\n\r\n"
                   .encode() + smuggled)
        assert resp.startswith(b"HTTP/1.1 %d " % status) and resp.count(b"HTTP/1.1 ") == 1, (head, resp)


@pytest.fixture
def php_one_worker(tmp_path):
    yield from php_served(tmp_path, workers=1)


def test_chunked_bodies_held_by_a_worker_are_bounded(php_one_worker):
    # A chunked body waits in the worker (memory, then a memfd) until its end: a
    # client trickling big ones over many connections must not make the worker
    # hold them without bound. 256 MiB per worker; the 12th body of 22 MiB is over.
    port = php_one_worker["port"]
    head = f"POST /post.php HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    chunk = b"100000\r\n" + b"x" * (1 << 20) + b"\r\n"
    conns, refused = [], []
    try:
        for i in range(12):
            s = open_conn(port, timeout=10)
            conns.append(s)
            try:
                s.sendall(head)
                for _ in range(22):
                    s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            s.settimeout(0.5 if i < 11 else 10)
            try:
                data = s.recv(200)
            except socket.timeout:
                data = b""
            if data:
                refused.append((i, data.split(b"\r\n", 1)[0]))
        assert refused == [(11, b"HTTP/1.1 503 Service Unavailable")], refused
    finally:
        for s in conns:
            s.close()
    # Closed connections give their room back.
    def small_post():
        st, _, body = request(port, HOST, "/post.php", method="POST", body=b"6\r\nberth!\r\n0\r\n\r\n",
                              headers={"Transfer-Encoding": "chunked"})
        return st == 200 and b"length=6\n" in body
    assert wait_until(small_post, 5)


def test_php_site_over_its_request_limit_gets_503(php_limited):
    s = open_conn(php_limited["port"], timeout=10)
    s.sendall(build_request(HOST, "/sleep.php?s=1"))
    try:
        # Once the script runs, the site's one place is taken.
        assert wait_until(lambda: get(php_limited, "/hello.php")[0] == 503, 3)
        st, h, _ = get(php_limited, "/hello.php")
        assert st == 503 and h.get("retry-after") == "5"
        assert read_response(s)[::2] == (200, b"woke")
    finally:
        s.close()
    # Each finished request gives its place back.
    for _ in range(5):
        assert get(php_limited, "/hello.php")[0] == 200


def error_log(site):
    try:
        return open(os.path.join(site.logs, "error.log")).read()
    except FileNotFoundError:
        return ""


def test_phpinfo_and_hello(php_env):
    st, h, body = get(php_env, "/info.php")
    assert st == 200
    assert h["content-type"] == "text/html; charset=UTF-8"
    assert h["server"] == "berth"
    assert b"PHP Version 8.2" in body and b"FPM/FastCGI" in body
    st, h, body = get(php_env, "/hello.php")
    assert (st, body) == (200, b"hello from fpm-fcgi")
    # php-fpm ended the request with the page: its exact length, no chunking
    assert h["content-length"] == str(len(body)) and "transfer-encoding" not in h
    st, h, body = get(php_env, "/hello.php", method="HEAD")
    assert st == 200 and body == b""


def test_cgi_variables(php_env):
    s = open_conn(php_env["port"])
    local_port = s.s.getsockname()[1]
    s.sendall(build_request(HOST + ":%d" % php_env["port"], "/env.php/b/c?a=1&z=%41",
                            headers={"X-Test": "yes", "X-Other": "o", "Proxy": "http://evil:1",
                                     "X_Test": "forged"}))
    st, h, body = read_response(s)
    s.close()
    assert st == 200, body
    import json
    env = json.loads(body)
    assert env["SCRIPT_FILENAME"] == "/site/public/env.php"
    assert env["SCRIPT_NAME"] == "/env.php"
    assert env["PATH_INFO"] == "/b/c"
    assert env["PHP_SELF"] == "/env.php/b/c"
    assert env["DOCUMENT_ROOT"] == "/site/public"
    assert env["REQUEST_URI"] == "/env.php/b/c?a=1&z=%41"
    assert env["QUERY_STRING"] == "a=1&z=%41"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(local_port)
    assert env["SERVER_NAME"] == HOST
    assert env["SERVER_PORT"] == str(php_env["port"])
    assert env["HTTPS"] in (None, "", "off")
    assert env["HTTP_X_TEST"] == "yes"      # not the forged X_Test spelling
    assert env["HTTP_X_OTHER"] == "o"
    assert env["HTTP_PROXY"] is None        # httpoxy
    assert env["CONTENT_LENGTH"] in (None, "")


def test_post_form_and_raw(php_env):
    st, _, body = get(php_env, "/post.php", method="POST", body="name=berth+php&x=1",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 200
    assert b"length=18\n" in body and b"name=berth php\n" in body
    st, _, body = get(php_env, "/post.php", method="PUT", body=b"raw \x00 bytes",
                      headers={"Content-Type": "application/octet-stream"})
    assert st == 200
    assert b"type=application/octet-stream\n" in body and b"raw=raw \x00 bytes\n" in body


def test_big_upload_intact_and_limit(php_env):
    data = os.urandom(20 << 20)
    s = open_conn(php_env["port"], timeout=60)
    s.sendall(build_request(HOST, "/sha.php", "POST", {"Content-Type": "application/octet-stream"}, data))
    st, _, body = read_response(s)
    assert st == 200
    assert body.decode() == f"{len(data)} {hashlib.sha256(data).hexdigest()}"
    # the connection goes on
    s.sendall(build_request(HOST, "/hello.php"))
    assert read_response(s)[0] == 200
    s.close()
    # over the site's max_body: refused before PHP sees anything
    s = open_conn(php_env["port"], timeout=30)
    s.sendall(f"POST /sha.php HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode())
    st, h, _ = read_response(s)
    assert st == 413 and h.get("connection") == "close"
    s.close()


def chunked(data, size=7000):
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\n\r\n"


def test_chunked_upload(php_env):
    for n in (10, 300_000):   # in memory, and spooled to a file
        data = os.urandom(n)
        s = open_conn(php_env["port"], timeout=30)
        s.sendall(build_request(HOST, "/sha.php", "POST", {"Transfer-Encoding": "chunked"}, chunked(data)))
        st, _, body = read_response(s)
        assert st == 200
        assert body.decode() == f"{n} {hashlib.sha256(data).hexdigest()}"
        # pipelined after a chunked body: still in order on the same connection
        s.sendall(build_request(HOST, "/hello.php"))
        assert read_response(s)[2] == b"hello from fpm-fcgi"
        s.close()
    # over the limit mid-chunked: 413
    s = open_conn(php_env["port"], timeout=30)
    s.sendall(f"POST /sha.php HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    block = b"x" * (1 << 20)
    status = None
    try:
        for _ in range(MAX_BODY // len(block) + 2):
            s.sendall(b"%x\r\n%s\r\n" % (len(block), block))
    except (BrokenPipeError, ConnectionResetError):
        pass
    status = read_response(s)[0]
    assert status == 413
    s.close()


def test_expect_continue(php_env):
    s = open_conn(php_env["port"])
    s.sendall(f"POST /post.php HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n"
              "Expect: 100-continue\r\nContent-Type: text/plain\r\n\r\n".encode())
    st, _, _ = read_response(s)
    assert st == 100
    s.sendall(b"hello")
    st, _, body = read_response(s)
    assert st == 200 and b"raw=hello\n" in body
    s.close()


def test_front_controller_and_routing(php_env):
    site = php_env["site"]
    st, _, body = get(php_env, "/2024/hello/?p=1")
    assert st == 200
    assert body == b"router sees /2024/hello/?p=1 via /index.php"
    assert get(php_env, "/missing.php")[0] == 404
    assert get(php_env, "/blog/.hidden.php")[0] == 404
    # the cgi.fix_pathinfo trap: nothing runs
    st, _, body = get(php_env, "/image.png/x.php")
    assert st == 404 and b"EXECUTED" not in body
    assert not os.path.exists(os.path.join(site.private, "executed"))
    # an "image" is a file, not a script
    st, h, body = get(php_env, "/image.png")
    assert st == 200 and h["content-type"] == "image/png" and body.startswith(b"<?php")
    assert not os.path.exists(os.path.join(site.private, "executed"))


def test_static_files_without_php(php_env):
    php_env["php"].stop()
    st, h, body = get(php_env, "/logo.png")
    assert st == 200 and body == SCRIPTS["logo.png"]
    # and scripts say the backend is gone
    assert get(php_env, "/hello.php")[0] == 502


def test_sessions(php_env):
    st, h, body = get(php_env, "/session.php")
    assert (st, body) == (200, b"visit 1")
    cookie = h["set-cookie"].split(";")[0]
    assert cookie.startswith("PHPSESSID=")
    st, _, body = get(php_env, "/session.php", headers={"Cookie": cookie})
    assert (st, body) == (200, b"visit 2")


def test_multiple_set_cookie(php_env):
    s = open_conn(php_env["port"])
    s.sendall(build_request(HOST, "/cookies.php"))
    data = b""
    while b"cookies" not in data:
        data += s.recv(65536)
    s.close()
    head = data.split(b"\r\n\r\n")[0].decode()
    cookies = [line for line in head.split("\r\n") if line.lower().startswith("set-cookie:")]
    assert cookies == ["Set-Cookie: a=1", "Set-Cookie: b=2"]


def test_control_bytes_from_a_script_reach_the_error_log_escaped(php_env):
    assert get(php_env, "/escape.php")[::2] == (200, b"ok")
    log = wait_until(lambda: "escape_marker" in error_log(php_env["site"]) and error_log(php_env["site"]), 5)
    line = next(l for l in log.splitlines() if "escape_marker" in l)
    assert "escape_marker \\x1b[31mred\\x07" in line and "\x1b" not in log and "\x07" not in log


def test_fatal_gives_berth_page(php_env):
    st, h, body = get(php_env, "/fatal.php")
    assert st == 500
    assert b"<p>berth</p>" in body
    assert b"undefined_function" not in body and b"Fatal" not in body
    log = wait_until(lambda: "undefined_function_berth_marker" in error_log(php_env["site"])
                     and error_log(php_env["site"]), timeout=5)
    assert "undefined_function_berth_marker" in log
    # a 5xx with a body of its own keeps it; an empty one gets berth's page
    st, _, body = get(php_env, "/status.php")
    assert (st, body) == (503, b"custom maintenance page")
    st, _, body = get(php_env, "/empty503.php")
    assert st == 503 and b"<p>berth</p>" in body


def test_timeout_gives_504(php_env):
    st, _, body = get(php_env, "/sleep.php?s=8")
    assert st == 504, (body, error_log(php_env["site"]), php_env["site"].access_log())
    # error lines are buffered and flushed on the tick
    assert wait_until(lambda: "timed out" in error_log(php_env["site"]), timeout=5)


def test_php_killed_gives_502(php_env):
    s = open_conn(php_env["port"], timeout=10)
    s.sendall(build_request(HOST, "/sleep.php?s=1"))
    time.sleep(0.3)   # the script is running (not a timing assertion: either way 502)
    php_env["php"].kill()
    assert read_response(s)[0] == 502
    s.close()
    assert get(php_env, "/hello.php")[0] == 502


def test_keepalive_and_pooled_upstream(php_env):
    front = php_env["front"]
    s = open_conn(php_env["port"])
    s.sendall(build_request(HOST, "/logo.png"))   # static: no upstream yet
    assert read_response(s)[0] == 200
    before = socket_inodes(*front.worker_pids())
    seen = []
    pids = set()
    for _ in range(10):
        s.sendall(build_request(HOST, "/pid.php"))
        st, _, body = read_response(s)
        assert st == 200
        pids.add(body)
        # the upstream connection stays open after the answer, idle in the pool
        seen.extend(socket_inodes(*front.worker_pids()) - before)
    s.close()
    # ... and the next request uses it again: one upstream socket seen after
    # several answers. (A pooled connection lives 250 ms unused, so on a loaded
    # machine a slow loop may see a fresh one now and then; without the pool no
    # upstream socket would outlive its request at all.)
    assert seen and max(seen.count(x) for x in seen) >= 2, seen
    assert len(pids) == 1


def test_big_answer_intact(php_env):
    # 2 MiB, more than any of the front's buffers: passed on with backpressure
    s = open_conn(php_env["port"], timeout=30)
    s.sendall(build_request(HOST, "/big.php"))
    time.sleep(0.5)   # let php-fpm fill the buffers before the client reads
    st, h, body = read_response(s)
    assert st == 200 and len(body) == 2048 * 1024
    assert all(body[i * 1024:(i + 1) * 1024] == body[i * 1024:i * 1024 + 1] * 1024 for i in range(2048))
    s.sendall(build_request(HOST, "/hello.php"))
    assert read_response(s)[2] == b"hello from fpm-fcgi"
    s.close()


def test_pipelined_in_order(php_env):
    s = open_conn(php_env["port"])
    s.sendall(b"".join(build_request(HOST, f"/env.php?n={i}") for i in range(5)) +
              build_request(HOST, "/logo.png") + build_request(HOST, "/hello.php"))
    import json
    for i in range(5):
        st, _, body = read_response(s)
        assert st == 200 and json.loads(body)["QUERY_STRING"] == f"n={i}"
    assert read_response(s)[2] == SCRIPTS["logo.png"]
    assert read_response(s)[2] == b"hello from fpm-fcgi"
    s.close()


def test_streamed_output(php_env):
    site = php_env["site"]
    s = open_conn(php_env["port"], timeout=15)
    s.sendall(build_request(HOST, "/stream.php"))
    data = b""
    while b"first\n" not in data:
        d = s.s.recv(65536)
        assert d, data
        data += d
    # the script is still waiting for us: this arrived before it ended
    assert b"second" not in data
    assert b"transfer-encoding: chunked" in data.lower()
    go = os.path.join(site.private, "go")
    open(go, "w").close()
    os.chown(go, site.uid, site.uid)
    while not data.endswith(b"0\r\n\r\n"):
        d = s.s.recv(65536)
        assert d, data
        data += d
    assert b"second\n" in data
    s.close()


def test_http10_client(php_env):
    site = php_env["site"]
    go = os.path.join(site.private, "go")
    open(go, "w").close()
    os.chown(go, site.uid, site.uid)
    for path, body in (("/hello.php", b"hello from fpm-fcgi"), ("/stream.php", b"first\nsecond\n")):
        s = open_conn(php_env["port"])
        s.sendall(build_request(HOST, path, version="1.0"))
        data = b""
        while True:   # HTTP/1.0 without keep-alive: the front closes after the answer
            d = s.s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        head, _, got = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), data
        assert b"transfer-encoding" not in head.lower()   # a 1.0 client cannot read chunks
        assert got == body


def test_client_gone_stops_script(php_env):
    site = php_env["site"]
    ticks = os.path.join(site.private, "ticks")
    s = open_conn(php_env["port"])
    s.sendall(build_request(HOST, "/ticks.php"))
    data = b""
    while b"tick 2\n" not in data:
        data += s.s.recv(65536)
    s.close()
    # the script would run 4 s; closing the upstream connection made PHP stop at
    # its next output
    time.sleep(5)
    assert int(open(ticks).read()) < 40


def test_access_log_has_upstream_time(php_env):
    get(php_env, "/hello.php")
    get(php_env, "/logo.png")
    log = wait_until(lambda: php_env["site"].access_log().count("\n") >= 2 and php_env["site"].access_log(),
                     timeout=5)
    lines = log.strip().splitlines()
    hello = [line for line in lines if "/hello.php" in line][0]
    logo = [line for line in lines if "/logo.png" in line][0]
    assert hello.split()[-1] != "-"     # upstream time filled
    assert logo.split()[-1] == "-"      # no upstream for a static file


def test_php_site_under_berthd_over_http(daemon):
    """The whole path: a PHP site made with the CLI, its php-fpm in its sandbox
    (started on demand by the first request), the front's FastCGI client."""
    import http.client
    import json
    require(os.path.exists(PHP_FPM), f"{PHP_FPM} is not installed")
    require(os.getuid() == 0, "site sandboxes need root")
    port = daemon.http_port()
    info = daemon.ok("site", "create", "web", "--type", "php")
    public = os.path.join(info["dir"], "public")
    for name in ("env.php", "index.php", "logo.png"):
        path = os.path.join(public, name)
        data = SCRIPTS[name]
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chown(path, info["uid"], 199999)
        os.chmod(path, 0o640)

    def get(path):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", path, headers={"Host": "web.test.berth", "X-Test": "e2e"})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    deadline = time.time() + 30
    while True:
        st, body = get("/env.php/x?q=1")
        if st == 200 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert st == 200, (st, body, daemon.log()[-3000:])
    env = json.loads(body)
    assert env["SCRIPT_FILENAME"] == "/site/public/env.php"
    assert env["PATH_INFO"] == "/x" and env["QUERY_STRING"] == "q=1"
    assert env["SERVER_NAME"] == "web.test.berth" and env["HTTP_X_TEST"] == "e2e"
    assert get("/2024/hello/") == (200, b"router sees /2024/hello/ via /index.php")
    assert get("/logo.png") == (200, SCRIPTS["logo.png"])
    assert get("/missing.php")[0] == 404


class FakeFpm:
    """A FastCGI responder on a unix socket standing in for php-fpm where php-fpm cannot
    be made to misbehave on cue: it answers every request 200 "ok", keeping the
    connection when asked, except that a request for /vanish.php is read whole and
    then met with the connection closing, as when php-fpm's child is killed or
    recycled. It records (method, uri) and the params of every request it read."""

    def __init__(self, path):
        import threading
        self.requests = []
        self.params_seen = []   # every request's FastCGI params, as a dict
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @staticmethod
    def record(kind, req_id, data):
        return bytes([1, kind, req_id >> 8, req_id & 255, len(data) >> 8, len(data) & 255, 0, 0]) + data

    @staticmethod
    def params(data):
        out, i = {}, 0
        while i < len(data):
            lens = []
            for _ in range(2):
                n = data[i]
                if n >> 7:
                    n = int.from_bytes(data[i:i + 4], "big") & 0x7fffffff
                    i += 4
                else:
                    i += 1
                lens.append(n)
            out[data[i:i + lens[0]].decode()] = data[i + lens[0]:i + lens[0] + lens[1]].decode()
            i += lens[0] + lens[1]
        return out

    def serve(self):
        import threading
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.conversation, args=(conn,), daemon=True).start()

    def conversation(self, conn):
        buf = b""
        with conn:
            while True:
                keep, params, stdin_done, req_id = False, b"", False, 1
                while not stdin_done:
                    while len(buf) < 8 or len(buf) < 8 + int.from_bytes(buf[4:6], "big") + buf[6]:
                        got = conn.recv(65536)
                        if not got:
                            return
                        buf += got
                    kind, req_id = buf[1], int.from_bytes(buf[2:4], "big")
                    n, pad = int.from_bytes(buf[4:6], "big"), buf[6]
                    content, buf = buf[8:8 + n], buf[8 + n + pad:]
                    if kind == 1:
                        keep = bool(content[2] & 1)
                    elif kind == 4:
                        params += content
                    elif kind == 5 and n == 0:
                        stdin_done = True
                p = self.params(params)
                self.requests.append((p.get("REQUEST_METHOD"), p.get("REQUEST_URI")))
                self.params_seen.append(p)
                if p.get("SCRIPT_NAME") == "/vanish.php":
                    return
                body = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok"
                conn.sendall(self.record(6, req_id, body) + self.record(6, req_id, b"") +
                             self.record(3, req_id, bytes(8)))
                if not keep:
                    return

    def close(self):
        self.sock.close()


@pytest.fixture
def fake_fpm(tmp_path):
    front = Front(tmp_path / "front", workers=1)
    path = str(tmp_path / "fake-fpm.sock")
    fpm = FakeFpm(path)
    site = front.add_site("site", UID, reload=False, type="php", backend=path, hosts=[HOST],
                          max_body=MAX_BODY, timeout_ms=3000)
    site.write("ok.php", "<?php\n")
    site.write("vanish.php", "<?php\n")
    front.start()
    try:
        yield front, fpm
    finally:
        try:
            front.stop()
        finally:
            fpm.close()


def test_a_get_meeting_a_closed_fastcgi_connection_is_sent_again_a_post_is_not(fake_fpm):
    """A kept-alive connection to php-fpm that closes under a request without an
    answer (its child recycled or killed): a GET, which may run twice, is sent again
    once on a fresh connection; a POST, which the script may have run, is not."""
    front, fpm = fake_fpm
    s = open_conn(front.port)
    try:
        for method, sent in (("GET", 2), ("POST", 1)):
            s.sendall(build_request(HOST, "/ok.php"))
            st, _, body = read_response(s)
            assert st == 200 and body == b"ok"
            n = len(fpm.requests)
            s.sendall(build_request(HOST, "/vanish.php", method))
            assert read_response(s, method=method)[0] == 502
            assert fpm.requests[n:] == [(method, "/vanish.php")] * sent, fpm.requests
            s.close()
            s = open_conn(front.port)
    finally:
        s.close()
