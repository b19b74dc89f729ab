#!/usr/bin/env bash
# Installs xaso on a Debian 12 box as a systemd service running as the unprivileged user
# 'xaso': builds the release binary (or takes BINARY=path), installs it to /usr/local/bin,
# the LAN configuration to /etc/xaso/xaso.toml (kept if present), the data directory
# /var/lib/xaso, and the unit xaso.service; then starts it and shows the first login.
#
#   sudo deploy/install.sh                 build, install, start
#   BINARY=target/release/xaso sudo deploy/install.sh
#   DESTDIR=/tmp/stage deploy/install.sh   stage the files only (no user, no systemd)
#   FEATURES= sudo deploy/install.sh       build without media pipelines (no snapshots)
#
# Builds with the `gstreamer` feature by default (timeline thumbnails / snapshots), so it
# installs GStreamer's development files and the plugins that decode H.264/H.265.
# Needs: a Rust toolchain (rustup, Rust 1.90 or newer) unless BINARY is given.
set -euo pipefail
cd "$(dirname "$0")/.."
DESTDIR=${DESTDIR:-}
FEATURES=${FEATURES-gstreamer}

if [ -z "${BINARY:-}" ]; then
  if [ -z "$DESTDIR" ]; then
    pkgs=(gcc pkg-config ca-certificates)
    if [ -n "$FEATURES" ]; then
      pkgs+=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-base
             gstreamer1.0-plugins-good gstreamer1.0-libav)
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
  fi
  command -v cargo >/dev/null || { echo "install Rust first (https://rustup.rs), then run this again" >&2; exit 1; }
  cargo build --release --locked --bin xaso ${FEATURES:+--features "$FEATURES"}
  BINARY=target/release/xaso
fi

install -d "$DESTDIR/usr/local/bin" "$DESTDIR/etc/xaso" "$DESTDIR/etc/systemd/system" \
  "$DESTDIR/usr/local/share/doc/xaso" "$DESTDIR/var/lib/xaso"
install -m 0755 "$BINARY" "$DESTDIR/usr/local/bin/xaso"
install -m 0644 deploy/xaso.service "$DESTDIR/etc/systemd/system/xaso.service"
install -m 0644 README.md config/xaso.example.toml "$DESTDIR/usr/local/share/doc/xaso/"
if [ ! -e "$DESTDIR/etc/xaso/xaso.toml" ]; then
  install -m 0640 config/xaso.lan.toml "$DESTDIR/etc/xaso/xaso.toml"
fi
"$DESTDIR/usr/local/bin/xaso" config check "$DESTDIR/etc/xaso/xaso.toml" >/dev/null

if [ -n "$DESTDIR" ]; then
  echo "staged under $DESTDIR"
  exit 0
fi

id xaso >/dev/null 2>&1 || useradd --system --home-dir /var/lib/xaso --shell /usr/sbin/nologin xaso
chown xaso:xaso /var/lib/xaso
chgrp xaso /etc/xaso/xaso.toml
chmod 0750 /var/lib/xaso
systemctl daemon-reload
systemctl enable --now xaso.service
sleep 2
systemctl --no-pager --lines=0 status xaso.service || true
echo
echo "Open https://<this box's address>:8443/ in Chrome."
journalctl -u xaso --no-pager -o cat | grep -E 'User:|Password:' | tail -n 2 || true
