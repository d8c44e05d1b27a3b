#!/usr/bin/env bash
# Runs Rondo's whole test suite. The integration tests start their own redis-server on free
# loopback ports, so the Debian package redis-server is installed first where it is missing;
# the browser tests (example-app/tests/browser.rs) drive headless Chromium, so the packages
# chromium and chromium-driver are installed too, and nodejs and npm for the channels'
# compatibility test (pusher-js, Laravel Echo). Without them those tests fail, not skip.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh -p rondo-tests --test session_values).
# The servers the tests start log through Rondo's default logging; RUST_LOG=off (unless set)
# keeps that out of the test output (set RUST_LOG=info to see it).
# The last line sums up every test binary: "total: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing the Debian package redis-server" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "chromium or chromedriver not found: installing the Debian packages chromium and chromium-driver" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# The channels' compatibility test (tests/tests/compat.rs) runs pusher-js, Laravel Echo and
# the `pusher` server library on Node.js; it installs those npm packages itself, into
# target/, but needs node and npm.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "node or npm not found: installing the Debian packages nodejs and npm" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi

export RUST_LOG=${RUST_LOG:-off}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ {
       for (i = 1; i <= NF; i++) {
         if ($(i) ~ /^passed;?$/) p += $(i-1)
         if ($(i) ~ /^failed;?$/) f += $(i-1)
         if ($(i) ~ /^ignored;?$/) s += $(i-1)
       }
     }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
