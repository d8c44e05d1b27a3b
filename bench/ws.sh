#!/usr/bin/env bash
# Channel benchmark: Rondo beside ws-floor (a bare hyper + tokio-tungstenite fan-out server)
# in one run of ../shared/peers/ws-bench.sh, measured by its load client ws-load: memory per
# idle subscribed connection, delivered events/s, publish-to-receive latency, missing and
# duplicated deliveries; Rondo also as two processes on one Redis (MULTI).
#
# usage: bench/ws.sh            (CONNS, TPUT_S, LAT_RATE, LAT_S, NODES pass through)
# env:   RONDO_BIN=/path/to/example-app   skip the Rondo build and use this binary
#        PEERS_DIR=<repo>/../shared/peers  the peers checkout (only read, never written)
#        PEERS_TARGET=<repo>/target/peers  where ws-load and ws-floor are built
# Results: bench/results/ws-<UTC timestamp>/ (summary.md and the raw outputs).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=${PEERS_DIR:-$ROOT/../shared/peers}
[[ -f "$PEERS/ws-bench.sh" ]] || { echo "peers not found: $PEERS/ws-bench.sh (set PEERS_DIR)" >&2; exit 1; }
PEERS_TARGET=${PEERS_TARGET:-$ROOT/target/peers}
mkdir -p "$PEERS_TARGET"
PEERS_TARGET=$(cd "$PEERS_TARGET" && pwd)

if [[ -z "${RONDO_BIN:-}" ]]; then
  echo "building Rondo example-app (release)"
  (cd "$ROOT" && cargo build --release -p example-app)
  tdir=${CARGO_TARGET_DIR:-target}
  [[ "$tdir" == /* ]] || tdir=$ROOT/$tdir
  RONDO_BIN=$tdir/release/example-app
fi
[[ -x "$RONDO_BIN" ]] || { echo "RONDO_BIN is not an executable: $RONDO_BIN" >&2; exit 1; }
export RONDO_BIN

for p in ws-load ws-floor; do
  if [[ ! -x "$PEERS_TARGET/release/$p" ]]; then
    echo "building $p (release) into $PEERS_TARGET"
    (cd "$PEERS" && CARGO_TARGET_DIR="$PEERS_TARGET" CARGO_BUILD_JOBS=2 \
      cargo build --release --locked --manifest-path "$PEERS/Cargo.toml" -p "$p")
  fi
done

# ws-bench.sh looks for its binaries next to itself: run a copy from a scratch directory
# whose target/release holds the ones built here (the peers directory stays untouched).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$PEERS/ws-bench.sh" "$work/"
mkdir -p "$work/target/release"
ln -s "$PEERS_TARGET/release/ws-load" "$work/target/release/ws-load"
ln -s "$PEERS_TARGET/release/ws-floor" "$work/target/release/ws-floor"
export OUTDIR=${OUTDIR:-$ROOT/bench/results/ws-$(date -u +%Y%m%dT%H%M%SZ)}
echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
SERVERS="ws-floor rondo=$ROOT/bench/ws-rondo.sh" MULTI="rondo" bash "$work/ws-bench.sh"
