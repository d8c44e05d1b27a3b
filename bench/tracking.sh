#!/usr/bin/env bash
# What Redis client-side caching costs, key tracking against broadcast: the invalidations
# each server receives per session write with 1, 2 and 4 servers (round robin and affinity),
# and the Redis memory of the tracking table with 100k live sessions. Real redis-server and
# example-app servers in one test process (tests/tests/tracking_cost.rs); prints the tables.
# Takes a few minutes (the 100k sessions are created three times).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_LOG=${RUST_LOG:-off}
cargo test --release -p rondo-tests --test tracking_cost -- --ignored --nocapture --test-threads 1 2>&1 |
  grep -v '^running\|^test \|^$\|test result'
