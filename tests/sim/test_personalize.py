"""The K-step scan equals the closed form; FedAvg converges to its fixed point (docs/theory.md, section 4; proofs/kstep_fedavg.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from silentfail.sim.mechanism import clip_updates, secure_aggregate
from silentfail.sim.personalize import LocalProblem, affine_map, personalize_scan, projector
from silentfail.sim.scenario import Scenario

jax.config.update("jax_enable_x64", False)


def random_problem(key, D, lam):
    A = jax.random.normal(key, (D, D))
    H = A @ A.T / D + 0.2 * jnp.eye(D) + lam * jnp.eye(D)
    return LocalProblem(H=H, r=jax.random.normal(jax.random.fold_in(key, 1), (D,)))


@pytest.mark.parametrize(
    "rule, extra",
    [
        ("full", {"lam": 0.0}),
        ("proximal", {"lam": 0.5}),
        ("subspace", {"rank": 3, "lam": 0.2}),
        ("head_only", {"lam": 0.3}),
        ("teacher", {"beta": 0.4, "lam": 0.2}),
    ],
)
def test_k_step_scan_equals_closed_form(rule, extra):
    sc = Scenario(personalization={"rule": rule, "K": 7, "eta": 0.2, **extra})
    p = sc.personalization
    D = sc.world.d + 1
    Pi = projector(sc, jax.random.key(5))
    for seed in range(5):
        prob = random_problem(jax.random.key(seed), D, p.lam)
        theta_g = jax.random.normal(jax.random.key(100 + seed), (D,))
        P, b = affine_map(prob, Pi, eta=p.eta, lam=p.lam, K=p.K)
        closed = P @ theta_g + b
        scanned = personalize_scan(theta_g, prob, Pi, eta=p.eta, lam=p.lam, K=p.K)
        np.testing.assert_allclose(np.asarray(closed), np.asarray(scanned), rtol=1e-4, atol=1e-5)
        if rule in ("subspace", "head_only"):  # the update stays in the trainable subspace
            np.testing.assert_allclose(np.asarray(Pi @ (closed - theta_g)), np.asarray(closed - theta_g), atol=1e-5)


def test_closed_form_is_design_formula_for_identity_projection():
    """theta_K = theta* + (I - eta H)^K (theta_g - theta*), theta* = H^{-1}(r + lam theta_g)."""
    D, eta, lam, K = 6, 0.15, 0.4, 9
    prob = random_problem(jax.random.key(3), D, lam)
    theta_g = jax.random.normal(jax.random.key(4), (D,))
    P, b = affine_map(prob, jnp.eye(D), eta=eta, lam=lam, K=K)
    star = jnp.linalg.solve(prob.H, prob.r + lam * theta_g)
    design = star + jnp.linalg.matrix_power(jnp.eye(D) - eta * prob.H, K) @ (theta_g - star)
    np.testing.assert_allclose(np.asarray(P @ theta_g + b), np.asarray(design), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("K", [1, 3, 10])
def test_fedavg_fixed_point_on_scalar_quadratics(K):
    """Clients f_i = a_i/2 (x - c_i)^2, K local steps, full participation, no noise:
    FedAvg (sgd lr 1 on the mean update) converges to sum p_i q_i c_i / sum p_i q_i,
    q_i = 1 - (1 - eta a_i)^K."""
    rng = np.random.default_rng(K)
    n, eta = 7, 0.1
    a = jnp.asarray(rng.uniform(0.5, 3.0, n), jnp.float32)
    c = jnp.asarray(rng.normal(0, 2, n), jnp.float32)
    p = jnp.asarray(rng.uniform(0.5, 2.0, n), jnp.float32)
    maps = [
        affine_map(LocalProblem(H=a[i].reshape(1, 1), r=(a[i] * c[i]).reshape(1)), jnp.eye(1), eta=eta, lam=0.0, K=K)
        for i in range(n)
    ]
    P = jnp.stack([m[0] for m in maps])
    b = jnp.stack([m[1] for m in maps])
    sc = Scenario(
        population={"num_clients": n, "ood_subset": 1}, federation={"clients_per_round": n, "participation": 1.0}
    )
    opt = optax.sgd(1.0)
    x, state = jnp.zeros(1), opt.init(jnp.zeros(1))
    for _ in range(3000):
        delta = clip_updates(jnp.einsum("nij,j->ni", P, x) + b - x, None)
        agg = secure_aggregate(delta, jnp.ones(n), p, jax.random.key(0), sc)
        upd, state = opt.update(-agg.update_sum / agg.weight_sum, state, x)
        x = optax.apply_updates(x, upd)
    q = 1 - (1 - eta * a) ** K
    expected = float(jnp.sum(p * q * c) / jnp.sum(p * q))
    assert abs(float(x[0]) - expected) < 1e-4 * max(1.0, abs(expected))
