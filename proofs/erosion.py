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

DIM = 3  # the explicit check of the n-dimensional derivation is carried out in 3 dimensions
lam = sp.Symbol("lambda", positive=True)


def erosion() -> Result:
    """Result 5, derived in n dimensions: the proximal fine-tuning optimum
    theta* - theta_0 = (H + lambda I)^{-1} H (theta_task - theta_0) (matrix calculus on
    n x n and n x 1 matrix symbols), its component along u in H's eigenbasis
    sum_i h_i / (h_i + lambda) Delta_i u_i, and the same solved explicitly in
    :data:`DIM` dimensions as a check (``extras``).

    Returns:
        The Result.
    """
    n = sp.Symbol("n", integer=True, positive=True)
    Hm = sp.MatrixSymbol("H", n, n)
    th, task, th0 = (sp.MatrixSymbol(name, n, 1) for name in ("theta", "theta_task", "theta_0"))
    eye = sp.Identity(n)
    objective = ((th - task).T * Hm * (th - task)) / 2 + lam * ((th - th0).T * (th - th0)) / 2
    grad = sp.diff(objective, th).subs(Hm.T, Hm)  # H is symmetric
    d = (lam * eye + Hm).inv() * Hm * (task - th0)
    # the check: grad vanishes at theta_0 + d (then (H + lambda I) d = H (theta_task - theta_0))
    normal = sp.Eq((Hm + lam * eye) * (th - th0), Hm * (task - th0), evaluate=False)
    # explicit in DIM dimensions, H = diag(h) in its eigenbasis
    h = sp.symbols(f"h1:{DIM + 1}", positive=True)
    delta = sp.Matrix(sp.symbols(f"Delta1:{DIM + 1}", real=True))  # <theta_task - theta_0, e_i>
    u = sp.Matrix(sp.symbols(f"u1:{DIM + 1}", real=True))  # <e_i, u>
    theta = sp.Matrix(sp.symbols(f"t1:{DIM + 1}", real=True))  # theta - theta_0 in the eigenbasis
    H = sp.diag(*h)
    small = (theta - delta).T * H * (theta - delta) / 2 + lam * theta.T * theta / 2
    sol = sp.solve([sp.diff(small[0], t) for t in theta], list(theta), dict=True)[0]
    star = sp.Matrix([sol[t] for t in theta])
    projection = sp.simplify((star.T * u)[0])
    i = sp.Symbol("i", integer=True, positive=True)
    hh, D, U = sp.IndexedBase("h"), sp.IndexedBase("Delta"), sp.IndexedBase("u")
    general = sp.Sum(hh[i] / (hh[i] + lam) * D[i] * U[i], (i, 1, n))
    along = sp.Symbol("<theta^* - theta_0, u>")
    return Result(
        name="erosion",
        title="Alignment erosion under proximal fine-tuning",
        statement=sp.Eq(along, general),
        steps=(
            Step(
                r"proximal objective ($\theta, \theta_{\mathrm{task}}, \theta_0 \in \mathbb{R}^n$, $H$ symmetric $n \times n$)",
                objective,
            ),
            Step("its gradient (matrix calculus), set to 0", sp.Eq(grad, sp.ZeroMatrix(n, 1), evaluate=False)),
            Step("the normal equations", normal),
            Step(
                r"solved ($H + \lambda I$ is positive definite)",
                sp.Eq(sp.MatrixSymbol("theta^*", n, 1) - th0, d, evaluate=False),
            ),
            Step(
                r"along $u$, in the eigenbasis $H = \sum_i h_i e_i e_i^\top$, with "
                r"$\Delta_i = \langle \theta_{\mathrm{task}} - \theta_0, e_i\rangle$ and $u_i = \langle e_i, u\rangle$",
                sp.Eq(along, general, evaluate=False),
            ),
        ),
        arguments=(),
        conditions=r"$H$ symmetric positive semi-definite, $\lambda > 0$ (or $H$ positive definite and "
        r"$\lambda \ge 0$); gradient descent run to convergence",
        reference="the silentfail reference paper (paper/main.tex), Theory, result 5; Qi et al. (2024)",
        extras={
            "projection": projection,
            "h": h,
            "delta": delta,
            "u": u,
            "expected": sum(hi / (hi + lam) * di * ui for hi, di, ui in zip(h, delta, u)),
            "gradient": grad,
            "solution": d,
        },
        numeric_impl=lambda h, delta, u, lam: (h / (h + lam) * delta * u).sum(),
    )
