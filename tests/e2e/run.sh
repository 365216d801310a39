#!/usr/bin/env bash
# Runs the panel's browser tests: Debian's chromium (apt: chromium) driven by
# playwright-core (npm), against the berthd in $BERTH_BUILD_DIR (default build-test).
# Screenshots and berthd's log land in tests/e2e/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
top=$(cd ../.. && pwd)
export BERTH_BUILD_DIR=${BERTH_BUILD_DIR:-$top/build-test}
if [ ! -x /usr/bin/chromium ]; then
  echo "e2e: /usr/bin/chromium is missing (apt-get install chromium)" >&2
  exit 1
fi
if [ ! -d node_modules/playwright-core ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/scripts/lsan.supp:print_suppressions=0}
exec node --test --test-concurrency=1 panel.test.mjs
