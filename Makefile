# Thin wrapper: the build is CMake. `make demo` and `make test` work from a
# clean clone on Debian 12 as root (they install missing packages first).
BUILD      ?= build
BUILD_SAN  ?= build-asan
BUILD_FUZZ ?= build-fuzz
# make fuzz: seconds per libFuzzer target (they run concurrently)
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= config checkpoint samples
JOBS       ?= $(shell nproc)
DEMO_DIR   ?= runs/demo
# Debian's interpreter: it has matplotlib, h5py, numpy and yaml (scripts/deps.sh)
PYTHON     ?= /usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT = 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = 1

PREFIX     ?= /usr/local

.PHONY: all deps build build-asan install demo demo-plots test test-fast bench bench-scaling bench-quality fuzz clean

all: build

deps:
	@bash scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DDS_SANITIZE=ON
	cmake --build $(BUILD_SAN) -j $(JOBS)

# The program, the energy plugin header and diffsamp.pc (pkg-config) under
# PREFIX (default /usr/local): see README, "Your own energy".
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# The embedded default: 25gmm, TB + exploration + local search (about a
# minute), then the pictures of the run.
demo: build
	$(BUILD)/diffsamp train --out $(DEMO_DIR) --resume never
	@$(MAKE) --no-print-directory demo-plots DEMO_DIR=$(DEMO_DIR)

# The samples over the target's density and the training curves of the run
# in DEMO_DIR (tests/cli_demo.sh runs this on a short run).
demo-plots:
	@$(PYTHON) analysis/plot_samples.py $(DEMO_DIR)/samples.h5 -o $(DEMO_DIR)/samples.png --diffsamp $(BUILD)/diffsamp > /dev/null
	@$(PYTHON) analysis/plot_training.py $(DEMO_DIR) -o $(DEMO_DIR)/training.png --diffsamp $(BUILD)/diffsamp > /dev/null
	@echo "samples over the target density: $(DEMO_DIR)/samples.png"
	@echo "training curves:                 $(DEMO_DIR)/training.png"

test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j 2
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 2 -E '^cli_'

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j 2

# libFuzzer on the config loader and the checkpoint and sample-set readers
# (clang; tests/fuzz/run.sh says where the corpus and any crashers go).
# make test replays the seed corpus and regression inputs without clang.
fuzz:
	@bash scripts/deps.sh fuzz
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDS_FUZZ=ON -DDS_NATIVE=OFF
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	bash tests/fuzz/run.sh $(BUILD_FUZZ) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench: build
	OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-1} $(BUILD)/ds_bench

# issue 20: the 25gmm row at full budget, Table 1's SMC row (and log Z vs
# budget), and searcher vs local search on manywell at a reduced budget
bench-quality: build
	bash bench/quality.sh $(BUILD)/diffsamp
	/usr/bin/python3 bench/smc_table.py --diffsamp $(BUILD)/diffsamp --out runs/smc_table
	bash bench/quality_searcher.sh $(BUILD)/diffsamp 2000 100 runs/quality_searcher_d8 8

bench-scaling: build
	bash bench/scaling.sh $(BUILD)/diffsamp

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ)
