#!/usr/bin/env bash
# Installs what runbook needs on a fresh Debian machine; safe to re-run.
#  - the wasm32-wasip2 Rust target (plugins are built for it)
#  - PostgreSQL 15 server binaries (the local provider runs real clusters)
#  - moto in a virtualenv ($HOME/.cache/runbook/venv; the aws provider's tests)
#  - Chromium (the report tests load the HTML report in a real headless browser)
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  log "adding Rust target wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

pg_bin() {
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/pg_basebackup" ] && { echo "$d"; return 0; }
  done
  return 1
}
if ! pg_bin >/dev/null; then
  log "installing PostgreSQL from Debian packages"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql postgresql-contrib >/dev/null
fi
log "PostgreSQL binaries: $(pg_bin)"

# Chromium from Debian packages: runner/test-support's harness runs it headless.
if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium from Debian packages"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
log "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo missing)"

# promtool from Debian's prometheus package: runner/test-support's harness lints /metrics.
if ! command -v promtool >/dev/null 2>&1; then
  log "installing prometheus (for promtool) from Debian packages"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
log "promtool: $(promtool --version 2>&1 | head -n1 || echo missing)"

# etcd from Debian packages (etcd-server; etcd-client for etcdctl): runner/test-support's
# harness starts real 3-member clusters on loopback for the fleet-mode tests. Only the
# binaries are used; where systemd runs, the package's own service is left as Debian sets it.
if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
  log "installing etcd-server and etcd-client from Debian packages"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends etcd-server etcd-client >/dev/null
fi
log "etcd: $(etcd --version 2>/dev/null | head -n1 || echo missing)"

# moto (an AWS emulator) for the aws provider's tests, in the project's virtualenv.
MOTO_VERSION=5.2.5   # the newest on PyPI when pinned; also in runner/test-support/src/moto.rs
VENV="$HOME/.cache/runbook/venv"
if [ ! -x "$VENV/bin/moto_server" ] || ! "$VENV/bin/pip" show moto 2>/dev/null | grep -x "Version: $MOTO_VERSION" >/dev/null; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    log "installing python3-venv from Debian packages"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
  fi
  log "installing moto[server]==$MOTO_VERSION into $VENV"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "moto[server]==$MOTO_VERSION"
fi
log "moto: $("$VENV/bin/pip" show moto | grep '^Version')"
