#!/usr/bin/env bash
# Can tiger be installed beside LLaMA-Factory, do its tests pass with the versions that brings, and does
# LLaMA-Factory's own dataset loader read every mixture tiger exports?
#
#   benchmarks/coinstall_llamafactory.sh [LLAMAFACTORY_VERSION [RUN_FOLDER]]   (default 0.9.5; needs a package index)
#
# Makes a fresh venv (COINSTALL_ENV, default /tmp/tiger-llamafactory-env; COINSTALL_REUSE=1 keeps one
# made before), lets pip resolve tiger's own ranges (pyproject.toml, not constraints.txt) together with
# llamafactory (torch pinned to the 2.13.0 CPU build, as everywhere in this project), prints the
# versions it chose, runs the tests that touch transformers, peft, datasets and pandas most, then
# benchmarks/lf_load_mixtures.py on RUN_FOLDER (default: the newest data/processed/run-* with
# mixtures; with none, one is made by `tiger run` in the project's own .venv: the two-environment
# set-up the README also describes). That loads each mixture's alpaca and sharegpt entry of dataset_info.json
# through LLaMA-Factory's get_dataset_list / _load_single_dataset / get_dataset(stage="sft") and
# compares row counts and every row's prompt/response with the mixture. Exit status: the loader's
# (the tests' outcome is printed).
#
# fastapi is capped below 0.137: gradio 5.50 pins starlette<1.0 and pydantic<=2.12.3, which leaves prefect
# at 3.7.2, and that release's local API server fails (HTTP 500) on the fastapi pip would pick otherwise
# (0.137-0.154: `'PrefectRouter' object has no attribute 'routes'`; 0.155 on: `Body() got an unexpected
# keyword argument 'min_items'`). Two more changes to what pip installs, both printed when made:
# LLaMA-Factory 0.9.5 imports torchaudio at start-up (data/mm_plugin.py), and PyPI has no torchaudio
# for torch 2.13 (pip picks 2.11.1, a CUDA build whose extension needs libc10_cuda.so), so its compiled
# extension is removed and torchaudio imports as pure Python (text data never calls it); PyPI's torchvision does not import beside the
# CPU torch (`torchvision::nms does not exist`) and breaks `import transformers`' models, so it is
# uninstalled (LLaMA-Factory's text path does not need it).
#
# Not part of `make test`: CI has no index to resolve against. Measured with 0.9.5 (see README,
# "Installing LLaMA-Factory beside tiger"): transformers 5.6.0, datasets 4.0.0, torch 2.13.0+cpu;
# all 12 entries of the full-mirror run (6 mixtures of 5,000 rows x alpaca/sharegpt) load with every
# row count and row matching (2.5 min on 2 cores), as do the 4 of tests/data/own/recipe.yaml's run;
# 31 training, export and scoring tests pass; without the fastapi cap the 8 that start a flow fail
# (Prefect's local server does not start with the web stack gradio pins); with fastapi 0.136.3 all 8 pass
# (the 7 of tests/test_flow.py and test_experiment_flow_end_to_end).
set -euo pipefail
cd "$(dirname "$0")/.."
LF="${1:-0.9.5}"
RUN="${2:-}"
ENV="${COINSTALL_ENV:-/tmp/tiger-llamafactory-env}"
if [ "${COINSTALL_REUSE:-0}" != 1 ] || [ ! -x "$ENV/bin/python" ]; then
  rm -rf "$ENV"
  python3 -m venv "$ENV"
  "$ENV/bin/pip" install -q --upgrade pip
  # gradio keeps prefect at 3.7.2 (starlette<1): its server breaks on fastapi>=0.137 (router rewrite; >=0.155 also drops Body(min_items=))
  "$ENV/bin/pip" install -q . "llamafactory==$LF" torch==2.13.0 "fastapi<0.137" pytest pytest-timeout hypothesis
fi
SITE="$("$ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if ! "$ENV/bin/python" -c 'import torchaudio' >/dev/null 2>&1 && ls "$SITE"/torchaudio/lib/*.so >/dev/null 2>&1; then
  echo "torchaudio's compiled extension does not load beside this torch: removing it (pure-Python import)"
  rm -f "$SITE"/torchaudio/lib/*.so
fi
if "$ENV/bin/pip" show -q torchvision >/dev/null 2>&1 && ! "$ENV/bin/python" -c 'import torchvision' >/dev/null 2>&1; then
  echo "torchvision does not import beside this torch: uninstalling it"
  "$ENV/bin/pip" uninstall -y -q torchvision
fi
"$ENV/bin/python" - <<'PY'
from importlib.metadata import version
for p in ("llamafactory", "transformers", "peft", "datasets", "accelerate", "tokenizers", "torch", "torchaudio",
          "pandas", "pyarrow", "prefect"):
    print(f"{p:14s} {version(p)}")
PY
tests=0
HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 "$ENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_train.py tests/test_train_experiment.py tests/test_export.py tests/test_flow.py || tests=$?
echo "tests: pytest exit status $tests"

if [ -z "$RUN" ]; then
  RUN="$(ls -td data/processed/run-*/mixtures/dataset_info.json 2>/dev/null | head -1 | xargs -r dirname | xargs -r dirname)"
fi
if [ -z "$RUN" ]; then
  echo "no run with mixtures under data/processed: making one with the project's .venv"
  make install
  MIRROR="$([ -d ../shared/corpora ] && echo --mirror ../shared/corpora || true)"
  HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 .venv/bin/tiger run $MIRROR
  RUN="$(ls -td data/processed/run-*/mixtures/dataset_info.json | head -1 | xargs dirname | xargs dirname)"
fi
HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 "$ENV/bin/python" benchmarks/lf_load_mixtures.py "$RUN"
