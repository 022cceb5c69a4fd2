#!/bin/bash
# statetool's reading verbs on existing checkpoints, each run from a cold page cache
# (needs root), with a dd of the root's largest SST before each run:
#   benches/statetool-cold.sh ROOT/chk-N [ROOT2/chk-M ...]
# One line per run: the verb, seconds and peak RSS (/usr/bin/time), and the load.
# docs/PERFORMANCE.md ("After: the same verbs on two 5 GB checkpoints") used it.
set -u
ST=${STATETOOL:-$HOME/.cache/sluice-target/release/statetool}
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
for R in "$@"; do
  ROOT=$(dirname $R); BIG=$(ls -S $ROOT/shared | head -1)
  for i in 1 2 3; do
    cold; echo "$R run=$i dd $(dd if=$ROOT/shared/$BIG of=/dev/null bs=1M 2>&1 | tail -1) load=$(cut -d' ' -f1-3 /proc/loadavg)"
    for v in "verify --quick" "verify" "dump" "du --by state"; do
      cold; /usr/bin/time -f "$R run=$i verb=\"$v\" s=%e rss_kb=%M load=$(cut -d' ' -f1 /proc/loadavg)" $ST $v $R > /dev/null
    done
  done
done
