"""Result 7: q-FFL with two groups interpolates FedAvg (q = 0) and the minimax solution
(q -> infinity) (the silentfail reference paper (paper/main.tex), Theory, result 7).

Groups g = 1, 2 with shares p_g and losses F_g(theta) = a/2 (theta - c_g)^2 (equal
curvature, c_1 < c_2). q-FFL minimizes sum_g p_g F_g^{q+1} / (q + 1); its stationarity
p_1 F_1^q F_1' + p_2 F_2^q F_2' = 0 with d_1 = theta - c_1 > 0, d_2 = c_2 - theta > 0
reads p_1 d_1^{2q+1} = p_2 d_2^{2q+1}, so

    theta_q = (c_1 + r c_2) / (1 + r),     r = (p_2 / p_1)^{1/(2q+1)},

which is FedAvg's p-weighted average at q = 0 and the midpoint, where F_1 = F_2 (the
minimax solution), as q -> infinity.

Reference: Li, Sanjabi, Beirami, Smith (2020), Fair Resource Allocation in Federated
Learning, ICLR.
"""

from __future__ import annotations

import sympy as sp

from ._result import Result, Step

q = sp.Symbol("q", nonnegative=True)
p1, p2, a = sp.symbols("p_1 p_2 a", positive=True)
c1, c2 = sp.symbols("c_1 c_2", real=True)


def qffl() -> Result:
    """Result 7, derived: the q-FFL optimum of two groups, FedAvg's weighted mean at q = 0 and the minimax midpoint as
    q -> infinity.

    Returns:
        The Result.
    """
    theta = sp.Symbol("theta", real=True)
    d1, d2 = sp.symbols("d_1 d_2", positive=True)
    F1, F2 = a / 2 * (theta - c1) ** 2, a / 2 * (theta - c2) ** 2
    objective = (p1 * F1 ** (q + 1) + p2 * F2 ** (q + 1)) / (q + 1)
    stationarity = sp.simplify(
        sp.diff(objective, theta) / (p1 * F1**q * sp.diff(F1, theta))
    )  # divide out group 1's term
    balance = sp.Eq(p1 * d1 ** (2 * q + 1), p2 * d2 ** (2 * q + 1))
    (d1_sol,) = sp.solve(balance, d1)
    r = sp.simplify(d1_sol / d2)
    (theta_q,) = sp.solve(sp.Eq(theta - c1, r * (c2 - theta)), theta)
    theta_q = sp.simplify(theta_q)
    return Result(
        name="qffl",
        title="q-FFL with two groups interpolates FedAvg and minimax",
        statement=sp.Eq(sp.Symbol("theta_q"), theta_q),
        steps=(
            Step("q-FFL objective", objective),
            Step("stationarity, divided by group 1's term", sp.Eq(stationarity, 0)),
            Step(r"with $d_1 = \theta - c_1$, $d_2 = c_2 - \theta$ (both positive between the optima)", balance),
            Step(r"so $d_1 = r d_2$ with", sp.Eq(sp.Symbol("r"), r)),
            Step(r"solving $\theta - c_1 = r (c_2 - \theta)$", sp.Eq(sp.Symbol("theta_q"), theta_q)),
        ),
        arguments=(q, p1, p2, c1, c2),
        conditions=r"two groups, equal curvature $a > 0$, $c_1 < c_2$ ($\theta_q$ lies between them)",
        reference="Li et al. (2020), q-FFL; the silentfail reference paper (paper/main.tex), Theory, result 7",
        extras={
            "r": r,
            "fedavg": (p1 * c1 + p2 * c2) / (p1 + p2),
            "minimax": (c1 + c2) / 2,
            "at_zero": sp.simplify(theta_q.subs(q, 0)),
            "at_infinity": sp.limit(theta_q, q, sp.oo),
        },
    )
