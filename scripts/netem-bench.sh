#!/usr/bin/env bash
# Calls on impaired links: for each profile, a 2-party `hearth-call` call across the user-space
# link emulator (scripts/netlab.sh: namespaces, veths, hearth-netem; needs root), then one
# line per profile with what the receivers measured (both directions pooled):
#   connected, join → first frame, frames shown (decoded / captured), freezes (gaps > 200 ms
#   between decoded frames: count, total, longest), video capture → decoded p50/p95, audio capture →
#   heard p95, audio bursts lost, audio frames concealed (FEC or PLC) of those played, the
#   audio underruns (gaps in the sound), the largest video playout delay (ms held before decoding), PSNR against the regenerated source, received bitrate over
#   the last 15 s, and for capped links: when the sender settled under the cap, the share of
#   the cap used, the longest freeze after settling (while capped), and (cap lifted) how long until the rate was back to 90% of the full rate
#   ("-": not within the call): what the same source sends over the same link uncapped (the
#   rtt50-720p profile, when it ran before), else 0.07 bit/pixel at 30 fps (printed).
#
#   scripts/netem-bench.sh [--seconds 30] [--only NAME[,NAME...]] [--keep DIR] [--debug]
#
# Profiles are data (hearth-netem JSON, per direction; RTT = 2 x delay_ms). The `party4`
# profiles are 4-party calls (netlab.sh --peers 3: alice, carol, dave on a clean side, bob
# behind the link); they print what the clean-side peers receive from each other and what
# crosses bob's link, and how much of the uncapped call's bitrate the others keep when bob is
# capped at 500 kbit/s.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=30; ONLY=""; KEEP=""; DEBUG=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --keep) KEEP="$2"; shift ;;
    --debug) DEBUG=(--debug) ;;
    *) echo "netem-bench: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "netem-bench: needs root (network namespaces)" >&2; exit 2; }

# name | profile | width x height
PROFILES=(
  'clean|{}|640x360'
  'rtt50|{"delay_ms":25}|640x360'
  'rtt100-jitter20|{"delay_ms":50,"jitter_ms":10}|640x360'
  'loss1-rtt50|{"delay_ms":25,"loss":0.01}|640x360'
  'loss1-rtt100|{"delay_ms":50,"loss":0.01}|640x360'
  'loss3-rtt200|{"delay_ms":100,"jitter_ms":5,"loss":0.03}|640x360'
  'loss5-rtt100|{"delay_ms":50,"loss":0.05}|640x360'
  'cap1m-720p|{"delay_ms":25,"rate_kbps":1000,"queue_ms":200}|1280x720'
  'blackout3s|{"delay_ms":25,"blackouts":[[12,3]]}|640x360'
  'rtt50-720p|{"delay_ms":25}|1280x720'
  'cap1m-lifts15s|{"delay_ms":25,"rate_kbps":1000,"queue_ms":200,"rate_until_s":15}|1280x720'
  'party4|{"delay_ms":10}|640x360|3'
  'party4-cap500|{"delay_ms":10,"rate_kbps":500,"queue_ms":200}|640x360|3'
)

out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
RAN=()
for entry in "${PROFILES[@]}"; do
  IFS='|' read -r name profile size apeers <<<"$entry"
  apeers=${apeers:-1}
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
  echo "netem-bench: $name $profile $size ($SECS s)" >&2
  RAN+=("$name")
  scripts/netlab.sh "${DEBUG[@]}" --profile "$profile" --seconds "$SECS" --width "${size%x*}" \
    --height "${size#*x}" --peers "$apeers" --keep "$out/$name" >"$out/$name.log" 2>&1 || true
  echo "$profile" >"$out/$name/profile.json" 2>/dev/null || true
  echo "[${size%x*}, ${size#*x}]" >"$out/$name/size.json" 2>/dev/null || true
done

python3 - "$out" "$SECS" "${RAN[@]}" <<'EOF'
import json, os, sys
out, secs = sys.argv[1], float(sys.argv[2])
ran = sys.argv[3:]

def pairs_of(d):
    reps = []
    for who in ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"):
        try:
            reps.append(json.load(open(os.path.join(d, who + ".json"))))
        except Exception:
            pass
    return reps

def med(v):
    v = sorted(x for x in v if x is not None)
    return v[len(v) // 2] if v else None

def fmt(v, spec="{:.0f}"):
    return "-" if v is None else spec.format(v)

rows = []
reference = {}  # profile name -> median received kbit/s over the last 15 s
party = {}
for name in ran:
    d = os.path.join(out, name)
    if not os.path.isdir(d):
        continue
    profile = json.load(open(os.path.join(d, "profile.json"))) if os.path.exists(os.path.join(d, "profile.json")) else {}
    reps = pairs_of(d)
    if not reps:
        rows.append((name, "no report")); continue
    if name.startswith("party"):
        # Several peers on a clean side, bob behind the profile's link: what the clean-side
        # peers receive from each other, and what crosses bob's link, each over the last 15 s.
        groups = {"others": [], "to bob": [], "from bob": []}
        for r in reps:
            for p in r.get("pairs", []):
                tl = [(t["at_ms"] / 1000.0, q) for t in r.get("timeline", []) for q in t["peers"] if q["name"] == p["sender"]]
                t_end = tl[-1][0] if tl else 0
                late = [q for t, q in tl if t >= t_end - 15]
                g = "to bob" if p["receiver"] == "bob" else "from bob" if p["sender"] == "bob" else "others"
                groups[g].append({
                    "connected": p.get("connected"),
                    "kbps": sum(q["received_kbps"] for q in late) / len(late) if late else None,
                    "fps": sum(q["video_fps"] for q in late) / len(late) if late else None,
                    "width": med([q["video_width"] for q in late]),
                    "psnr": p.get("video_psnr_db"),
                    "freezes": (tl[-1][1].get("video_freezes") if tl else None),
                })
        party[name] = {g: ({k: med([x[k] for x in v]) for k in ("kbps", "fps", "width", "psnr", "freezes")}
                           | {"connected": all(x["connected"] for x in v), "n": len(v)}) for g, v in groups.items() if v}
        continue
    cap = profile.get("rate_kbps")
    lifts = profile.get("rate_until_s")
    stats = []
    for r in reps:
        for p in r.get("pairs", []):
            # The receiver's timeline of this sender (per second).
            tl = [(t["at_ms"] / 1000.0, q) for t in r.get("timeline", []) for q in t["peers"] if q["name"] == p["sender"]]
            decoded = p.get("video_frames_decoded") or 0
            lost = p.get("video_frames_lost") or 0
            shown = 100.0 * decoded / (decoded + lost) if decoded + lost else None
            last = tl[-1][1] if tl else {}
            t_end = tl[-1][0] if tl else 0
            late = [q["received_kbps"] for t, q in tl if t >= t_end - 15]
            s = {
                "connected": p.get("connected"),
                "first": p.get("join_to_first_frame_ms"),
                "shown": shown,
                "fps": p.get("video_fps_avg"),
                "freezes": last.get("video_freezes"),
                "freeze_ms": last.get("video_freeze_ms"),
                "freeze_max": max([f[1] for f in p.get("video_freezes") or []] or [0]),
                "v50": (p.get("video_latency_ms") or {}).get("p50_ms"),
                "v95": (p.get("video_latency_ms") or {}).get("p95_ms"),
                "a95": (p.get("audio_latency_ms") or {}).get("p95_ms"),
                "alost": 100.0 * (p.get("audio_markers_lost") or 0) / max(1, (p.get("audio_markers") or 0) + (p.get("audio_markers_lost") or 0)),
                "conceal": 100.0 * (p.get("audio_concealed_frames") or 0) / max(1, p.get("audio_frames_decoded") or 0),
                "under": p.get("audio_underruns"),
                "vdelay": max([q.get("video_playout_delay_ms") or 0 for _, q in tl] or [0]),
                "psnr": p.get("video_psnr_db"),
                "kbps": sum(late) / len(late) if late else None,
            }
            if cap:
                until = lifts if lifts else 1e9
                capped = [(t, q["received_kbps"]) for t, q in tl if t < until]
                # Settled: from the first second after which every capped second stays under the cap.
                settle = None
                for i, (t, k) in enumerate(capped):
                    if all(kk <= cap for _, kk in capped[i:]):
                        settle = t; break
                s["settle_s"] = settle
                used = [k for t, k in capped if settle is not None and t > settle + 1]
                s["cap_use"] = 100.0 * sum(used) / len(used) / cap if used else None
                # The longest freeze that ended after settling, while capped.
                s["settled_freeze_max"] = (max([f[1] for f in p.get("video_freezes") or []
                                                if settle <= f[0] / 1000.0 < until] or [0])
                                           if settle is not None else None)
                if lifts:
                    # Back: the first second after the lift at 90% of the full rate: what the
                    # same source sends on the same link uncapped (the rtt50-720p profile's
                    # last 15 s, when it ran first), else the encoder's nominal rate for the
                    # size (0.07 bit/pixel at 30 fps; simple content takes less).
                    w, h = json.load(open(os.path.join(d, "size.json")))
                    full = reference.get("rtt50-720p") or 0.07 * w * h * 30 / 1000
                    s["full_kbps"] = full
                    free = [(t, q["received_kbps"]) for t, q in tl if t >= lifts]
                    s["back_s"] = next((t - lifts for t, k in free if k >= 0.9 * full), None)
            stats.append(s)
    agg = {k: med([s.get(k) for s in stats]) for k in stats[0]} if stats else {}
    agg["connected"] = all(s["connected"] for s in stats)
    agg["freezes"] = max((s["freezes"] or 0) for s in stats) if stats else None
    agg["freeze_ms"] = max((s["freeze_ms"] or 0) for s in stats) if stats else None
    agg["freeze_max"] = max((s["freeze_max"] or 0) for s in stats) if stats else None
    if any("settled_freeze_max" in s for s in stats):
        agg["settled_freeze_max"] = max((s.get("settled_freeze_max") or 0) for s in stats)
    reference[name] = agg.get("kbps")
    rows.append((name, agg))

print(f"{'profile':16} {'conn':>4} {'1st ms':>6} {'shown%':>6} {'fps':>5} {'frz':>3} {'frz ms':>6} {'max':>4} {'v p50':>5} {'v p95':>5} {'a p95':>5} {'a lost%':>7} {'conc%':>5} {'undr':>4} {'vdly':>4} {'psnr':>5} {'kbps':>5}  cap: settle s / use % / longest freeze after settling ms / back s")
for name, a in rows:
    if isinstance(a, str):
        print(f"{name:16} {a}"); continue
    capcol = ""
    if "settle_s" in a:
        capcol = f"  {fmt(a.get('settle_s'), '{:.0f}')} / {fmt(a.get('cap_use'))} / {fmt(a.get('settled_freeze_max'))} / {fmt(a.get('back_s'), '{:.0f}')}"
        if a.get("full_kbps"):
            capcol += f" (full: {a['full_kbps']:.0f} kbit/s)"
    print(f"{name:16} {('yes' if a['connected'] else 'NO'):>4} {fmt(a['first']):>6} {fmt(a['shown'], '{:.1f}'):>6} "
          f"{fmt(a['fps'], '{:.1f}'):>5} {fmt(a['freezes']):>3} {fmt(a['freeze_ms']):>6} {fmt(a['freeze_max']):>4} {fmt(a['v50']):>5} "
          f"{fmt(a['v95']):>5} {fmt(a['a95']):>5} {fmt(a['alost'], '{:.1f}'):>7} {fmt(a['conceal'], '{:.1f}'):>5} {fmt(a['under']):>4} "
          f"{fmt(a['vdelay']):>4} {fmt(a['psnr'], '{:.1f}'):>5} "
          f"{fmt(a['kbps']):>5}{capcol}")
print(f"(medians of both directions; freezes (count, total ms, longest ms): the worse direction; reports in {out})")
if party:
    print()
    print("several peers, bob behind the link (medians per group of pairs, last 15 s):")
    for name, groups in party.items():
        for g, a in groups.items():
            print(f"{name:16} {g:9} pairs={a['n']} conn={'yes' if a['connected'] else 'NO'} kbit/s={fmt(a['kbps'])} "
                  f"fps={fmt(a['fps'], '{:.1f}')} width={fmt(a['width'])} psnr={fmt(a['psnr'], '{:.1f}')} freezes={fmt(a['freezes'])}")
    base, capped = party.get("party4", {}).get("others"), party.get("party4-cap500", {}).get("others")
    if base and capped and base.get("kbps") and capped.get("kbps") is not None:
        print(f"with bob capped at 500 kbit/s, the others receive {100.0 * capped['kbps'] / base['kbps']:.0f}% "
              f"of the bitrate they receive with no cap (floor: 90%)")
EOF
