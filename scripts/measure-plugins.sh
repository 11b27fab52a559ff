#!/usr/bin/env bash
# Prints, for the built-in Rust `lag-guard` and the Python and JavaScript policies that
# `runbook plugin new` writes: component size, first load (compile) time, cached load
# time and per-step overhead (median of N runs of one instance of `run`), each as the
# median of RUNS processes. Figures are printed, never asserted on.
#
# Needs the runner built (`cargo build -p runbook`, the dev profile the tests use) and
# the plugin toolchains (`scripts/setup.sh --plugin-toolchains`).
#   scripts/measure-plugins.sh [RUNS=5] [STEPS=200]
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${1:-5}"
STEPS="${2:-200}"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/runbook/target}"
RUNBOOK="${RUNBOOK:-$TARGET/debug/runbook}"
CACHE="$HOME/.cache/runbook"
[ -x "$RUNBOOK" ] || { echo "no runner at $RUNBOOK: cargo build -p runbook" >&2; exit 2; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
unset RUNBOOK_PLUGIN_PATH

# The three policies.
RUST="$("$RUNBOOK" plugin list | awk '$1 == "lag-guard" { print $NF }')"
PY="$WORK/py-guard/py_guard.wasm"
JS="$WORK/js-guard/js_guard.wasm"
"$RUNBOOK" plugin new py-guard --lang python --dir "$WORK/py-guard" >/dev/null
"$RUNBOOK" plugin new js-guard --lang js --dir "$WORK/js-guard" >/dev/null
PATH="$PATH:$CACHE/venv/bin"
(cd "$WORK/py-guard" && componentize-py -d wit -w policy componentize app -o py_guard.wasm >/dev/null)
ln -s "$CACHE/npm/node_modules" "$WORK/js-guard/node_modules"
(cd "$WORK/js-guard" && npm run --silent build >/dev/null)

INPUT="$WORK/facts.json"
cat >"$INPUT" <<'EOF'
{"Primary": {"Status": "failed", "Reachable": false},
 "Replica": {"Status": "available", "IsReplica": true, "Exists": true},
 "Lag": {"LagSeconds": 4.5}, "MaxLagSeconds": 60, "Force": false}
EOF

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# One `plugin test` in home $1 of wasm $2 with $3 runs: prints "load_ms compiled run_median_us".
measure() {
  RUNBOOK_HOME="$1" "$RUNBOOK" plugin test "$2" --input "@$INPUT" --repeat "$3" --json |
    python3 -c 'import json, sys; v = json.load(sys.stdin); t = v["timing"]; assert v["output"]["Decision"] == "promote", v; print(t["load_ms"], t["compiled"], t["run_median_us"])'
}

printf '%-22s %12s %14s %12s %14s\n' policy "component" "first load" "cached load" "per step"
for row in "rust-lag-guard:$RUST" "python:$PY" "javascript:$JS"; do
  name="${row%%:*}"
  wasm="${row#*:}"
  size=$(stat -c %s "$wasm")
  first=()
  cached=()
  steps=()
  for i in $(seq "$RUNS"); do
    home="$WORK/home-$name-$i"
    read -r ms compiled _ < <(measure "$home" "$wasm" 1)
    [ "$compiled" = True ] || { echo "$name: first load was not a compile" >&2; exit 1; }
    first+=("$ms")
    read -r ms compiled us < <(measure "$home" "$wasm" "$STEPS")
    [ "$compiled" = False ] || { echo "$name: second load was not from the cache" >&2; exit 1; }
    cached+=("$ms")
    steps+=("$us")
    rm -rf "$home"
  done
  printf '%-22s %9.2f MB %11.0f ms %9.1f ms %11.2f ms\n' "$name" \
    "$(awk "BEGIN { print $size / 1000000 }")" \
    "$(printf '%s\n' "${first[@]}" | median)" \
    "$(printf '%s\n' "${cached[@]}" | median)" \
    "$(awk "BEGIN { print $(printf '%s\n' "${steps[@]}" | median) / 1000 }")"
done
echo "(medians of $RUNS processes; per step: median of $STEPS runs of \`run\` each, instantiate + call + return; runner: $RUNBOOK)"
