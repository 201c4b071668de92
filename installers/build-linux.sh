#!/usr/bin/env bash
# Builds Hearth's Linux packages into target/installers/:
#   hearth_<version>_<arch>.deb          the desktop app (Tauri bundler, @tauri-apps/cli from npm)
#   hearth-<version>-1.<arch>.rpm        the same, for Fedora/openSUSE (built here, not installed here)
#   hearth-signal_<version>_<arch>.deb   the signaling server alone, with its systemd unit
# Offline apart from package registries: AppImage is not built (its tools download at build time).
# Usage: installers/build-linux.sh [--skip-setup]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

[ "${1:-}" = "--skip-setup" ] || scripts/setup.sh
for tool in dpkg-deb dpkg-shlibdeps strip; do
  command -v "$tool" >/dev/null || { echo "build-linux: $tool is missing (apt install dpkg-dev binutils)" >&2; exit 1; }
done

if [ ! -x client-desktop/ui/node_modules/.bin/tauri ]; then
  echo "build-linux: npm ci (client-desktop/ui: the Tauri CLI)"
  (cd client-desktop/ui && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
out="$target_dir/installers"
work="$out/work"
rm -rf "$work" "$out"/*.deb "$out"/*.rpm
mkdir -p "$out" "$work"
arch=$(dpkg --print-architecture)

echo "build-linux: cargo build --release (hearth, hearth-signal)"
cargo build --release --locked -p hearth-desktop -p hearth-signal
bin="$target_dir/release"
version=$("$bin/hearth-signal" --version | awk '{print $2}')
# Line tables are kept in release builds for backtraces; packages ship without them.
strip --strip-debug "$bin/hearth" "$bin/hearth-signal"

# The libraries each binary links, as the packages that provide them on this distribution
# (e.g. libasound2 here, libasound2t64 on Ubuntu 24.04), for the packages' Depends.
shlibdeps() {
  local dir="$work/shlibdeps"
  mkdir -p "$dir/debian"
  : >"$dir/debian/control"
  (cd "$dir" && dpkg-shlibdeps -O "$1" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
}
app_depends=$(shlibdeps "$bin/hearth")
server_depends=$(shlibdeps "$bin/hearth-signal")
[ -n "$app_depends" ] && [ -n "$server_depends" ] || { echo "build-linux: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

# ---- the desktop app: .deb and .rpm (Tauri bundler) ----
python3 - "$app_depends" >"$work/tauri.deps.json" <<'PY'
import json, sys
deps = [d.strip() for d in sys.argv[1].split(",") if d.strip()]
print(json.dumps({"bundle": {"linux": {"deb": {"depends": deps}}}}))
PY
echo "build-linux: tauri bundle (deb, rpm)"
rm -rf "$bin/bundle/deb" "$bin/bundle/rpm"
(cd client-desktop && CI=true ui/node_modules/.bin/tauri bundle --bundles deb,rpm \
  --config ../installers/tauri.bundle.json --config "$work/tauri.deps.json")
app_deb=$(ls "$bin"/bundle/deb/*.deb)
app_rpm=$(ls "$bin"/bundle/rpm/*.rpm)
cp "$app_deb" "$out/hearth_${version}_${arch}.deb"
cp "$app_rpm" "$out/hearth-${version}-1.$(uname -m).rpm"

# ---- the server: hearth-signal .deb (dpkg-deb; see docs/decisions.md) ----
pkg="$work/hearth-signal"
install -D -m 0755 "$bin/hearth-signal" "$pkg/usr/bin/hearth-signal"
install -D -m 0644 installers/server/hearth-signal.service "$pkg/usr/lib/systemd/system/hearth-signal.service"
install -D -m 0644 installers/server/signal.toml "$pkg/etc/hearth/signal.toml"
install -D -m 0644 signal-server/hearth-signal.example.toml "$pkg/usr/share/doc/hearth-signal/hearth-signal.example.toml"
install -D -m 0644 installers/server/grafana-dashboard.json "$pkg/usr/share/doc/hearth-signal/grafana-dashboard.json"
install -D -m 0644 installers/server/copyright "$pkg/usr/share/doc/hearth-signal/copyright"
install -d "$pkg/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "installers/server/debian/$script" "$pkg/DEBIAN/$script"
done
echo "/etc/hearth/signal.toml" >"$pkg/DEBIAN/conffiles"
size_kb=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: hearth-signal
Version: $version
Architecture: $arch
Maintainer: The Hearth developers <hearth@example.invalid>
Installed-Size: $size_kb
Depends: $server_depends
Section: net
Priority: optional
Homepage: https://example.invalid/hearth
Description: Hearth signaling server with an embedded TURN relay
 The self-hosted server of Hearth video calls: rooms, presence, SDP/ICE relay,
 room and private chat over WebSocket, health and Prometheus metrics endpoints,
 TURN credentials and an embedded TURN relay. Runs as a hardened systemd
 service configured in /etc/hearth/signal.toml.
EOF
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out/hearth-signal_${version}_${arch}.deb" >/dev/null

rm -rf "$work"
echo "build-linux: packages in $out"
for f in "$out"/*.deb "$out"/*.rpm; do
  awk -v n="$(basename "$f")" -v s="$(stat -c %s "$f")" 'BEGIN { printf "  %-40s %6.1f MB\n", n, s / 1e6 }'
done
