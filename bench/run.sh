#!/usr/bin/env bash
# Rondo benchmark runner: builds Rondo's example-app and the peer servers, then
# runs the peers' bench.sh (wrk + a fresh redis-server per server) and prints
# Rondo-vs-peer ratios.
#
# usage: bench/run.sh [plain|sessions|all]      (default: plain)
#
#   plain     hyper-bare and rondo, route plain only (1 pass, no redis-benchmark
#             ceiling unless PASSES / REDIS_BENCH_N are set)
#   sessions  hyper-bare, hyper-redis-floor-mux, axum-tower-sessions,
#             actix-session-redis and rondo; routes plain counter read new
#   all       sessions plus hyper-redis-floor (pool mode)
#
# env (all optional):
#   RONDO_BIN=/path/to/example-app   skip the Rondo build and use this binary
#   PEERS_DIR=<repo>/../shared/peers the peers checkout (only read, never written)
#   PEERS_TARGET=<repo>/target/peers where missing peer binaries are built
#   OUTDIR=<repo>/bench/results/<UTC timestamp>
#   ROUTES                           overrides the profile's routes
#   RONDO_ALSO="base=/path/to/example-app ..."  more Rondo builds in the same run (rows
#                                    rondo-base, ...), for before/after comparisons; the
#                                    ratios are printed for each of them too
#   DURATION CONNS THREADS WARMUP PASSES REDIS_BENCH_N   passed to bench.sh
#
# Only processes started by bench.sh are stopped, by their PIDs; this script
# starts none of its own besides cargo, bench.sh and ratios.py.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench

PROFILE=${1:-plain}
case "$PROFILE" in
  -h|--help) usage; exit 0 ;;
  plain|sessions|all) ;;
  *) echo "unknown profile: $PROFILE" >&2; usage >&2; exit 2 ;;
esac
if (( $# > 1 )); then echo "too many arguments" >&2; usage >&2; exit 2; fi

PEERS=${PEERS_DIR:-$ROOT/../shared/peers}
[[ -x "$PEERS/bench.sh" ]] || { echo "peers not found: $PEERS/bench.sh (set PEERS_DIR)" >&2; exit 1; }
PEERS=$(cd "$PEERS" && pwd)
PEERS_TARGET=${PEERS_TARGET:-$ROOT/target/peers}
mkdir -p "$PEERS_TARGET"
PEERS_TARGET=$(cd "$PEERS_TARGET" && pwd)
export PEERS_TARGET   # read by bench/floor-mux.sh

# ---------------------------------------------------------------- tools
missing_tools() {
  local t out=()
  for t in wrk redis-server redis-cli redis-benchmark curl python3; do
    command -v "$t" >/dev/null 2>&1 || out+=("$t")
  done
  echo "${out[*]}"
}
missing=$(missing_tools)
if [[ -n "$missing" ]]; then
  pkgs="wrk redis-server redis-tools curl"
  [[ " $missing " == *" python3 "* ]] && pkgs="$pkgs python3"
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "missing: $missing; installing Debian packages: $pkgs"
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $pkgs
    missing=$(missing_tools)
  fi
  if [[ -n "$missing" ]]; then
    echo "missing tools: $missing" >&2
    echo "install them (Debian/Ubuntu): sudo apt-get update && sudo apt-get install -y $pkgs" >&2
    exit 1
  fi
fi

# ---------------------------------------------------------------- profile
case "$PROFILE" in
  plain)
    peers=(hyper-bare)
    routes="plain"
    export PASSES=${PASSES:-1}
    export REDIS_BENCH_N=${REDIS_BENCH_N:-0}
    ;;
  sessions)
    peers=(hyper-bare hyper-redis-floor-mux axum-tower-sessions actix-session-redis)
    routes="plain counter read new"
    ;;
  all)
    peers=(hyper-bare hyper-redis-floor hyper-redis-floor-mux axum-tower-sessions actix-session-redis)
    routes="plain counter read new"
    ;;
esac
export ROUTES=${ROUTES:-$routes}

# ---------------------------------------------------------------- builds
if [[ -z "${RONDO_BIN:-}" ]]; then
  echo "building Rondo example-app (release)"
  (cd "$ROOT" && cargo build --release -p example-app)
  tdir=${CARGO_TARGET_DIR:-target}
  [[ "$tdir" == /* ]] || tdir=$ROOT/$tdir
  RONDO_BIN=$tdir/release/example-app
fi
[[ -x "$RONDO_BIN" ]] || { echo "RONDO_BIN is not an executable: $RONDO_BIN" >&2; exit 1; }
RONDO_BIN=$(cd "$(dirname "$RONDO_BIN")" && pwd)/$(basename "$RONDO_BIN")
export RONDO_BIN   # read by the peers' rondo.sh

build_peer() { # $1 = workspace package (= binary name) of the peers workspace
  local bin=$PEERS_TARGET/release/$1
  [[ -x "$bin" ]] && return 0
  echo "building peer $1 (release, CARGO_BUILD_JOBS=2) into $PEERS_TARGET"
  (cd "$PEERS" && CARGO_TARGET_DIR="$PEERS_TARGET" CARGO_BUILD_JOBS=2 \
    cargo build --release --locked --manifest-path "$PEERS/Cargo.toml" -p "$1")
  [[ -x "$bin" ]] || { echo "peer build did not produce $bin" >&2; exit 1; }
}

servers=()
for p in "${peers[@]}"; do
  case "$p" in
    hyper-redis-floor-mux)
      build_peer hyper-redis-floor
      servers+=("hyper-redis-floor-mux=$BENCH/floor-mux.sh") ;;
    *)
      build_peer "$p"
      servers+=("$p=$PEERS_TARGET/release/$p") ;;
  esac
done
servers+=("rondo=$PEERS/rondo.sh@/bench")

export OUTDIR=${OUTDIR:-$BENCH/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

# Other Rondo builds: each gets a wrapper that starts the peers' rondo.sh with its binary.
also=()
for pair in ${RONDO_ALSO:-}; do
  name=${pair%%=*} bin=${pair#*=}
  [[ -x "$bin" ]] || { echo "RONDO_ALSO: not an executable: $bin" >&2; exit 1; }
  wrapper=$OUTDIR/rondo-$name.sh
  printf '#!/usr/bin/env bash\nRONDO_BIN=%q exec %q "$@"\n' "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" "$PEERS/rondo.sh" >"$wrapper"
  chmod +x "$wrapper"
  servers+=("rondo-$name=$wrapper@/bench")
  also+=("rondo-$name")
done
export SERVERS="${servers[*]}"

# ---------------------------------------------------------------- run
{
  echo "profile: $PROFILE"
  echo "rondo: $RONDO_BIN, $(stat -L -c %s "$RONDO_BIN") bytes, commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
  echo "peers: $PEERS (binaries in $PEERS_TARGET)"
  echo "SERVERS=$SERVERS"
  echo "ROUTES=$ROUTES"
  for v in DURATION CONNS THREADS WARMUP PASSES REDIS_BENCH_N; do
    if [[ -n "${!v:-}" ]]; then echo "$v=${!v}"; fi
  done
} >"$OUTDIR/run.txt"

echo "profile $PROFILE: $SERVERS"
echo "routes: $ROUTES; results: $OUTDIR"
rc=0
# TMPDIR: the peers' rondo.sh writes its generated config.ini with mktemp and
# never removes it; this way it is kept with the results instead of piling up in /tmp.
TMPDIR=$OUTDIR "$PEERS/bench.sh" || rc=$?

if [[ ! -f "$OUTDIR/summary.md" ]]; then
  echo "no summary.md in $OUTDIR (bench.sh exit status $rc)" >&2
  exit $(( rc ? rc : 1 ))
fi
echo
# --strict: exit 3 if Rondo did not run or answered non-2xx (bench.sh itself
# exits 0 then); speed never makes this fail.
rrc=0
python3 "$BENCH/ratios.py" --strict "$OUTDIR/summary.md" | tee -a "$OUTDIR/ratios.md" || rrc=$?
for name in "${also[@]}"; do
  echo
  python3 "$BENCH/ratios.py" --rondo "$name" "$OUTDIR/summary.md" | tee -a "$OUTDIR/ratios.md" || true
done
echo
echo "results: $OUTDIR"
exit $(( rc ? rc : rrc ))
