#!/usr/bin/env bash
# The NAT lab: real `hearth-call` calls between two clients behind the network situations people
# call from, each with Hearth's embedded TURN relay and with coturn. Every client, NAT, router
# and server is its own network namespace with addresses that exist only inside them; all is
# removed at the end. Needs root, iproute2, iptables, coturn, squid, openssl (scripts/setup.sh).
#
#   scripts/nat-lab.sh [--tries 5] [--scenarios 1,2,...] [--relays embedded,coturn] [--debug]
#
# Scenarios (A is the client whose network varies; B is behind its own NAT unless said):
#   1 same-network   A and B on one LAN behind one NAT
#   2 cone-nats      each behind its own masquerading NAT
#   3 symmetric      both behind symmetric NATs (masquerade --random-fully)
#   4 udp-blocked    A's network drops all UDP
#   5 tcp443-only    A's network lets out only TCP to port 443 (TURN over TLS)
#   6 double-nat     A behind two NATs
#   7 ipv6-only      A on an IPv6-only network; the server is dual-stack, B IPv4-only
#   8 http-proxy     A's only way out is an HTTP CONNECT proxy (squid), from HTTPS_PROXY
#   9 outage-5s      as 2, and A's network goes down for 5 s mid-call, then comes back
#  10 address-change as 2, and A's address changes mid-call (192.168.1.2 -> 192.168.1.7)
#  11 long-outage    as 9 but 12 s, past the server's grace period (here 3 s after a 3 s
#                    heartbeat timeout): A's session ends and A joins afresh when it is back
#
# Topology: router R joins the server network S (10.80.0.0/24, fd80::/64: .2 signaling wss on
# 443, .3 Hearth's relay, .4 coturn), NAT A's WAN (10.81.0.0/24) and NAT B's WAN (10.82.0.0/24).
# Prints a table: scenario, relay, connected tries, chosen pair types, time to connect p50/p95,
# and for 9-10 how long after the network came back (changed) video flowed again, p50/p95.
# Exits 0 only if every call connected with media both ways.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIES=5; SCEN="1,2,3,4,5,6,7,8,9,10,11"; RELAYS="embedded,coturn"; BUILD=release; SECS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --tries) TRIES="$2"; shift ;;
    --scenarios) SCEN="$2"; shift ;;
    --relays) RELAYS="$2"; shift ;;
    --seconds) SECS="$2"; shift ;;
    --debug) BUILD=debug ;;
    *) echo "nat-lab: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "nat-lab: needs root (network namespaces)" >&2; exit 2; }
scripts/setup.sh
if [ "$BUILD" = release ]; then
  cargo build --release --quiet -p hearth-call -p hearth-signal
else
  cargo build --quiet -p hearth-call -p hearth-signal
fi
BIN="${CARGO_TARGET_DIR:-$PWD/target}/$BUILD"
export BIN

t="nl$$"; R="${t}r"; S="${t}s"; NA="${t}na"; NA2="${t}nx"; NB="${t}nb"; A="${t}a"; B="${t}b"
ALL_NS=("$R" "$S" "$NA" "$NA2" "$NB" "$A" "$B")
work=$(mktemp -d); chmod 755 "$work"; pids=()
results="$work/results.tsv"; : >"$results"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "${ALL_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The lab's certificate: the server's addresses as IP SANs; clients trust it via SSL_CERT_FILE.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=hearth-lab \
  -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" \
  -addext "subjectAltName=IP:10.80.0.2,IP:10.80.0.3,IP:10.80.0.4,IP:fd80::2,IP:fd80::3,IP:fd80::4" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
chmod 644 "$work/key.pem"
SECRET="lab-secret-$$"

ns() { ip netns add "$1"; ip -n "$1" link set lo up; }
veth() { # veth NS1 IF1 NS2 IF2
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  ip -n "$1" link set "$2" up; ip -n "$3" link set "$4" up
}
fwd() { ip netns exec "$1" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1; }

# A NAT namespace: WAN $2 (addr $3, gateway $4), LAN bridge with address $5.
nat_box() {
  local n=$1
  ip -n "$n" addr add "$3" dev "$2"; ip -n "$n" route add default via "$4"
  ip -n "$n" link add lan type bridge; ip -n "$n" link set lan up
  ip -n "$n" addr add "$5" dev lan
  fwd "$n"
}
# Put client namespace $1 on NAT $2's LAN with address $3 (gateway $4).
on_lan() {
  local c=$1 n=$2 port="p${1: -2}"
  ip link add eth0 netns "$c" type veth peer name "$port" netns "$n"
  ip -n "$n" link set "$port" master lan; ip -n "$n" link set "$port" up
  ip -n "$c" link set eth0 up; ip -n "$c" addr add "$3" dev eth0
  [ -n "${4:-}" ] && ip -n "$c" route add default via "$4"
  return 0
}
masq() { # masq NS [--random-fully]
  ip netns exec "$1" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE ${2:-}
}

build_lab() { # build_lab SCENARIO
  local sc=$1
  # The previous lab's proxy (its namespace is about to go; the process would keep its pid file).
  if [ -n "${SQUID_PID:-}" ]; then kill "$SQUID_PID" 2>/dev/null || true; wait "$SQUID_PID" 2>/dev/null || true; SQUID_PID=; fi
  rm -f "$work/squid.pid"
  for n in "${ALL_NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  for n in "$R" "$S" "$NA" "$NB" "$A" "$B"; do ns "$n"; done
  fwd "$R"
  veth "$R" tos "$S" eth0
  ip -n "$R" addr add 10.80.0.1/24 dev tos; ip -n "$R" addr add fd80::1/64 dev tos nodad
  for a in 10.80.0.2/24 10.80.0.3/24 10.80.0.4/24; do ip -n "$S" addr add "$a" dev eth0; done
  for a in fd80::2/64 fd80::3/64 fd80::4/64; do ip -n "$S" addr add "$a" dev eth0 nodad; done
  ip -n "$S" route add default via 10.80.0.1; ip -n "$S" -6 route add default via fd80::1
  veth "$R" toa "$NA" wan; ip -n "$R" addr add 10.81.0.1/24 dev toa
  veth "$R" tob "$NB" wan; ip -n "$R" addr add 10.82.0.1/24 dev tob
  nat_box "$NA" wan 10.81.0.2/24 10.81.0.1 192.168.1.1/24
  nat_box "$NB" wan 10.82.0.2/24 10.82.0.1 192.168.2.1/24
  case "$sc" in
    1) # A and B on one LAN behind NAT A.
      on_lan "$A" "$NA" 192.168.1.2/24 192.168.1.1; on_lan "$B" "$NA" 192.168.1.3/24 192.168.1.1
      masq "$NA" ;;
    3)
      on_lan "$A" "$NA" 192.168.1.2/24 192.168.1.1; on_lan "$B" "$NB" 192.168.2.2/24 192.168.2.1
      masq "$NA" --random-fully; masq "$NB" --random-fully ;;
    6) # A behind NAT2 (172.16.1.0/24) behind NAT A.
      ns "$NA2"
      on_lan "$NA2" "$NA" 192.168.1.2/24 ""
      ip -n "$NA2" link set eth0 down; ip -n "$NA2" link set eth0 name wan; ip -n "$NA2" link set wan up
      ip -n "$NA2" route add default via 192.168.1.1
      ip -n "$NA2" link add lan type bridge; ip -n "$NA2" link set lan up
      ip -n "$NA2" addr add 172.16.1.1/24 dev lan; fwd "$NA2"
      on_lan "$A" "$NA2" 172.16.1.2/24 172.16.1.1; on_lan "$B" "$NB" 192.168.2.2/24 192.168.2.1
      masq "$NA2"; masq "$NA"; masq "$NB" ;;
    7) # A: IPv6 only (fd81::/64, routed, no NAT); B: IPv4 behind NAT B.
      ip -n "$R" addr add fd82::1/64 dev toa nodad
      ip -n "$NA" addr add fd82::2/64 dev wan nodad; ip -n "$NA" -6 route add default via fd82::1
      ip -n "$NA" addr add fd81::1/64 dev lan nodad
      ip -n "$R" -6 route add fd81::/64 via fd82::2
      ip link add eth0 netns "$A" type veth peer name pa netns "$NA"
      ip -n "$NA" link set pa master lan; ip -n "$NA" link set pa up; ip -n "$A" link set eth0 up
      ip -n "$A" addr add fd81::2/64 dev eth0 nodad; ip -n "$A" -6 route add default via fd81::1
      on_lan "$B" "$NB" 192.168.2.2/24 192.168.2.1; masq "$NB" ;;
    *)
      on_lan "$A" "$NA" 192.168.1.2/24 192.168.1.1; on_lan "$B" "$NB" 192.168.2.2/24 192.168.2.1
      masq "$NA"; masq "$NB" ;;
  esac
  case "$sc" in
    4) ip netns exec "$NA" iptables -A FORWARD -p udp -j DROP ;;
    5) ip netns exec "$NA" iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
       ip netns exec "$NA" iptables -A FORWARD -i lan -p tcp --dport 443 -j ACCEPT
       ip netns exec "$NA" iptables -A FORWARD -j DROP ;;
    8) # Nothing from A's LAN is forwarded: only the proxy on the NAT box reaches out.
       ip netns exec "$NA" iptables -A FORWARD -i lan -j DROP
       cat >"$work/squid.conf" <<EOF
http_port 192.168.1.1:3128
acl lab src 192.168.1.0/24
acl SSL_ports port 443
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
http_access allow lab
http_access deny all
cache deny all
access_log none
cache_log $work/squid-cache.log
pid_filename $work/squid.pid
coredump_dir $work
shutdown_lifetime 0 seconds
EOF
       chmod 644 "$work/squid.conf"; touch "$work/squid-cache.log"; chmod 666 "$work/squid-cache.log"
       ip netns exec "$NA" squid -N -f "$work/squid.conf" >"$work/squid.out" 2>&1 &
       SQUID_PID=$!; pids+=($SQUID_PID)
       for _ in $(seq 100); do ip netns exec "$A" bash -c 'exec 3<>/dev/tcp/192.168.1.1/3128' 2>/dev/null && break; sleep 0.1; done ;;
  esac
}

start_server() { # start_server SCENARIO RELAY
  local sc=$1 relay=$2 listen=10.80.0.2:443
  [ "$sc" = 7 ] && listen="[::]:443"
  local args=(--listen "$listen" --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --log warn)
  # A dead client is noticed in 3 s and its session ends 3 s later (defaults: 30 s and 30 s).
  [ "$sc" = 11 ] && args+=(--heartbeat-secs 1 --heartbeat-timeout-secs 3 --resume-grace-secs 3)
  if [ "$relay" = embedded ]; then
    args+=(--public-ip 10.80.0.3 --turn-relay-ports 40000-40999)
    if [ "$sc" = 7 ]; then
      # Dual-stack: one socket for IPv4 and IPv6 clients, relayed addresses of both families.
      args+=(--public-ip fd80::3 --turn-listen "[::]:3478")
    else
      args+=(--turn-listen 10.80.0.3:3478 --turn-tls-listen 10.80.0.3:443)
    fi
  else
    # In the IPv6 scenario the signaling server holds [::]:443 (both families).
    local tls_port=443; [ "$sc" = 7 ] && tls_port=5349
    ip netns exec "$S" turnserver -n --no-cli --log-file stdout --simple-log \
      --listening-ip 10.80.0.4 --listening-ip fd80::4 --relay-ip 10.80.0.4 --relay-ip fd80::4 \
      --listening-port 3478 --tls-listening-port "$tls_port" --min-port 41000 --max-port 41999 \
      --use-auth-secret --static-auth-secret "$SECRET" --realm hearth \
      --cert "$work/cert.pem" --pkey "$work/key.pem" --no-multicast-peers >"$work/coturn.log" 2>&1 &
    pids+=($!)
    local urls="turn:10.80.0.4:3478?transport=udp,turn:10.80.0.4:3478?transport=tcp,turns:10.80.0.4:$tls_port?transport=tcp"
    [ "$sc" = 7 ] && urls="$urls,turn:[fd80::4]:3478?transport=udp"
    args+=(--stun-url stun:10.80.0.4:3478 --turn-url "$urls" --turn-secret "$SECRET")
    for _ in $(seq 100); do ip netns exec "$S" bash -c 'exec 3<>/dev/tcp/10.80.0.4/3478' 2>/dev/null && break; sleep 0.1; done
  fi
  ip netns exec "$S" "$BIN/hearth-signal" "${args[@]}" >"$work/server.log" 2>&1 &
  SERVER_PID=$!; pids+=($SERVER_PID)
  for _ in $(seq 100); do ip netns exec "$S" bash -c 'exec 3<>/dev/tcp/10.80.0.2/443' 2>/dev/null && break; sleep 0.05; done
}

stop_servers() {
  kill "$SERVER_PID" 2>/dev/null || true
  pkill -f "turnserver -n --no-cli --log-file stdout" 2>/dev/null || true
  sleep 0.2
}

call_once() { # call_once SCENARIO RELAY TRY
  local sc=$1 relay=$2 try=$3 url=wss://10.80.0.2:443/ws url_a=wss://10.80.0.2:443/ws
  [ "$sc" = 7 ] && url_a="wss://[fd80::2]:443/ws"
  local secs=$SECS outage=0
  # Long enough that the outage leaves well over half the call's media (the flow check).
  case "$sc" in 9) secs=14; outage=5 ;; 10) secs=8 ;; 11) secs=30; outage=12 ;; esac
  local common=(--room "lab-$sc-$relay-$try" --synthetic --width 320 --height 180
    --fps 15 --expect-peers 1 --seconds "$secs" --wait 20 --json)
  local envs=(SSL_CERT_FILE="$work/cert.pem" HTTPS_PROXY= ALL_PROXY=)
  [ "$sc" = 8 ] && envs=(SSL_CERT_FILE="$work/cert.pem" HTTPS_PROXY=http://192.168.1.1:3128)
  ip netns exec "$A" env "${envs[@]}" "$BIN/hearth-call" join --server "$url_a" --name alice "${common[@]}" \
    >"$work/a.json" 2>"$work/a.err" &
  local pa=$!
  ip netns exec "$B" env SSL_CERT_FILE="$work/cert.pem" "$BIN/hearth-call" join --server "$url" --name bob "${common[@]}" \
    >"$work/b.json" 2>"$work/b.err" &
  local pb=$!
  case "$sc" in
    9|11) # Everything A sends or receives is dropped at its NAT for the outage.
       sleep 3; ip netns exec "$NA" iptables -I FORWARD 1 -j DROP
       sleep "$outage"; ip netns exec "$NA" iptables -D FORWARD 1
       date +%s%3N >"$work/restored" ;;
    10) # A new address, the default route moved to it, the old address gone (as a DHCP renumbering).
        # Tries alternate between the two addresses (the lab is built once per scenario).
        local from=192.168.1.2 to=192.168.1.7
        # (No `ip | grep -q` pipe: with pipefail, grep quitting early can fail the pipeline.)
        local addrs; addrs=$(ip -n "$A" addr show dev eth0)
        [[ "$addrs" == *"inet $from/"* ]] || { from=192.168.1.7; to=192.168.1.2; }
        sleep 3
        ip netns exec "$A" sysctl -q -w net.ipv4.conf.eth0.promote_secondaries=1
        ip -n "$A" addr add "$to/24" dev eth0
        ip -n "$A" route replace default via 192.168.1.1 src "$to"
        ip -n "$A" addr del "$from/24" dev eth0 ;;
  esac
  local sa=0 sb=0
  wait "$pa" || sa=$?
  wait "$pb" || sb=$?
  local restored=0; [ -f "$work/restored" ] && restored=$(cat "$work/restored"); rm -f "$work/restored"
  python3 - "$work/a.json" "$work/b.json" "$sc" "$relay" "$try" "$sa" "$sb" "$outage" "$restored" >>"$results" <<'EOF'
import json, sys
a, b, sc, relay, tr, sa, sb, outage, restored = sys.argv[1:]
def load(p):
    try: return json.load(open(p))
    except Exception: return {}
ra, rb = load(a), load(b)
def pair(r):
    ps = r.get("pairs") or [{}]
    return ps[0]
pa, pb = pair(ra), pair(rb)
ok = sa == "0" and sb == "0" and ra.get("ok") and rb.get("ok")
def kind(p):
    l = p.get("local_candidate") or "-"
    if l == "relay": l += "/" + (p.get("relay_transport") or "udp")
    return l
types = f"A:{kind(pa)} B:{kind(pb)}"
connect = max([p.get("connect_ms") or 0 for p in (pa, pb)]) if ok else ""
probs = "; ".join((ra.get("problems") or []) + (rb.get("problems") or []))[:200]
# Scenarios with a network event: the longest pause in decoded video either way, less the
# outage itself, is how long media took to flow again once the network was back.
resume = ""
if sc in ("9", "10") and ok:
    gaps = [p.get("video_longest_gap_ms") or 0 for p in (pa, pb)]
    resume = f"{max(0.0, max(gaps) - float(outage) * 1000):.0f}"
elif sc == "11" and ok:
    # A joined afresh: its new links' first frames, either way, against when the network came back.
    firsts = [((r.get("pairs") or [{}])[-1]).get("video_first_frame_unix_ms") or 0 for r in (ra, rb)]
    resume = f"{max(0, max(firsts) - int(restored))}"
print("\t".join([sc, relay, tr, "1" if ok else "0", types, str(connect), probs, resume]))
EOF
  if [ -n "${NATLAB_KEEP:-}" ]; then
    mkdir -p "$NATLAB_KEEP"; for w in a b; do cp "$work/$w.json" "$NATLAB_KEEP/$sc-$relay-$try-$w.json" 2>/dev/null || true; done
  fi
  if [ "$sa" != 0 ] || [ "$sb" != 0 ]; then
    echo "nat-lab: scenario $sc ($relay) try $try failed (exit $sa/$sb)" >&2
    tail -n 3 "$work/a.err" "$work/b.err" >&2 || true
    # Keep the reports of failed calls for a look afterwards.
    mkdir -p "${NATLAB_FAILED:-/tmp/nat-lab-failed}"
    for w in a b; do cp "$work/$w.json" "${NATLAB_FAILED:-/tmp/nat-lab-failed}/$sc-$relay-$try-$w.json" 2>/dev/null || true; done
  fi
}

IFS=, read -ra SC_LIST <<<"$SCEN"; IFS=, read -ra RELAY_LIST <<<"$RELAYS"
for sc in "${SC_LIST[@]}"; do
  for relay in "${RELAY_LIST[@]}"; do
    build_lab "$sc"
    start_server "$sc" "$relay"
    for try in $(seq "$TRIES"); do call_once "$sc" "$relay" "$try"; done
    stop_servers
  done
done

python3 - "$results" <<'EOF'
import sys, collections
names = {"1": "same-network", "2": "cone-nats", "3": "symmetric", "4": "udp-blocked",
         "5": "tcp443-only", "6": "double-nat", "7": "ipv6-only", "8": "http-proxy",
         "9": "outage-5s", "10": "address-change", "11": "long-outage"}
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    sc, relay, tr, ok, types, connect, probs, resume = (line.rstrip("\n").split("\t") + [""] * 8)[:8]
    r = rows.setdefault((sc, relay), {"ok": 0, "n": 0, "types": collections.Counter(), "ms": [], "resume": []})
    r["n"] += 1; r["ok"] += ok == "1"; r["types"][types] += 1
    if connect: r["ms"].append(float(connect))
    if resume: r["resume"].append(float(resume))
def pct(v, q):
    if not v: return "-"
    v = sorted(v); return f"{v[min(len(v) - 1, int(round(q * (len(v) - 1))))]:.0f}"
print(f"{'scenario':<17} {'relay':<9} {'connected':<10} {'pair types (A, B)':<34} {'connect p50/p95 ms':<19} {'resume p50/p95 ms'}")
all_ok = True
for (sc, relay), r in rows.items():
    all_ok &= r["ok"] == r["n"]
    types = ", ".join(f"{t} x{c}" if c > 1 else t for t, c in r["types"].most_common(2))
    resume = f"{pct(r['resume'], .5)}/{pct(r['resume'], .95)}" if r["resume"] else ""
    print(f"{sc + ' ' + names.get(sc, ''):<17} {relay:<9} {str(r['ok']) + '/' + str(r['n']):<10} {types:<34} {pct(r['ms'], .5) + '/' + pct(r['ms'], .95):<19} {resume}")
print("nat-lab: every call connected" if all_ok else "nat-lab: some calls did NOT connect")
sys.exit(0 if all_ok else 1)
EOF
