"""Result 1: K-step local gradient descent on a quadratic, and FedAvg's fixed point with
client drift (the silentfail reference paper (paper/main.tex), Theory, result 1).

Client i has f_i(x) = a_i/2 (x - c_i)^2. K steps of rate eta from x give
x_K = c_i + (1 - eta a_i)^K (x - c_i); FedAvg with weights p_i and full participation
iterates x <- sum_i p_i x_K,i(x) / sum_i p_i, whose fixed point is

    x* = sum_i p_i q_i c_i / sum_i p_i q_i,     q_i = 1 - (1 - eta a_i)^K,

which is the true minimizer sum p_i a_i c_i / sum p_i a_i of sum_i p_i f_i at K = 1 and
the plain average of local optima sum p_i c_i / sum p_i as K -> infinity (client drift).

References:
    McMahan et al. (2017), AISTATS.  Karimireddy et al. (2020), SCAFFOLD, ICML.
"""

from __future__ import annotations

import jax.numpy as jnp
import sympy as sp

from ._result import Result, Step

eta, a, K = sp.symbols("eta a K", positive=True)
c, x0 = sp.symbols("c x_0", real=True)
k = sp.Symbol("k", integer=True, nonnegative=True)
N_CLIENTS = 3  # the derivation solves the fixed point for 3 symbolic clients


def kstep() -> Result:
    """Result 1, derived: K steps of rate eta on a/2 (x - c)^2 give x_K = c + (1 - eta a)^K (x - c).

    Returns:
        The Result.
    """
    x = sp.Function("x")
    recurrence = sp.Eq(
        x(k + 1), x(k) - eta * sp.diff(a / 2 * (sp.Symbol("z") - c) ** 2, sp.Symbol("z")).subs(sp.Symbol("z"), x(k))
    )
    solution = sp.rsolve(x(k + 1) - recurrence.rhs, x(k), {x(0): x0})
    xK = sp.simplify(solution.subs(k, K))
    closed = c + (1 - eta * a) ** K * (x0 - c)
    return Result(
        name="kstep",
        title="K-step local gradient descent on a quadratic",
        statement=sp.Eq(sp.Symbol("x_K"), closed),
        steps=(
            Step(r"gradient step on $f(x) = \frac{a}{2}(x - c)^2$", recurrence),
            Step(r"solve the linear recurrence from $x_0$", sp.Eq(x(k), solution)),
            Step(r"at $k = K$, simplified", sp.Eq(sp.Symbol("x_K"), xK)),
        ),
        arguments=(eta, a, K, c, x0),
        conditions=r"any step size; contracts to $c$ iff $0 < \eta a < 2$",
        reference="the silentfail reference paper (paper/main.tex), Theory, result 1",
        extras={"derived": xK},
    )


def fedavg_fixed_point() -> Result:
    """Result 1, derived: FedAvg's fixed point with K local steps, sum_i p_i (1 - (1 - eta a_i)^K) c_i / sum_i p_i (1 -
    (1 - eta a_i)^K), and its drift from the average-risk minimizer.

    Returns:
        The Result.
    """
    p = sp.symbols(f"p1:{N_CLIENTS + 1}", positive=True)
    aa = sp.symbols(f"a1:{N_CLIENTS + 1}", positive=True)
    cc = sp.symbols(f"c1:{N_CLIENTS + 1}", real=True)
    x = sp.Symbol("x", real=True)
    local = [ci + (1 - eta * ai) ** K * (x - ci) for ai, ci in zip(aa, cc)]
    equation = sp.Eq(x, sum(pi * li for pi, li in zip(p, local)) / sum(p))
    (fixed,) = sp.solve(equation, x)
    q = [1 - (1 - eta * ai) ** K for ai in aa]
    formula = sum(pi * qi * ci for pi, qi, ci in zip(p, q, cc)) / sum(pi * qi for pi, qi in zip(p, q))
    i, n = sp.symbols("i n", integer=True, positive=True)
    P, Q, C = sp.IndexedBase("p"), sp.IndexedBase("q"), sp.IndexedBase("c")
    general = sp.Sum(P[i] * Q[i] * C[i], (i, 1, n)) / sp.Sum(P[i] * Q[i], (i, 1, n))
    return Result(
        name="fedavg_fixed_point",
        title="FedAvg's fixed point under client drift",
        statement=sp.Eq(sp.Symbol("x^*"), general),
        steps=(
            Step(
                r"each client's $K$ local steps from the global $x$ (result kstep)",
                sp.Eq(sp.Symbol("x_{K,i}"), local[0]),
            ),
            Step(
                f"fixed point of the weighted average, solved for {N_CLIENTS} clients", sp.Eq(sp.Symbol("x^*"), fixed)
            ),
            Step(r"with $q_i = 1 - (1 - \eta a_i)^K$", sp.Eq(sp.Symbol("x^*"), formula)),
        ),
        arguments=(),
        conditions=r"full participation, no noise, $0 < \eta a_i < 2$ for every client (so the iteration contracts)",
        reference="the silentfail reference paper (paper/main.tex), Theory, result 1; Karimireddy et al. (2020)",
        extras={"derived": fixed, "formula": formula, "p": p, "a": aa, "c": cc},
        numeric_impl=lambda p, q, c: jnp.sum(p * q * c) / jnp.sum(p * q),
    )


def limits() -> dict[str, sp.Basic]:
    """The fixed point at K = 1 and as K -> infinity (for 0 < eta a_i < 1).

    Returns:
        ``{"K=1": the fixed point at K = 1, "K=1 expected": its expected form, "K=oo": the limit, ...}``.
    """
    fp = fedavg_fixed_point()
    formula, p, aa, cc = fp.extras["formula"], fp.extras["p"], fp.extras["a"], fp.extras["c"]
    at_one = sp.simplify(formula.subs(K, 1))
    s = sp.symbols(f"s1:{N_CLIENTS + 1}", positive=True)  # 1 - eta a_i = 1/(1 + s_i) in (0, 1)
    contracted = formula.subs({1 - eta * ai: 1 / (1 + si) for ai, si in zip(aa, s)})
    at_inf = sp.simplify(sp.limit(contracted, K, sp.oo))
    return {
        "K=1": at_one,
        "K=1 expected": sum(pi * ai * ci for pi, ai, ci in zip(p, aa, cc)) / sum(pi * ai for pi, ai in zip(p, aa)),
        "K=oo": at_inf,
        "K=oo expected": sum(pi * ci for pi, ci in zip(p, cc)) / sum(p),
    }
