#!/usr/bin/env bash
# Registration through the upload API beside `sha256sum` + `cp` of the same bytes (issue 4:
# ≥ 0.8×, with spine's RSS growing by less than 64 MB). See bench/README.md.
#
#   bench/upload.sh           about 2.1 GB: 4096 × 64 KiB, 40 × 10 MiB, 7 × 200 MiB (bench/blobs.sh's files)
#
# Per round, alternating: the baseline (`sha256sum` of every file, then `cp -r`, then `sync`), then
# a fresh `spine up` (release build, its own private cluster and data dir; startup is not timed)
# receiving every file as `POST /v1/files?name=…` with a raw body from one curl process, PAR
# (default 4) transfers at a time over reused connections (CLIENT=per-file: a curl per file).
# Every upload is a full registration: blob put (fsync), capture, file version, batch and job in
# one transaction. RSS: VmRSS of `spine up` once idle, and VmHWM (peak) after the uploads.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SPINE=$(realpath -m "${BENCH_SPINE_BIN:-$TARGET/release/spine}")   # BENCH_SPINE_BIN: another build to measure (not rebuilt; not SPINE_*, which spine reads as settings); absolute, since spine runs in its own directory
WORK=${WORK:-/tmp/spine-upload-bench}
SRC=${SRC:-/tmp/spine-blob-bench/src}
ROUNDS=${ROUNDS:-2}
PAR=${PAR:-4}
CLIENT=${CLIENT:-one}   # one: a single curl, PAR transfers over reused connections; per-file: a curl process per file
# Nothing is deleted while the script runs: each round's copy and Spine's data directory are kept
# until the end, and a run starts QUIET seconds after its previous run's deletions (bench/quiet.sh).
source "$ROOT/bench/quiet.sh"

[[ -n ${BENCH_SPINE_BIN:-} ]] || (cd "$ROOT" && nice -n 19 cargo build --release -q -p spine)
if [[ ! -f $SRC.complete ]]; then
  echo "generating the files with bench/blobs.sh's generator (ROUNDS=0)" >&2
  ROUNDS=0 SRC=$SRC "$ROOT/bench/blobs.sh" >/dev/null
fi
mkdir -p "$WORK"
chmod 755 "$WORK"
UP_PID=
stop_spine() {
  if [[ -n $UP_PID ]]; then kill -TERM "$UP_PID" 2>/dev/null || true; wait "$UP_PID" 2>/dev/null || true; UP_PID=; fi
}
delete_rounds() {
  if compgen -G "$WORK/r*" > /dev/null; then rm -rf "$WORK"/r*; quiet_mark "$WORK/.deleted"; fi
}
trap 'stop_spine; delete_rounds' EXIT
delete_rounds   # a previous run that did not finish
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }   # from $1 to $2 (bc prints ".57", which is not JSON)
# The whole machine's CPU-seconds busy (user, nice, system, irq, softirq) and in iowait, from
# /proc/stat: the machine is otherwise idle, so "busy" is Spine and its PostgreSQL together (or the
# baseline's tools), and tells a CPU-bound run from one waiting for the disk on another machine.
cpu() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f %.2f", ($2 + $3 + $4 + $7 + $8) / hz, $6 / hz }' /proc/stat; }
cpu_delta() { awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" 'BEGIN { printf "%.2f %.2f", c - a, d - b }'; }   # busy, iowait from "$1 $2" to "$3 $4"
find "$SRC" -type f -name '*.bin' -print0 | xargs -0 cat > /dev/null
FILES=$(find "$SRC" -type f -name '*.bin' | wc -l)
BYTES=$(find "$SRC" -type f -name '*.bin' -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s}')
NEED=$(( (2 * BYTES + 512 * 1024 * 1024) * ROUNDS / 1024 ))   # KiB: the copy, the blobs and a cluster per round
FREE=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
(( FREE > NEED )) || { echo "$WORK has $((FREE / 1024)) MiB free; $ROUNDS rounds keep about $((NEED / 1024)) MiB until the end" >&2; exit 1; }
quiet_wait "$WORK/.deleted"
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), $FILES files, $BYTES bytes, $PAR uploads in flight, client $CLIENT"

RESULTS=()
for round in $(seq "$ROUNDS"); do
  CP=$WORK/r$round-cp RUN=$WORK/r$round-run
  sync
  c0=$(cpu); t0=$(now)
  find "$SRC" -type f -name '*.bin' -print0 | xargs -0 sha256sum > /dev/null
  t1=$(now)
  cp -r "$SRC" "$CP"
  t2=$(now)
  sync
  t3=$(now); c1=$(cpu)

  mkdir -p "$RUN"; chmod 755 "$RUN"
  (cd "$RUN" && exec env -u DATABASE_URL SPINE_DATA_DIR="$RUN/data" SPINE_LOG__LEVEL=warn SPINE_INBOX__ENABLED=false \
     "$SPINE" up --listen 127.0.0.1:0 > "$RUN/up.out" 2> "$RUN/up.err") &
  UP_PID=$!
  for _ in $(seq 600); do grep -q '^Spine is up at' "$RUN/up.out" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/^Spine is up at \([^ ]*\).*/\1/p' "$RUN/up.out")
  KEY=$(grep -o 'sak_[A-Za-z0-9_-]*' "$RUN/up.out" | head -1)
  [[ -n $URL && -n $KEY ]] || { cat "$RUN/up.err"; echo "spine up did not start" >&2; exit 1; }
  SPID=$UP_PID
  sync   # startup's writes (a new cluster) are not the uploads'
  RSS0=$(awk '/^VmRSS/ {print $2}' "/proc/$SPID/status")
  u0=$(now); cu0=$(cpu)
  export URL KEY
  if [[ $CLIENT == per-file ]]; then
    find "$SRC" -type f -name '*.bin' -print0 | xargs -0 -P "$PAR" -n 1 sh -c \
      'curl -sS -o /dev/null -w "%{http_code}\n" -H "Authorization: Bearer $KEY" -H "Content-Type: application/octet-stream" \
         -X POST -T "$1" "$URL/v1/files?name=$(basename "$1")"' _ > "$RUN/codes.txt"
  else
    # One curl for every file: PAR transfers at a time over reused connections, as an agent or a
    # browser uploads (the per-file client spends the two cores on starting 4,143 processes).
    find "$SRC" -type f -name '*.bin' -printf 'upload-file = "%p"\nurl = "'"$URL"'/v1/files?name=%f"\noutput = "/dev/null"\n' \
      > "$RUN/curl.cfg"
    curl -sS --no-progress-meter --parallel --parallel-max "$PAR" -X POST -H "Authorization: Bearer $KEY" \
      -H "Content-Type: application/octet-stream" -w '%{http_code}\n' -K "$RUN/curl.cfg" > "$RUN/codes.txt"
  fi
  u1=$(now); cu1=$(cpu)
  read -r bbusy bwait <<< "$(cpu_delta $c0 $c1)"
  read -r ubusy uwait <<< "$(cpu_delta $cu0 $cu1)"
  HWM=$(awk '/^VmHWM/ {print $2}' "/proc/$SPID/status")
  OK=$(grep -c '^202$' "$RUN/codes.txt" || true)
  [[ $OK == "$FILES" ]] || { sort "$RUN/codes.txt" | uniq -c; echo "not every upload was accepted" >&2; exit 1; }
  echo "round $round: sha256sum $(secs "$t0" "$t1") s, cp $(secs "$t1" "$t2") s, sync $(secs "$t2" "$t3") s; upload $(secs "$u0" "$u1") s; CPU busy/iowait s: baseline $bbusy/$bwait, upload $ubusy/$uwait; RSS idle ${RSS0} KiB, peak ${HWM} KiB"
  RESULTS+=("$(printf '{"hash":%s,"cp":%s,"sync":%s,"upload":%s,"rss0":%s,"hwm":%s,"bbusy":%s,"ubusy":%s}' \
    "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" "$(secs "$t2" "$t3")" "$(secs "$u0" "$u1")" "$RSS0" "$HWM" "$bbusy" "$ubusy")")
  stop_spine
done

python3 - "$BYTES" "${RESULTS[@]}" <<'PY'
import json, sys
total = int(sys.argv[1])
rounds = [json.loads(a) for a in sys.argv[2:]]
print()
print("| round | sha256sum + cp, MB/s | + sync, MB/s | upload API, MB/s | ratio vs cp | ratio vs cp+sync | RSS growth, MiB | CPU-s busy, baseline / upload |")
print("|---|---|---|---|---|---|---|---|")
for i, r in enumerate(rounds, 1):
    base = total / 1e6 / (r["hash"] + r["cp"])
    base_sync = total / 1e6 / (r["hash"] + r["cp"] + r["sync"])
    up = total / 1e6 / r["upload"]
    print(f"| {i} | {base:.0f} | {base_sync:.0f} | {up:.0f} | {up / base:.2f} | {up / base_sync:.2f} | {(r['hwm'] - r['rss0']) / 1024:.1f} | {r['bbusy']:.1f} / {r['ubusy']:.1f} |")
PY
