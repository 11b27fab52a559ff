#!/usr/bin/env bash
# Quick start on a fresh machine: install what is needed, build the runner and the
# plugins (one dev-profile build), and deploy the DR environment on the local provider.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook/target}"
cargo build -p runbook
BIN="$CARGO_TARGET_DIR/debug/runbook"
echo
echo "runbook built: $BIN  (alias it: alias runbook=$BIN)"
"$BIN" run runbooks/deploy.yaml
echo
echo "connect:  runbook endpoint postgres.db-dev.internal ; runbook secret get postgres-credentials-dev"
echo "then:     runbook run runbooks/failover.yaml | failback.yaml | teardown.yaml  (see the README's tour)"
echo "game day: runbook run runbooks/gameday.yaml ; runbook report <execution id> -o ./report"
