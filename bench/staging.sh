#!/usr/bin/env bash
# Structured staging: a 1,000,000-row, 10-column CSV staged by Spine (our parser on a blocking
# thread + COPY into staging.import_rows inside one tenant transaction, RLS on) beside
# `psql \copy` of the same file into a comparable table (staging.import_rows' columns and indexes,
# the values as 10 text columns) and into a bare heap of 10 text columns, on the same server,
# alternating baselines / Spine for ROUNDS rounds. Prints rows/s of each and the ratios of the
# best runs (target: >= 0.7 of the comparable table; decision 0031). See bench/README.md.
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
# Two baselines. The comparable table (the issue's "comparable table"): staging.import_rows' shape
# as psql \copy can fill it: the same bookkeeping columns filled by defaults (a bigint identity key
# instead of the loader's ascending ids, the tenant, batch and file, a row number from a sequence,
# review status, timestamps), the values as 10 text columns instead of one JSON object, and the
# same three indexes; loaded by its owner (no row-level security). The bare heap: 10 text
# columns, no keys, no indexes: the cheapest place COPY can put these bytes.
"${PSQL[@]}" -c "DROP TABLE IF EXISTS public.bench_copy" -c "DROP TABLE IF EXISTS public.bench_copy_staged" \
  -c "DROP SEQUENCE IF EXISTS public.bench_copy_rows" \
  -c "CREATE TABLE public.bench_copy (c1 text, c2 text, c3 text, c4 text, c5 text, c6 text, c7 text, c8 text, c9 text, c10 text)" \
  -c "CREATE SEQUENCE public.bench_copy_rows" \
  -c "CREATE TABLE public.bench_copy_staged (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id uuid NOT NULL DEFAULT '00000000-0000-4000-8000-000000000003',
        import_batch_id uuid NOT NULL DEFAULT '00000000-0000-4000-8000-000000000001',
        source_file_id uuid NOT NULL DEFAULT '00000000-0000-4000-8000-000000000002',
        row_number integer NOT NULL DEFAULT nextval('public.bench_copy_rows') CHECK (row_number > 0),
        c1 text, c2 text, c3 text, c4 text, c5 text, c6 text, c7 text, c8 text, c9 text, c10 text,
        review_status text NOT NULL DEFAULT 'pending',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (import_batch_id, row_number))" \
  -c "CREATE INDEX ON public.bench_copy_staged (tenant_id, import_batch_id, review_status) WHERE review_status <> 'pending'"

# psql \copy of the CSV into TABLE (with COLUMNS); prints "rate cpu_secs" and a line on stderr.
copy_into() {
  local table=$1 columns=$2 label=$3
  "${PSQL[@]}" -c "TRUNCATE $table" -c "CHECKPOINT"
  local t0 t1 ticks
  t0=$(date +%s.%N)
  # The backend's CPU ticks before and after (when the server runs here), as spine bench reports.
  ticks=$("${PSQL[@]}" <<SQL
SELECT pg_backend_pid() AS pid \\gset
\\setenv BACKEND :pid
\\! awk '{print \$14 + \$15}' /proc/\$BACKEND/stat 2>/dev/null
\\copy $table $columns FROM '$CSV' WITH (FORMAT csv, HEADER true)
\\! awk '{print \$14 + \$15}' /proc/\$BACKEND/stat 2>/dev/null
SQL
)
  t1=$(date +%s.%N)
  local rate cpu
  rate=$(python3 -c "print($ROWS / ($t1 - $t0))")
  cpu=$(echo $ticks | awk 'NF == 2 {printf "%.2f", ($2 - $1) / 100}')
  echo "round $round: psql \\copy, $label: $ROWS rows in $(python3 -c "print(f'{$t1 - $t0:.2f}')") s = ${rate%.*} rows/s (server CPU ${cpu:-?} s)" >&2
  echo "$rate ${cpu:-null}"
  "${PSQL[@]}" -c "TRUNCATE $table"
}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), $ROWS rows, $(($(stat -c %s "$CSV") / 1000000)) MB, rounds=$ROUNDS"
"$SPINE" bench staging --parse-only --file "$CSV" | grep -v '^RESULT' | sed 's/^/# spine parser thread alone: /'
RESULTS=() BEFORE=()
for round in $(seq "$ROUNDS"); do
  bare=$(copy_into public.bench_copy "" "bare heap (10 text columns)")
  staged=$(copy_into public.bench_copy_staged "(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10)" "comparable table")
  "${PSQL[@]}" -c "CHECKPOINT"
  out=$("$SPINE" bench staging --file "$CSV")
  echo "round $round: spine: $(echo "$out" | grep -v '^RESULT')"
  RESULTS+=("$bare $staged $(echo "$out" | sed -n 's/^RESULT //p')")
  if [[ -n ${BEFORE_BIN:-} ]]; then
    "${PSQL[@]}" -c "CHECKPOINT"
    out=$(DATABASE_URL=$BEFORE_URL "$BEFORE_BIN" bench staging --file "$CSV")
    echo "round $round: before: $(echo "$out" | grep -v '^RESULT')"
    BEFORE+=("$(echo "$out" | sed -n 's/^RESULT //p')")
  fi
done

{ printf '%s\n' "${RESULTS[@]}"; printf 'before %s\n' "${BEFORE[@]}"; } | python3 -c '
import json, sys
runs, before = [], []
for l in sys.stdin:
    parts = l.strip().split(" ", 4)
    if parts[0] == "before":
        if len(parts) > 1:
            before.append(json.loads(l.strip().partition(" ")[2]))
        continue
    if len(parts) == 5:
        runs.append((float(parts[0]), float(parts[2]), json.loads(parts[4])))
bare = max(b for b, _, _ in runs)
comparable = max(c for _, c, _ in runs)
best = max((r for _, _, r in runs), key=lambda r: r["rows_per_sec"])
ours = best["rows_per_sec"]
def cpu(r):
    s, c, n = r.get("server_cpu_secs"), r.get("client_cpu_secs"), r["rows"] / 1e6
    return "" if s is None or c is None else " (CPU per 1M rows: server %.1f s, spine %.1f s)" % (s / n, c / n)
print()
print("| figure | rows/s (best of %d) |" % len(runs))
print("|---|---|")
print(f"| psql \\copy into the comparable table (staging.import_rows shape, 10 text columns) | {comparable:,.0f} |")
print(f"| psql \\copy into a bare heap of 10 text columns | {bare:,.0f} |")
print(f"| spine staging (parse + COPY into staging.import_rows) | {ours:,.0f}{cpu(best)} |")
if before:
    b = max(before, key=lambda r: r["rows_per_sec"])
    rate = b["rows_per_sec"]
    print(f"| BEFORE_BIN staging | {rate:,.0f}{cpu(b)} |")
    print(f"| ratio BEFORE_BIN / comparable table | {rate / comparable:.2f} |")
print(f"| **ratio spine / comparable table** | **{ours / comparable:.2f}** (target >= 0.70) |")
print(f"| ratio spine / bare heap | {ours / bare:.2f} |")
'
