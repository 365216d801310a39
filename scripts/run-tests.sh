#!/usr/bin/env bash
# Builds berth with ASan+UBSan and runs every test: unit (cmocka via meson test),
# integration (pytest against the real binaries), and each fuzzer over its corpus
# for a short while. Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
TEST_BUILD=${TEST_BUILD:-build-test}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$top/scripts/lsan.supp:print_suppressions=0"

failed=()
step() { echo; echo "==== $*"; }

step "build ($TEST_BUILD, ASan+UBSan)"
if [ ! -f "$TEST_BUILD/build.ninja" ]; then
  meson setup "$TEST_BUILD" -Db_sanitize=address,undefined -Db_lundef=false || exit 1
fi
ninja -C "$TEST_BUILD" || exit 1

step "release build (build/, what make dev runs)"
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release -Dtests=false >/dev/null || failed+=(release-build)
fi
ninja -C build >/dev/null || failed+=(release-build)

step "unit tests"
meson test -C "$TEST_BUILD" --suite unit --print-errorlogs || failed+=(unit)

step "integration tests"
export BERTH_BUILD_DIR="$top/$TEST_BUILD"
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration
rc=$?
[ $rc -eq 0 ] || failed+=(integration)

step "browser tests (panel in headless Chromium)"
tests/e2e/run.sh || failed+=(e2e)

step "fuzzers (${FUZZ_SECONDS}s each)"
if [ ! -f "$FUZZ_BUILD/build.ninja" ]; then
  CC=clang meson setup "$FUZZ_BUILD" -Dfuzzing=true -Dtests=false \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null || failed+=(fuzz-build)
fi
if ninja -C "$FUZZ_BUILD" >/dev/null; then
  for f in "$FUZZ_BUILD"/fuzz/fuzz-*; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    name=${f##*/fuzz-}
    work=$(mktemp -d)
    cp -r "fuzz/corpus/$name/." "$work/" 2>/dev/null || true
    if "$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=0 -artifact_prefix="$work/" "$work" \
         >"$work/log" 2>&1; then
      echo "fuzz-$name: ok ($(find "$work" -type f ! -name log | wc -l) inputs in the corpus)"
    else
      echo "fuzz-$name: FAILED"; tail -40 "$work/log"; failed+=("fuzz-$name")
    fi
    rm -rf "$work"
  done
else
  failed+=(fuzz-build)
fi

echo
if [ ${#failed[@]} -eq 0 ]; then
  echo "make test: everything passed"
  exit 0
fi
echo "make test: FAILED: ${failed[*]}"
exit 1
