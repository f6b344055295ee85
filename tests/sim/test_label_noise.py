"""Label noise (shifts.label_noise, label_noise_minority): the clients' observed labels
are flipped with probability rho_a. The exact finite-sample statistics have the law of
materialized noisy samples, the noisy-label risk and the Bayes risk follow their closed
forms, and the noise reaches the engine only through the clients' data."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from silentfail.sim import metrics as mt
from silentfail.sim.population import sample_data, sample_statistics
from silentfail.sim.run import run
from silentfail.sim.scenario import ScenarioError, preset
from silentfail.sim.world import ClientWorld, base_client, client_moments, label_noise_risk, make_world

NOISY = {"shifts.label_noise": 0.1, "shifts.label_noise_minority": 0.3}


def test_flip_rates_are_group_dependent_and_the_clean_world_has_none():
    assert make_world(preset("default")).flip is None
    np.testing.assert_allclose(make_world(preset("default").replace(**NOISY)).flip, [0.1, 0.3])
    w4 = make_world(preset("default").replace(**NOISY, **{"world.groups": 4}))
    np.testing.assert_allclose(w4.flip, [0.1, 0.3, 0.1, 0.3])  # the odd groups are the minorities
    np.testing.assert_allclose(make_world(preset("default").replace(**{"shifts.label_noise": 0.2})).flip, [0.2, 0.2])


def test_exact_noisy_statistics_have_the_law_of_materialized_noisy_samples():
    """E[M_hat] = M and E[m_hat] = sum pi (1 - 2 rho_a) y mu~ for both samplers (4.5 SE over
    every entry), and their variances agree (the flipped part's Gaussian split)."""
    w = make_world(preset("default").replace(**NOISY))
    cw = base_client(w)
    M, m = (np.asarray(a) for a in client_moments(w, cw))
    n, K = 40, 12_000
    Ms, ms = jax.vmap(lambda k: sample_statistics(k, cw, w, jnp.asarray(float(n))))(
        jax.random.split(jax.random.key(0), K)
    )
    X, y, _ = jax.vmap(lambda k: sample_data(k, cw, w, n))(jax.random.split(jax.random.key(1), K))
    draws = {
        "exact": (np.asarray(Ms), np.asarray(ms)),
        "materialized": (np.einsum("kni,knj->kij", X, X) / n, np.einsum("kn,kni->ki", y, X) / n),
    }
    for Mk, mk in draws.values():
        for est, exact in ((Mk, M), (mk, m)):
            se = est.std(0) / np.sqrt(K)
            assert np.all(np.abs(est.mean(0) - exact) <= 4.5 * np.maximum(se, 1e-7))
    # the clean targets differ: the noise really shrinks m (rho = 0.1 and 0.3)
    m_clean = np.asarray(client_moments(w._replace(flip=None), cw)[1])
    assert np.abs(m - m_clean).max() > 0.05
    var_exact, var_data = draws["exact"][1].var(0), draws["materialized"][1].var(0)
    np.testing.assert_allclose(var_exact, var_data, rtol=0.08)  # SE of a variance ratio at K = 12k: ~2%


def test_label_noise_changes_the_bayes_risk_as_its_closed_form_says():
    """One group, shared covariance: the Bayes rule is linear (LDA), theta_x = Sigma^-1
    (mu_+ - mu_-), b = -theta_x . (mu_+ + mu_-)/2 + log(pi_+/pi_-), with clean risk R*.
    Under symmetric noise rho its error against the noisy labels is rho + (1 - 2 rho) R*,
    and it stays the best threshold on the noisy labels."""
    rho = 0.2
    w = make_world(preset("default").replace(**{"shifts.label_noise": rho}))
    pi = np.array([[0.35, 0.0], [0.65, 0.0]], np.float32)  # group 0 only
    cw = ClientWorld(jnp.asarray(pi), w.mu, jnp.asarray(1.0))
    mu_p, mu_m, Sigma = np.asarray(w.mu[1, 0]), np.asarray(w.mu[0, 0]), np.asarray(w.Sigma[0])
    tx = np.linalg.solve(Sigma, mu_p - mu_m)
    b = -tx @ (mu_p + mu_m) / 2 + np.log(pi[1, 0] / pi[0, 0])
    sd = np.sqrt(tx @ Sigma @ tx)
    r_star = pi[0, 0] * norm.cdf((tx @ mu_m + b) / sd) + pi[1, 0] * norm.cdf(-(tx @ mu_p + b) / sd)
    X, y, _ = sample_data(jax.random.key(4), cw, w, 400_000)
    X, y = np.asarray(X), np.asarray(y)
    score = X[:, :-1] @ tx
    err = np.mean(np.sign(score + b) != y)
    se = np.sqrt(err * (1 - err) / len(y))
    assert abs(err - (rho + (1 - 2 * rho) * float(r_star))) < 4 * se
    # label_noise_risk with the group's clean error gives the same number
    closed = label_noise_risk(jnp.asarray([float(r_star), 0.0]), jnp.asarray([1.0, 0.0]), w.flip)
    assert abs(float(closed) - (rho + (1 - 2 * rho) * float(r_star))) < 1e-6
    # the clean Bayes threshold is still the best on the noisy labels (grid of +-2 sd)
    grid = b + sd * np.linspace(-2, 2, 41)
    errs = [np.mean(np.sign(score + c) != y) for c in grid]
    assert abs(grid[int(np.argmin(errs))] - b) <= 0.2 * sd


def test_noisy_label_risk_of_a_readout_matches_samples_in_both_groups():
    w = make_world(preset("default").replace(**NOISY))
    cw = base_client(w)
    theta = jnp.asarray(np.r_[np.random.default_rng(1).normal(0, 0.5, 16), 0.1], jnp.float32)
    cm = mt.client_metrics_batch(theta[None], jax.tree.map(lambda a: a[None], cw), w)
    closed = float(label_noise_risk(1.0 - cm.group_acc[0], cm.group_mass[0], w.flip))
    X, y, _ = sample_data(jax.random.key(5), cw, w, 400_000)
    err = float(jnp.mean(jnp.sign(X @ theta) != y))
    assert abs(err - closed) < 4 * np.sqrt(err * (1 - err) / 400_000)


def test_group_dependent_noise_harms_the_minority_and_clients_report_against_noisy_labels():
    base = {"population.num_clients": 200, "federation.rounds": 6, "federation.clients_per_round": 40}
    clean = run(preset("default").replace(**base), 0)
    noisy = run(preset("default").replace(**base, **{"shifts.label_noise_minority": 0.35}), 0)
    gap = lambda tr: float(tr["group_acc"].isel(round=-1, group=0) - tr["group_acc"].isel(round=-1, group=1))  # noqa: E731
    assert gap(noisy) > gap(clean) + 0.01
    # the ground truth is on clean labels; the clients' own (report) accuracy is against their noisy labels
    assert float(noisy["obs_report"].isel(round=-1).sum()) != float(clean["obs_report"].isel(round=-1).sum())


@pytest.mark.parametrize(
    ("updates", "field"),
    [
        ({"shifts.label_noise": 0.5}, "shifts.label_noise"),
        ({"shifts.label_noise": -0.1}, "shifts.label_noise"),
        ({"shifts.label_noise_minority": 0.7}, "shifts.label_noise_minority"),
    ],
)
def test_bad_label_noise_gets_one_line_errors_naming_the_field(updates, field):
    with pytest.raises(ScenarioError) as err:
        preset("default").replace(**updates)
    msg = str(err.value)
    assert field in msg and "\n" not in msg, msg
