#!/usr/bin/env bash
# Runs the keyed-count harness for both backends on 1 and 2 shards, RUNS times each,
# then (if PEER=1) the Flink peer with the same workload. Prints one line per run.
#   RECORDS=20000000 KEYS=1000000 RUNS=3 PEER=1 ./benches/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
RECORDS=${RECORDS:-20000000}; KEYS=${KEYS:-1000000}; RUNS=${RUNS:-3}
cargo build --release -q -p sluice-benches
bin=$CARGO_TARGET_DIR/release/keyed-count
for backend in rocksdb heap; do
  for shards in 1 2; do
    "$bin" --records "$RECORDS" --keys "$KEYS" --backend "$backend" --shards "$shards" --runs "$RUNS"
  done
done
if [[ ${PEER:-0} == 1 ]]; then
  for backend in rocksdb hashmap; do
    for i in $(seq "$RUNS"); do ../shared/peers/flink/run.sh "$RECORDS" "$KEYS" "$backend" 2; done
  done
fi
