# Every target sets up what it needs first, idempotently (a stamp keyed on pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
CORES ?= all

.PHONY: setup study test lint smoke clean-results

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

smoke: setup
	$(BIN)/snakemake --cores $(CORES) --configfile configs/smoke.yaml --directory .smoke

clean-results:
	rm -rf results/*/ figures/*.pdf figures/*.png .snakemake
