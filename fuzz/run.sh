#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60). Installs cargo-fuzz on first use.
# Builds go to the shared cache ($CARGO_TARGET_DIR/fuzz) like the rest of the workspace.
# RUSTC_BOOTSTRAP=1 lets the stable toolchain build with the sanitizer flags cargo-fuzz uses.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}/fuzz"
for t in $(cargo fuzz list); do
  echo "fuzz: $t for ${seconds}s"
  cargo fuzz run "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048
done
