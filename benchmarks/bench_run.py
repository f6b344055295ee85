"""Benchmark of ``silentfail.sim.run`` on the default scenario (population mode, d = 16,
K = 5): client-rounds per second at 1e3, 1e4, 1e5 clients, compile time separately
from run time, peak memory, and a plain NumPy loop over clients as the floor.

Each size runs in its own subprocess so that its peak RSS is its own.

Usage:
    python benchmarks/bench_run.py                 # full benchmark, writes benchmarks/results/run.json
    python benchmarks/bench_run.py --smoke         # tiny sizes, no file (CI smoke mode)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def machine() -> dict:
    import jax

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
        "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()], "platform": platform.platform(),
    }


def measure(n: int, rounds: int, repeats: int) -> dict:
    """Build, compile and run the default scenario with n clients; times and peak RSS."""
    import jax

    from silentfail.sim.federate import _compiled
    from silentfail.sim.population import build_population
    from silentfail.sim.scenario import preset

    sc = preset("default").replace(**{
        "population.num_clients": n, "federation.clients_per_round": max(1, n // 10), "federation.rounds": rounds,
    })
    t0 = time.perf_counter()
    ctx, pop = build_population(sc, jax.random.key(0))
    jax.block_until_ready(pop)
    t_pop = time.perf_counter() - t0
    fn = _compiled(sc.to_json())
    t0 = time.perf_counter()
    compiled = fn.lower(ctx, pop, jax.random.key(1)).compile()
    t_compile = time.perf_counter() - t0
    jax.block_until_ready(compiled(ctx, pop, jax.random.key(1)))  # warm
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(ctx, pop, jax.random.key(2 + r)))
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "clients": n, "rounds": rounds, "population_build_s_incl_compile": t_pop, "compile_s": t_compile,
        "run_s_best": best, "run_s_all": times, "client_rounds_per_s": n * rounds / best,
        "local_steps_per_s": n * rounds * sc.personalization.K / best,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def numpy_floor(n: int) -> dict:
    """One round of the plain NumPy loop on the same population."""
    import jax
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from numpy_reference import arrays_from, round_numpy

    from silentfail.sim.population import build_population
    from silentfail.sim.scenario import preset

    sc = preset("default").replace(**{"population.num_clients": n, "federation.clients_per_round": max(1, n // 10)})
    ctx, pop = build_population(sc, jax.random.key(0))
    arrays = arrays_from(ctx, pop)
    t0 = time.perf_counter()
    round_numpy(np.asarray(ctx.theta0, np.float64), arrays)
    dt = time.perf_counter() - t0
    return {"clients": n, "rounds": 1, "run_s": dt, "client_rounds_per_s": n / dt}


def _child(args: argparse.Namespace) -> None:
    result = numpy_floor(args.child) if args.numpy else measure(args.child, args.rounds, args.repeats)
    print(json.dumps(result))


def _spawn(extra: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, print only")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--numpy", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "results" / "run.json")
    args = ap.parse_args()
    if args.child is not None:
        _child(args)
        return
    sizes = [(200, 5), (1000, 5)] if args.smoke else [(1_000, 100), (10_000, 25), (10_000, 50), (100_000, 20)]
    rows = []
    for n, rounds in sizes:
        row = _spawn(["--child", str(n), "--rounds", str(rounds), "--repeats", "1" if args.smoke else str(args.repeats)])
        rows.append(row)
        print(f"jax   {n:>7} clients x {rounds:>3} rounds: {row['client_rounds_per_s']:>12,.0f} client-rounds/s  "
              f"compile {row['compile_s']:.1f}s  run {row['run_s_best']:.3f}s  peak {row['peak_rss_mb']:.0f} MB", flush=True)
    floor_n = 200 if args.smoke else 2_000
    floor = _spawn(["--child", str(floor_n), "--numpy"])
    print(f"numpy {floor_n:>7} clients x   1 round : {floor['client_rounds_per_s']:>12,.0f} client-rounds/s (plain loop)")
    import math

    exponent = rounds_exponent = None
    by = {(r["clients"], r["rounds"]): r for r in rows}
    if (10_000, 50) in by and (100_000, 20) in by:
        a, b = by[(10_000, 50)], by[(100_000, 20)]
        exponent = math.log(b["run_s_best"] / b["rounds"] / (a["run_s_best"] / a["rounds"])) / math.log(b["clients"] / a["clients"])
        print(f"cost per round ~ clients^{exponent:.2f} between {a['clients']} and {b['clients']} clients")
    if (10_000, 25) in by and (10_000, 50) in by:
        a, b = by[(10_000, 25)], by[(10_000, 50)]
        rounds_exponent = math.log(b["run_s_best"] / a["run_s_best"]) / math.log(2.0)
        print(f"cost ~ rounds^{rounds_exponent:.2f} between 25 and 50 rounds at 10000 clients")
    if args.smoke:
        return
    result = {
        "benchmark": "silentfail.sim.run on preset 'default' (population mode, d=16, K=5, 10% slots)",
        "command": "python benchmarks/bench_run.py", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "jax": rows, "numpy_loop": floor, "scaling_exponent_clients": exponent, "scaling_exponent_rounds": rounds_exponent,
        "target": ">= 1e6 client-rounds/s at 1e4 clients on the 2-core CPU",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
