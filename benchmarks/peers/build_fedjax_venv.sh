#!/usr/bin/env bash
# Build the FedJAX peer's own virtual environment (kept apart from the package's):
#   bash benchmarks/peers/build_fedjax_venv.sh [VENV_DIR]   (default benchmarks/peers/.fedjax-venv)
set -euo pipefail
VENV="${1:-$(dirname "$0")/.fedjax-venv}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "fedjax>=0.0.17" "numpy>=1.26"
"$VENV/bin/python" -c "import jax; from importlib.metadata import version; print('fedjax', version('fedjax'), 'jax', jax.__version__, 'in', '$VENV')"
