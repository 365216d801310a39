"""PHP sites run by berthd: each site's own php-fpm master inside its sandbox, on the
berthd-owned socket, with berth's managed settings and the site's own.

These tests speak FastCGI straight to the site's socket with tests/helpers/fcgi-get
(berth's FastCGI library, as the front uses it), so that what is checked here is
the runtime and the generated php-fpm configuration. Needs root (sandboxes) and
Debian's php8.2-fpm.
"""
import concurrent.futures
import hashlib
import os
import signal
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BUILD_DIR, require

FCGI_GET = BUILD_DIR / "tests" / "helpers" / "fcgi-get"
PHP_FPM = "/usr/sbin/php-fpm8.2"


@pytest.fixture(autouse=True)
def needs_root_and_php():
    require(os.geteuid() == 0, "site sandboxes need root")
    require(os.path.exists(PHP_FPM), "php8.2-fpm is not installed")


def put(info, rel, text, mode=0o640):
    """Writes a file into the site's tree as an upload or SFTP would: owned by the
    site's user, with the group of its directory (public/ is setgid to the front's
    group, so the front can read what is put there)."""
    path = Path(info["dir"]) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chown(path, info["uid"], -1 if rel.startswith("public/") else info["uid"])
    os.chmod(path, mode)
    return path


def fcgi(d, site, target, *args, timeout=30):
    """One request through the site's socket. Returns (status, headers, body, stderr)."""
    info = d.ok("site", "show", site)
    sock = d.run_dir / "sites" / f"{site}.sock"
    proc = subprocess.run([str(FCGI_GET), str(sock), str(Path(info["dir"]) / "public"),
                           "--document-root", "/site/public", *args, target],
                          capture_output=True, timeout=timeout)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr, d.log())
    head, _, body = proc.stdout.partition(b"\n\n")
    lines = head.decode().splitlines()
    status = int(next(x for x in lines if x.startswith("status "))[7:])
    headers = [x[7:] for x in lines if x.startswith("header ")]
    return status, headers, body.decode(errors="replace"), proc.stderr.decode(errors="replace")


def make_php(d, name, *extra):
    info = d.ok("site", "create", name, "--type", "php", *extra)
    assert info["type"] == "php" and info["php"] == {}
    return info


def wait_state(d, site, states, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        info = d.ok("site", "show", site)
        if info["state"] in states:
            return info
        assert time.monotonic() < deadline, f"{site} stayed {info['state']}: {info}\n{d.log()}"
        time.sleep(0.1)


INI = """<?php
header('Content-Type: text/plain');
foreach (['memory_limit', 'open_basedir', 'disable_functions', 'allow_url_include', 'expose_php',
          'session.save_path', 'upload_tmp_dir', 'date.timezone', 'max_execution_time',
          'post_max_size', 'upload_max_filesize', 'opcache.enable'] as $k) {
    echo $k, '=', ini_get($k), "\\n";
}
echo 'uid=', posix_getuid(), "\\n";
echo 'user=', posix_getpwuid(posix_geteuid())['name'], "\\n";
echo 'opcache=', (function_exists('opcache_get_status') && opcache_get_status(false)) ? 'on' : 'off', "\\n";
echo 'sapi=', PHP_SAPI, "\\n";
"""


def parse_kv(body):
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


def test_php_site_runs_its_own_fpm_as_the_site_user_with_safe_defaults(daemon):
    info = make_php(daemon, "blog")
    assert info["state"] == "idle"
    put(info, "public/ini.php", INI)
    status, _, body, _ = fcgi(daemon, "blog", "/ini.php")
    assert status == 200, body
    v = parse_kv(body)
    assert v["uid"] == str(info["uid"]) and v["user"] == "site"
    assert v["sapi"] == "fpm-fcgi"
    assert v["memory_limit"] == "128M"
    assert v["open_basedir"] == "/site/public:/site/private:/site/tmp"
    for fn in ("exec", "passthru", "shell_exec", "system", "proc_open", "popen"):
        assert fn in v["disable_functions"].split(","), fn
    assert v["allow_url_include"] in ("", "0") and v["expose_php"] in ("", "0")
    assert v["session.save_path"] == "/site/tmp/sessions"
    assert v["upload_tmp_dir"] == "/site/tmp/uploads"
    # the body limit: 64M unless post_max_size says otherwise
    assert v["post_max_size"] == "64M" and v["upload_max_filesize"] == "64M"
    assert v["opcache.enable"] == "1" and v["opcache"] == "on"

    shown = daemon.ok("site", "show", "blog")
    assert shown["state"] == "running" and shown["runtime"]["pid"] > 0
    # php-fpm's master and its worker live in the site's sandbox, under its uid
    ps = subprocess.run(["ps", "-o", "uid=,args=", "--ppid", str(shown["runtime"]["pid"])],
                        capture_output=True, text=True).stdout
    assert "php-fpm: master process" in ps and str(info["uid"]) in ps, ps
    # the master's start-up went to the site's own error log
    log = (Path(info["dir"]) / "logs" / "error.log").read_text()
    assert "using inherited socket fd=3" in log and "ready to handle connections" in log


def test_php_settings_are_checked_applied_and_reset(daemon):
    info = make_php(daemon, "shop")
    put(info, "public/ini.php", INI)
    assert parse_kv(fcgi(daemon, "shop", "/ini.php")[2])["memory_limit"] == "128M"
    pid = daemon.ok("site", "show", "shop")["runtime"]["pid"]

    out = daemon.ok("site", "set", "shop", "--php", "memory_limit=256m", "--php", "date.timezone=Europe/Paris",
                    "--php", "post_max_size=8M")
    assert out["php"] == {"memory_limit": "256M", "date.timezone": "Europe/Paris", "post_max_size": "8M"}
    # a running pool is restarted with the new settings
    deadline = time.monotonic() + 20
    while True:
        v = parse_kv(fcgi(daemon, "shop", "/ini.php")[2])
        if v["memory_limit"] == "256M":
            break
        assert time.monotonic() < deadline, v
        time.sleep(0.2)
    assert v["date.timezone"] == "Europe/Paris" and v["post_max_size"] == "8M"
    assert daemon.ok("site", "show", "shop")["runtime"]["pid"] != pid

    for args, message in [
        (["--php", "memory_limit=lots"], 'PHP setting "memory_limit" must be a size between 16M and 2G'),
        (["--php", "memory_limit=4G"], 'PHP setting "memory_limit" must be a size between 16M and 2G'),
        (["--php", "open_basedir=/"], 'PHP setting "open_basedir" is managed by berth'),
        (["--php", "disable_functions="], 'PHP setting "disable_functions" is managed by berth'),
        (["--php", "memory_limt=1G"], 'unknown PHP setting "memory_limt"'),
        (["--php", "date.timezone=../../etc/passwd"], 'PHP setting "date.timezone" must be a time zone'),
        (["--php", "pm.max_children=0"], 'PHP setting "pm.max_children" must be a whole number between 1 and 100'),
        (["--no-php", "auto_prepend_file"], 'PHP setting "auto_prepend_file" is managed by berth'),
    ]:
        r = daemon.berth("site", "set", "shop", *args)
        assert r.returncode == 1, (args, r)
        assert message in r.stderr, (args, r.stderr)
    # all or nothing: a bad key next to a good one changes nothing
    r = daemon.berth("site", "set", "shop", "--php", "max_input_vars=5000", "--php", "extension=evil.so")
    assert r.returncode == 1 and "managed by berth" in r.stderr
    assert daemon.ok("site", "show", "shop")["php"]["memory_limit"] == "256M"
    assert "max_input_vars" not in daemon.ok("site", "show", "shop")["php"]

    r = daemon.berth("site", "set", "shop", "--php", "memory_limit")
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr
    r = daemon.berth("site", "set", "shop", "--php", "a=1", "--no-php", "a")
    assert r.returncode == 2 and 'PHP setting "a" is given twice' in r.stderr

    out = daemon.ok("site", "set", "shop", "--no-php", "memory_limit", "--no-php", "max_input_vars")
    assert out["php"] == {"date.timezone": "Europe/Paris", "post_max_size": "8M"}

    static = daemon.ok("site", "create", "plain")
    assert "php" not in static
    r = daemon.berth("site", "set", "plain", "--php", "memory_limit=256M")
    assert r.returncode == 1 and "site plain is not a PHP site" in r.stderr

    listing = daemon.ok("site", "php-settings")["settings"]
    keys = {e["key"]: e for e in listing}
    assert keys["memory_limit"]["default"] == "128M" and "16M" in keys["memory_limit"]["accepts"]
    assert "open_basedir" not in keys
    text = daemon.berth("site", "php-settings")
    assert text.returncode == 0 and re.search(r"memory_limit\s+128M", text.stdout)
    # the body limits' default is the one the site gets, not "-"
    assert keys["post_max_size"]["default"] == "64M" and keys["upload_max_filesize"]["default"] == "64M"


def test_a_site_cannot_include_another_sites_private_files(daemon):
    a = make_php(daemon, "alpha")
    b = make_php(daemon, "beta")
    put(a, "private/config.php", "<?php $db_password = 'alpha-secret'; return $db_password;\n")
    put(a, "public/own.php", "<?php echo (include '/site/private/config.php');\n")
    target = Path(a["dir"]) / "private" / "config.php"
    put(b, "public/steal.php", f"""<?php
header('Content-Type: text/plain');
$r = @include '{target}';
echo 'include=', var_export($r, true), "\\n";
echo 'read=', var_export(@file_get_contents('{target}'), true), "\\n";
echo 'opcache=', var_export(opcache_get_status(false)['opcache_enabled'] ?? false, true), "\\n";
$e = error_get_last();
echo 'error=', $e ? $e['message'] : '', "\\n";
""")
    # alpha's own script reads its config (and puts it into alpha's opcache)
    assert fcgi(daemon, "alpha", "/own.php")[2] == "alpha-secret"
    status, _, body, _ = fcgi(daemon, "beta", "/steal.php")
    assert status == 200, body
    v = parse_kv(body)
    assert v["include"] == "false" and v["read"] == "false", body
    assert v["opcache"] == "true"
    # refused by open_basedir ("Operation not permitted"), and the path does not even
    # exist in beta's sandbox
    assert "Operation not permitted" in v["error"] or "No such file" in v["error"], body
    assert "alpha-secret" not in body


def test_sessions_persist_across_requests(daemon):
    info = make_php(daemon, "sess")
    put(info, "public/count.php", """<?php
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
echo 'n=', $_SESSION['n'], "\\n";
""")
    status, headers, body, _ = fcgi(daemon, "sess", "/count.php")
    assert status == 200 and body.strip() == "n=1", body
    cookie = next(h for h in headers if h.lower().startswith("set-cookie: phpsessid="))
    sid = cookie.split(":", 1)[1].strip().split(";", 1)[0]
    assert "HttpOnly" in cookie   # session.cookie_httponly is on by default
    for n in (2, 3):
        body = fcgi(daemon, "sess", "/count.php", "-H", f"Cookie: {sid}")[2]
        assert body.strip() == f"n={n}", body
    sessions = list((Path(info["dir"]) / "tmp" / "sessions").iterdir())
    assert len(sessions) == 1 and sessions[0].stat().st_uid == info["uid"]
    assert oct((Path(info["dir"]) / "tmp" / "sessions").stat().st_mode & 0o777) == "0o700"


def test_php_site_stops_when_idle_and_restarts_after_a_crash(daemon):
    info = make_php(daemon, "nap")
    daemon.ok("site", "set", "nap", "--idle", "10")
    put(info, "public/pid.php", "<?php echo getmypid();\n")
    assert fcgi(daemon, "nap", "/pid.php")[0] == 200
    pid = daemon.ok("site", "show", "nap")["runtime"]["pid"]
    assert pid > 0
    wait_state(daemon, "nap", ("idle",), timeout=30)
    assert not os.path.exists(f"/proc/{pid}")
    # the next request starts a fresh pool
    assert fcgi(daemon, "nap", "/pid.php")[0] == 200
    shown = daemon.ok("site", "show", "nap")
    assert shown["state"] == "running"

    # killing the master (pool not answering) brings a fresh one; requests then work
    daemon.ok("site", "set", "nap", "--always-on")
    pid = daemon.ok("site", "show", "nap")["runtime"]["pid"]
    master = subprocess.run(["pgrep", "-P", str(pid), "-f", "php-fpm: master"], capture_output=True,
                            text=True).stdout.split()
    assert master, "no php-fpm master under the sandbox"
    os.kill(int(master[0]), 9)
    deadline = time.monotonic() + 20
    while True:
        shown = daemon.ok("site", "show", "nap")
        if shown["state"] == "running" and shown["runtime"]["pid"] not in (None, pid):
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)
    assert shown["runtime"]["restarts"] >= 1
    assert fcgi(daemon, "nap", "/pid.php")[0] == 200


def test_generated_config_is_roots_and_read_only_in_the_sandbox(daemon):
    info = make_php(daemon, "tz")
    daemon.ok("site", "set", "tz", "--php", "date.timezone=Europe/Paris", "--always-on")
    wait_state(daemon, "tz", ("running",))
    conf = daemon.run_dir / "php" / "tz" / "php-fpm.conf"
    text = conf.read_text()
    assert "php_value[date.timezone] = Europe/Paris" in text
    assert "php_admin_value[open_basedir] = /site/public:/site/private:/site/tmp" in text
    assert oct(conf.stat().st_mode & 0o777) == "0o644" and conf.stat().st_uid == 0
    # the site cannot change its configuration: it is outside its tree, read-only inside
    r = daemon.berth("site", "exec", "tz", "--", "/bin/sh", "-c",
                     "echo x >> /etc/berth-php/php-fpm.conf; echo rc=$?")
    assert "rc=0" not in r.stdout and ("Permission denied" in r.stderr or "Read-only" in r.stderr), r
    assert conf.read_text() == text
    # removing the site removes its configuration too
    daemon.ok("site", "rm", "tz")
    assert not (daemon.run_dir / "php" / "tz").exists()


# ---- through the front: what a visitor sees ----

def http(d, site, path, *curl_args, timeout=60):
    """curl through berthd's front; returns (status, headers text, body bytes)."""
    port = d.http_port()
    proc = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/stdout", "--max-time", str(timeout),
                           "-H", f"Host: {site}.test.berth", *curl_args, f"http://127.0.0.1:{port}{path}"],
                          capture_output=True, timeout=timeout + 10)
    assert proc.returncode == 0, proc.stderr
    head, _, body = proc.stdout.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):
        head, _, body = body.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode(errors="replace"), body


def test_phpinfo_and_pretty_urls_over_http(daemon):
    info = make_php(daemon, "wp")
    put(info, "public/info.php", "<?php phpinfo();\n")
    put(info, "public/index.php", """<?php
header('Content-Type: text/plain');
echo 'router uri=', $_SERVER['REQUEST_URI'], ' script=', $_SERVER['SCRIPT_NAME'],
     ' file=', $_SERVER['SCRIPT_FILENAME'], ' root=', $_SERVER['DOCUMENT_ROOT'], "\\n";
""")
    put(info, "public/image.png", "\x89PNG not really")
    status, _, body = http(daemon, "wp", "/info.php")
    assert status == 200 and b"PHP Version" in body
    assert b"/site/public:/site/private:/site/tmp" in body      # open_basedir
    assert b"proc_open" in body                                 # disable_functions
    status, _, body = http(daemon, "wp", "/2024/hello/?x=1")
    assert status == 200, body
    assert body.decode() == ("router uri=/2024/hello/?x=1 script=/index.php file=/site/public/index.php "
                             "root=/site/public\n")
    status, _, body = http(daemon, "wp", "/missing.php")
    assert status == 404 and b"router" not in body
    # the cgi.fix_pathinfo trap: nothing runs, not the image, not the front controller
    status, _, body = http(daemon, "wp", "/image.png/x.php")
    assert status == 404 and b"router" not in body and b"PNG" not in body
    status, head, body = http(daemon, "wp", "/image.png")
    assert status == 200 and body == b"\xc2\x89PNG not really"
    # PHP's source is never served
    put(info, "public/secret.php", "<?php /* password=hunter2 */ echo 'ok';\n")
    status, _, body = http(daemon, "wp", "/secret.php")
    assert status == 200 and body == b"ok"


def test_static_files_of_a_php_site_never_wake_php(daemon):
    info = make_php(daemon, "pics")
    put(info, "public/logo.svg", "<svg/>")
    assert daemon.ok("site", "show", "pics")["state"] == "idle"
    for _ in range(3):
        status, _, body = http(daemon, "pics", "/logo.svg")
        assert status == 200 and body == b"<svg/>"
    time.sleep(0.5)
    assert daemon.ok("site", "show", "pics")["state"] == "idle"


def test_uploads_arrive_intact_and_oversized_bodies_get_413(daemon, tmp_path):
    info = make_php(daemon, "up")
    put(info, "public/upload.php", """<?php
header('Content-Type: text/plain');
$f = $_FILES['file'] ?? null;
if (!$f || $f['error'] !== UPLOAD_ERR_OK) { http_response_code(400); echo 'upload error ', $f['error'] ?? 'none'; exit; }
echo hash_file('sha256', $f['tmp_name']), ' ', $f['size'], "\\n";
""")
    big = tmp_path / "big.bin"
    data = os.urandom(20 << 20)
    big.write_bytes(data)
    status, _, body = http(daemon, "up", "/upload.php", "-F", f"file=@{big}")
    assert status == 200, body
    assert body.decode().split() == [hashlib.sha256(data).hexdigest(), str(len(data))]

    daemon.ok("site", "set", "up", "--php", "post_max_size=8M", "--php", "upload_max_filesize=8M")
    status, _, body = http(daemon, "up", "/upload.php", "-F", f"file=@{big}")
    assert status == 413, body
    # under the new limit still works
    small = tmp_path / "small.bin"
    small.write_bytes(data[: 1 << 20])
    status, _, body = http(daemon, "up", "/upload.php", "-F", f"file=@{small}")
    assert status == 200 and body.decode().split()[1] == str(1 << 20)


def test_php_errors_and_timeouts_show_berth_pages_not_php_internals(daemon):
    info = make_php(daemon, "oops")
    daemon.ok("site", "set", "oops", "--php", "max_execution_time=2")
    put(info, "public/fatal.php", "<?php echo 'before'; undefined_function_berth();\n")
    put(info, "public/slow.php", "<?php sleep(30); echo 'late';\n")
    put(info, "public/ok.php", "<?php echo 'fine';\n")
    status, _, body = http(daemon, "oops", "/fatal.php")
    assert status == 500, body
    assert b"undefined_function_berth" not in body and b"Fatal" not in body and b"/site/" not in body
    # the fatal went to the site's own error log
    log = Path(info["dir"]) / "logs" / "error.log"
    deadline = time.monotonic() + 10
    while b"undefined_function_berth" not in log.read_bytes():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    status, _, body = http(daemon, "oops", "/slow.php")
    assert status == 504, body
    assert b"late" not in body
    status, _, body = http(daemon, "oops", "/ok.php")
    assert status == 200 and body == b"fine"


def test_bad_request_bodies_do_not_count_as_the_pool_failing(daemon):
    """A client sending broken or oversized bodies gets 400/413, and however many it
    sends, berthd does not take them for a failing pool and restart it."""
    from front_helpers import raw
    info = make_php(daemon, "sturdy")
    daemon.ok("site", "set", "sturdy", "--php", "post_max_size=1K", "--always-on")
    put(info, "public/ok.php", "<?php echo 'fine';\n")
    assert http(daemon, "sturdy", "/ok.php")[2] == b"fine"
    pid = daemon.ok("site", "show", "sturdy")["runtime"]["pid"]
    time.sleep(5)   # past a fresh pool's grace, when failures would count
    port = daemon.http_port()
    head = b"POST /ok.php HTTP/1.1\r\nHost: sturdy.test.berth\r\nTransfer-Encoding: chunked\r\n\r\n"
    for _ in range(3):
        assert raw(port, head + b"zz\r\nbroken\r\n").startswith(b"HTTP/1.1 400 ")
        assert raw(port, head + b"800\r\n" + b"x" * 2048 + b"\r\n0\r\n\r\n").startswith(b"HTTP/1.1 413 ")
    time.sleep(2.5)   # the front reports to berthd every second
    shown = daemon.ok("site", "show", "sturdy")
    assert shown["runtime"]["pid"] == pid and shown["runtime"]["restarts"] == 0, shown
    assert "answered none; restarting it" not in daemon.log()


def test_a_pool_that_stops_answering_gets_504s_then_a_restart(daemon):
    """php-fpm frozen: visitors get 504 after the site's time limit, and after a few
    such failures with nothing answered berthd restarts the site's pool."""
    from test_lifecycle import cgroup_pids
    info = make_php(daemon, "hang")
    daemon.ok("site", "set", "hang", "--php", "max_execution_time=1", "--always-on")
    put(info, "public/ok.php", "<?php echo 'fine';\n")
    assert http(daemon, "hang", "/ok.php")[2] == b"fine"
    pid = daemon.ok("site", "show", "hang")["runtime"]["pid"]
    time.sleep(5)   # a fresh pool gets a few seconds before failures count
    frozen = []
    for p in cgroup_pids(daemon, "hang"):
        if p == pid:
            continue
        try:   # a process listed a moment ago may have exited since
            os.kill(p, signal.SIGSTOP)
            frozen.append(p)
        except ProcessLookupError:
            pass
    assert frozen, "no php-fpm processes found in the site's cgroup"
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda _: http(daemon, "hang", "/ok.php")[0], range(4)))
        assert statuses == [504] * 4, statuses
        deadline = time.monotonic() + 30
        while True:
            shown = daemon.ok("site", "show", "hang")
            if shown["runtime"]["pid"] not in (None, pid) and shown["state"] == "running":
                break
            assert time.monotonic() < deadline, (shown, daemon.log())
            time.sleep(0.2)
    finally:
        for p in frozen:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert "requests in a row and answered none; restarting it" in daemon.log()
    assert shown["runtime"]["restarts"] >= 1
    assert http(daemon, "hang", "/ok.php")[2] == b"fine"


def test_php_workers_must_fit_the_sites_process_limit(daemon):
    # php-fpm's master forks pm.max_children workers in the site's cgroup: past
    # pids.max a fork fails, and a static pool's master then exits ("fork()
    # failed ... bye-bye"), at every request. Refused up front, with the way out.
    make_php(daemon, "many", "--pids", "10")
    r = daemon.berth("site", "set", "many", "--php", "pm.max_children=20")
    assert r.returncode == 1, r
    assert "pm.max_children" in r.stderr and "--pids" in r.stderr and "10" in r.stderr, r.stderr
    assert daemon.ok("site", "show", "many")["php"] == {}
    daemon.ok("site", "set", "many", "--php", "pm.max_children=8")   # 8 workers + master + reaper
    r = daemon.berth("site", "set", "many", "--pids", "9")
    assert r.returncode == 1 and "pm.max_children" in r.stderr, r
    daemon.ok("site", "set", "many", "--pids", "0")   # no limit: anything fits
    daemon.ok("site", "set", "many", "--php", "pm.max_children=100")


def test_php_configuration_is_not_left_in_the_run_dir(daemon):
    # <run>/php/NAME/php-fpm.conf is written at each start; berthd's shutdown
    # takes it away with the sites' sockets.
    info = make_php(daemon, "tidy")
    put(info, "public/i.php", "<?php echo 'hi';")
    assert fcgi(daemon, "tidy", "/i.php")[0] == 200
    conf_dir = daemon.run_dir / "php" / "tidy"
    assert (conf_dir / "php-fpm.conf").exists()
    daemon.stop()
    assert not conf_dir.exists() and not (daemon.run_dir / "php").exists()
    assert not (daemon.run_dir / "sites" / "tidy.sock").exists()
    daemon.start()
    assert fcgi(daemon, "tidy", "/i.php")[0] == 200
