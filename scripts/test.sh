#!/usr/bin/env bash
# The test command: installs missing system packages, builds, runs every test.
# Ends with the test runner's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

export CARGO_TERM_COLOR=never
# Doc tests first (nextest does not run them), so the last line is the runner's summary.
cargo test --workspace --doc --quiet 2>&1 | tail -n 3

if command -v cargo-nextest >/dev/null; then
  cargo nextest run --workspace --no-fail-fast --profile ci
else
  cargo test --workspace --no-fail-fast
fi
