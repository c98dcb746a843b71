#!/usr/bin/env bash
# The blob store's put path beside `sha256sum` + `cp` of the same files (see bench/README.md).
#
#   bench/blobs.sh            about 2.1 GB: 4096 × 64 KiB, 40 × 10 MiB, 7 × 200 MiB
#
# The files are generated once into $SRC (default /tmp/spine-blob-bench/src) and read from the page
# cache by both sides. Baseline: `sha256sum` of every file, then `cp -r`, then `sync` (timed apart:
# cp returns before its data is on disk, while a put fsyncs every blob). Spine: `spine bench blobs`,
# every file through `BlobStore::put` into a fresh local store, under `/usr/bin/time -v`.
# ROUNDS (default 2) interleaves the two. Everything it writes is under $WORK and removed at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SPINE=$TARGET/release/spine
WORK=${WORK:-/tmp/spine-blob-bench}
SRC=${SRC:-$WORK/src}
ROUNDS=${ROUNDS:-2}

(cd "$ROOT" && nice -n 19 cargo build --release -q -p spine)

if [[ ! -f $SRC.complete ]]; then
  rm -rf "$SRC"
  python3 - "$SRC" <<'PY'
import os, sys
src = sys.argv[1]
for sub, count, size in (("small", 4096, 64 << 10), ("medium", 40, 10 << 20), ("large", 7, 200 << 20)):
    os.makedirs(os.path.join(src, sub), exist_ok=True)
    for i in range(count):
        with open(os.path.join(src, sub, f"{i:05}.bin"), "wb") as f:
            left = size
            while left:
                n = min(left, 8 << 20)
                f.write(os.urandom(n))
                left -= n
open(src.rstrip("/") + ".complete", "w").close()
PY
fi
cleanup() { rm -rf "$WORK/cp" "$WORK/store"; }
trap cleanup EXIT
export SPINE_LOG__LEVEL=${SPINE_LOG__LEVEL:-warn}
now() { date +%s.%N; }

# Warm the page cache so both sides read from memory.
find "$SRC" -type f -name '*.bin' -print0 | xargs -0 cat > /dev/null
BYTES=$(find "$SRC" -type f -name '*.bin' -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s}')
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), $(find "$SRC" -type f -name '*.bin' | wc -l) files, $BYTES bytes"

RESULTS=()
for round in $(seq "$ROUNDS"); do
  cleanup; sync
  t0=$(now)
  find "$SRC" -type f -name '*.bin' -print0 | xargs -0 sha256sum > /dev/null
  t1=$(now)
  cp -r "$SRC" "$WORK/cp"
  t2=$(now)
  sync
  t3=$(now)
  cleanup; sync
  OUT=$(/usr/bin/time -v "$SPINE" bench blobs --dir "$SRC" --root "$WORK/store" --json 2> "$WORK/time.txt")
  MAXRSS=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
  RESULT=$(echo "$OUT" | sed -n 's/^RESULT //p')
  echo "round $round: sha256sum $(echo "$t1 - $t0" | bc) s, cp $(echo "$t2 - $t1" | bc) s, sync $(echo "$t3 - $t2" | bc) s; spine $RESULT; time -v max RSS ${MAXRSS} KiB"
  RESULTS+=("$(printf '{"hash":%s,"cp":%s,"sync":%s,"maxrss":%s,"spine":%s}' \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(echo "$t3 - $t2" | bc)" "$MAXRSS" "$RESULT")")
done

python3 - "$BYTES" "${RESULTS[@]}" <<'PY'
import json, sys
total = int(sys.argv[1])
rounds = [json.loads(a) for a in sys.argv[2:]]
print()
print("| round | sha256sum + cp, MB/s | + sync, MB/s | BlobStore::put, MB/s | ratio vs cp | ratio vs cp+sync | RSS growth, MiB | peak RSS, MiB |")
print("|---|---|---|---|---|---|---|---|")
for i, r in enumerate(rounds, 1):
    s = r["spine"]
    base = total / 1e6 / (r["hash"] + r["cp"])
    base_sync = total / 1e6 / (r["hash"] + r["cp"] + r["sync"])
    put = s["mb_per_s"]
    print(f"| {i} | {base:.0f} | {base_sync:.0f} | {put:.0f} | {put / base:.2f} | {put / base_sync:.2f} | "
          f"{s['rss_growth_kib'] / 1024:.1f} | {r['maxrss'] / 1024:.1f} |")
print()
print("targets (issue 4): ratio >= 0.8, RSS growth < 64 MiB")
PY
