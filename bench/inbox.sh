#!/usr/bin/env bash
# 10,000 small files dropped into the inbox of a running `spine up` at once (issue 4): files/s
# and drop-to-registered latency (p50/p95/max), beside `sha256sum` + `cp` + `sync` of the same
# files as the raw-tool baseline. See bench/README.md.
#
#   bench/inbox.sh            10,000 files of 1-4 KiB; bench/inbox.sh 2000 for a quick one
#
# The files are made in $WORK/src (same file system as the inbox), then renamed into the inbox
# one by one (`find … -exec mv -t`), as a sync client would. Latency of a file: its capture's
# captured_at (the registration transaction) minus the moment the drop began. `spine up` runs the
# release build against a throwaway cluster (../shared/bench-peers/start-pg.sh, port 54349), with
# its job workers on, as in production.
set -euo pipefail
N=${1:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SPINE=$(realpath -m "${BENCH_SPINE_BIN:-$TARGET/release/spine}")   # BENCH_SPINE_BIN: another build to measure (not rebuilt; not SPINE_*, which spine reads as settings); absolute, since spine runs in its own directory
PEERS=$ROOT/../shared/bench-peers
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
WORK=${WORK:-/tmp/spine-inbox-bench}
export PGBASE=${PGBASE:-/tmp/spine-bench-inbox-pg} PGPORT=${PGPORT:-54349}
# Nothing is deleted between the baseline and Spine's run; the previous run's files and database
# are deleted at its end, and a run starts QUIET seconds after that (bench/quiet.sh).
source "$ROOT/bench/quiet.sh"

[[ -n ${BENCH_SPINE_BIN:-} ]] || (cd "$ROOT" && nice -n 19 cargo build --release -q -p spine)
STARTED_PG=0
if ! "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; then
  "$PEERS/start-pg.sh" >&2
  STARTED_PG=1
fi
ADMIN=postgres://postgres@127.0.0.1:$PGPORT/postgres
delete_all() {   # the previous (or this) run's files and database, remembering when
  "$PGBIN/psql" -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS spine_bench_inbox" 2>/dev/null || true
  rm -rf "$WORK"
  quiet_mark "$WORK.deleted"
}
if [[ -e $WORK ]] || "$PGBIN/psql" -X -q -t -A "$ADMIN" -c "SELECT 1 FROM pg_database WHERE datname = 'spine_bench_inbox'" | grep -q 1; then
  delete_all
fi
quiet_wait "$WORK.deleted"
"$PGBIN/psql" -X -q "$ADMIN" -c "CREATE DATABASE spine_bench_inbox"
# SOCKET=1: Spine connects over the cluster's Unix socket instead of TCP (no TCP_NODELAY question).
if [[ ${SOCKET:-0} == 1 ]]; then
  export DATABASE_URL="postgres:///spine_bench_inbox?host=$PGBASE&port=$PGPORT&user=postgres"
else
  export DATABASE_URL=postgres://postgres@127.0.0.1:$PGPORT/spine_bench_inbox
fi
UP_PID=
cleanup() {
  if [[ -n $UP_PID ]]; then kill -TERM "$UP_PID" 2>/dev/null || true; wait "$UP_PID" 2>/dev/null || true; fi
  delete_all
  if [[ $STARTED_PG == 1 && ${KEEP_PG:-0} != 1 ]]; then
    su postgres -c "$PGBIN/pg_ctl -D $PGBASE/data -m fast -w stop" >/dev/null || true
  fi
}
trap cleanup EXIT
now() { date +%s.%N; }

mkdir -p "$WORK/src" "$WORK/copy"
python3 - "$WORK/src" "$N" <<'PY'
import os, random, sys
src, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
for i in range(n):
    with open(os.path.join(src, f"note-{i:05}.txt"), "w") as f:
        f.write(f"note {i}\n" + "".join(rnd.choice("abcdefghij \n") for _ in range(rnd.randrange(1024, 4096))))
PY
sync
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), $N files, database over $([[ ${SOCKET:-0} == 1 ]] && echo a Unix socket || echo TCP)"

# Baseline: hash and copy every file, then flush.
t0=$(now)
find "$WORK/src" -type f -print0 | xargs -0 sha256sum > /dev/null
cp -r "$WORK/src/." "$WORK/copy/"
sync
t1=$(now)

(cd "$WORK" && SPINE_DATA_DIR="$WORK/data" SPINE_LOG__LEVEL=warn exec "$SPINE" up --listen 127.0.0.1:0 > "$WORK/up.out" 2> "$WORK/up.err") &
UP_PID=$!
for _ in $(seq 600); do grep -q '^Spine is up at' "$WORK/up.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^Spine is up at' "$WORK/up.out" || { cat "$WORK/up.err"; echo "spine up did not start" >&2; exit 1; }
INBOX="$WORK/data/inbox"
T0=$(now)
find "$WORK/src" -type f -exec mv -t "$INBOX" {} +
T_DROP=$(now)
while :; do
  DONE=$(find "$INBOX/processed" -type f | wc -l)
  [[ $DONE -ge $N ]] && break
  sleep 0.2
done
T1=$(now)
FAILED=$(find "$INBOX/failed" -type f | wc -l)
STATS=$("$PGBIN/psql" -X -q -t -A -F' ' "$DATABASE_URL" -c "
  SELECT count(*), count(DISTINCT file_id),
         percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM captured_at) - $T0),
         percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM captured_at) - $T0),
         max(extract(epoch FROM captured_at) - $T0)
  FROM qiaccess.capture_events WHERE ingress_kind = 'watch_folder'")
read -r CAPTURES FILES P50 P95 MAX <<< "$STATS"
python3 - "$N" "$t0" "$t1" "$T0" "$T_DROP" "$T1" "$CAPTURES" "$FILES" "$P50" "$P95" "$MAX" "$FAILED" <<'PY'
import sys
n = int(sys.argv[1]); b0, b1, d0, ddrop, d1 = map(float, sys.argv[2:7])
captures, files = int(sys.argv[7]), int(sys.argv[8]); p50, p95, mx = map(float, sys.argv[9:12]); failed = int(sys.argv[12])
base = n / (b1 - b0); inbox = n / (d1 - d0)
print(f"drop took {ddrop - d0:.2f} s; {captures} captures, {files} files, {failed} in failed/")
print()
print("| figure | value |")
print("|---|---|")
print(f"| sha256sum + cp + sync, files/s | {base:,.0f} |")
print(f"| inbox: drop → all in processed/, files/s | {inbox:,.0f} |")
print(f"| ratio inbox / baseline | {inbox / base:.2f} |")
print(f"| drop-to-registered latency p50 / p95 / max, s | {p50:.2f} / {p95:.2f} / {mx:.2f} |")
assert captures == n and files == n and failed == 0, "every file registered exactly once"
PY
