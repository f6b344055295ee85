"""Result 2: Ditto-type optimal personalization strength (the silentfail reference paper (paper/main.tex), Theory, result 2).

A client's true parameter theta_c differs from the global theta_g by u with variance
tau2; its local estimate from n samples has error e with variance s2/n; e and u are
independent with mean zero. The Ditto personal model, argmin 1/2 (theta - theta_local)^2
+ lambda/2 (theta - theta_g)^2 = (theta_local + lambda theta_g)/(1 + lambda), has

    MSE(lambda) = (s2/n + lambda^2 tau2) / (1 + lambda)^2,   lambda* = s2 / (n tau2),

and the global model beats the local one (MSE(inf) < MSE(0)) iff tau2 < s2/n.

Reference: Li, Hu, Beirami, Smith (2021), Ditto, ICML.
"""

from __future__ import annotations

import sympy as sp
from sympy.stats import E, Normal

from ._result import Result, Step

s2, n, tau2 = sp.symbols("s2 n tau2", positive=True)
lam = sp.Symbol("lambda", nonnegative=True)


def ditto() -> Result:
    """Result 2, derived: the mean squared error of the Ditto personal model (theta_local + lambda theta_g) / (1 +
    lambda) and its minimizer lambda* = s2 / (n tau2).

    Returns:
        The Result.
    """
    theta, t_local, t_g = sp.symbols("theta theta_local theta_g", real=True)
    objective = (theta - t_local) ** 2 / 2 + lam * (theta - t_g) ** 2 / 2
    (personal,) = sp.solve(sp.diff(objective, theta), theta)
    e = Normal("e", 0, sp.sqrt(s2 / n))  # theta_local - theta_c
    u = Normal("u", 0, sp.sqrt(tau2))  # theta_g - theta_c
    error = (e + lam * u) / (1 + lam)  # personal - theta_c
    mse = sp.simplify(E(error**2))
    (lam_star,) = sp.solve(sp.diff(mse, lam), lam)
    mse_star = sp.simplify(mse.subs(lam, lam_star))
    return Result(
        name="ditto",
        title="Optimal personalization strength (Ditto)",
        statement=sp.Eq(sp.Function("MSE")(lam), mse),
        steps=(
            Step("stationarity of the Ditto objective gives the personal model", sp.Eq(theta, personal)),
            Step(
                "its error is a weighted sum of the independent local and global errors",
                sp.Eq(sp.Symbol("theta_lambda") - sp.Symbol("theta_c"), error),
            ),
            Step("expected squared error", sp.Eq(sp.Function("MSE")(lam), mse)),
            Step(r"$\partial\,\mathrm{MSE} / \partial\lambda = 0$", sp.Eq(sp.Symbol("lambda^*"), lam_star)),
            Step("MSE at the optimum", sp.Eq(sp.Function("MSE")(sp.Symbol("lambda^*")), mse_star)),
        ),
        arguments=(s2, n, tau2, lam),
        conditions="independent, mean-zero local and global errors; squared loss",
        reference="Li et al. (2021), Ditto; the silentfail reference paper (paper/main.tex), Theory, result 2",
        extras={
            "personal": personal,
            "lam_star": lam_star,
            "mse_star": mse_star,
            "global_beats_local": sp.Lt(tau2, s2 / n),
        },
    )
