#!/usr/bin/env bash
# Memory of live session actors: N sessions are stored straight into a fresh redis-server
# (the records Rondo itself writes: `_v`, `_c`, `_r`, `d:count`), then example-app
# (release) reads each of them once through /bench/read, so that each gets an actor that
# stays alive (actor_idle_timeout = 10 minutes). Prints the live actors (from /metrics), the
# process's RSS before and after, and the bytes per actor.
#
# usage: bench/actors.sh            env (optional): N (100000), RONDO_BIN (skip the build)
#
# Only the processes this script starts (redis-server, example-app, wrk) are stopped, by PID.
set -euo pipefail

N=${N:-100000}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" wrk redis-server redis-cli curl python3
need_rondo

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$APP_PID/status"; }

REDIS_PORT=$(free_port)
APP_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --logfile "$WORK/redis.log" &
REDIS_PID=$!
wait_for_redis "$REDIS_PORT"

echo "storing $N sessions in Redis"
python3 - "$N" "$WORK" <<'PY' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
import base64, hashlib, os, sys, time
n, work = int(sys.argv[1]), sys.argv[2]
now = str(int(time.time())).encode()
def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)
with open(os.path.join(work, "ids.txt"), "w") as ids:
    for _ in range(n):
        sid = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=")
        ids.write(sid.decode() + "\n")
        key = b"bench:session:" + hashlib.sha256(sid).hexdigest().encode()
        # d:count = MessagePack 1
        sys.stdout.buffer.write(command(b"HSET", key, b"_v", b"1", b"_c", now, b"_r", now,
                                        b"d:count", b"\x01"))
        sys.stdout.buffer.write(command(b"PEXPIRE", key, b"86400000"))
PY
echo "Redis holds $(redis-cli -p "$REDIS_PORT" dbsize) keys"

cat >"$WORK/config.ini" <<INI
[http]
host = 127.0.0.1
port = $APP_PORT
[session]
store = redis
actor_idle_timeout = 600
max_actors = $((N + 1000))
[redis]
default[port] = $REDIS_PORT
default[prefix] = bench:
INI
"$RONDO_BIN" --config "$WORK/config.ini" >"$WORK/app.log" 2>&1 &
APP_PID=$!
for _ in $(seq 1 250); do
  curl -sf "http://127.0.0.1:$APP_PORT/healthz" >/dev/null && break
  sleep 0.02
done
before=$(rss_kib)

# Each wrk thread reads its share of the ids once, in order, then repeats its first id.
cat >"$WORK/read.lua" <<LUA
local ids = {}
for line in io.lines("$WORK/ids.txt") do ids[#ids + 1] = line end
local threads = 0
function setup(thread)
  thread:set("first", threads)
  threads = threads + 1
end
function init(args)
  step = 4
  next_id = first + 1
end
function request()
  local id = ids[next_id] or ids[first + 1]
  if ids[next_id] then next_id = next_id + step end
  return wrk.format("GET", "/bench/read", { Cookie = "dmsession=" .. id })
end
LUA
echo "reading each session once"
seconds=$(( N / 5000 + 5 ))
wrk -t4 -c16 -d"${seconds}s" -s "$WORK/read.lua" "http://127.0.0.1:$APP_PORT/bench/read" \
  | grep -E 'Requests/sec|requests in|Non-2xx' || true
sleep 1
after=$(rss_kib)
live=$(curl -s "http://127.0.0.1:$APP_PORT/metrics" | awk '/^rondo_session_live_actors / {print $2}')
echo "live actors: $live"
echo "RSS: ${before} KiB before, ${after} KiB after"
python3 -c "print(f'per live actor: {($after - $before) * 1024 / max(1, $live):.0f} bytes')"
