#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60). Installs cargo-fuzz on first use.
# Builds go to the shared cache ($CARGO_TARGET_DIR/fuzz) like the rest of the workspace.
# RUSTC_BOOTSTRAP=1 lets the stable toolchain build with the sanitizer flags cargo-fuzz uses.
#
# Each target starts from its committed seeds, fuzz/corpus/<target>/ (valid files made
# by formats/tests/fuzz_seeds.rs; control_request's by control/tests/fuzz_seeds.rs),
# read-only; what the fuzzer finds goes to a working
# corpus outside the clone ($CARGO_TARGET_DIR/fuzz/corpus/<target>/), kept between runs.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}/fuzz"
for t in $(cargo fuzz list); do
  seeds="corpus/$t"
  if [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
    echo "fuzz: no seeds in fuzz/$seeds (SLUICE_WRITE_SEEDS=1 cargo test -p sluice-formats --test fuzz_seeds; for control_request, -p sluice-control)" >&2
    exit 1
  fi
  work="$CARGO_TARGET_DIR/corpus/$t"
  mkdir -p "$work"
  echo "fuzz: $t for ${seconds}s ($(ls "$seeds" | wc -l) seeds)"
  cargo fuzz run "$t" "$work" "$seeds" -- -max_total_time="$seconds" -rss_limit_mb=2048
done
