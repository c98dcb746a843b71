#!/usr/bin/env bash
# The rate limiter's ceiling (decision 0024): acquires per second one connection sustains from 8
# concurrent tasks, each on a pool of its own (8 "worker processes"), for BENCH_SECS (default 5)
# per phase: first limit 600 per 1 s window (mostly admissions, a full log of ~600 entries), then
# 600 per 60 s (every call a hit); last, for comparison, 8 tasks on 8 different connections (no row
# contention). A figure, not an assertion; it runs the ignored test
# `bench_acquires_per_second` of crates/spine-pipeline/tests/rate_limits.rs in release mode.
#
#   bench/rate_limit.sh             BENCH_SECS=10 bench/rate_limit.sh
#
# Database: $DATABASE_URL when set (e.g. the shared bench cluster with fsync on), else the test
# kit's private cluster (fast mode: fsync off, which barely matters here because acquires commit
# with synchronous_commit = off).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), BENCH_SECS=${BENCH_SECS:-5}"
cargo test -q --release -p spine-pipeline --test rate_limits -- --ignored --nocapture bench_acquires_per_second 2>&1 \
  | grep '^rate limiter'
