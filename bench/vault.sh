#!/usr/bin/env bash
# The vault's costs, each beside a baseline measured in the same run (see bench/README.md):
#   1. seal+open per secret through spine_core::vault vs a raw aes-gcm loop (in `spine bench vault`)
#      and vs OpenSSL's EVP AES-256-GCM (`openssl speed`, encrypt only, doubled for encrypt+decrypt);
#   2. `spine keys rotate`'s engine re-encrypting N secrets vs plain SQL UPDATEs of the same rows.
#
#   bench/vault.sh [SECRETS] [BATCH]     defaults 100000 and 1000
#
# Database: $DATABASE_URL when set (it must hold nothing but benchmarks: rotation moves every
# secret), else a throwaway private cluster in a temp data dir. VALUE_BYTES (default 64).
set -euo pipefail
SECRETS=${1:-100000}
BATCH=${2:-1000}
VALUE_BYTES=${VALUE_BYTES:-64}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SPINE=$TARGET/release/spine

(cd "$ROOT" && cargo build --release -q -p spine)

TMP=""
if [[ -z ${DATABASE_URL:-} ]]; then
  # Under /tmp with mode 755: the postgres OS user must reach it when this runs as root.
  TMP=$(mktemp -d /tmp/spine-bench-vault.XXXXXX)
  chmod 755 "$TMP"
  export SPINE_DATA_DIR=$TMP/data
  trap 'rm -rf "$TMP"' EXIT
fi
export SPINE_LOG__LEVEL=${SPINE_LOG__LEVEL:-warn}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), secrets=$SECRETS batch=$BATCH value=${VALUE_BYTES}B"
"$SPINE" migrate >/dev/null
OUT=$("$SPINE" bench vault --secrets "$SECRETS" --batch "$BATCH" --value-bytes "$VALUE_BYTES")
echo "$OUT"
RESULT=$(echo "$OUT" | sed -n 's/^RESULT //p')

# OpenSSL's EVP AES-256-GCM on the same value size: k bytes/s of encryption.
KBPS=$(openssl speed -evp aes-256-gcm -seconds 3 -bytes "$VALUE_BYTES" 2>/dev/null | awk '/^AES-256-GCM/ {sub("k","",$2); print $2}')
python3 - "$RESULT" "$KBPS" "$VALUE_BYTES" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); kbps = float(sys.argv[2]); size = int(sys.argv[3])
openssl_us = 2 * size / (kbps * 1000) * 1e6  # encrypt + decrypt, assuming decrypt costs the same
print(f"openssl speed -evp aes-256-gcm ({size} B): {openssl_us:.3f} µs per encrypt+decrypt")
print()
print("| figure | vault | baseline | ratio |")
print("|---|---|---|---|")
print(f"| seal+open per secret, µs | {r['seal_open_us']:.3f} | raw aes-gcm {r['raw_aes_gcm_us']:.3f} | {r['crypto_ratio']:.2f} |")
print(f"| seal+open per secret, µs | {r['seal_open_us']:.3f} | openssl EVP {openssl_us:.3f} | {r['seal_open_us'] / openssl_us:.2f} |")
print(f"| re-encryption, secrets/s | {r['rotate_per_sec']:.0f} | UPDATE in batches of {r['batch']} {r['update_batched_per_sec']:.0f} rows/s | {r['rotate_vs_batched_update']:.2f} |")
print(f"| re-encryption, secrets/s | {r['rotate_per_sec']:.0f} | one UPDATE statement {r['update_single_per_sec']:.0f} rows/s | {r['rotate_vs_single_update']:.2f} |")
PY
