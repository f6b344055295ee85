"""Result 5: alignment erosion under proximal fine-tuning (the silentfail reference paper (paper/main.tex), Theory, result 5).

A task risk 1/2 (theta - theta_task)^T H (theta - theta_task), H = sum_i h_i e_i e_i^T,
fine-tuned from the FM theta_0 with a proximal anchor lambda/2 |theta - theta_0|^2,
converges to theta* with

    <theta* - theta_0, u> = sum_i h_i / (h_i + lambda) <theta_task - theta_0, e_i> <e_i, u>,

so the displacement along the alignment direction u is zero when u is orthogonal to the
range of H (the task does not load on u), vanishes as lambda -> infinity, and is the
full task pull <theta_task - theta_0, P_H u> as lambda -> 0.

Reference: Qi et al. (2024), Fine-tuning aligned language models compromises safety, ICLR.
"""

from __future__ import annotations

import sympy as sp

from ._result import Result, Step

DIM = 3  # the derivation is carried out in a 3-dimensional eigenbasis
lam = sp.Symbol("lambda", positive=True)


def erosion() -> Result:
    """Result 5, derived: the proximal fine-tuning optimum theta* = (H + lambda I)^{-1}(H theta_task + lambda theta_0),
    its drift along each eigendirection h_i / (h_i + lambda) and the resulting alignment erosion.

    Returns:
        The Result.
    """
    h = sp.symbols(f"h1:{DIM + 1}", positive=True)
    delta = sp.Matrix(sp.symbols(f"Delta1:{DIM + 1}", real=True))  # <theta_task - theta_0, e_i>
    u = sp.Matrix(sp.symbols(f"u1:{DIM + 1}", real=True))  # <e_i, u>
    theta = sp.Matrix(sp.symbols(f"t1:{DIM + 1}", real=True))  # theta - theta_0 in the eigenbasis
    H = sp.diag(*h)
    objective = (theta - delta).T * H * (theta - delta) / 2 + lam * theta.T * theta / 2
    grad = sp.Matrix([sp.diff(objective[0], t) for t in theta])
    sol = sp.solve(list(grad), list(theta), dict=True)[0]
    star = sp.Matrix([sol[t] for t in theta])
    projection = sp.simplify((star.T * u)[0])
    i, n = sp.symbols("i n", integer=True, positive=True)
    hh, D, U = sp.IndexedBase("h"), sp.IndexedBase("Delta"), sp.IndexedBase("u")
    general = sp.Sum(hh[i] / (hh[i] + lam) * D[i] * U[i], (i, 1, n))
    return Result(
        name="erosion",
        title="Alignment erosion under proximal fine-tuning",
        statement=sp.Eq(sp.Symbol("<theta^* - theta_0, u>"), general),
        steps=(
            Step("proximal objective in the eigenbasis of H (theta measured from theta_0)", objective[0]),
            Step("stationarity, solved", sp.Eq(sp.Symbol("theta^* - theta_0"), star)),
            Step(f"projection on u ({DIM} dimensions)", sp.Eq(sp.Symbol("<theta^* - theta_0, u>"), projection)),
        ),
        arguments=(),
        conditions="H positive semi-definite, lambda > 0 (or H positive definite and lambda >= 0); gradient descent run to convergence",
        reference="the silentfail reference paper (paper/main.tex), Theory, result 5; Qi et al. (2024)",
        extras={
            "projection": projection,
            "h": h,
            "delta": delta,
            "u": u,
            "expected": sum(hi / (hi + lam) * di * ui for hi, di, ui in zip(h, delta, u)),
        },
        numeric_impl=lambda h, delta, u, lam: (h / (h + lam) * delta * u).sum(),
    )
