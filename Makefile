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

.PHONY: install run test bench clean cluster cluster-stop
install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/tiger run $(if $(MIRROR),--mirror $(MIRROR))

test: $(BIN)/.installed
	HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_stages.py $(if $(MIRROR),--mirror $(MIRROR))

clean:
	rm -rf data/processed/* .prefect

# A Dask scheduler and two single-threaded workers on 127.0.0.1, as separate processes (stopped by
# PID with `make cluster-stop`); then: tiger run --runner dask://127.0.0.1:8786
DASK_DIR := .dask
cluster: $(BIN)/.installed
	mkdir -p $(DASK_DIR)
	$(BIN)/dask scheduler --host 127.0.0.1 --port 8786 --dashboard-address 127.0.0.1:8787 > $(DASK_DIR)/scheduler.log 2>&1 & echo $$! > $(DASK_DIR)/scheduler.pid
	$(BIN)/dask worker tcp://127.0.0.1:8786 --nworkers 2 --nthreads 1 --memory-limit 2GiB --local-directory $(DASK_DIR) > $(DASK_DIR)/worker.log 2>&1 & echo $$! > $(DASK_DIR)/worker.pid
	@echo "scheduler tcp://127.0.0.1:8786, dashboard http://127.0.0.1:8787/status; stop with: make cluster-stop"

cluster-stop:
	-for f in $(DASK_DIR)/worker.pid $(DASK_DIR)/scheduler.pid; do [ -f $$f ] && kill `cat $$f` && rm -f $$f; done
