#!/usr/bin/env bash
# The main job: install missing system packages, build, start a local signaling server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p hearth-signal
exec target/release/hearth-signal --listen "${HEARTH_LISTEN:-127.0.0.1:7878}" "$@"
