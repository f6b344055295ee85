"""Benchmark of the sweep engine on the built-in default phase diagram (``silentfail
phase`` with no arguments: the ``phase`` preset, lambda log-spaced 0.01..10 (8) x shift
strength 0..1 (8), 8 seeds per cell, 80 null runs per lambda for calibration).

Reports trace and compile time separately from run time, runs per second and
client-rounds per second (null and judged runs together), the wall time of the whole
sweep (the README promises under 3 minutes on a 2-core CPU) and peak RSS.

Usage:
    python benchmarks/bench_sweep.py            # writes benchmarks/results/sweep.json
    python benchmarks/bench_sweep.py --smoke    # tiny grid, no file (CI smoke mode)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import machine  # noqa: E402

ROOT = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny grid, print only")
    args = ap.parse_args()

    from silentfail.sim import batch
    from silentfail.sim.detectors import deployed, layout
    from silentfail.sim.scenario import preset
    from silentfail.sim.sweep import sweep

    sc = preset("phase")
    lam = [float(f"{v:.6g}") for v in np.geomspace(0.01, 10, 8)]
    strength = [float(v) for v in np.linspace(0, 1, 8)]
    seeds = 8
    if args.smoke:
        sc = sc.replace(**{"population.num_clients": 40, "federation.clients_per_round": 10, "federation.rounds": 4})
        lam, strength, seeds = lam[:2], strength[-2:], 2
    dets = deployed(sc)
    K = len(layout(dets).channel)
    paths = ("personalization.lam", "shifts.strength")
    fn = batch._compiled(sc.to_json(), paths, dets)
    shapes = (np.ones((batch.CALL, 2), np.float32), np.arange(batch.CALL, dtype=np.uint32), np.full((batch.CALL, K), np.inf, np.float32))
    import jax

    t0 = time.perf_counter()
    lowered = fn.lower(*shapes)
    t_trace = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*shapes))  # trace + compile + one call of CALL runs
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*shapes))
    t_call = time.perf_counter() - t0
    t_compile = t_first - t_call - t_trace
    del lowered
    t0 = time.perf_counter()
    ds = sweep(sc, {"personalization.lam": lam, "shifts.strength": strength}, seeds=seeds, chunk=256)
    t_sweep = time.perf_counter() - t0  # the program is compiled: run time, plus calibration and assembly on the host
    runs = len(lam) * len(strength) * seeds + len(lam) * sc.monitor.calibration_seeds
    client_rounds = runs * sc.population.num_clients * sc.federation.rounds
    result = {
        "benchmark": "default phase sweep (silentfail phase)",
        "grid": {"personalization.lam": lam, "shifts.strength": strength, "seeds": seeds,
                 "calibration_seeds": sc.monitor.calibration_seeds},
        "runs": runs, "clients": sc.population.num_clients, "rounds": sc.federation.rounds,
        "trace_s": round(t_trace, 2), "compile_s": round(t_compile, 2), "call_s": round(t_call, 3), "calls_runs": batch.CALL,
        "sweep_run_s": round(t_sweep, 2), "total_s": round(t_trace + t_compile + t_sweep, 2),
        "runs_per_s": round(runs / t_sweep, 1), "client_rounds_per_s": round(client_rounds / t_sweep),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "mean_p_silent": {m: round(float(np.nanmean(ds["p_silent"].sel(mode=m))), 3) for m in ds.mode.values},
        "machine": machine(),
    }
    print(json.dumps(result, indent=1))
    if not args.smoke:
        out = ROOT / "results" / "sweep.json"
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
