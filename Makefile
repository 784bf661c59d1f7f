# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The offline mirror is used when it exists; otherwise the run downloads from upstream.
MIRROR ?= $(shell [ -d ../shared/corpora ] && echo ../shared/corpora)

$(BIN)/.installed: pyproject.toml constraints.txt
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

.PHONY: install run test bench clean
install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/tiger run $(if $(MIRROR),--mirror $(MIRROR))

test: $(BIN)/.installed
	HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_stages.py $(if $(MIRROR),--mirror $(MIRROR))

clean:
	rm -rf data/processed/* .prefect
