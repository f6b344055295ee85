#!/usr/bin/env bash
# The benchmark on one GPU: silentfail bench finds the accelerator (jax.devices()),
# runs the full engine at 1e4, 1e5, 1e6 and 1e7 clients, and records the numbers with
# the device's name in benchmarks/results/bench_<device kind>.json (e.g.
# bench_nvidia_h200.json). The same vmapped, sharded programs run as on CPU; only the
# jaxlib differs.
#
#   bash benchmarks/gpu.sh            # a CUDA 12 jaxlib in .venv-gpu, then the benchmark
#   SILENTFAIL_GPU_VENV=.venv bash benchmarks/gpu.sh   # an environment that has one already
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SILENTFAIL_GPU_VENV:-.venv-gpu}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -e . "jax[cuda12]"
fi
"$VENV/bin/python" -c "import jax; assert jax.default_backend() == 'gpu', jax.devices(); print(jax.devices())"
"$VENV/bin/python" -m silentfail bench --no-flower
