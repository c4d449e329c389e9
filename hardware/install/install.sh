#!/usr/bin/env bash
# Installs the edge coordinator as a systemd service on a Raspberry Pi (or any Debian-like board):
# a dedicated user, the data directory, a config for this board, the unit, journald limits; then
# enables and starts it. Safe to run again: what exists is kept (the config above all), what is
# missing is added, the application and unit are refreshed, and the service restarted.
#
# Run from a checkout built on the board itself (native addons): npm ci && npm run build
#   sudo hardware/install/install.sh [--dry-run] [--prefix DIR] [--node PATH] [--no-start] [--no-journald]
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PREFIX=/opt/edge-coordinator
NODE=$(command -v node || echo /usr/bin/node)
ROOT=/
DRY_RUN=0
START=1
JOURNALD=1
SERVICE_USER=edge
DATA_DIR=/var/lib/edge-coordinator
CONFIG_DIR=/etc/edge-coordinator
UNIT=/etc/systemd/system/edge-coordinator.service
MIN_NODE=20.19.0

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  cat <<EOF

Options:
  --dry-run       print every step, change nothing (needs no root)
  --prefix DIR    where the application is installed (default $PREFIX)
  --node PATH     the node binary the unit runs (default $NODE)
  --no-start      install and enable, but do not (re)start the service
  --no-journald   leave journald's size limits alone
  --root DIR      read /proc, /sys and /dev from DIR to detect the board (testing)
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift ;;
    --node) NODE=${2:?--node needs a path}; shift ;;
    --no-start) START=0 ;;
    --no-journald) JOURNALD=0 ;;
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

# Every change goes through run: printed always, executed unless --dry-run.
run() {
  say "+ $*"
  if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

# write_file DEST MODE OWNER: stdin becomes DEST (atomically: temp file, then rename).
write_file() {
  local dest=$1 mode=$2 owner=$3 content
  content=$(cat)
  say "+ write $dest (mode $mode, owner $owner)"
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '%s\n' "$content" | sed 's/^/    /'
    return
  fi
  install -d "$(dirname "$dest")"
  printf '%s\n' "$content" > "$dest.tmp"
  chmod "$mode" "$dest.tmp"
  chown "$owner" "$dest.tmp"
  mv -f "$dest.tmp" "$dest"
}

version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

check_prerequisites() {
  [ "$DRY_RUN" -eq 1 ] || [ "$(id -u)" -eq 0 ] || die "run as root (sudo), or with --dry-run"
  [ -x "$NODE" ] || die "node not found at $NODE (install Node.js $MIN_NODE or later, or pass --node)"
  local v
  v=$("$NODE" -p 'process.versions.node')
  version_at_least "$v" "$MIN_NODE" || die "Node.js $v is too old: $MIN_NODE or later is needed"
  [ -f "$SRC/dist/hardware/install/board-info.js" ] || die "no build in $SRC: run 'npm ci && npm run build' there first"
  command -v systemctl >/dev/null || [ "$DRY_RUN" -eq 1 ] || die "systemd is required"
}

show_board() {
  say "edge-coordinator install$([ "$DRY_RUN" -eq 1 ] && echo ' (dry run: nothing is changed)')"
  say "source:       $SRC"
  say "node:         $NODE ($("$NODE" -p 'process.versions.node'))"
  "$NODE" "$SRC/dist/hardware/install/board-info.js" --root "$ROOT" --data-dir "$DATA_DIR"
}

# Raspberry Pi OS has a gpio group and a udev rule giving it /dev/gpiochip*; plain Debian has
# neither, and the unit's SupplementaryGroups= fails the start if a group is missing.
ensure_groups() {
  getent group dialout >/dev/null || run groupadd --system dialout
  if getent group gpio >/dev/null; then return; fi
  run groupadd --system gpio
  write_file /etc/udev/rules.d/60-edge-coordinator-gpio.rules 0644 root:root <<'EOF'
# Added by edge-coordinator's install.sh: the gpio group may use the GPIO character devices.
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
EOF
  run udevadm control --reload
  run udevadm trigger --subsystem-match=gpio
}

ensure_user() {
  if id -u "$SERVICE_USER" >/dev/null 2>&1; then
    say "user $SERVICE_USER exists"
    return
  fi
  run useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
}

# The application: copied whole next to the old one, then swapped in, so a failed copy leaves the
# installed version untouched. Development packages are pruned from the copy.
install_app() {
  if [ "$SRC" = "$PREFIX" ]; then
    say "application already at $PREFIX"
    return
  fi
  run rm -rf "$PREFIX.new" "$PREFIX.old"
  run install -d -m 0755 "$PREFIX.new"
  run cp -a "$SRC/bin" "$SRC/dist" "$SRC/node_modules" "$SRC/package.json" "$SRC/package-lock.json" "$PREFIX.new/"
  if command -v npm >/dev/null; then run npm --prefix "$PREFIX.new" prune --omit=dev --no-audit --no-fund; fi
  if [ -d "$PREFIX" ]; then run mv "$PREFIX" "$PREFIX.old"; fi
  run mv "$PREFIX.new" "$PREFIX"
  run rm -rf "$PREFIX.old"
}

ensure_data_dir() {
  run install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$DATA_DIR"
}

# The config is written once and then belongs to the operator. The board's profile applies its
# limits at every start ('auto'), so moving the card to another board adapts them; any key written
# here wins over the profile. MQTT over TLS listens on the network, the rest on loopback.
ensure_config() {
  if [ -f "$CONFIG_DIR/config.json" ]; then
    say "keeping the existing $CONFIG_DIR/config.json"
    return
  fi
  local host
  host=$(hostname)
  write_file "$CONFIG_DIR/config.json" 0640 "root:$SERVICE_USER" <<EOF
{
  "dataDir": "$DATA_DIR",
  "log": { "level": "info" },
  "listeners": {
    "mqtt": { "host": "127.0.0.1", "port": 1883 },
    "mqtts": { "host": "0.0.0.0", "port": 8883 },
    "ws": null,
    "http": { "host": "127.0.0.1", "port": 8087 }
  },
  "auth": { "serverCertHosts": ["$host", "$host.local"] },
  "hardware": { "profile": "auto", "gpio": [], "serial": [] }
}
EOF
}

install_unit() {
  sed -e "s|/usr/bin/node|$NODE|" -e "s|/opt/edge-coordinator|$PREFIX|" "$SRC/hardware/systemd/edge-coordinator.service" \
    | write_file "$UNIT" 0644 root:root
  local systemd_version
  systemd_version=$(systemctl --version 2>/dev/null | awk 'NR==1 {print $2}')
  if [ -n "$systemd_version" ] && [ "$systemd_version" -ge 254 ]; then
    write_file "$UNIT.d/10-restart-backoff.conf" 0644 root:root < "$SRC/hardware/systemd/restart-backoff.conf"
  else
    say "systemd ${systemd_version:-unknown} has no RestartSteps= (254+): restarts every RestartSec=5s"
  fi
}

install_journald_limits() {
  if [ "$JOURNALD" -eq 0 ]; then
    say "leaving journald's limits alone (--no-journald)"
    return
  fi
  write_file /etc/systemd/journald.conf.d/50-edge-coordinator.conf 0644 root:root < "$SRC/hardware/systemd/journald-edge-coordinator.conf"
  run systemctl restart systemd-journald
}

enable_and_start() {
  run systemctl daemon-reload
  run systemctl enable edge-coordinator.service
  if [ "$START" -eq 0 ]; then
    say "not starting (--no-start): systemctl start edge-coordinator"
    return
  fi
  # Type=notify: this returns once the coordinator said READY=1, or fails with its start-up error.
  run systemctl restart edge-coordinator.service
  say "running: systemctl status edge-coordinator; logs: journalctl -u edge-coordinator -f"
}

check_prerequisites
show_board
ensure_groups
ensure_user
install_app
ensure_data_dir
ensure_config
install_unit
install_journald_limits
enable_and_start
