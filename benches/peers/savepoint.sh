#!/usr/bin/env bash
# Flink 2.3 peer of savepoint-bench: savepoints (native, canonical) and restores of the
# keyed count at KEYS keys, RocksDB, parallelism 2, in a local MiniCluster.
#   benches/peers/savepoint.sh KEYS [RUNS] [WORKDIR]     e.g. savepoint.sh 1000000 3
# Reuses the jar cache of ../shared/peers/flink/run.sh (~/.cache/sluice-peers/flink-2.3.0);
# run that once first if it is missing. WORKDIR (default /tmp/flink-sp-bench) should be
# on the same file system as savepoint-bench's --dir. Needs root to drop the page cache
# before each restore. JAVA_XMX defaults to 8g; FLINK_MANAGED sets the MiniCluster's
# taskmanager.memory.managed.size (RocksDB's memory; default: Flink's).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${SLUICE_PEERS_CACHE:-$HOME/.cache/sluice-peers}/flink-2.3.0
[[ -d $cache/lib ]] || { echo "no Flink jars in $cache/lib: run ../shared/peers/flink/run.sh once" >&2; exit 1; }
cp_jars=$(ls "$cache"/lib/*.jar | tr '\n' ':')
if [[ ! -f $cache/classes/SavepointBench.class || $here/SavepointBench.java -nt $cache/classes/SavepointBench.class ]]; then
  mkdir -p "$cache/classes"
  javac -d "$cache/classes" -cp "$cp_jars" "$here/SavepointBench.java"
fi
keys=$1; runs=${2:-1}; work=${3:-/tmp/flink-sp-bench}
mkdir -p "$work"
java -Xmx"${JAVA_XMX:-8g}" ${FLINK_MANAGED:+-Dsluice.managed=$FLINK_MANAGED} -cp "$cp_jars:$cache/classes" SavepointBench "$keys" "$work" "$runs" 2>&1 \
  | grep -E '^(fill|savepoint|empty|restore) |Exception' || true
rm -rf "$work"
