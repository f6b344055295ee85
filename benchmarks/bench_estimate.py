"""Benchmark of ``silentfail.sim.estimate`` on the 2-core CPU (issue 5 targets: each
under 2 minutes):

* the phase-boundary fit of one (mode, quantity) on a 32 x 32 grid with 16 seeds per
  cell (binomial counts drawn around a known curved boundary), probit spline model and
  GP classifier, 4 NUTS chains x (1000 warm-up + 1000 draws), the defaults; the first fit (tracing +
  XLA compile + sampling) and a second fit of new data (the cached sampler: sampling
  only) are timed apart;
* the onset fit of 1000 trajectories of 30 rounds (hinge model), the exact vectorized
  posterior (first call and cached), with T_f draws; and, for scale, the numpyro NUTS
  cross-check vectorized over 50 of them (one plate; it is a check, not the method:
  with tau marginalized the posterior of the coefficients is multimodal and NUTS needs
  deep trees, so it is orders of magnitude slower than the exact sum).

Usage:
    python benchmarks/bench_estimate.py            # writes benchmarks/results/estimate.json
    python benchmarks/bench_estimate.py --smoke    # tiny sizes, no file (CI smoke mode)
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
from silentfail.bench import machine  # noqa: E402


def grid_counts(n_grid: int, seeds: int, seed: int):
    from scipy import stats

    from silentfail.sim.estimate import Axis, Counts

    rng = np.random.default_rng(seed)
    x = Axis.of("personalization.lam", np.geomspace(0.01, 10, n_grid))
    y = Axis.of("shifts.strength", np.linspace(0, 1, n_grid))
    xu = x.unit(x.values)
    true = 0.25 + 0.5 * xu**2
    n = np.full((n_grid, n_grid), seeds)
    k = rng.binomial(n, stats.norm.cdf(12 * (y.values[None, :] - true[:, None])))
    return Counts(x, y, k, n, "synthetic")


def bench_boundary(model: str, n_grid: int, seeds: int, chains: int, warmup: int, samples: int) -> dict:
    from silentfail.sim.estimate import fit_boundary

    out = {
        "model": model,
        "grid": [n_grid, n_grid],
        "seeds_per_cell": seeds,
        "chains": chains,
        "warmup": warmup,
        "samples": samples,
    }
    for label, s in (("first_fit_s", 0), ("cached_fit_s", 1)):
        t0 = time.perf_counter()
        fit = fit_boundary(
            grid_counts(n_grid, seeds, s), model=model, chains=chains, warmup=warmup, samples=samples, seed=s
        )
        out[label] = round(time.perf_counter() - t0, 2)
    out["compile_s"] = round(out["first_fit_s"] - out["cached_fit_s"], 2)
    d = fit.diagnostics
    out.update(
        r_hat=round(d.r_hat, 4),
        ess_bulk=round(d.ess_bulk),
        ess_tail=round(d.ess_tail),
        divergences=d.divergences,
        flagged=d.flagged,
    )
    return out


def bench_onset(N: int, T: int, nuts: dict | None, nuts_trajectories: int = 0) -> dict:
    from silentfail.sim.estimate import OnsetPrior, fit_onset, fit_onset_nuts, onset_design

    rng = np.random.default_rng(0)
    X, prior = onset_design(T, "hinge"), OnsetPrior()
    tau = rng.integers(1, T, N)
    b = rng.normal(0, 2, (N, 3))
    y = np.einsum("ntp,np->nt", X[tau - 1], b) + 0.3 * rng.standard_normal((N, T))
    out = {"trajectories": N, "rounds": T, "kind": "hinge", "sigma_grid": prior.n_sigma}
    t0 = time.perf_counter()
    fit_onset(y, kind="hinge", scale=(0.0, 1.0))
    out["exact_first_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    post = fit_onset(y, kind="hinge", scale=(0.0, 1.0))
    out["exact_cached_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    fit_onset(y, kind="hinge", scale=(0.0, 1.0), threshold=0.0, draws=200)
    out["exact_with_tf_draws_s"] = round(time.perf_counter() - t0, 3)
    keep, mass = post.credible_set(0.9)
    out["coverage_90"] = float(keep[np.arange(N), tau].mean())
    if nuts:
        t0 = time.perf_counter()
        _, diag = fit_onset_nuts(y[:nuts_trajectories], kind="hinge", scale=(0.0, 1.0), **nuts)
        out["nuts"] = {
            **nuts,
            "trajectories": nuts_trajectories,
            "wall_s": round(time.perf_counter() - t0, 1),
            "r_hat_max": round(diag.r_hat, 3),
            "divergences": diag.divergences,
            "note": "tau-marginal posterior of b is multimodal: per-trajectory R-hat is the honest flag",
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, print only")
    args = ap.parse_args()
    if args.smoke:
        res = {"boundary": [bench_boundary("probit", 4, 2, 1, 20, 20)], "onset": bench_onset(20, 8, None)}
        print(json.dumps(res, indent=1))
        return
    res = {
        "machine": machine(),
        "command": "python benchmarks/bench_estimate.py",
        "boundary": [bench_boundary("probit", 32, 16, 4, 1000, 1000), bench_boundary("gp", 32, 16, 4, 1000, 1000)],
        "onset": bench_onset(1000, 30, {"chains": 2, "warmup": 200, "samples": 200}, nuts_trajectories=50),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "target_s": 120,
    }
    path = ROOT / "results" / "estimate.json"
    path.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
