"""The JAX round metrics equal an independent NumPy loop over clients (float64)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from silentfail.sim.population import build_population
from silentfail.sim.run import run
from silentfail.sim.scenario import preset

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
from numpy_reference import arrays_from, round_numpy  # noqa: E402


def test_first_round_metrics_match_the_numpy_loop():
    sc = preset("label-shift").replace(**{"population.num_clients": 40, "population.trace_clients": 40,
                                          "population.ood_subset": 6, "federation.clients_per_round": 8,
                                          "federation.rounds": 1})
    tr = run(sc, 0)
    kpop, _ = jax.random.split(jax.random.key(0))
    ctx, pop = build_population(sc, kpop)
    arrays = arrays_from(ctx, pop)
    ref = round_numpy(np.asarray(ctx.theta0, np.float64), arrays, bins=sc.thresholds.ece_bins)
    got = tr.isel(round=0)
    for name in ("acc", "ece", "bias_amp", "alignment"):
        np.testing.assert_allclose(got[f"client_{name}"].values, ref[name], atol=2e-4, err_msg=name)
    ood = np.maximum(ref["ood_other"], tr.attrs["fm_p0_acc"] - got["client_p0_acc"].values)
    np.testing.assert_allclose(got["client_ood"].values, ood, atol=2e-4)


def test_benchmark_harness_smoke():
    out = subprocess.run([sys.executable, str(BENCH / "bench_run.py"), "--smoke"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "client-rounds/s" in out.stdout and "plain loop" in out.stdout


def test_sweep_benchmark_harness_smoke():
    out = subprocess.run([sys.executable, str(BENCH / "bench_sweep.py"), "--smoke"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"client_rounds_per_s"' in out.stdout and '"compile_s"' in out.stdout


def test_estimate_benchmark_harness_smoke():
    out = subprocess.run([sys.executable, str(BENCH / "bench_estimate.py"), "--smoke"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"exact_cached_s"' in out.stdout and '"first_fit_s"' in out.stdout
