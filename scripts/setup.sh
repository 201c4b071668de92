#!/usr/bin/env bash
# Installs what Hearth needs to build and test on Debian/Ubuntu, when it is missing.
# Idempotent and quiet when everything is there. Run as root (CI) or with sudo available.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config cmake nasm clang libclang-dev   # opus (cmake), openh264 (nasm), bindgen
  libssl-dev libasound2-dev libv4l-dev                       # cpal (ALSA), nokhwa (V4L2)
  libxcb1-dev libxcb-shm0-dev libxcb-randr0-dev              # screen capture (X11)
  pulseaudio pulseaudio-utils                                # headless audio (null sink)
  xvfb xauth x11-utils                                       # headless X screen
  iproute2 iptables procps                                   # network namespaces, netem
  coturn squid openssl                                       # NAT lab: external TURN, HTTP CONNECT proxy, lab certificate
  libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev  # Tauri 2
  webkit2gtk-driver xdotool imagemagick                      # desktop app UI tests (WebDriver, screenshots)
)
# The web UI's build (Vite, TypeScript) needs Node.js >= 18 and npm; any install of them will do.
command -v npm >/dev/null || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust from https://rustup.rs" >&2
  exit 1
fi

# The web UI's build tools (Vite, TypeScript) from npm, into client-desktop/ui/node_modules.
# (@tauri-apps/cli, the bundler installers/build-linux.sh drives, comes with them.)
if [ -f client-desktop/ui/package.json ] && { [ ! -x client-desktop/ui/node_modules/.bin/vite ] || [ ! -x client-desktop/ui/node_modules/.bin/tauri ]; }; then
  echo "setup: npm ci (client-desktop/ui)"
  (cd client-desktop/ui && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# tauri-driver: WebDriver for the desktop app's UI tests (bridges to Debian's WebKitWebDriver).
if ! command -v tauri-driver >/dev/null; then
  echo "setup: cargo install tauri-driver"
  cargo install tauri-driver --version '^2' --locked --quiet
fi
