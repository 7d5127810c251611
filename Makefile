# PEFT-Arena kit. `make help` lists targets and notebook parameters.
# Each executed notebook is a make target: a second `make reproduce` re-runs only what changed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The users' setting is one CUDA GPU with 4-bit bases (onegpu); a CPU machine runs the embedded model. PROFILE= overrides.
PROFILE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo onegpu || echo embedded)
PARAMS ?=
QUANT ?=
DRY_RUN ?=
HUB_PROFILES := onegpu paper
# papermill's limit is per cell, and chapter 01 of a hub profile is one cell of many hours (make plan): none there
NOTEBOOK_TIMEOUT ?= $(if $(and $(filter $(PROFILE),$(HUB_PROFILES)),$(if $(DRY_RUN),,1)),,7200)
OUT := build/$(PROFILE)$(if $(QUANT),-$(QUANT))$(if $(DRY_RUN),-dryrun)
QUANT_PARAM := $(if $(QUANT),-p quantization $(QUANT))$(if $(DRY_RUN), -p dry_run True)
DRY_FLAG := $(if $(DRY_RUN),--dry-run)
# A dry run's 7B-wide matrices gain from every core; the 135M default is fastest on one thread (models.configure_torch).
# A dry run also scores in fp32: the bf16 scoring copy of a 7B-wide random base is 3 GB more, and a rewinding point of
# OFT peaked at 23.1 GB with it (the OOM killer, on a 24 GB machine); its numbers mean nothing either way.
THREADS := $(if $(DRY_RUN),ARENA_THREADS=$(shell nproc 2>/dev/null || echo 1) ARENA_CPU_BF16=0)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
EXECUTED := $(patsubst notebooks/%.ipynb,$(OUT)/book/chapters/%.ipynb,$(NOTEBOOKS))
ARENA_SRC := $(shell find arena -name '*.py' -o -name '*.yaml' -o -name '_arena_*' 2>/dev/null) pyproject.toml
BOOK_SRC := $(wildcard book/*.md book/*.yml book/*.bib book/_ext/*.py)
HTML := $(OUT)/book/_build/html/index.html
PYTEST_ARGS ?=
BENCH_ARGS ?=
PLAN_ARGS ?=

.PHONY: help install reproduce preflight plan book test test-fast test-dryrun test-gpu gpu-check browser assets bench \
  robustness clean distclean
.DEFAULT_GOAL := help

help: ## List targets and the notebooks' parameters
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  DRY_RUN=1: a hub profile (onegpu, paper) on random 2-layer bases of the exact architectures and local data"
	@echo "             fixtures, on the CPU with no hub: checks every chapter and the book, never a number"
	@echo "  Variables: PROFILE=smoke|embedded|onegpu|paper (default onegpu with a CUDA GPU, else embedded),"
	@echo "             QUANT=auto|nf4|none (default: the profile's;"
	@echo "             auto = nf4 on CUDA, none on CPU), PARAMS='-p name value ...',"
	@echo "             PEFT_ARENA_CACHE (assets and results cache, default ~/.cache/peft-arena)"
	@if [ -x $(BIN)/papermill ]; then for nb in $(NOTEBOOKS); do $(BIN)/papermill --help-notebook $$nb \
	  | sed -n '/^Parameters inferred/,$$p'; done; fi

install: $(VENV)/.installed ## Create the virtual environment and install pinned packages (a no-op when done)

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first: the pin takes the local CPU build here and the CUDA build on a GPU machine.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

$(OUT)/.profile: FORCE | install
	@mkdir -p $(OUT)
	@$(BIN)/python -m arena profile $(PROFILE) $(if $(QUANT),--quantization $(QUANT)) $(DRY_FLAG) > /dev/null
	@echo "$(PROFILE) $(QUANT) $(DRY_RUN) $(PARAMS)" | cmp -s - $@ || echo "$(PROFILE) $(QUANT) $(DRY_RUN) $(PARAMS)" > $@

FORCE:

# Per-notebook parameters: the reproducibility page reads the executed chapters of this build.
NB_PARAMS_08_reproducibility = -p chapters_dir $(abspath $(OUT))/book/chapters

# Notebooks run in numeric order: each depends on the one before it.
$(OUT)/book/chapters/%.ipynb: notebooks/%.ipynb $(ARENA_SRC) $(OUT)/.profile | install
	@mkdir -p $(@D)
	@$(BIN)/python -m arena assets --profile $(PROFILE) $(DRY_FLAG)
	ARENA_QUIET=1 $(THREADS) $(BIN)/papermill $< $(@:.ipynb=.partial.ipynb) -p profile $(PROFILE) $(QUANT_PARAM) $(NB_PARAMS_$*) $(PARAMS) \
	  --cwd notebooks -k python3 \
	  $(if $(NOTEBOOK_TIMEOUT),--execution-timeout $(NOTEBOOK_TIMEOUT)) --log-level WARNING --no-progress-bar
	@$(BIN)/python book/_ext/hide_cells.py $(@:.ipynb=.partial.ipynb)
	@mv $(@:.ipynb=.partial.ipynb) $@

$(foreach i,$(shell seq 2 $(words $(EXECUTED))),$(eval $(word $(i),$(EXECUTED)): $(word $(shell expr $(i) - 1),$(EXECUTED))))

$(HTML): $(EXECUTED) $(BOOK_SRC)
	@mkdir -p $(OUT)/book
	cp -r book/*.md book/*.yml book/_ext $(OUT)/book/
	$(BIN)/jupyter-book build $(OUT)/book --warningiserror --quiet
	@echo "book: $(abspath $(HTML))"

reproduce: install $(if $(and $(filter $(PROFILE),$(HUB_PROFILES)),$(if $(DRY_RUN),,1)),preflight) $(HTML) ## Run every notebook (papermill) and build the book; prints where it is
	@echo "open $(abspath $(HTML)) in a browser"

# A hub profile: the plan for this card, then hub access for every base and the data, before anything downloads
preflight: install
	$(BIN)/python -m arena plan --profile $(PROFILE) $(if $(QUANT),--quantization $(QUANT))
	$(BIN)/python -m arena assets --profile $(PROFILE) --preflight-only

book: $(HTML) ## Build the book from the executed notebooks

assets: install ## Fetch and verify the embedded model and data (once; then everything is offline)
	$(BIN)/python -m arena assets --profile $(PROFILE)

test: install browser ## Run the tests (fast unit tests, the end-to-end smoke pipeline, the book in a browser)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

browser: ## Install Debian's Chromium and ChromeDriver for the browser test (once; needs root or sudo)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver \
	  || echo "could not install chromium: the browser test will be skipped with this reason"; }

test-fast: install ## Unit tests only (no end-to-end pipeline)
	$(BIN)/python -m pytest -m "not e2e" $(PYTEST_ARGS)

test-dryrun: install ## Dry runs of the hub profiles (onegpu, paper) through every chapter and the book, on CPU
	$(BIN)/python -m pytest -m dryrun $(PYTEST_ARGS)

test-gpu: install ## GPU / bitsandbytes tests (skip without CUDA)
	$(BIN)/python -m pytest -m "gpu or bnb" $(PYTEST_ARGS)

plan: install ## Print what PROFILE will cost (work, GPU memory, time estimates) before anything downloads or trains
	$(BIN)/python -m arena plan --profile $(PROFILE) $(if $(QUANT),--quantization $(QUANT)) $(DRY_FLAG) $(PLAN_ARGS)

robustness: install ## The robustness study (3 methods x learning rates x seeds; chapter 10), then the book again
	$(BIN)/python -m arena robustness --profile $(PROFILE) $(if $(QUANT),--quantization $(QUANT)) $(DRY_FLAG)
	rm -f $(OUT)/book/chapters/07_summary.ipynb $(OUT)/book/chapters/10_robustness.ipynb
	$(MAKE) reproduce

gpu-check: install ## The GPU check: the kit's path, throughput, decode and SVD beside the plan (--cpu mode without CUDA)
	$(BIN)/python benchmarks/gpu_check.py $(if $(shell nvidia-smi -L >/dev/null 2>&1 && echo y),,--cpu)

bench: install ## Print training tokens/s and peak memory per method as ratios to LoRA (a measurement, not a test)
	$(BIN)/python benchmarks/train_throughput.py --profile $(PROFILE) $(if $(QUANT),--quantization $(QUANT)) $(BENCH_ARGS)

clean: ## Remove built notebooks and books (keeps the cache of assets and results)
	rm -rf build

distclean: clean ## Also remove the virtual environment
	rm -rf $(VENV)
