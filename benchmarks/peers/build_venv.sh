#!/usr/bin/env bash
# Build a framework peer's own virtual environment (kept apart from the package's):
#   bash benchmarks/peers/build_venv.sh flower|pfl|fedjax [VENV_DIR]
# (default benchmarks/peers/.<name>-venv). pfl-research gets PyTorch's CPU build: a
# local wheel from $PIP_FIND_LINKS when there is one, else PyTorch's CPU index (the
# CUDA build from PyPI would pull gigabytes of GPU libraries).
set -euo pipefail
NAME="${1:?usage: build_venv.sh flower|pfl|fedjax [VENV_DIR]}"
VENV="${2:-$(dirname "$0")/.$NAME-venv}"
case "$NAME" in
  flower) PACKAGES=("flwr[simulation]>=1.20") ; CHECK="import flwr; print('flwr', flwr.__version__)" ;;
  pfl) PACKAGES=("pfl>=0.6") ; CHECK="import pfl, torch; print('pfl', pfl.__version__, 'torch', torch.__version__)" ;;
  fedjax) PACKAGES=("fedjax>=0.0.17") ; CHECK="import jax; from importlib.metadata import version; print('fedjax', version('fedjax'), 'jax', jax.__version__)" ;;
  *) echo "unknown peer '$NAME': expected flower, pfl or fedjax" >&2; exit 2 ;;
esac
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
if [ "$NAME" = pfl ]; then
  WHEEL=$(ls "${PIP_FIND_LINKS:-/nonexistent}"/torch-*+cpu-*.whl 2>/dev/null | head -1 || true)
  if [ -n "$WHEEL" ]; then
    "$VENV/bin/pip" install -q "$WHEEL"
  else
    "$VENV/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi
"$VENV/bin/pip" install -q "${PACKAGES[@]}" "numpy>=1.26"
"$VENV/bin/python" -c "$CHECK; print('in', '$VENV')"
