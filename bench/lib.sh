# Shared by the bench scripts that start their own redis-server (actors.sh, fault.sh,
# create_cost.sh): the tool check, the release build of example-app (`need_rondo`), a
# scratch directory, free loopback ports, the wait for Redis, and, on exit, stopping
# exactly the processes the script started (by the PIDs it keeps in REDIS_PID, APP_PID and
# WRK_PID).
#
# Source it after `set -euo pipefail` with the tools the script needs:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" wrk redis-server redis-cli curl python3
# It sets ROOT (the project) and WORK (removed on exit).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for tool in "$@"; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

# Sets RONDO_BIN to the release example-app, building it unless RONDO_BIN is given.
need_rondo() {
  if [[ -z "${RONDO_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --release -q -p example-app)
    RONDO_BIN=$ROOT/target/release/example-app
  fi
}

WORK=$(mktemp -d)
REDIS_PID=""
APP_PID=""
WRK_PID=""
cleanup() {
  for pid in "$WRK_PID" "$APP_PID" "$REDIS_PID"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 5 s for the redis-server on port $1 to answer PING.
wait_for_redis() {
  for _ in $(seq 1 250); do
    if [[ $(redis-cli -p "$1" ping 2>/dev/null) == PONG ]]; then return 0; fi
    sleep 0.02
  done
  echo "redis-server on port $1 did not start" >&2
  return 1
}
