#!/bin/sh
# Sandbox start-up cost: sandbox-run /bin/true against bubblewrap and unshare(1)
# doing comparable work, with hyperfine; then the in-process figure (what berthd
# pays per start: no exec of a CLI, seccomp compiled once) from sandbox-run --bench.
# Prints medians; the figures go to bench/RESULTS.md by hand, not from here.
#
# Usage: bench/sandbox-start.sh        (root; BERTH_BENCH_BUILD_DIR to reuse a build)
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build=${BERTH_BENCH_BUILD_DIR:-$here/build-bench-sandbox}
runs=${RUNS:-200}

[ "$(id -u)" = 0 ] || { echo "sandbox-start.sh: needs root" >&2; exit 1; }
command -v hyperfine >/dev/null || apt-get install -y hyperfine >/dev/null
# A release build without sanitizers: ASan makes every start several times slower.
if [ ! -d "$build" ]; then
    meson setup "$build" "$here" --buildtype=release -Db_sanitize=none >/dev/null
fi
ninja -C "$build" tests/helpers/sandbox-run >/dev/null
run=$build/tests/helpers/sandbox-run

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/site"
chown 250999:250999 "$tmp/site"

set -- \
    "$run --name bench --uid 250999 --site-dir $tmp/site -- /bin/true" \
    "$run --name bench --uid 250999 --site-dir $tmp/site --network host -- /bin/true"
if command -v bwrap >/dev/null; then
    set -- "$@" "bwrap --unshare-all --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/sbin /sbin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev --tmpfs /tmp --bind $tmp/site /site --chdir /site --new-session --die-with-parent /bin/true"
fi
set -- "$@" "unshare -pfmnui --mount-proc /bin/true"
if command -v crun >/dev/null; then
    echo "(crun is installed but needs an OCI bundle; not measured)" >&2
fi

hyperfine -N --warmup 20 --runs "$runs" --export-json "$tmp/out.json" "$@" >/dev/null
python3 - "$tmp/out.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    cmd = r["command"]
    name = cmd.split()[0].rsplit("/", 1)[-1]
    if "--network host" in cmd:
        name += " (network host)"
    print(f"{name:32s} median {r['median'] * 1000:6.2f} ms   mean {r['mean'] * 1000:6.2f} ms "
          f"± {r['stddev'] * 1000:.2f}")
PY
"$run" --name bench --uid 250999 --site-dir "$tmp/site" --bench "$runs" -- /bin/true |
    sed 's/^/in-process (berthd) /'
"$run" --name bench --uid 250999 --site-dir "$tmp/site" --network host --bench "$runs" -- /bin/true |
    sed 's/^/in-process, network host /'
