#!/usr/bin/env bash
# The main job: install missing system packages, build, and start a call on the embedded default
# (a local signaling server on loopback): two synthetic peers, 720p30 video + Opus, with a report
# on latency, frames, bitrate and CPU.
#
#   scripts/run.sh                 # the demo call (10 s); extra args go to `hearth-call demo`
#   scripts/run.sh server [ARGS]   # run the signaling server instead (hearth-signal ARGS)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "${1:-}" = "server" ]; then
  shift
  cargo build --release -p hearth-signal
  # --listen on the command line overrides HEARTH_LISTEN.
  HEARTH_LISTEN="${HEARTH_LISTEN:-127.0.0.1:7878}" exec target/release/hearth-signal "$@"
fi
cargo build --release -p hearth-call
# Defaults: 2 peers, 10 s, 1280x720@30 (see `hearth-call demo --help`).
exec target/release/hearth-call demo "$@"
