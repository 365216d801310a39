#!/bin/sh
# Cold start of an app site, end to end, on a release berthd:
#   first  - request to an idle on-demand site until its response (berthd notices the
#            connection, builds the sandbox, the app starts and accepts from fd 3)
#   warm   - the same request to the running site
#   exec   - `berth site exec SITE -- /bin/true` in a fresh sandbox (no app running):
#            sandbox start + exit + the CLI's round trip
#   join   - the same into the running sandbox (setns instead of a new one): the
#            CLI's round trip and a process, without the sandbox set-up
#   app    - the app's own start on the host without a sandbox (python3 importing and
#            reaching serve_forever on a socket), to subtract from "first"
# Each cold sample stops the sandbox first (site stop + start: back to idle).
# Prints medians in ms. Usage: bench/coldstart.sh   (root; BUILD=dir, RUNS=n)
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$here/build-rt-rel}
runs=${RUNS:-30}
[ "$(id -u)" = 0 ] || { echo "coldstart.sh: needs root" >&2; exit 1; }
if [ ! -x "$build/berthd" ]; then
    meson setup "$build" "$here" --buildtype=release -Dtests=false >/dev/null
    ninja -C "$build" berthd berth >/dev/null
fi

tmp=$(mktemp -d /tmp/berth-coldstart.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
printf 'site_uid_range: 370000-370009\n' > "$tmp/berth.yaml"
"$build/berthd" --state-dir "$tmp/state" --run-dir "$tmp/run" --config "$tmp/berth.yaml" \
    --http 127.0.0.1:0 --log-level warning 2> "$tmp/berthd.log" &
pid=$!
for _ in $(seq 100); do [ -S "$tmp/run/api.sock" ] && break; sleep 0.05; done

BERTH="$build/berth" SOCK="$tmp/run/api.sock" RUNDIR="$tmp/run" APP="$here/tests/helpers/app.py" RUNS=$runs \
python3 - <<'EOF'
import json, os, shutil, socket, statistics, subprocess, time

berth, sock, rundir, app, runs = (os.environ[k] for k in ("BERTH", "SOCK", "RUNDIR", "APP", "RUNS"))
runs = int(runs)

def cli(*args):
    r = subprocess.run([berth, "--socket", sock, "--json", *args], capture_output=True, text=True)
    assert r.returncode == 0, r
    return json.loads(r.stdout) if r.stdout.strip() else None

info = cli("site", "create", "bench", "--type", "app", "--cmd", "exec python3 /site/private/app.py")
dst = os.path.join(info["dir"], "private", "app.py")
shutil.copy(app, dst)
os.chown(dst, info["uid"], info["uid"])
path = os.path.join(rundir, "sites", "bench.sock")

def request():
    t = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert b" 200 " in data.split(b"\r\n")[0], data
    return (time.perf_counter() - t) * 1000

def wait_idle():
    while cli("site", "show", "bench")["state"] != "idle":
        time.sleep(0.01)

def exec_true():
    t = time.perf_counter()
    subprocess.run([berth, "--socket", sock, "site", "exec", "bench", "--", "/bin/true"], check=True)
    return (time.perf_counter() - t) * 1000

first, warm, fresh, join = [], [], [], []
for _ in range(runs):
    cli("site", "stop", "bench")
    while cli("site", "show", "bench")["state"] != "stopped":
        time.sleep(0.01)
    cli("site", "start", "bench")
    wait_idle()
    fresh.append(exec_true())
    first.append(request())
    warm.append(request())
    join.append(exec_true())

# The app's own start, unsandboxed: from exec until it accepts on an inherited socket.
own = []
for _ in range(runs):
    a, b = socket.socketpair()
    srv = socket.socket(socket.AF_UNIX)
    p = os.path.join(os.path.dirname(sock), "own.sock")
    if os.path.exists(p):
        os.unlink(p)
    srv.bind(p); srv.listen(16)
    t = time.perf_counter()
    proc = subprocess.Popen(["sh", "-c", 'export LISTEN_PID=$$; exec python3 "$0"', app],
                            env={"LISTEN_FDS": "1", "PATH": "/usr/bin:/bin"},
                            close_fds=False,   # fd 3 must survive; dup2 clears CLOEXEC
                            preexec_fn=lambda fd=srv.fileno(): os.dup2(fd, 3) if fd != 3 else os.set_inheritable(3, True),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(10)
        c.connect(p)
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while c.recv(65536):
            pass
    own.append((time.perf_counter() - t) * 1000)
    proc.kill(); proc.wait(); srv.close(); a.close(); b.close()

med = lambda xs: statistics.median(xs)
print(f"runs: {runs}")
print(f"first request, idle site (cold)   {med(first):7.2f} ms")
print(f"request, running site (warm)      {med(warm):7.2f} ms")
print(f"app's own start, no sandbox        {med(own):7.2f} ms   (through sh -c, as in the sandbox)")
print(f"cold overhead beyond the app       {med(first) - med(own):7.2f} ms")
print(f"site exec /bin/true, fresh sandbox {med(fresh):7.2f} ms")
print(f"site exec /bin/true, joined        {med(join):7.2f} ms")
print(f"sandbox start alone (fresh - join) {med(fresh) - med(join):7.2f} ms")
EOF
