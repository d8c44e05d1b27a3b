#!/bin/sh
# hyper-redis-floor in FLOOR_MODE=mux (requests pipeline over one shared
# multiplexed Redis connection), run from our peers build directory
# ($PEERS_TARGET, default <repo>/target/peers) because the peers' own
# hyper-redis-floor-mux.sh looks inside the read-only peers directory.
# exec keeps the PID, so bench.sh stops and measures (RSS, CPU) the server itself.
: "${PEERS_TARGET:=$(cd "$(dirname "$0")/.." && pwd)/target/peers}"
exec env FLOOR_MODE=mux "$PEERS_TARGET/release/hyper-redis-floor" "$@"
