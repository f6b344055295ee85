"""The flax MLP client model (``model.kind = "mlp"``, sim/mlp.py) at the target size:
1,000 clients x 30 rounds, K = 5 local steps, 64 samples per client (``population.mode
= "finite"``), the default width 32 and evaluation (4 replicates x 64 draws per cell,
16 panel clients). Compile time (the first call of the compiled program, AOT lowered
and compiled) and run time (best of 3 calls) are recorded apart, in client-rounds per
second. The same program runs on a GPU unchanged (``benchmarks/gpu.sh``).

Usage:
    python benchmarks/bench_mlp.py            # writes benchmarks/results/mlp.json
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import jax
import numpy as np

from silentfail.sim.config import Config
from silentfail.sim.engine import program
from silentfail.sim.scenario import preset

OUT = Path(__file__).resolve().parent / "results" / "mlp.json"
SIZE = {"population.num_clients": 1000, "federation.rounds": 30, "federation.clients_per_round": 100}
MODEL = {
    "model.kind": "mlp",
    "population.mode": "finite",
    "population.samples_per_client": 64,
    "personalization.K": 5,
}


def main() -> None:
    sc = preset("default").replace(**SIZE, **MODEL)
    cfg = Config(sc)
    seed = np.uint32(0)
    t0 = time.perf_counter()
    compiled = jax.jit(lambda c, s: program(c, s)).lower(cfg, seed).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(cfg, seed))
        times.append(time.perf_counter() - t0)
    run_s = min(times)
    cr = SIZE["population.num_clients"] * SIZE["federation.rounds"]
    row = dict(
        scenario={**SIZE, **MODEL},
        backend=jax.default_backend(),
        devices=jax.device_count(),
        cpu=platform.processor() or platform.machine(),
        compile_s=round(compile_s, 2),
        run_s=round(run_s, 3),
        client_rounds_per_s=round(cr / run_s, 1),
        params=int(16 * 32 + 32 + 32 + 1),
        jax=jax.__version__,
    )
    OUT.write_text(json.dumps(row, indent=2) + "\n")
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
