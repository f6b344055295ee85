#!/usr/bin/env bash
# Build the Flower peer's own virtual environment (kept apart from the package's):
#   bash benchmarks/peers/build_flower_venv.sh [VENV_DIR]   (default benchmarks/peers/.flower-venv)
set -euo pipefail
VENV="${1:-$(dirname "$0")/.flower-venv}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "flwr[simulation]>=1.20" "numpy>=1.26"
"$VENV/bin/python" -c "import flwr; print('flwr', flwr.__version__, 'in', '$VENV')"
