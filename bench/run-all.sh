#!/bin/bash
# Runs every benchmark in bench/ against one release build (build-bench), each side
# by side with the reference servers it names, and prints their tables. Results are
# recorded by hand in bench/RESULTS.md with the machine and the date.
#   make bench            or            ROUNDS=5 DURATION=10s bench/run-all.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BERTH_BENCH_BUILD_DIR:-$ROOT/build-bench}
if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" "$ROOT" --buildtype=release -Db_sanitize=none >/dev/null
fi
ninja -C "$BUILD" >/dev/null
export BERTH_BUILD_DIR=$BUILD BERTH_BENCH_BUILD_DIR=$BUILD
echo "== machine: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(date -u +%F)"
for b in static proxy h2 sandbox-start coldstart php; do
    [ -x "$ROOT/bench/$b.sh" ] || continue
    echo; echo "== bench/$b.sh"
    "$ROOT/bench/$b.sh"
done
