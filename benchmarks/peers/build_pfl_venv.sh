#!/usr/bin/env bash
# Build the pfl-research peer's own virtual environment (kept apart from the package's):
#   bash benchmarks/peers/build_pfl_venv.sh [VENV_DIR]   (default benchmarks/peers/.pfl-venv)
# PyTorch is the CPU build: a local wheel from $PIP_FIND_LINKS when there is one, else
# PyTorch's CPU index (the CUDA build from PyPI would pull gigabytes of GPU libraries).
set -euo pipefail
VENV="${1:-$(dirname "$0")/.pfl-venv}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
WHEEL=$(ls "${PIP_FIND_LINKS:-/nonexistent}"/torch-*+cpu-*.whl 2>/dev/null | head -1 || true)
if [ -n "$WHEEL" ]; then
  "$VENV/bin/pip" install -q "$WHEEL"
else
  "$VENV/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
"$VENV/bin/pip" install -q "pfl>=0.6" "numpy>=1.26"
"$VENV/bin/python" -c "import pfl, torch; print('pfl', pfl.__version__, 'torch', torch.__version__, 'in', '$VENV')"
