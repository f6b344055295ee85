"""Result 8: the population limit of FedAvg with personalization, in closed form (the
silentfail reference paper (paper/main.tex), Theory on the phase diagram).

Every client's K-step personalization from the global model theta is affine,
theta_c = P_c theta + b_c (result 1, ``sim/personalize.affine_map``). Replace every draw
of a round by its mean: client c reports with probability q_c, the DP noise has mean 0.
Without binding clipping, FedAvg with server rate 1 and weights w_c is then

    theta_(t+1) = theta_t + sum_c w_c q_c (P_c theta_t + b_c - theta_t) / sum_c w_c q_c = Pbar theta_t + bbar,

Pbar = sum_c w_c q_c P_c / sum_c w_c q_c, bbar likewise, and its solution from theta_0 is

    theta_t = theta* + Pbar^t (theta_0 - theta*),   theta* = (I - Pbar)^(-1) bbar,

converging to theta* iff the spectral radius of Pbar is below 1. The derivation solves
the recurrence with sympy (scalar P, b; the matrix case is the same algebra, the fixed
point's equation P theta* + b = theta* being all it uses) and checks the matrix form by
induction. ``sim/theory.py`` predicts the phase diagram's regimes from this run.

References:
    McMahan et al. (2017), AISTATS.  Charles, Konecny (2021), AISTATS.
"""

from __future__ import annotations

import sympy as sp

from ._result import Result, Step

t = sp.Symbol("t", integer=True, nonnegative=True)
p, b, x0 = sp.symbols("P b theta_0", real=True)
D = 3  # the induction step is checked with D x D symbolic matrices


def mean_field() -> Result:
    """Result 8, derived: theta_t = theta* + Pbar^t (theta_0 - theta*), theta* = (I - Pbar)^(-1) bbar.

    Returns:
        The Result.
    """
    x = sp.Function("theta")
    recurrence = sp.Eq(x(t + 1), p * x(t) + b)
    solution = sp.simplify(sp.rsolve(x(t + 1) - recurrence.rhs, x(t), {x(0): x0}))
    star = b / (1 - p)
    closed = star + p**t * (x0 - star)
    # the matrix form by induction: P (theta* + P^t d) + b = theta* + P^(t+1) d  <=>  P theta* + b = theta*
    P = sp.Matrix(D, D, lambda i, j: sp.Symbol(f"P_{i}{j}"))
    bv = sp.Matrix(D, 1, lambda i, _: sp.Symbol(f"b_{i}"))
    Ts = (sp.eye(D) - P).inv() * bv
    residual = sp.simplify(P * Ts + bv - Ts)
    return Result(
        name="mean_field",
        title="The population limit of personalized FedAvg",
        statement=sp.Eq(sp.Symbol("theta_t"), closed),
        steps=(
            Step(r"the expected round: $\theta_{t+1} = \bar P \theta_t + \bar b$", recurrence),
            Step(r"solve the linear recurrence from $\theta_0$", sp.Eq(x(t), solution)),
            Step(
                r"matrix form, induction step: the residual $r = \bar P \theta^\star + \bar b - \theta^\star$ with "
                rf"$\theta^\star = (I - \bar P)^{{-1}} \bar b$ (symbolic ${D} \times {D}$ matrices)",
                sp.Eq(sp.Symbol("r"), sp.Integer(0) if residual == sp.zeros(D, 1) else residual[0]),
            ),
        ),
        arguments=(p, b, x0, t),
        conditions="every draw of a round replaced by its mean (many reports: a ratio of sums is the ratio of their "
        r"means), clipping not binding, server SGD at rate 1; converges iff the spectral radius of $\bar P$ is below 1",
        reference="the silentfail reference paper (paper/main.tex), Theory on the phase diagram",
        extras={"derived": solution, "fixed_point": star, "matrix_residual": residual},
    )
