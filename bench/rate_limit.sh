#!/usr/bin/env bash
# The rate limiter's ceiling (decision 0024) beside a raw-SQL baseline in the same run: acquires
# per second from 8 tasks on 8 pools (8 "worker processes") for BENCH_SECS (default 5) per phase,
# against the same tasks incrementing a counter row with synchronous_commit = off (the row lock
# alone). The bench is crates/spine-pipeline/benches/rate_limit.rs (release build).
#
#   bench/rate_limit.sh             BENCH_SECS=10 bench/rate_limit.sh
#
# Database: the test kit's private cluster, or $DATABASE_URL's server when set.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# $(date -u +%FT%TZ) BENCH_SECS=${BENCH_SECS:-5}"
cargo bench -q -p spine-pipeline --bench rate_limit 2>&1 | grep -E '^(#|rate limiter)'
