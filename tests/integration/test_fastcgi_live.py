"""berth's FastCGI client (src/fastcgi) against the real php8.2-fpm.

Each test module starts one php-fpm master (pool: pm static, 1 child) from a pool
config generated in a temp dir. The listening socket is bound here and handed to
php-fpm as fd 3 through FPM_SOCKETS, exactly as berthd hands a site's socket over,
so the test also checks that php-fpm adopts an inherited socket. Requests are sent
by tests/helpers/fcgi-get (the library, no front), from $BERTH_BUILD_DIR
(default /work/main/build-test). php-fpm refuses to run as root without -R: the
test passes -R when it is root.
"""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import require

BUILD = os.environ.get("BERTH_BUILD_DIR", "/work/main/build-test")
FCGI_GET = os.environ.get("BERTH_FCGI_GET", os.path.join(BUILD, "tests/helpers/fcgi-get"))
PHP_FPM = "/usr/sbin/php-fpm8.2"
LISTEN_KEY = "/run/berth/php-fpm.sock"

SCRIPTS = {
    "info.php": "<?php phpinfo();\n",
    "hello.php": "<?php echo 'hello from ', PHP_SAPI, \"\\n\";\n",
    "env.php": """<?php
header('Content-Type: text/plain');
foreach (['SCRIPT_FILENAME', 'SCRIPT_NAME', 'PATH_INFO', 'DOCUMENT_ROOT', 'REQUEST_URI',
          'QUERY_STRING', 'REQUEST_METHOD', 'SERVER_PROTOCOL', 'GATEWAY_INTERFACE',
          'REMOTE_ADDR', 'REMOTE_PORT', 'SERVER_NAME', 'SERVER_PORT', 'SERVER_SOFTWARE',
          'HTTP_X_TEST', 'HTTP_PROXY', 'HTTPS'] as $k) {
    echo $k, '=', $_SERVER[$k] ?? '(unset)', "\\n";
}
echo 'PHP_SELF=', $_SERVER['PHP_SELF'], "\\n";
echo 'GET_a=', $_GET['a'] ?? '', "\\n";
""",
    "post.php": """<?php
header('Content-Type: text/plain');
echo 'method=', $_SERVER['REQUEST_METHOD'], "\\n";
echo 'length=', $_SERVER['CONTENT_LENGTH'] ?? '', "\\n";
echo 'type=', $_SERVER['CONTENT_TYPE'] ?? '', "\\n";
echo 'raw=', file_get_contents('php://input'), "\\n";
echo 'name=', $_POST['name'] ?? '', "\\n";
""",
    "notfound.php": "<?php http_response_code(404); echo 'no such page';\n",
    "redirect.php": "<?php header('Location: /elsewhere?x=1'); echo 'moved';\n",
    "absredirect.php": "<?php header('Location: https://example.com/', true, 301);\n",
    "headers.php": """<?php
header('X-One: 1');
header('Set-Cookie: a=1', false);
header('Set-Cookie: b=2', false);
header('Connection: close');
echo 'ok';
""",
    "fatal.php": "<?php echo 'before'; undefined_function_berth();\n",
    "index.php": "<?php echo 'front controller for ', $_SERVER['REQUEST_URI'], ' script ', $_SERVER['SCRIPT_NAME'];\n",
    # An "image" with PHP code inside: if anything ever runs it, the marker appears.
    "image.png": "<?php file_put_contents(__DIR__ . '/../executed', 'yes'); echo 'EXECUTED';\n",
}


@pytest.fixture(scope="module")
def fpm(tmp_path_factory):
    require(os.path.exists(PHP_FPM), f"{PHP_FPM} is not installed")
    require(os.path.exists(FCGI_GET), f"{FCGI_GET} is not built")
    root = tmp_path_factory.mktemp("fpm")
    public = root / "public"
    public.mkdir()
    for name, text in SCRIPTS.items():
        (public / name).write_text(text)
    (public / "big.php").write_text("<?php echo str_repeat('0123456789abcdef', 8192);\n")
    conf = root / "php-fpm.conf"
    conf.write_text(f"""[global]
pid = {root}/php-fpm.pid
error_log = {root}/fpm.log
daemonize = no

[test]
listen = {LISTEN_KEY}
pm = static
pm.max_children = 1
clear_env = yes
catch_workers_output = yes
security.limit_extensions = .php
php_admin_flag[display_errors] = Off
php_admin_flag[log_errors] = On
php_admin_flag[expose_php] = Off
php_value[output_buffering] = 4096
php_admin_value[cgi.fix_pathinfo] = 1
php_admin_value[open_basedir] = {root}
""")
    sock_path = str(root / "php.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(sock_path)
    sock.listen(64)
    inode = os.stat(sock_path).st_ino
    fd = sock.fileno()

    # preexec_fn runs before Popen closes inherited fds; pass_fds keeps 3 open.
    def child():
        os.dup2(fd, 3)  # dup2 clears FD_CLOEXEC on the new fd

    args = [PHP_FPM, "-n", "-F", "-y", str(conf)]
    if os.geteuid() == 0:
        args.insert(1, "-R")
    proc = subprocess.Popen(args, env={"FPM_SOCKETS": f"{LISTEN_KEY}=3", "PATH": "/usr/bin:/bin"},
                            preexec_fn=child, pass_fds=(3,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        log = root / "fpm.log"
        while time.time() < deadline:
            if log.exists() and "ready to handle connections" in log.read_text():
                break
            assert proc.poll() is None, log.read_text() if log.exists() else "php-fpm exited"
            time.sleep(0.05)
        else:
            pytest.fail("php-fpm did not start: " + (log.read_text() if log.exists() else ""))
        text = log.read_text()
        assert f'using inherited socket fd=3, "{LISTEN_KEY}"' in text
        # adopted, not re-bound: the socket file is still the one we made
        assert os.stat(sock_path).st_ino == inode
        yield {"root": root, "public": public, "sock": sock_path, "log": log}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sock.close()


class Answer:
    def __init__(self, proc):
        self.code = proc.returncode
        self.stderr = proc.stderr.decode(errors="replace")
        out = proc.stdout
        head, _, self.body = out.partition(b"\n\n")
        self.lines = head.decode(errors="replace").split("\n")
        self.route = self.lines[0]
        self.status = None
        self.kind = None
        self.headers = []
        for line in self.lines[1:]:
            key, _, value = line.partition(" ")
            if key == "status":
                self.status = int(value)
            elif key == "kind":
                self.kind = value
            elif key == "header":
                name, _, v = value.partition(": ")
                self.headers.append((name.lower(), v))

    def header(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def __repr__(self):
        return f"<exit {self.code} {self.lines} body={self.body[:200]!r} stderr={self.stderr[:500]!r}>"


def get(fpm, target, *args):
    proc = subprocess.run([FCGI_GET, fpm["sock"], str(fpm["public"]), *args, target],
                          capture_output=True, timeout=30)
    return Answer(proc)


def test_phpinfo(fpm):
    a = get(fpm, "/info.php")
    assert a.code == 0, a
    assert a.status == 200 and a.kind == "document"
    assert a.header("content-type") == ["text/html; charset=UTF-8"]
    assert b"PHP Version 8.2" in a.body
    assert b"FPM/FastCGI" in a.body
    assert not a.header("x-powered-by")  # expose_php Off


def test_echo_and_params(fpm):
    a = get(fpm, "/hello.php")
    assert a.code == 0, a
    assert a.body == b"hello from fpm-fcgi\n"

    a = get(fpm, "/env.php/b/c?a=1&z", "-H", "X-Test: yes", "-H", "Proxy: http://evil:1")
    assert a.code == 0, a
    assert a.route == "route script /env.php /b/c"
    env = dict(line.split("=", 1) for line in a.body.decode().splitlines())
    public = str(fpm["public"])
    assert env["SCRIPT_FILENAME"] == public + "/env.php"
    assert env["SCRIPT_NAME"] == "/env.php"
    assert env["PATH_INFO"] == "/b/c"
    assert env["PHP_SELF"] == "/env.php/b/c"
    assert env["DOCUMENT_ROOT"] == public
    assert env["REQUEST_URI"] == "/env.php/b/c?a=1&z"
    assert env["QUERY_STRING"] == "a=1&z"
    assert env["GET_a"] == "1"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["SERVER_NAME"] == "test.berth"
    assert env["SERVER_SOFTWARE"].startswith("berth/")
    assert env["HTTP_X_TEST"] == "yes"
    assert env["HTTP_PROXY"] == "(unset)"  # httpoxy
    assert env["HTTPS"] == "(unset)"

    # the script named is the one that runs, whatever PATH_INFO names
    a = get(fpm, "/env.php/hello.php")
    assert a.code == 0 and a.route == "route script /env.php /hello.php", a
    assert b"SCRIPT_NAME=/env.php\n" in a.body and b"PATH_INFO=/hello.php\n" in a.body


def test_post_body(fpm):
    a = get(fpm, "/post.php", "-X", "POST", "-d", "name=berth&x=%C3%A9")
    assert a.code == 0, a
    lines = a.body.decode().splitlines()
    assert lines == ["method=POST", "length=19", "type=application/x-www-form-urlencoded",
                     "raw=name=berth&x=%C3%A9", "name=berth"]


def test_big_body_streamed_out(fpm):
    a = get(fpm, "/big.php")
    assert a.code == 0, a
    assert a.body == b"0123456789abcdef" * 8192


def test_status_404_from_script(fpm):
    a = get(fpm, "/notfound.php")
    assert a.code == 0, a
    assert a.status == 404
    assert a.body == b"no such page"


def test_location_redirect(fpm):
    a = get(fpm, "/redirect.php")
    assert a.code == 0, a
    assert a.status == 302
    assert a.header("location") == ["/elsewhere?x=1"]
    a = get(fpm, "/absredirect.php")
    assert a.status == 301 and a.kind == "client-redirect"
    assert a.header("location") == ["https://example.com/"]


def test_headers_passed_and_hop_by_hop_dropped(fpm):
    a = get(fpm, "/headers.php")
    assert a.code == 0, a
    assert a.header("x-one") == ["1"]
    assert a.header("set-cookie") == ["a=1", "b=2"]
    assert a.header("connection") == []
    assert a.body == b"ok"


def test_fatal_error_only_in_stderr(fpm):
    a = get(fpm, "/fatal.php")
    assert a.code == 0, a
    assert a.status == 500
    assert b"undefined_function_berth" not in a.body
    assert b"Fatal" not in a.body
    assert "Call to undefined function undefined_function_berth()" in a.stderr


def test_front_controller(fpm):
    a = get(fpm, "/2024/hello/")
    assert a.code == 0, a
    assert a.route == "route script /index.php "
    assert a.body == b"front controller for /2024/hello/ script /index.php"
    a = get(fpm, "/2024/hello/", "--no-front-controller")
    assert a.code == 3 and a.route == "route not-found"


def test_missing_php_runs_nothing(fpm):
    a = get(fpm, "/missing.php")
    assert a.code == 3 and a.route == "route not-found", a
    a = get(fpm, "/image.png/x.php")
    assert a.code == 3 and a.route == "route not-found", a
    a = get(fpm, "/image.png")
    assert a.code == 3 and a.route == "route static", a
    assert not (fpm["root"] / "executed").exists()
