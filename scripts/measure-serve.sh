#!/usr/bin/env bash
# Automatic failover figures of `runbook serve` on the local provider, with default
# watcher settings: N runs (default 5) of the end-to-end watcher test, each on a fresh
# environment (crash every node of the primary under a client writing through the
# routed name), then the medians of detection, failover.yaml and client RTO.
#   scripts/measure-serve.sh [N]
# The 10-minute blip run (false failovers, target 0) is separate:
#   cargo test -p runbook --test serve -- --ignored blips --nocapture
set -euo pipefail
n="${1:-5}"
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook/target}"
out="$(mktemp)"
for i in $(seq "$n"); do
  cargo test -q -p runbook --test serve -- watcher_fails_over --nocapture 2>&1 \
    | grep '^serve auto failover:' | tee -a "$out"
done
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
echo "runs: $(wc -l < "$out")"
echo "median detection (crash -> failover execution): $(sed -E 's/.*detection ([0-9.]+) s.*/\1/' "$out" | median) s"
echo "median failover.yaml: $(sed -E 's/.*failover.yaml ([0-9.]+) s.*/\1/' "$out" | median) s"
echo "median client RTO (crash -> first acked write): $(sed -E 's/.*client RTO ([0-9.]+) s.*/\1/' "$out" | median) s"
rm -f "$out"
