#!/usr/bin/env bash
# Runs Rondo's whole test suite. The integration tests start their own redis-server on free
# loopback ports, so the Debian package redis-server is installed first where it is missing.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh -p rondo-tests --test sessions).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing the Debian package redis-server" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

exec cargo test --workspace "$@"
