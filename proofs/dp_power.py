"""Result 4: detectability under secure aggregation and central DP (the silentfail reference paper (paper/main.tex), Theory, result 4).

M clients report values with variance s2; a fraction pi of them (a minority) has its
mean shifted by delta. The server sees only the secure sum plus Gaussian noise z C; its
mean T has null mean 0 and standard deviation sigma_T = sqrt(s2/M + z^2 C^2 / M^2).
The one-sided level-alpha z-test on T has power

    Power = Phi(pi delta / sigma_T - z_{1-alpha}),

the failure is *silent* (power < 1 - beta) iff pi delta < sigma_T (z_{1-alpha} +
z_{1-beta}), i.e. below the minimal detectable shift

    delta_min = sqrt(s2/M + z^2 C^2 / M^2) (z_{1-alpha} + z_{1-beta}) / pi,

which the phase figures overlay as the theoretical boundary. Beyond this test, no test
whatsoever can beat the mu-GDP ceiling: under mu-GDP the most powerful level-alpha
test between neighbouring datasets is the Neyman-Pearson test between N(0, 1) and
N(mu, 1), with power Phi(mu - z_{1-alpha}) (mu = sqrt(T)/z for T releases of a
Gaussian mechanism with noise multiplier z).

References: Dong, Roth, Su (2022), Gaussian Differential Privacy, JRSS-B.
McMahan et al. (2018), ICLR.
"""

from __future__ import annotations

import sympy as sp
from sympy.stats import Normal
from sympy.stats import P as Prob

from ._result import Result, Step

pi, delta, s2, M, z, C = sp.symbols("pi delta s2 M z C", positive=True)
alpha, beta = sp.symbols("alpha beta", positive=True)
mu = sp.Symbol("mu", positive=True)


def Phi(x):
    """The standard normal CDF, (1 + erf(x / sqrt 2)) / 2 (symbolic).

    Args:
        x: a sympy expression.

    Returns:
        The sympy expression of Phi(x).
    """
    return (1 + sp.erf(x / sp.sqrt(2))) / 2


def z_quantile(p):
    """Phi^{-1}(p) = sqrt(2) erfinv(2p - 1).

    Args:
        p: a probability (sympy expression).

    Returns:
        The sympy expression of the quantile.
    """
    return sp.sqrt(2) * sp.erfinv(2 * p - 1)


def _upper_tail() -> tuple[sp.Symbol, sp.Basic]:
    """P(Z > w) for a standard normal Z, from sympy.stats: erfc(w / sqrt 2) / 2."""
    w = sp.Symbol("w", real=True)
    return w, sp.simplify(Prob(Normal("Z", 0, 1) > w))


def dp_power() -> Result:
    """Result 4, derived: the power Phi(pi delta / sigma_T - z_{1-alpha}) of the level-alpha test on the noised mean,
    sigma_T = sqrt(s2 / M + z^2 C^2 / M^2), and the minimal detectable shift delta_min = (z_{1-alpha} + z_{1-beta})
    sigma_T / pi.

    Returns:
        The Result.
    """
    sigma_T = sp.sqrt(s2 / M + z**2 * C**2 / M**2)
    za, zb = z_quantile(1 - alpha), z_quantile(1 - beta)
    w, tail = _upper_tail()
    # T = pi delta + sigma_T Z under the alternative: P(T > z_{1-a} sigma_T) = P(Z > z_{1-a} - pi delta / sigma_T)
    power_raw = tail.subs(w, za - pi * delta / sigma_T)
    power = Phi(pi * delta / sigma_T - za)
    (d_min,) = sp.solve(sp.Eq(pi * delta / sigma_T - za, zb), delta)
    ceiling_raw = tail.subs(w, za - mu)  # Neyman-Pearson: N(mu, 1) beyond N(0, 1)'s 1-alpha quantile
    return Result(
        name="dp_power",
        title="Power of the aggregate test under secure aggregation and DP",
        statement=sp.Eq(sp.Symbol("Power"), power),
        steps=(
            Step("variance of the noised secure mean", sp.Eq(sp.Symbol("sigma_T") ** 2, sigma_T**2)),
            Step("upper tail of a standard normal", sp.Eq(sp.Symbol("P(Z > w)"), tail)),
            Step(
                r"$P(T > z_{1-\alpha} \sigma_T)$ with $T = \pi\delta + \sigma_T Z$",
                sp.Eq(sp.Symbol("Power"), power_raw),
            ),
            Step(
                r"silent iff the power is below $1 - \beta$; solving power $= 1 - \beta$ for $\delta$",
                sp.Eq(sp.Symbol("delta_min"), d_min),
            ),
            Step(
                r"$\mu$-GDP ceiling: the Neyman--Pearson test between $N(0,1)$ and $N(\mu,1)$",
                sp.Eq(sp.Symbol("Power_max"), ceiling_raw),
            ),
        ),
        arguments=(pi, delta, s2, M, z, C, alpha),
        conditions="Gaussian (or CLT-Gaussian) reports, clipping not binding, known null mean; one-sided test",
        reference="the silentfail reference paper (paper/main.tex), Theory, result 4; Dong, Roth, Su (2022)",
        extras={
            "power_raw": power_raw,
            "delta_min": d_min,
            "ceiling_raw": ceiling_raw,
            "sigma_T": sigma_T,
            "tail": tail,
            "w": w,
        },
    )


def minimal_detectable_shift() -> Result:
    """The inverse of dp_power: the smallest minority shift detected with power 1 - beta.

    Returns:
        The Result.
    """
    r = dp_power()
    za, zb = z_quantile(1 - alpha), z_quantile(1 - beta)
    closed = sp.sqrt(s2 / M + z**2 * C**2 / M**2) * (za + zb) / pi
    return Result(
        name="minimal_detectable_shift",
        title="Minimal detectable shift (the silent-region boundary)",
        statement=sp.Eq(sp.Symbol("delta_min"), closed),
        steps=(
            Step(
                r"solve $\mathrm{Power}(\delta) = 1 - \beta$ (result dp_power)",
                sp.Eq(sp.Symbol("delta_min"), r.extras["delta_min"]),
            ),
        ),
        arguments=(pi, s2, M, z, C, alpha, beta),
        conditions=r"as for dp_power; $0 < \alpha, \beta < 1$",
        reference="the silentfail reference paper (paper/main.tex), Theory, result 4, and its detectors",
        extras={"derived": r.extras["delta_min"]},
    )


def gdp_ceiling() -> Result:
    """The mu-GDP ceiling: no level-alpha test of a mu-GDP release has power above Phi(mu - z_{1-alpha}) (Dong, Roth,
    Su 2022).

    Returns:
        The Result.
    """
    za = z_quantile(1 - alpha)
    r = dp_power()
    return Result(
        name="gdp_ceiling",
        title="The mu-GDP ceiling on any test's power",
        statement=sp.Eq(sp.Symbol("Power_max"), Phi(mu - za)),
        steps=(
            Step(
                r"Neyman--Pearson between $N(0,1)$ and $N(\mu,1)$ at level $\alpha$",
                sp.Eq(sp.Symbol("Power_max"), r.extras["ceiling_raw"]),
            ),
        ),
        arguments=(mu, alpha),
        conditions=r"the release is $\mu$-GDP ($T$ Gaussian releases with noise multiplier $z$: $\mu = \sqrt{T}/z$)",
        reference="Dong, Roth, Su (2022), Gaussian Differential Privacy",
        extras={"derived": r.extras["ceiling_raw"]},
    )
