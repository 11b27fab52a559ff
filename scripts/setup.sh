#!/usr/bin/env bash
# Installs what runbook needs on a fresh Debian machine; safe to re-run.
#  - the wasm32-wasip2 Rust target (plugins are built for it)
#  - PostgreSQL 15 server binaries (the local provider runs real clusters)
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
