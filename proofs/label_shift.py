"""Result 6: label shift moves the Bayes-optimal bias by the log prior ratio, and the
calibration error it causes when uncorrected (the silentfail reference paper (paper/main.tex), Theory, result 6).

With x | y ~ N(y mu, sigma^2) and prior P(y = +1) = pi, the posterior log-odds is
2 mu x / sigma^2 + log(pi / (1 - pi)). A client with prior pi_c therefore needs the bias
moved by log(pi_c/(1 - pi_c)) - log(pi_0/(1 - pi_0)). A model that keeps the base
posterior p_0(x) has calibration error E_c |P_c(+|x) - p_0(x)| = |pi_c - E_c p_0(x)|,
because the two posteriors' log-odds differ by a constant, so their difference has one
sign and E_c P_c(+|x) = pi_c; any binning of p_0 gives the same value.

Reference: Saerens, Latinne, Decaestecker (2002), Neural Computation 14(1).
"""

from __future__ import annotations

import sympy as sp

from ._result import Result, Step

mu, sigma = sp.symbols("mu sigma", positive=True)
pi_c, pi_0 = sp.symbols("pi_c pi_0", positive=True)
x = sp.Symbol("x", real=True)


def _log_odds(prior):
    pos = sp.exp(-((x - mu) ** 2) / (2 * sigma**2)) * prior
    neg = sp.exp(-((x + mu) ** 2) / (2 * sigma**2)) * (1 - prior)
    return sp.expand(sp.expand_log(sp.log(pos) - sp.log(neg), force=True))


def label_shift() -> Result:
    """Result 6, derived: the Bayes log-odds under prior pi_c minus that under pi_0 is log(pi_c / (1 - pi_c)) -
    log(pi_0 / (1 - pi_0)); the ECE of the uncorrected model is |pi_c - E_c[p_0(x)]|.

    Returns:
        The Result.
    """
    lo_c, lo_0 = _log_odds(pi_c), _log_odds(pi_0)
    shift = sp.simplify(lo_c - lo_0)
    p0 = 1 / (1 + sp.exp(-lo_0))
    density_c = pi_c * sp.exp(-((x - mu) ** 2) / (2 * sigma**2)) + (1 - pi_c) * sp.exp(
        -((x + mu) ** 2) / (2 * sigma**2)
    )
    ece = sp.Abs(pi_c - sp.Integral(p0 * density_c / (sp.sqrt(2 * sp.pi) * sigma), (x, -sp.oo, sp.oo)))
    return Result(
        name="label_shift",
        title="Label shift moves the Bayes bias by the log prior ratio",
        statement=sp.Eq(sp.Symbol("b_c") - sp.Symbol("b_0"), shift),
        steps=(
            Step(r"posterior log-odds under prior $\pi_c$", sp.Eq(sp.Function("ell_c")(x), lo_c)),
            Step(
                r"the slope $2\mu/\sigma^2$ does not depend on the prior; the intercepts differ by",
                sp.Eq(sp.Symbol("b_c") - sp.Symbol("b_0"), shift),
            ),
            Step("calibration error of the uncorrected base posterior on the client", sp.Eq(sp.Symbol("ECE_c"), ece)),
        ),
        arguments=(pi_c, pi_0),
        conditions=r"Gaussian classes with equal variance (the log-odds is affine in $x$); $0 < \pi_c, \pi_0 < 1$",
        reference="Saerens et al. (2002); the silentfail reference paper (paper/main.tex), Theory, result 6",
        extras={"log_odds_c": lo_c, "log_odds_0": lo_0, "ece": ece},
    )
