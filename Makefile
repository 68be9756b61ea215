# Shoal — two commands do everything on a fresh machine:
#   make demo   build, start a local 3-node cluster with sample data, print how to connect
#   make test   the whole suite (format, lints, unit, integration, sqllogictest)

SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/shoal/target
BIN := $(CARGO_TARGET_DIR)/debug
CORPUS ?= ../shared/sqllogictest
# The Python clients of the end-to-end tests (tests/clients/requirements.txt).
VENV ?= $(HOME)/.cache/shoal/venv
# The Node.js clients of the end-to-end tests, pinned.
NODE_DEPS ?= $(HOME)/.cache/shoal/node
NODE_CLIENTS := pg@8.23.1

.PHONY: all deps build demo test test-unit test-slt slt-corpus lint fmt clean bench bench-smoke chaos fuzz fuzz-smoke sqlsmith differential sql-fuzz-smoke

all: build

# System packages a fresh Debian machine lacks: clang/libclang for RocksDB's
# bindgen, a C++ toolchain, psql, and for the end-to-end tests pgbench
# (Debian ships it with the server package), pgjdbc and a JDK to compile
# against it, sysbench, gnuplot and perf (for the benchmark reports' charts
# and fsync counts), and Python's venv;
# then the Python and Node.js clients those tests run, beside the build
# cache.
deps:
	@missing=""; \
	for p in clang libclang-dev g++ make postgresql-client postgresql python3-venv \
	    libpostgresql-jdbc-java default-jdk-headless sysbench gnuplot-nox linux-perf sqlsmith; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@command -v cargo >/dev/null || { echo "cargo is required (see rust-toolchain.toml)"; exit 1; }
	@cargo fuzz --version >/dev/null 2>&1 || { \
	  echo "installing cargo-fuzz"; cargo install --locked cargo-fuzz; }
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm; }
	@if ! cmp -s tests/clients/requirements.txt $(VENV)/requirements.txt; then \
	  echo "installing the Python clients into $(VENV)"; \
	  python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -r tests/clients/requirements.txt && \
	  cp tests/clients/requirements.txt $(VENV)/requirements.txt; \
	fi
	@if [ "$$(cat $(NODE_DEPS)/clients 2>/dev/null)" != "$(NODE_CLIENTS)" ]; then \
	  echo "installing the Node.js clients into $(NODE_DEPS)"; \
	  mkdir -p $(NODE_DEPS) && npm install --silent --prefix $(NODE_DEPS) --no-save --no-package-lock $(NODE_CLIENTS) && \
	  echo "$(NODE_CLIENTS)" > $(NODE_DEPS)/clients; \
	fi

build: deps
	cargo build --workspace --all-targets

demo: build
	$(BIN)/shoal demo

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# The Criterion micro-benchmarks run once each as tests (`--benches`), so
# they never rot; `cargo bench` measures them.
test-unit: build
	cargo test --workspace
	cargo test --workspace --benches

# Shoal's own SQL suites (on one node, then through a follower of a 3-node
# cluster), then the SQLite corpus: select1/select2 must pass completely;
# the other corpus files report their pass counts.
test-slt: build
	$(BIN)/shoal-slt --shoal-bin $(BIN)/shoal sqllogictest/suites
	$(BIN)/shoal-slt --shoal-bin $(BIN)/shoal --nodes 3 sqllogictest/suites
	@if [ -d "$(CORPUS)" ]; then \
	  $(BIN)/shoal-slt --shoal-bin $(BIN)/shoal $(CORPUS)/select1.test $(CORPUS)/select2.test && \
	  $(MAKE) --no-print-directory slt-corpus; \
	else echo "no corpus at $(CORPUS); skipping the SQLite corpus"; fi

slt-corpus:
	$(BIN)/shoal-slt --allow-failures --shoal-bin $(BIN)/shoal $(CORPUS)/index $(CORPUS)/random

test: lint test-unit test-slt fuzz-smoke sql-fuzz-smoke bench-smoke

# sysbench OLTP and pgbench workloads against PostgreSQL 15, and replicated
# inserts (Shoal 3 nodes, Shoal 1 node, etcd 3.4 cluster), on this machine,
# in the same run; markdown reports with PNG charts in benches/results (see
# benches/README.md). BENCH_ARGS=--smoke for a quick run.
bench: deps
	cargo build --release -p shoal -p shoal-loadgen
	SHOAL_BIN=$(CARGO_TARGET_DIR)/release/shoal benches/sysbench.sh $(BENCH_ARGS)
	SHOAL_BIN=$(CARGO_TARGET_DIR)/release/shoal benches/pgbench.sh $(BENCH_ARGS)
	SHOAL_BIN=$(CARGO_TARGET_DIR)/release/shoal benches/replication.sh $(BENCH_ARGS)
	SHOAL_BIN=$(CARGO_TARGET_DIR)/release/shoal benches/tpch.sh $(BENCH_ARGS)

# Every benchmark script in smoke mode (tiny tables, few clients, seconds
# per run; about 5 minutes) against the debug build, as part of `make test`:
# fails if a step fails, an invariant is broken, or a report or chart is not
# written. Shoal's numbers from a debug build mean nothing.
bench-smoke: build
	SHOAL_BIN=$(BIN)/shoal benches/sysbench.sh --smoke
	SHOAL_BIN=$(BIN)/shoal benches/pgbench.sh --smoke
	SHOAL_BIN=$(BIN)/shoal benches/replication.sh --smoke
	SHOAL_BIN=$(BIN)/shoal benches/tpch.sh --smoke

# Long chaos runs (tests/tests/chaos.rs, tests/src/chaos/): every workload
# under its nemeses for CHAOS_SECONDS each, CHAOS_ROUNDS times with fresh
# seeds; each run prints its seed, faults, operations and anomalies, and
# writes its history as elle-cli JSON. SHOAL_CHAOS_SEED=N replays a run's
# schedule. (`make test` runs the same for 20 seconds each.)
# Then the deterministic simulations of the replication layer with
# SIM_SEEDS seeds each (`make test` runs a handful; SHOAL_SIM_SEED=N
# replays the seed a failure names).
CHAOS_SECONDS ?= 300
CHAOS_ROUNDS ?= 3
SIM_SEEDS ?= 200
chaos: build
	for round in $$(seq $(CHAOS_ROUNDS)); do \
	  echo "chaos round $$round of $(CHAOS_ROUNDS)"; \
	  SHOAL_CHAOS_SECONDS=$(CHAOS_SECONDS) cargo test -p shoal-tests --test chaos -- --nocapture --test-threads=1 || exit 1; \
	done
	SHOAL_SIM_SEEDS=$(SIM_SEEDS) cargo test -p shoal-replication --tests

# Coverage-guided fuzzing (cargo fuzz, libFuzzer; tests/fuzz): the
# startup packet, the messages of a started connection, and the key
# decoder, FUZZ_SECONDS each. Corpora grow in tests/fuzz/corpus; a crash
# leaves its input in tests/fuzz/artifacts and fails the run (replay it:
# cargo fuzz run --fuzz-dir tests/fuzz -s none TARGET FILE). `make test`
# runs each for a few seconds so the targets never rot.
FUZZ_TARGETS := startup_packet frontend_messages key_decoder
FUZZ_SECONDS ?= 300
fuzz: deps
	for t in $(FUZZ_TARGETS); do \
	  cargo fuzz run --fuzz-dir tests/fuzz -s none $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

fuzz-smoke:
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10

# Random SQL against a release node. sqlsmith (tests/fuzz/sqlsmith.sh)
# must find no panic, crash or hang and leave the node healthy; the
# differential tester (tests/differential) runs generated queries on Shoal
# and on PostgreSQL 15 and fails on any difference in results or errors.
# `make test` runs a short pass of each on the debug build, the
# differential one with --allow-failures: it reports the differences
# (known ones remain; see the summary it prints) and fails only on a crash.
SQLSMITH_QUERIES ?= 50000
SQLSMITH_SEED ?= 1
DIFF_SECONDS ?= 600
DIFF_SEED ?= 1
sqlsmith: deps
	cargo build --release -p shoal
	SHOAL_BIN=$(CARGO_TARGET_DIR)/release/shoal tests/fuzz/sqlsmith.sh \
	  --queries $(SQLSMITH_QUERIES) --seed $(SQLSMITH_SEED)

differential: deps
	cargo build --release -p shoal
	SHOAL_BIN=$(CARGO_TARGET_DIR)/release/shoal PYTHON=$(VENV)/bin/python \
	  tests/differential/run.sh --seed $(DIFF_SEED) --seconds $(DIFF_SECONDS)

sql-fuzz-smoke: build
	SHOAL_BIN=$(BIN)/shoal tests/fuzz/sqlsmith.sh --queries 2000 --seed 1
	SHOAL_BIN=$(BIN)/shoal PYTHON=$(VENV)/bin/python \
	  tests/differential/run.sh --seed 1 --queries 300 --allow-failures

clean:
	cargo clean
