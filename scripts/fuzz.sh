#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each. Needs cargo-fuzz (installed if missing).
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  seeds="seeds/$target"; [ -d "$seeds" ] || seeds="seeds/decode_client"
  mkdir -p "corpus/$target"
  echo "== $target (${SECONDS_EACH}s)"
  cargo fuzz run -O "$target" "corpus/$target" "$seeds" -- -max_total_time="$SECONDS_EACH" -max_len=4096 2>&1 | grep -E '^Done|SUMMARY|panicked' || true
done
