"""Result 3: aggregate masking (the silentfail reference paper (paper/main.tex), Theory, result 3).

Two groups with quadratic risks R_g(theta) = h/2 (theta - theta_g)^2, the minority of
share pi. The aggregate optimum theta* = (1 - pi) theta_maj + pi theta_min leaves the
minority an excess risk that is (1 - pi)/pi times the aggregate's excess risk: the
smaller the minority, the more an aggregate metric hides its failure.
"""

from __future__ import annotations

import sympy as sp

from ._result import Result, Step

pi = sp.Symbol("pi", positive=True)
h = sp.Symbol("h", positive=True)


def masking() -> Result:
    """Result 3, derived: the aggregate optimum (1 - pi) theta_maj + pi theta_min and the minority's excess risk, (1 -
    pi) / pi times the aggregate's.

    Returns:
        The Result.
    """
    theta, t_maj, t_min = sp.symbols("theta theta_maj theta_min", real=True)
    R_maj = h / 2 * (theta - t_maj) ** 2
    R_min = h / 2 * (theta - t_min) ** 2
    R = (1 - pi) * R_maj + pi * R_min
    (star,) = sp.solve(sp.diff(R, theta), theta)
    excess_min = sp.simplify(R_min.subs(theta, star))  # each group's own optimum has risk 0
    excess_agg = sp.simplify(R.subs(theta, star))
    ratio = sp.simplify(excess_min / excess_agg)
    return Result(
        name="masking",
        title="Aggregate masking of a minority",
        statement=sp.Eq(sp.Symbol("Delta R_min") / sp.Symbol("Delta R_agg"), ratio),
        steps=(
            Step("aggregate risk", sp.Eq(sp.Symbol("R"), R)),
            Step("its minimizer", sp.Eq(sp.Symbol("theta^*"), star)),
            Step(r"minority excess risk at $\theta^\star$", sp.Eq(sp.Symbol("Delta R_min"), excess_min)),
            Step(r"aggregate excess risk at $\theta^\star$", sp.Eq(sp.Symbol("Delta R_agg"), excess_agg)),
        ),
        arguments=(pi,),
        conditions=r"$0 < \pi < 1$, equal curvature $h > 0$, distinct group optima",
        reference="the silentfail reference paper (paper/main.tex), Theory, result 3; Oh & Bui (2026)",
        extras={"theta_star": star, "excess_min": excess_min, "excess_agg": excess_agg},
    )
