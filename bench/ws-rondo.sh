#!/usr/bin/env bash
# Starts Rondo's example app as a channel server the way ../shared/peers/ws-bench.sh starts
# every server: ws-rondo.sh LISTEN_ADDR REDIS_URL, with APP_ID, APP_KEY and APP_SECRET in the
# environment. It writes a config.ini for that address and Redis (sessions and channels on
# Redis, so several processes on one Redis share their channels) and execs the app.
# RONDO_BIN: the example-app binary (bench/ws.sh sets it).
set -euo pipefail
addr=$1 url=$2
host=${addr%:*} port=${addr##*:}
rhostport=${url#redis://}; rhostport=${rhostport%%/*}
rhost=${rhostport%:*} rport=${rhostport##*:}
bin=${RONDO_BIN:?set RONDO_BIN to the example-app binary}
cfg=$(mktemp --suffix=.ini)
cat >"$cfg" <<INI
[app]
log_level = warn

[http]
host = $host
port = $port

[session]
store = redis
redis_connection_pool = default

[redis]
default[host] = $rhost
default[port] = $rport
default[prefix] = wsbench:
default[pool_size] = 8
default[timeout] = 1

[channels]
enabled = true
app_id = ${APP_ID:?}
key = ${APP_KEY:?}
secret = ${APP_SECRET:?}
max_connections = 100000
INI
exec "$bin" --config "$cfg"
