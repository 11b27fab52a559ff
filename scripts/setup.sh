#!/usr/bin/env bash
# Installs what runbook needs on a fresh Debian machine; safe to re-run.
#  - the wasm32-wasip2 Rust target (plugins are built for it)
#  - PostgreSQL 15 server binaries (the local provider runs real clusters)
#  - moto in a virtualenv ($HOME/.cache/runbook/venv; the aws provider's tests)
#  - Chromium (the report tests load the HTML report in a real headless browser)
#  - only when asked for (`--plugin-toolchains` or RUNBOOK_PLUGIN_TOOLCHAINS=1): the
#    Python and JavaScript plugin toolchains the example-policy tests build with:
#    componentize-py into the venv, node/npm from Debian packages, componentize-qjs from
#    npm into $HOME/.cache/runbook/npm
set -euo pipefail

PLUGIN_TOOLCHAINS="${RUNBOOK_PLUGIN_TOOLCHAINS:-0}"
for arg in "$@"; do
  case "$arg" in
    --plugin-toolchains) PLUGIN_TOOLCHAINS=1 ;;
    *) printf '[setup] unknown argument: %s\n' "$arg" >&2; exit 2 ;;
  esac
done

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

# Plugin toolchains, only when asked for: most users never build a Python or JavaScript
# plugin, and these are large (componentize-py embeds CPython; componentize-qjs ships a
# native binding). Versions are those `runbook plugin new` writes into its projects.
if [ "$PLUGIN_TOOLCHAINS" = 1 ]; then
  COMPONENTIZE_PY_VERSION=0.25.1   # also in runner/cli/src/plugin.rs (PY_README) and tests/cli.rs
  COMPONENTIZE_QJS_VERSION=0.4.5   # also in runner/cli/src/plugin.rs (JS_PACKAGE)
  if ! "$VENV/bin/pip" show componentize-py 2>/dev/null | grep -x "Version: $COMPONENTIZE_PY_VERSION" >/dev/null; then
    log "installing componentize-py==$COMPONENTIZE_PY_VERSION into $VENV"
    "$VENV/bin/pip" install --quiet "componentize-py==$COMPONENTIZE_PY_VERSION"
  fi
  log "componentize-py: $("$VENV/bin/componentize-py" --version)"

  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing nodejs and npm from Debian packages"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  log "node: $(node --version), npm: $(npm --version)"

  # A prefix of our own (not `npm -g`): tests link its node_modules into scaffolded
  # projects, so `npm run build` works there without the registry.
  NPM_PREFIX="$HOME/.cache/runbook/npm"
  QJS="$NPM_PREFIX/node_modules/componentize-qjs/package.json"
  if [ ! -f "$QJS" ] || ! grep -q "\"version\": \"$COMPONENTIZE_QJS_VERSION\"" "$QJS"; then
    log "installing componentize-qjs@$COMPONENTIZE_QJS_VERSION into $NPM_PREFIX"
    mkdir -p "$NPM_PREFIX"
    npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --silent "componentize-qjs@$COMPONENTIZE_QJS_VERSION"
  fi
  # (its CLI has no --version)
  log "componentize-qjs: $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$QJS" | head -n1)"
fi
