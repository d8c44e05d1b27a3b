#!/usr/bin/env bash
# Pub/sub delivery rates on loopback: a standalone Redis against a three-primary Redis
# Cluster, each started for the run (tests/examples/pubsub_rate.rs says what is measured).
# Needs redis-server and redis-cli (Debian packages redis-server, redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
RUST_LOG=${RUST_LOG:-off} cargo run --release --quiet -p rondo-tests --example pubsub_rate
