#!/usr/bin/env bash
# The test command: installs missing system packages, builds, runs every test.
# Ends with the test runner's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

export CARGO_TERM_COLOR=never
# The web UI's own unit tests (TypeScript: frame parsing, layout, links, chat logic).
# A failure is said here and fails the run at the end, after the Rust tests' summary.
ui_status=0
(cd client-desktop/ui && npm test --silent >/tmp/hearth-ui-tests.log 2>&1) || ui_status=$?
{ grep -E '^# (tests|pass|fail)' /tmp/hearth-ui-tests.log || true; } | tr '\n' ' '; echo "(web UI unit tests)"
if [ "$ui_status" -ne 0 ]; then cat /tmp/hearth-ui-tests.log; echo "web UI unit tests FAILED"; fi
# The desktop app's UI tests run hearth-call peers, and the network lab's call test runs
# hearth-call, hearth-signal and hearth-netem: binaries of other packages, which cargo builds
# for their own package's tests only.
cargo build --quiet -p hearth-call -p hearth-signal -p hearth-netem
# The Linux packages (release build, Tauri bundler, dpkg-deb) for the package test, which
# installs them with apt, runs them and purges them (client-desktop/tests/packages.rs).
pkg_status=0
installers/build-linux.sh --skip-setup >/tmp/hearth-packages.log 2>&1 || pkg_status=$?
if [ "$pkg_status" -ne 0 ]; then tail -n 40 /tmp/hearth-packages.log; echo "installers/build-linux.sh FAILED"; fi
grep -E '^  hearth' /tmp/hearth-packages.log || true
# Doc tests first (nextest does not run them), so the last line is the runner's summary.
cargo test --workspace --doc --quiet 2>&1 | tail -n 3

status=0
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --workspace --no-fail-fast --profile ci || status=$?
else
  cargo test --workspace --no-fail-fast || status=$?
fi
[ "$ui_status" -eq 0 ] || status=1
[ "$pkg_status" -eq 0 ] || status=1
exit "$status"
