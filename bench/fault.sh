#!/usr/bin/env bash
# Redis killed and restarted under load: example-app (release) on 127.0.0.1 with a
# redis-server that persists every write (appendonly, appendfsync always), loaded by wrk on
# /bench/counter (one session per wrk thread). Redis gets SIGKILL at KILL_AT seconds and is
# started again, on the same port and data directory, DOWN seconds later. Prints:
#
#   - answers by class: 200, 503, other 5xx (goal 0), 4xx, socket errors;
#   - recovery: time from Redis answering PING again to the first 200 on a session route
#     (a probe polling every 20 ms; goal under 2 s);
#   - acknowledged writes lost: per session, the highest counter value a 200 acknowledged
#     minus the value stored at the end (goal 0).
#
# usage: bench/fault.sh
# env (all optional): RONDO_BIN (skip the build), DURATION (default 14), KILL_AT (4),
#   DOWN (3), THREADS (4), CONNS (32)
#
# Only the processes this script starts (redis-server, example-app, wrk) are stopped, by PID.
set -euo pipefail

DURATION=${DURATION:-14}
KILL_AT=${KILL_AT:-4}
DOWN=${DOWN:-3}
THREADS=${THREADS:-4}
CONNS=${CONNS:-32}

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" wrk redis-server redis-cli curl python3
need_rondo

now_ms() { date +%s%3N; }

REDIS_PORT=$(free_port)
APP_PORT=$(free_port)
start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK" --save '' \
    --appendonly yes --appendfsync always --logfile "$WORK/redis.log" &
  REDIS_PID=$!
  wait_for_redis "$REDIS_PORT"
}
start_redis

cat >"$WORK/app.ini" <<EOF
[app]
log_level = error
[http]
port = $APP_PORT
[session]
store = redis
[redis]
default[port] = $REDIS_PORT
default[prefix] = fault:
default[timeout] = 1
EOF
"$RONDO_BIN" --config "$WORK/app.ini" >"$WORK/app.log" 2>&1 &
APP_PID=$!
URL=http://127.0.0.1:$APP_PORT
for _ in $(seq 1 250); do
  curl -fs "$URL/healthz" >/dev/null 2>&1 && break
  sleep 0.02
done

# One session per wrk thread, plus one for the recovery probe.
new_session() {
  curl -s -D - -o /dev/null "$URL/bench/counter" | tr -d '\r' |
    sed -n 's/^set-cookie: dmsession=\([^;]*\).*/\1/p'
}
cookies=()
for _ in $(seq 1 "$THREADS"); do cookies+=("$(new_session)"); done
probe_cookie=$(new_session)

wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 5s -s "$ROOT/bench/fault.lua" "$URL" \
  -- "${cookies[@]}" >"$WORK/wrk.out" 2>&1 &
WRK_PID=$!

sleep "$KILL_AT"
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
killed_ms=$(now_ms)
sleep "$DOWN"
start_redis
back_ms=$(now_ms)

recovered_ms=""
while (($(now_ms) - back_ms < 10000)); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 \
    -H "Cookie: dmsession=$probe_cookie" "$URL/bench/read" || true)
  if [[ $code == 200 ]]; then recovered_ms=$(now_ms); break; fi
  sleep 0.02
done

wait "$WRK_PID" || true
WRK_PID=""

echo "=== Redis killed under load (wrk -t$THREADS -c$CONNS -d${DURATION}s; kill at ${KILL_AT}s, down ${DOWN}s)"
grep -E '^(STATUS|RESETS|SOCKET|LATENCY) ' "$WORK/wrk.out" | sed 's/^/  /'
grep -E 'Requests/sec' "$WORK/wrk.out" | sed 's/^/  /' || true
echo "  redis down for $((back_ms - killed_ms)) ms (kill to PONG)"
if [[ -n $recovered_ms ]]; then
  echo "  recovery after Redis answered: $((recovered_ms - back_ms)) ms"
else
  echo "  recovery after Redis answered: NONE within 10 s"
fi

lost=0
sessions=0
while read -r _ id acked; do
  sessions=$((sessions + 1))
  stored=$(curl -s --max-time 5 -H "Cookie: dmsession=$id" "$URL/bench/read")
  if [[ ! $stored =~ ^[0-9]+$ ]]; then stored=0; fi
  if ((stored < acked)); then lost=$((lost + acked - stored)); fi
  echo "  session ${id:0:6}…: acknowledged up to $acked, stored $stored"
done < <(grep '^ACK ' "$WORK/wrk.out")
echo "  acknowledged writes lost: $lost (over $sessions sessions)"
other=$(awk '/^STATUS other5xx/ {print $3}' "$WORK/wrk.out")
echo "  non-503 errors (5xx other than 503): ${other:-?}"
