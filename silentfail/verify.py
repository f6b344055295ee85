"""Numeric checks of the closed forms (``silentfail.proofs``) against the simulation
(``silentfail.sim``): each verifier draws random parameters and returns the worst
relative error between the lambdified statement and what the simulation computes.
``silentfail prove --verify`` prints them; the tests assert them. ``sim`` never imports
``proofs``: this module, in the front door, joins the two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .proofs import result
from .sim import metrics as mt
from .sim.mechanism import secure_aggregate
from .sim.personalize import LocalProblem, affine_map
from .sim.scenario import Scenario

#: population-mode (exact) checks must agree to this relative error (issue #6)
EXACT_TOLERANCE = 1e-5


class Check(NamedTuple):
    """The worst error of a check and the tolerance it must stay within."""

    error: float
    tolerance: float
    kind: str  # "relative error" or "|error| / SE" (Monte Carlo)

    @property
    def ok(self) -> bool:
        """Whether the measured error is within the tolerance."""
        return self.error <= self.tolerance


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(b))


def _scalar_map(a: float, target: float, *, eta: float, lam: float, K: int) -> tuple[float, float]:
    """The simulation's K-step affine map of a scalar quadratic a/2 (x - target)^2."""
    P, b = affine_map(
        LocalProblem(H=jnp.array([[a + lam]]), r=jnp.array([a * target])), jnp.eye(1), eta=eta, lam=lam, K=K
    )
    return float(P[0, 0]), float(b[0])


def _fedavg_fixed_point(maps: np.ndarray, weights: np.ndarray) -> float:
    """Fixed point of x -> sum_i w_i (P_i x + b_i) / sum_i w_i for scalar maps (P_i, b_i)."""
    w = weights / weights.sum()
    return float(w @ maps[:, 1] / (1 - w @ maps[:, 0]))


def verify_kstep(rng: np.random.Generator, draws: int = 20) -> float:
    """The largest relative error of the K-step closed form (result 1) against K explicit gradient steps on ``draws``
    random quadratics.

    Args:
        rng: a NumPy generator (the random instances).
        draws: random instances checked.

    Returns:
        The largest relative error.
    """
    f = result("kstep").numeric("numpy")
    worst = 0.0
    for _ in range(draws):
        eta, a, K = rng.uniform(0.01, 0.5), rng.uniform(0.1, 3.0), int(rng.integers(1, 30))
        c, x0 = rng.normal(), rng.normal()
        P, b = _scalar_map(a, c, eta=eta, lam=0.0, K=K)
        worst = max(worst, _rel(float(f(eta, a, K, c, x0)), P * x0 + b))
    return worst


def verify_fedavg_fixed_point(rng: np.random.Generator, draws: int = 5) -> float:
    """The fixed point of the simulation's FedAvg map x -> sum p_i (P_i x + b_i) / sum p_i.

    Args:
        rng: a NumPy generator (the random instances).
        draws: random instances checked.

    Returns:
        The largest relative error.
    """
    f = result("fedavg_fixed_point").numeric()
    worst = 0.0
    for _ in range(draws):
        n, eta, K = 6, 0.1, int(rng.integers(1, 12))
        a, c, p = rng.uniform(0.5, 3, n), rng.normal(0, 2, n), rng.uniform(0.5, 2, n)
        maps = np.array([_scalar_map(ai, ci, eta=eta, lam=0.0, K=K) for ai, ci in zip(a, c)])
        simulated = _fedavg_fixed_point(maps, p)
        q = 1 - (1 - eta * a) ** K
        worst = max(worst, _rel(float(f(jnp.asarray(p), jnp.asarray(q), jnp.asarray(c))), simulated))
    return worst


def verify_ditto(rng: np.random.Generator, draws: int = 10) -> float:
    """The Ditto personal model equals the simulation's proximal rule run to convergence.

    Args:
        rng: a NumPy generator (the random instances).
        draws: random instances checked.

    Returns:
        The largest relative error.
    """
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
    """Minority / aggregate excess risk at the simulation's FedAvg fixed point (K = 1).

    Args:
        rng: a NumPy generator (the random instances).
        draws: random instances checked.

    Returns:
        The largest relative error.
    """
    f = result("masking").numeric("numpy")
    worst = 0.0
    for _ in range(draws):
        share, h = rng.uniform(0.02, 0.5), rng.uniform(0.2, 3)
        t = rng.normal(0, 1, 2)
        maps = np.array([_scalar_map(h, ti, eta=0.1, lam=0.0, K=1) for ti in t])
        star = _fedavg_fixed_point(maps, np.array([1 - share, share]))
        ex_min = h / 2 * (star - t[1]) ** 2
        ex_agg = (1 - share) * h / 2 * (star - t[0]) ** 2 + share * ex_min
        worst = max(worst, abs(ex_min / ex_agg - float(f(share))) / float(f(share)))
    return worst


def verify_label_shift(rng: np.random.Generator, draws: int = 6) -> float:
    """The bias shift equals the change of the simulation's Platt fit of the posterior.

    Args:
        rng: a NumPy generator (the random instances).
        draws: random instances checked.

    Returns:
        The largest relative error.
    """
    f = result("label_shift").numeric("numpy")
    worst = 0.0
    for _ in range(draws):
        mu, sd = rng.uniform(0.3, 1.5), rng.uniform(0.5, 2)
        pi0, pic = rng.uniform(0.2, 0.8, 2)

        def beta(prior: float, mu: float = mu, sd: float = sd) -> float:
            cells = mt.CellScores(jnp.array([[-mu, -mu], [mu, mu]]), jnp.array([sd, sd]))
            pi = jnp.array([[(1 - prior) / 2] * 2, [prior / 2] * 2])
            return float(mt.fit_confidence(cells, pi).beta)

        worst = max(worst, _rel(beta(pic) - beta(pi0), float(f(pic, pi0))))
    return worst


def verify_erosion(rng: np.random.Generator, draws: int = 5) -> float:
    """The displacement along u of the simulation's proximal rule run to convergence
    from theta_0, against the eigenbasis formula (a random task Hessian of rank 5 in D = 8).

    Args:
        rng: a NumPy generator (the random instances).
        draws: random instances checked.

    Returns:
        The largest relative error.
    """
    f = result("erosion").numeric("numpy")
    worst = 0.0
    for _ in range(draws):
        D, lam = 8, rng.uniform(0.1, 2.0)
        A = rng.normal(size=(D, 5))
        H = A @ A.T / 5
        theta0, task, u = rng.normal(size=D), rng.normal(size=D), rng.normal(size=D)
        eta = 1.0 / (np.linalg.eigvalsh(H)[-1] + lam)
        P, b = affine_map(
            LocalProblem(H=jnp.asarray(H + lam * np.eye(D)), r=jnp.asarray(H @ task)),
            jnp.eye(D),
            eta=eta,
            lam=lam,
            K=4000,
        )
        moved = float((np.asarray(P) @ theta0 + np.asarray(b) - theta0) @ u)
        h, E = np.linalg.eigh(H)
        worst = max(worst, _rel(float(f(h, E.T @ (task - theta0), E.T @ u, lam)), moved))
    return worst


def simulated_power(
    pi: float, delta: float, *, s2: float, M: int, z: float, C: float, alpha: float, trials: int, key: jax.Array
) -> float:
    """Empirical power of the one-sided aggregate z-test through the simulation's secure
    aggregation with central DP: M Gaussian reports (a fraction pi shifted by delta),
    clipped to C, summed, noised with z C; reject when the mean exceeds z_{1-alpha} sigma_T.

    Args:
        pi: the minority's share of the reports.
        delta: the minority's shift of the per-client statistic.
        s2: the per-client variance.
        M: the reports per round.
        z: the DP noise multiplier.
        C: the clip norm.
        alpha: the test's level.
        trials: Monte Carlo rounds.
        key: a JAX PRNG key.

    Returns:
        The fraction of rounds the test rejects.
    """
    from jax.scipy.special import ndtri

    sc = Scenario.model_validate(
        {
            "population": {"num_clients": M, "ood_subset": 1},
            "federation": {"clients_per_round": M, "dp": "central", "noise_multiplier": z, "clip": C},
        }
    )
    shift = jnp.where(jnp.arange(M) < round(pi * M), delta, 0.0)[:, None]
    sigma_T = np.sqrt(s2 / M + z**2 * C**2 / M**2)

    def one(k):
        k1, k2 = jax.random.split(k)
        reports = shift + np.sqrt(s2) * jax.random.normal(k1, (M, 1))
        reports = reports * jnp.minimum(1.0, C / jnp.abs(reports))
        agg = secure_aggregate(reports, jnp.ones(M), jnp.ones(M), k2, sc)
        return agg.update_sum[0] / M > ndtri(1 - alpha) * sigma_T

    return float(jax.vmap(one)(jax.random.split(key, trials)).mean())


def verify_dp_power(rng: np.random.Generator, trials: int = 4000) -> Check:
    """Monte Carlo power through the simulation vs the closed form, on a grid of delta.

    Args:
        rng: a NumPy generator.
        trials: Monte Carlo rounds per delta.

    Returns:
        Check(the largest |simulated - closed form| in binomial SE, tolerance 4).
    """
    f = result("dp_power").numeric("numpy")
    pi, s2, M, z, C, alpha = 0.25, 1.0, 100, 1.0, 6.0, 0.05
    worst = 0.0
    for delta in (0.0, 0.3, 0.6, 0.9, 1.2):
        emp = simulated_power(
            pi, delta, s2=s2, M=M, z=z, C=C, alpha=alpha, trials=trials, key=jax.random.key(int(rng.integers(2**31)))
        )
        exact = float(f(pi, delta, s2, M, z, C, alpha))
        se = np.sqrt(max(exact * (1 - exact), 1e-4) / trials)
        worst = max(worst, abs(emp - exact) / se)
    return Check(worst, 4.0, "|error| / SE")


def verify_minimal_detectable_shift(rng: np.random.Generator, trials: int = 4000) -> Check:
    """At delta_min the simulated power of the secure-aggregated DP test is 1 - beta.

    Args:
        rng: a NumPy generator.
        trials: Monte Carlo rounds.

    Returns:
        Check(|simulated power - (1 - beta)| in binomial SE, tolerance 4).
    """
    mds = result("minimal_detectable_shift").numeric("numpy")
    worst = 0.0
    for z, beta in ((0.5, 0.2), (2.0, 0.1), (4.0, 0.5)):
        pi, s2, M, C, alpha = 0.25, 1.0, 100, 6.0, 0.05
        d = float(mds(pi, s2, M, z, C, alpha, beta))
        emp = simulated_power(
            pi, d, s2=s2, M=M, z=z, C=C, alpha=alpha, trials=trials, key=jax.random.key(int(rng.integers(2**31)))
        )
        worst = max(worst, abs(emp - (1 - beta)) / np.sqrt(beta * (1 - beta) / trials))
    return Check(worst, 4.0, "|error| / SE")


def verify_qffl(rng: np.random.Generator, draws: int = 6) -> float:
    """The simulation's local steps (one step of rate eta per group) aggregated with q-FFL
    weights p_g F_g^q, iterated to their fixed point, against the closed form.

    Args:
        rng: a NumPy generator (the random instances).
        draws: random instances checked.

    Returns:
        The largest relative error.
    """
    f = result("qffl").numeric("numpy")
    worst = 0.0
    for _ in range(draws):
        qq = float(rng.choice([0.0, 0.5, 1.0, 3.0, 10.0]))
        p = rng.uniform(0.1, 1.0, 2)
        c = np.sort(rng.normal(0, 1, 2)) + np.array([0.0, 0.5])
        a = 1.3
        eta = 0.5 / (a * (2 * qq + 1))  # the q-FFL weights raise the map's effective curvature to ~(2q+1) a
        maps = np.array([_scalar_map(a, ci, eta=eta, lam=0.0, K=1) for ci in c])
        theta = float(c.mean())
        for _ in range(200_000):
            logw = np.log(p) + qq * np.log(a / 2 * (theta - c) ** 2 + 1e-300)
            w = np.exp(logw - logw.max())
            step = w @ (maps[:, 0] * theta + maps[:, 1] - theta) / w.sum()
            theta += step
            if abs(step) < 1e-14:
                break
        worst = max(worst, _rel(float(f(qq, p[0], p[1], c[0], c[1])), theta))
    return worst


def verify_mean_field(rng: np.random.Generator, draws: int = 2) -> float:
    """The largest relative error of the population-limit closed form (result 8),
    theta_t = theta* + Pbar^t (theta_0 - theta*), against the engine's population-limit
    run (``simulate(expected=True)``, float32) of ``draws`` random points of a small
    phase world without DP and clipping.

    Args:
        rng: the random parameters' generator.
        draws: how many points.

    Returns:
        The worst error over the rounds and coordinates.
    """
    from .sim.config import Config
    from .sim.engine import simulate
    from .sim.scenario import preset
    from .sim.theory import affine_trajectory

    worst = 0.0
    for _ in range(draws):
        sc = preset("phase").replace(
            **{
                "population.num_clients": 40,
                "federation.clients_per_round": 40,
                "federation.rounds": 6,
                "federation.dp": "none",
                "federation.clip": None,
                "personalization.lam": float(rng.uniform(0.02, 2.0)),
                "shifts.strength": float(rng.uniform(0.3, 1.0)),
            }
        )
        sim = simulate(Config(sc), int(rng.integers(1 << 20)), expected=True)
        want = affine_trajectory(sim.pop, sim.ctx.theta0, sc.federation.rounds, sc.federation.dropout)
        got = np.asarray(sim.out.rounds["theta_global"], np.float64)
        scale = np.maximum(1.0, np.abs(want).max(axis=1))
        worst = max(worst, float((np.abs(got - want).max(axis=1) / scale).max()))
    return worst


def _exact(fn: Callable[[np.random.Generator], float]) -> Callable[[np.random.Generator], Check]:
    return lambda rng: Check(fn(rng), EXACT_TOLERANCE, "relative error")


VERIFIERS: dict[str, Callable[[np.random.Generator], Check]] = {
    "kstep": _exact(verify_kstep),
    "fedavg_fixed_point": _exact(verify_fedavg_fixed_point),
    "ditto": _exact(verify_ditto),
    "masking": _exact(verify_masking),
    "erosion": _exact(verify_erosion),
    "dp_power": verify_dp_power,
    "minimal_detectable_shift": verify_minimal_detectable_shift,
    "qffl": _exact(verify_qffl),
    "label_shift": _exact(verify_label_shift),
    "mean_field": _exact(verify_mean_field),
}


def verify_all(names, seed: int = 0) -> dict[str, Check | None]:
    """Every named result's check against the simulation, one random stream for all (in
    ``names``' order, so a seed gives the same numbers to ``prove --verify`` and the paper).

    Args:
        names: result names (``proofs.BUILDERS``' keys).
        seed: the seed of the parameter draws.

    Returns:
        ``{name: Check}``, None for a result without a simulation counterpart.
    """
    rng = np.random.default_rng(seed)
    return {name: VERIFIERS[name](rng) if name in VERIFIERS else None for name in names}
