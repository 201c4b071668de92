#!/usr/bin/env bash
# The main job: install missing system packages, build, and start a call on the embedded default
# (a local signaling server on loopback).
#
#   scripts/run.sh                 # with a display ($DISPLAY or $WAYLAND_DISPLAY): the desktop app
#                                  # `hearth`; without one: the headless demo call (below)
#   scripts/run.sh app [ARGS]      # the desktop app (ARGS go to `hearth`, e.g. an invite link)
#   scripts/run.sh demo [ARGS]     # the headless demo: two synthetic peers, 720p30 video + Opus,
#                                  # 10 s, a report on latency, frames, bitrate and CPU
#   scripts/run.sh server [ARGS]   # run the signaling server instead (hearth-signal ARGS)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

mode="${1:-}"
case "$mode" in
  app | demo | server) shift ;;
  *)
    if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then mode=app; else mode=demo; fi
    ;;
esac

case "$mode" in
  server)
    cargo build --release -p hearth-signal
    # --listen on the command line overrides HEARTH_LISTEN.
    HEARTH_LISTEN="${HEARTH_LISTEN:-127.0.0.1:7878}" exec target/release/hearth-signal "$@"
    ;;
  app)
    cargo build --release -p hearth-desktop
    echo "run: starting the desktop app (no server address = a local server on this computer;"
    echo "run: use 'Add a test participant' in the call's ⋯ menu to see a call without a camera)"
    exec target/release/hearth "$@"
    ;;
  demo)
    if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
      echo "run: no display (\$DISPLAY / \$WAYLAND_DISPLAY unset): running the headless demo call instead of the app"
    fi
    cargo build --release -p hearth-call
    # Defaults: 2 peers, 10 s, 1280x720@30 (see `hearth-call demo --help`).
    exec target/release/hearth-call demo "$@"
    ;;
esac
