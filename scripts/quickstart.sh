#!/usr/bin/env bash
# Quick start on a fresh machine: install what is needed, build the runner and the
# plugins (one dev-profile build), and run a first runbook.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook/target}"
cargo build -p runbook
BIN="$CARGO_TARGET_DIR/debug/runbook"
echo
echo "runbook built: $BIN  (alias it: alias runbook=$BIN)"
"$BIN" run runbooks/hello.yaml --param Who=newcomer
