# Builds share one target directory outside the clone, so RocksDB (about 10 minutes to
# compile) is built once per machine, not once per clone.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/sluice-target
CARGO ?= cargo
SLUICE = $(CARGO_TARGET_DIR)/release/sluice

.PHONY: setup build demo test bench fuzz fuzz-short soak ttl-soak canaries clean

setup:
	@./scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace --bins

# Word count over the bundled text on every core: top words and a records/s line.
demo: build
	$(SLUICE) run jobs/wordcount.toml

# The servers tests start themselves installed (scripts/test-services.sh: a Kafka broker);
# no import cycle between the files of a crate; statetool links no runtime; every test of every crate (unit,
# property, end-to-end, CLI); the engine's planted bugs caught (`canaries`); then a
# short fuzz of every parser (FUZZ_SHORT_SECONDS each).
FUZZ_SHORT_SECONDS ?= 5
test: setup
	./scripts/test-services.sh
	python3 scripts/check-cycles.py
	@if $(CARGO) tree -q -p statetool | grep -q glommio; then echo "statetool links glommio" >&2; exit 1; fi
	$(CARGO) test --release --workspace
	$(CARGO) test --release -p sluice-engine --features canaries --test exactly_once planted
	./fuzz/run.sh $(FUZZ_SHORT_SECONDS)

# Whole-job throughput, both backends, 1 and 2 shards (see docs/PERFORMANCE.md).
bench: build
	./benches/run.sh

# Fuzz every parser: FUZZ_SECONDS per target (see docs/TESTING.md).
FUZZ_SECONDS ?= 60
fuzz: setup
	./fuzz/run.sh $(FUZZ_SECONDS)

fuzz-short: setup
	./fuzz/run.sh 10

# The exactly-once kill -9 loops, long mode (CI runs 20, 12 and 6 cycles inside `make test`):
# state (exactly_once), the files sink's outputs (exactly_once_files) and Kafka in ->
# Kafka or MariaDB out (exactly_once_kafka), the last two 300 cycles.
SOAK_CYCLES ?= 1000
SINK_SOAK_CYCLES ?= 300
soak: setup
	SLUICE_KILL_CYCLES=$(SOAK_CYCLES) $(CARGO) test --release -p sluice-engine --test exactly_once -- --nocapture
	SLUICE_KILL_CYCLES=$(SINK_SOAK_CYCLES) $(CARGO) test --release -p sluice-engine --test exactly_once_files -- --nocapture
	./scripts/test-services.sh
	SLUICE_KILL_CYCLES=$(SINK_SOAK_CYCLES) $(CARGO) test --release -p sluice-tests --test exactly_once_kafka -- --nocapture

# TTL cleanup at full size: a dedupe job over 20M unique keys at 200K/s with a 1 s TTL, on
# the heap and RocksDB (`make test` runs 2M keys; figures in docs/PERFORMANCE.md).
TTL_SOAK_KEYS ?= 20000000
ttl-soak: setup
	SLUICE_TTL_SOAK_KEYS=$(TTL_SOAK_KEYS) $(CARGO) test --release -p sluice-tests --test ttl_soak -- --nocapture

# The engine's planted bugs, switched on through the `canaries` feature, must be caught
# (docs/CHECKPOINTING.md, "Planted bugs"; the formats and state-model canaries run in
# `make test`).
canaries: setup
	$(CARGO) test --release -p sluice-engine --features canaries --test exactly_once planted

clean:
	$(CARGO) clean
