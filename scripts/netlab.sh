#!/usr/bin/env bash
# A real call across an emulated link: two `hearth-call` peers in their own network namespaces
# (A: 10.77.1.2, B: 10.77.2.2), joined through a middle namespace M where `hearth-netem` holds,
# drops or paces every packet between them by a profile; `hearth-signal` runs in M (signaling
# is not impaired, media is). Addresses exist only inside the namespaces; everything is removed
# at the end. Needs root, /dev/net/tun and iproute2.
#
#   scripts/netlab.sh [--profile JSON] [--seconds 15] [--nat] [--width 640 --height 360] [--debug]
#                     [--keep DIR] [--peers N]
#
#   --profile  hearth-netem profile for each direction, e.g. '{"delay_ms":50,"loss":0.01}'
#              (see README, "Network emulator"); default: a clean link
#   --nat      put A behind a masquerading NAT in M (B sees A's traffic from 10.77.2.1)
#   --debug    use debug builds (the tests do; figures are then not representative)
#   --keep DIR copy the JSON reports (alice.json, bob.json, ...) into DIR
#   --peers N  N peers on A's side (default 1): alice, carol, dave, erin, ... each in its own
#              namespace (10.77.1.2, .3, ...) on a bridge in M, so they reach each other
#              unimpaired and only traffic to and from B crosses the emulator (a call of N+1
#              where one peer, bob, is behind the impaired link)
#
# Prints both peers' JSON reports, then one line per direction with the figures that matter on
# an impaired link. Exits with hearth-call's status (0: media flowed both ways).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE='{}'; SECS=15; NAT=0; W=640; H=360; BUILD=release; KEEP=""; PEERS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE="$2"; shift ;;
    --seconds) SECS="$2"; shift ;;
    --nat) NAT=1 ;;
    --debug) BUILD=debug ;;
    --width) W="$2"; shift ;;
    --height) H="$2"; shift ;;
    --peers) PEERS="$2"; shift ;;
    --keep) KEEP="$2"; shift ;;
    *) echo "netlab: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "netlab: needs root (network namespaces)" >&2; exit 2; }
[ -e /dev/net/tun ] || { echo "netlab: needs /dev/net/tun" >&2; exit 2; }
scripts/setup.sh
if [ "$BUILD" = release ]; then
  cargo build --release --quiet -p hearth-call -p hearth-signal -p hearth-netem
else
  cargo build --quiet -p hearth-call -p hearth-signal -p hearth-netem
fi
BIN="${CARGO_TARGET_DIR:-$PWD/target}/$BUILD"

NAMES=(alice carol dave erin frank grace heidi)
[[ "$PEERS" =~ ^[1-7]$ ]] || { echo "netlab: --peers takes 1 to 7" >&2; exit 2; }
tag="nl$$"; M="${tag}m"; B="${tag}b"
APEERS=("${NAMES[@]:0:$PEERS}"); ANS=()
for i in $(seq 1 "$PEERS"); do ANS+=("${tag}a$i"); done
A="${ANS[0]}"
work=$(mktemp -d); pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "${ANS[@]}" "$M" "$B"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

for ns in "${ANS[@]}" "$M" "$B"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$B" link add vb type veth peer name vmb netns "$M"
ip -n "$B" addr add 10.77.2.2/24 dev vb; ip -n "$B" link set vb up
ip -n "$M" addr add 10.77.2.1/24 dev vmb; ip -n "$M" link set vmb up
ip -n "$B" route add default via 10.77.2.1
# A's side: one peer on a veth (vma), or several on a bridge (vma is then the bridge).
if [ "$PEERS" = 1 ]; then
  ip -n "$A" link add va type veth peer name vma netns "$M"
  ip -n "$A" addr add 10.77.1.2/24 dev va; ip -n "$A" link set va up
else
  ip -n "$M" link add vma type bridge
  for i in $(seq 1 "$PEERS"); do
    ns="${ANS[$((i-1))]}"
    ip -n "$ns" link add va type veth peer name "vma$i" netns "$M"
    ip -n "$M" link set "vma$i" master vma up
    ip -n "$ns" addr add "10.77.1.$((i+1))/24" dev va; ip -n "$ns" link set va up
    ip -n "$ns" route add default via 10.77.1.1
  done
fi
ip -n "$M" addr add 10.77.1.1/24 dev vma; ip -n "$M" link set vma up
ip -n "$A" route replace default via 10.77.1.1
ip netns exec "$M" sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
# Traffic crossing M goes through the emulator's TUN devices; traffic to M itself (the
# signaling server) is delivered locally first (the local table comes before these rules).
ip -n "$M" rule add iif vma lookup 100
ip -n "$M" rule add iif vmb lookup 101
ip netns exec "$M" "$BIN/hearth-netem" bridge --tun-a neta --tun-b netb --profile "$PROFILE" 2>"$work/netem.log" &
pids+=($!)
for _ in $(seq 100); do ip -n "$M" link show netb >/dev/null 2>&1 && break; sleep 0.05; done
for d in neta netb; do
  ip -n "$M" link set "$d" up
  ip netns exec "$M" sysctl -q -w "net.ipv4.conf.$d.rp_filter=0"
done
ip -n "$M" route add default dev neta table 100
ip -n "$M" route add default dev netb table 101
if [ "$NAT" = 1 ]; then
  # A behind a NAT: what leaves M towards B from A's network carries M's address.
  ip netns exec "$M" iptables -t nat -A POSTROUTING -s 10.77.1.0/24 -o vmb -j MASQUERADE
fi

ip netns exec "$M" "$BIN/hearth-signal" --listen 10.77.1.1:7878 >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do ip netns exec "$A" bash -c 'exec 3<>/dev/tcp/10.77.1.1/7878' 2>/dev/null && break; sleep 0.05; done

join() {
  ip netns exec "$1" "$BIN/hearth-call" join --server ws://10.77.1.1:7878/ws --room netlab --name "$2" \
    --synthetic --width "$W" --height "$H" --expect-peers "$PEERS" --seconds "$SECS" --json
}
WHO=("${APEERS[@]}" bob); jpids=()
for i in $(seq 0 $((PEERS-1))); do
  join "${ANS[$i]}" "${APEERS[$i]}" >"$work/${APEERS[$i]}.json" 2>"$work/${APEERS[$i]}.err" & jpids+=($!)
done
join "$B" bob >"$work/bob.json" 2>"$work/bob.err" & jpids+=($!)
status=0
for p in "${jpids[@]}"; do wait "$p" || status=$?; done

if [ -n "$KEEP" ]; then
  mkdir -p "$KEEP"
  for who in "${WHO[@]}"; do cp "$work/$who.json" "$work/$who.err" "$KEEP/" 2>/dev/null || true; done
  cp "$work/netem.log" "$KEEP/" 2>/dev/null || true
fi
echo "== profile: $PROFILE$([ "$NAT" = 1 ] && echo ' (A behind NAT)')"
for who in "${WHO[@]}"; do
  echo "== $who"; cat "$work/$who.json"
  [ -s "$work/$who.err" ] && { echo "== $who stderr"; tail -5 "$work/$who.err"; }
done
python3 - $(for who in "${WHO[@]}"; do echo "$work/$who.json"; done) <<'EOF'
import json, sys
for path in sys.argv[1:]:
    try:
        r = json.load(open(path))
    except Exception as e:
        print(f"{path}: no report ({e})"); continue
    for p in r.get("pairs", []):
        lat = lambda k: (p.get(k) or {}).get("p95_ms")
        print(f"{p['sender']} -> {p['receiver']}: connected={p.get('connected')} connect_ms={p.get('connect_ms')} "
              f"first_frame_ms={p.get('join_to_first_frame_ms')} fps_avg={p.get('video_fps_avg')} "
              f"frames_lost={p.get('video_frames_lost')} video_p95_ms={lat('video_latency_ms')} "
              f"audio_heard_p95_ms={lat('audio_latency_ms')} psnr_db={p.get('video_psnr_db')} "
              f"rtt_ms={p.get('rtt_ms')} loss_pct={p.get('loss_pct')} problems={p.get('problems')}")
EOF
echo "netlab: hearth-call exit status $status"
exit "$status"
