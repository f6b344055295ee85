"""Fitting a phase boundary with honest uncertainty.

Binomial counts on a grid (here drawn from a known boundary, so you can see the fit
recover it) go into the probit boundary model: P(fail) = Phi(s (y - b(x))), the boundary
b a B-spline under a random-walk prior, sampled by NUTS. The fit reports the median
boundary, a 90% band, and R-hat, ESS and divergences; a fit that did not converge is
flagged, never hidden. On a sweep, ``silentfail.sim.estimate.estimate(ds)`` does this for
every mode.

    python examples/fit_boundary.py --samples 300
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from silentfail.sim import estimate as E


def main(args: argparse.Namespace) -> E.BoundaryFit:
    x = E.Axis.of("personalization.lam", np.geomspace(0.01, 10, 8))
    y = E.Axis.of("shifts.strength", np.linspace(0, 1, 8))
    truth = 0.3 + 0.4 * x.unit(x.values)  # the boundary rises with lambda
    p = stats.norm.cdf(12.0 * (y.unit(y.values)[None, :] - truth[:, None]))
    n = np.full((8, 8), 8)
    counts = E.Counts(x, y, np.random.default_rng(args.seed).binomial(n, p), n, "P(fail) example")
    fit = E.fit_boundary(counts, chains=args.chains, warmup=args.samples, samples=args.samples, seed=args.seed)
    lo, med, hi = fit.boundary[:, E.N_FINE // 2]
    print(
        f"boundary at lambda = {fit.x_fine[E.N_FINE // 2]:.3g}: {med:.3f} [{lo:.3f}, {hi:.3f}] (truth "
        f"{0.3 + 0.4 * 0.5:.3f})"
    )
    d = fit.diagnostics
    print(
        f"R-hat {d.r_hat:.3f}, ESS bulk {d.ess_bulk:.0f}, tail {d.ess_tail:.0f}, divergences {d.divergences}; "
        f"{'FLAGGED: ' + '; '.join(d.reasons) if d.flagged else 'converged'}"
    )
    return fit


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    main(p.parse_args())
