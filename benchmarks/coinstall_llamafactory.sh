#!/usr/bin/env bash
# Can tiger be installed beside LLaMA-Factory, and do its tests pass with the versions that brings?
#
#   benchmarks/coinstall_llamafactory.sh [LLAMAFACTORY_VERSION]   (default 0.9.5; needs a package index)
#
# Makes a fresh venv, lets pip resolve tiger's own ranges (pyproject.toml, not constraints.txt)
# together with llamafactory (torch pinned to the CPU build, as everywhere in this project), prints
# the versions it chose, then runs the tests that touch transformers, peft, datasets and pandas most.
# Not part of `make test`: CI has no index to resolve against. Measured with 0.9.5 (see README,
# "Install LLaMA-Factory in its own environment"): the training and export tests pass; the flow tests
# fail because Prefect's local server does not start with the web stack gradio pins.
set -euo pipefail
cd "$(dirname "$0")/.."
LF="${1:-0.9.5}"
ENV="${COINSTALL_ENV:-/tmp/tiger-llamafactory-env}"
rm -rf "$ENV"
python3 -m venv "$ENV"
"$ENV/bin/pip" install -q --upgrade pip
"$ENV/bin/pip" install -q . "llamafactory==$LF" torch==2.13.0 pytest pytest-timeout hypothesis
"$ENV/bin/python" - <<'EOF'
from importlib.metadata import version
for p in ("llamafactory", "transformers", "peft", "datasets", "accelerate", "tokenizers", "torch", "pandas",
          "pyarrow", "prefect"):
    print(f"{p:14s} {version(p)}")
EOF
HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 "$ENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_train.py tests/test_train_experiment.py tests/test_export.py tests/test_flow.py
