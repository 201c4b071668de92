#!/usr/bin/env bash
# Desktop app benchmark: a 5-party call (the app + 4 `hearth-call` peers sending 640x360@30
# synthetic video and audio) on a loopback server, under Xvfb. Prints, from the app's own page:
# frames painted per second per tile and capture→painted latency p50/p95, the CPU and RSS of
# all the app's processes (the webview's included), the time from launch to the pre-join screen
# painted, and the RSS growth over 20 join/leave cycles in one app run.
#
#   scripts/bench-desktop.sh [--release] [--seconds 15] [--cycles 20] [--renderer webgl|2d]
#
# The "floors" list at the top of the output compares each figure with the desktop app's floor.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=debug; SECONDS_=15; CYCLES=20; RENDERER=()
while [ $# -gt 0 ]; do
  case "$1" in
    --release) PROFILE=release ;;
    --seconds) SECONDS_="$2"; shift ;;
    --cycles) CYCLES="$2"; shift ;;
    --renderer) RENDERER=(--renderer "$2"); shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
scripts/setup.sh
flag=""; [ "$PROFILE" = release ] && flag="--release"
cargo build $flag -p hearth-desktop -p hearth-call -p hearth-signal
bin="target/$PROFILE"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

disp=":$((90 + RANDOM % 100))"
Xvfb "$disp" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & pids+=($!)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$bin/hearth-signal" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 & pids+=($!)
sleep 1
for i in 1 2 3 4; do
  "$bin/hearth-call" join --server "ws://127.0.0.1:$port/ws" --room bench --name "peer $i" --synthetic \
    --width 640 --height 360 --fps 30 --expect-peers 0 --seconds 0 >"$work/peer$i.log" 2>&1 & pids+=($!)
done
sleep 2
DISPLAY="$disp" HEARTH_CONFIG_DIR="$work/config" HEARTH_EMBEDDED_PORT=$((port + 1)) \
  "$bin/hearth" --bench --bench-server "ws://127.0.0.1:$port/ws" --bench-room bench --bench-peers 4 \
  --bench-seconds "$SECONDS_" --bench-cycles "$CYCLES" --timeout 600 "${RENDERER[@]}"
