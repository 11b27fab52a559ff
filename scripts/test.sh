#!/usr/bin/env bash
# The project's one test command: installs what it needs, builds once (dev profile,
# hot crates optimised), runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# The example-policy tests build Python and JavaScript plugins: ask for their toolchains.
./scripts/setup.sh --plugin-toolchains
# A target dir outside the clone lets CI and fresh clones reuse one build cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runbook/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo fmt --all --check
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
