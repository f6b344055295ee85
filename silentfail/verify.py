"""Numeric checks of the closed forms (``silentfail.proofs``) against the simulation
(``silentfail.sim``): each verifier draws random parameters and returns the worst
relative error between the lambdified statement and what the simulation computes.
``silentfail prove --verify`` prints them; the tests assert them. ``sim`` never imports
``proofs``: this module, in the front door, joins the two.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from .proofs import result
from .sim import metrics as mt
from .sim.personalize import LocalProblem, affine_map


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(b))


def _scalar_map(a: float, target: float, *, eta: float, lam: float, K: int) -> tuple[float, float]:
    """The simulation's K-step affine map of a scalar quadratic a/2 (x - target)^2."""
    P, b = affine_map(LocalProblem(H=jnp.array([[a + lam]]), r=jnp.array([a * target])), jnp.eye(1), eta=eta, lam=lam, K=K)
    return float(P[0, 0]), float(b[0])


def verify_kstep(rng: np.random.Generator, draws: int = 20) -> float:
    f = result("kstep").numeric("numpy")
    worst = 0.0
    for _ in range(draws):
        eta, a, K = rng.uniform(0.01, 0.5), rng.uniform(0.1, 3.0), int(rng.integers(1, 30))
        c, x0 = rng.normal(), rng.normal()
        P, b = _scalar_map(a, c, eta=eta, lam=0.0, K=K)
        worst = max(worst, _rel(float(f(eta, a, K, c, x0)), P * x0 + b))
    return worst


def verify_fedavg_fixed_point(rng: np.random.Generator, draws: int = 5) -> float:
    """The fixed point of the simulation's FedAvg map x -> sum p_i (P_i x + b_i) / sum p_i."""
    f = result("fedavg_fixed_point").numeric()
    worst = 0.0
    for _ in range(draws):
        n, eta, K = 6, 0.1, int(rng.integers(1, 12))
        a, c, p = rng.uniform(0.5, 3, n), rng.normal(0, 2, n), rng.uniform(0.5, 2, n)
        maps = np.array([_scalar_map(ai, ci, eta=eta, lam=0.0, K=K) for ai, ci in zip(a, c)])
        w = p / p.sum()
        simulated = float(w @ maps[:, 1] / (1 - w @ maps[:, 0]))
        q = 1 - (1 - eta * a) ** K
        worst = max(worst, _rel(float(f(jnp.asarray(p), jnp.asarray(q), jnp.asarray(c))), simulated))
    return worst


def verify_ditto(rng: np.random.Generator, draws: int = 10) -> float:
    """The Ditto personal model equals the simulation's proximal rule run to convergence."""
    expr = result("ditto").extras["personal"]
    worst = 0.0
    for _ in range(draws):
        lam, t_local, t_g = rng.uniform(0.05, 3), rng.normal(), rng.normal()
        P, b = _scalar_map(1.0, t_local, eta=0.2, lam=lam, K=600)
        values = {"theta_local": t_local, "theta_g": t_g, "lambda": lam}
        closed = float(expr.subs({s: values[s.name] for s in expr.free_symbols}))
        worst = max(worst, _rel(closed, P * t_g + b))
    return worst


def verify_masking(rng: np.random.Generator, draws: int = 10) -> float:
    """Minority / aggregate excess risk at the simulation's FedAvg fixed point (K = 1)."""
    f = result("masking").numeric("numpy")
    worst = 0.0
    for _ in range(draws):
        share, h = rng.uniform(0.02, 0.5), rng.uniform(0.2, 3)
        t = rng.normal(0, 1, 2)
        maps = np.array([_scalar_map(h, ti, eta=0.1, lam=0.0, K=1) for ti in t])
        w = np.array([1 - share, share])
        star = float(w @ maps[:, 1] / (1 - w @ maps[:, 0]))
        ex_min = h / 2 * (star - t[1]) ** 2
        ex_agg = (1 - share) * h / 2 * (star - t[0]) ** 2 + share * ex_min
        worst = max(worst, abs(ex_min / ex_agg - float(f(share))) / float(f(share)))
    return worst


def verify_label_shift(rng: np.random.Generator, draws: int = 6) -> float:
    """The bias shift equals the change of the simulation's Platt fit of the posterior."""
    f = result("label_shift").numeric("numpy")
    worst = 0.0
    for _ in range(draws):
        mu, sd = rng.uniform(0.3, 1.5), rng.uniform(0.5, 2)
        pi0, pic = rng.uniform(0.2, 0.8, 2)

        def beta(prior: float) -> float:
            cells = mt.CellScores(jnp.array([[-mu, -mu], [mu, mu]]), jnp.array([sd, sd]))
            pi = jnp.array([[(1 - prior) / 2] * 2, [prior / 2] * 2])
            return float(mt.fit_confidence(cells, pi).beta)

        worst = max(worst, _rel(beta(pic) - beta(pi0), float(f(pic, pi0))))
    return worst


VERIFIERS: dict[str, Callable[[np.random.Generator], float]] = {
    "kstep": verify_kstep,
    "fedavg_fixed_point": verify_fedavg_fixed_point,
    "ditto": verify_ditto,
    "masking": verify_masking,
    "label_shift": verify_label_shift,
}
