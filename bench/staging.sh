#!/usr/bin/env bash
# Structured staging: a 1,000,000-row, 10-column CSV staged by Spine (our parser on a blocking
# thread + COPY into staging.import_rows inside one tenant transaction, RLS on) beside
# `psql \copy` of the same file into a plain table of 10 text columns, on the same server,
# alternating baseline / Spine for ROUNDS rounds. Prints rows/s of each and the ratio of the
# best runs (target: >= 0.7). See bench/README.md.
#
#   bench/staging.sh [ROWS]        default 1000000
#
# The CSV is generated once into /tmp (spine-bench-staging-<ROWS>x10.csv) and reused.
# Database: $DATABASE_URL when set (a benchmark database: it gets a tenant and a table), else a
# throwaway cluster started with ../shared/bench-peers/start-pg.sh on port $PGPORT (default
# 54339, its own data dir) and a fresh database in it; stopped afterwards unless KEEP_PG=1.
# Environment: ROUNDS (default 2), PGBIN, CARGO_TARGET_DIR; BEFORE_BIN=/path/to/an/older/spine adds
# that binary as a third contender in every round, on its own database migrated by itself (only
# with the throwaway cluster), so a change can be measured before/after in one run.
set -euo pipefail
ROWS=${1:-1000000}
ROUNDS=${ROUNDS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SPINE=$TARGET/release/spine
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PEERS=${BENCH_PEERS:-$(cd "$ROOT/../shared/bench-peers" 2>/dev/null && pwd || echo /work/shared/bench-peers)}
CSV=/tmp/spine-bench-staging-${ROWS}x10.csv
export PGOPTIONS="-c client_min_messages=warning"
export SPINE_LOG__LEVEL=${SPINE_LOG__LEVEL:-warn}

(cd "$ROOT" && cargo build --release -q -p spine)

if [[ ! -s $CSV ]]; then
  echo "# generating $CSV ($ROWS rows)" >&2
  python3 - "$ROWS" "$CSV.part" <<'PY'
import random, sys
rows, path = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(42)
first = ["Ada", "Bob", "Chloé", "Dmitri", "Eve", "Fatima", "Grace", "Hiro", "Ines", "José"]
last = ["Lovelace", "Builder", "Müller", "O'Brien", "Nakamura", "Smith", "García", "Okafor"]
city = ["Berlin", "Lagos", "São Paulo", "Osaka", "Toronto", "Zürich", "Nairobi", "Lyon"]
with open(path, "w", encoding="utf-8", newline="") as f:
    f.write("id,first_name,last_name,email,city,company,phone,created,amount,note\n")
    for i in range(1, rows + 1):
        fn, ln = rnd.choice(first), rnd.choice(last)
        note = '"says ""hi"", twice"' if i % 50 == 0 else f"note {rnd.randrange(10**6)}"
        f.write(f'{i},{fn},{ln},{fn.lower()}.{i}@example.org,{rnd.choice(city)},"Acme {i % 97}, Inc.",'
                f'+49 30 {rnd.randrange(10**7):07d},2026-{i % 12 + 1:02d}-{i % 28 + 1:02d},{rnd.random() * 1e4:.2f},{note}\n')
PY
  mv "$CSV.part" "$CSV"
fi

STARTED_PG=0
if [[ -z ${DATABASE_URL:-} ]]; then
  export PGBASE=${PGBASE:-/tmp/spine-bench-staging-pg} PGPORT=${PGPORT:-54339}
  if ! "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; then
    "$PEERS/start-pg.sh" >&2
    STARTED_PG=1
  fi
  ADMIN=postgres://postgres@127.0.0.1:$PGPORT/postgres
  "$PGBIN/psql" -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS spine_bench_staging" -c "CREATE DATABASE spine_bench_staging"
  export DATABASE_URL=postgres://postgres@127.0.0.1:$PGPORT/spine_bench_staging
  if [[ -n ${BEFORE_BIN:-} ]]; then
    "$PGBIN/psql" -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS spine_bench_staging_before" \
      -c "CREATE DATABASE spine_bench_staging_before"
    BEFORE_URL=postgres://postgres@127.0.0.1:$PGPORT/spine_bench_staging_before
    DATABASE_URL=$BEFORE_URL "$BEFORE_BIN" migrate >/dev/null
  fi
elif [[ -n ${BEFORE_BIN:-} ]]; then
  echo "BEFORE_BIN needs the throwaway cluster (unset DATABASE_URL)" >&2
  exit 2
fi
stop_pg() {
  if [[ $STARTED_PG == 1 && ${KEEP_PG:-0} != 1 ]]; then
    su postgres -c "$PGBIN/pg_ctl -D $PGBASE/data -m fast -w stop" >/dev/null || true
  fi
}
trap stop_pg EXIT
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL")

"$SPINE" migrate >/dev/null
"${PSQL[@]}" -c "DROP TABLE IF EXISTS public.bench_copy" \
  -c "CREATE TABLE public.bench_copy (c1 text, c2 text, c3 text, c4 text, c5 text, c6 text, c7 text, c8 text, c9 text, c10 text)"

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), $ROWS rows, $(($(stat -c %s "$CSV") / 1000000)) MB, rounds=$ROUNDS"
RESULTS=() BEFORE=()
for round in $(seq "$ROUNDS"); do
  "${PSQL[@]}" -c "TRUNCATE public.bench_copy" -c "CHECKPOINT"
  t0=$(date +%s.%N)
  # The backend's CPU ticks before and after (when the server runs here), as spine bench reports.
  ticks=$("${PSQL[@]}" <<SQL
SELECT pg_backend_pid() AS pid \\gset
\\setenv BACKEND :pid
\\! awk '{print \$14 + \$15}' /proc/\$BACKEND/stat 2>/dev/null
\\copy public.bench_copy FROM '$CSV' WITH (FORMAT csv, HEADER true)
\\! awk '{print \$14 + \$15}' /proc/\$BACKEND/stat 2>/dev/null
SQL
)
  t1=$(date +%s.%N)
  copy_rate=$(python3 -c "print($ROWS / ($t1 - $t0))")
  copy_cpu=$(echo $ticks | awk 'NF == 2 {printf " (server CPU %.2f s)", ($2 - $1) / 100}')
  echo "round $round: psql \\copy  $ROWS rows in $(python3 -c "print(f'{$t1 - $t0:.2f}')") s = ${copy_rate%.*} rows/s$copy_cpu"
  "${PSQL[@]}" -c "CHECKPOINT"
  out=$("$SPINE" bench staging --file "$CSV")
  echo "round $round: spine      $(echo "$out" | grep -v '^RESULT')"
  RESULTS+=("$copy_rate $(echo "$out" | sed -n 's/^RESULT //p')")
  if [[ -n ${BEFORE_BIN:-} ]]; then
    "${PSQL[@]}" -c "CHECKPOINT"
    out=$(DATABASE_URL=$BEFORE_URL "$BEFORE_BIN" bench staging --file "$CSV")
    echo "round $round: before     $(echo "$out" | grep -v '^RESULT')"
    BEFORE+=("$(echo "$out" | sed -n 's/^RESULT //p')")
  fi
done
"${PSQL[@]}" -c "TRUNCATE public.bench_copy"

{ printf '%s\n' "${RESULTS[@]}"; printf 'before %s\n' "${BEFORE[@]}"; } | python3 -c '
import json, sys
runs, before = [], []
for l in sys.stdin:
    head, _, rest = l.strip().partition(" ")
    if not rest:
        continue
    if head == "before":
        before.append(json.loads(rest))
    else:
        runs.append((float(head), json.loads(rest)))
copy = max(c for c, _ in runs)
best = max((r for _, r in runs), key=lambda r: r["rows_per_sec"])
ours = best["rows_per_sec"]
def cpu(r):
    s, c, n = r.get("server_cpu_secs"), r.get("client_cpu_secs"), r["rows"] / 1e6
    return "" if s is None or c is None else " (CPU per 1M rows: server %.1f s, spine %.1f s)" % (s / n, c / n)
print()
print("| figure | rows/s (best of %d) |" % len(runs))
print("|---|---|")
print(f"| psql \\copy into 10 text columns | {copy:,.0f} |")
print(f"| spine staging (parse + COPY into staging.import_rows) | {ours:,.0f}{cpu(best)} |")
if before:
    b = max(before, key=lambda r: r["rows_per_sec"])
    rate = b["rows_per_sec"]
    print(f"| BEFORE_BIN staging | {rate:,.0f}{cpu(b)} |")
    print(f"| ratio BEFORE_BIN / psql | {rate / copy:.2f} |")
print(f"| ratio spine / psql | {ours / copy:.2f} (target >= 0.70) |")
'
