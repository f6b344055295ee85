"""Finite-sample sufficient statistics match the moments of sampled data in distribution."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from silentfail.sim.population import sample_data, sample_statistics, wishart
from silentfail.sim.scenario import Scenario
from silentfail.sim.world import ClientWorld, make_world, second_moments

SC = Scenario(world={"d": 4, "spurious_r": 0.3, "noise_std": [1.0, 1.4]})
WORLD = make_world(SC)
CLIENT = ClientWorld(pi=jnp.array([[0.3, 0.1], [0.2, 0.4]]), mu=WORLD.mu, scale=jnp.asarray(1.2))
REPS = 4000


def _stats_exact(n):
    keys = jax.random.split(jax.random.key(0), REPS)
    M, m = jax.vmap(sample_statistics, in_axes=(0, None, None, None))(keys, CLIENT, WORLD, jnp.asarray(float(n)))
    return np.asarray(M), np.asarray(m)


def _stats_from_data(n):
    keys = jax.random.split(jax.random.key(1), REPS)
    X, y, _ = jax.vmap(sample_data, in_axes=(0, None, None, None))(keys, CLIENT, WORLD, n)
    X, y = np.asarray(X), np.asarray(y)
    return np.einsum("rni,rnj->rij", X, X) / n, np.einsum("rn,rni->ri", y, X) / n


def test_sampled_statistics_are_unbiased_for_the_population_moments():
    M, m = _stats_exact(30)
    Mp, mp = second_moments(CLIENT.pi, CLIENT.mu, CLIENT.scale * WORLD.Sigma)
    assert (np.abs(M.mean(0) - np.asarray(Mp)) <= 4 * M.std(0) / np.sqrt(REPS) + 1e-6).all()
    assert (np.abs(m.mean(0) - np.asarray(mp)) <= 4 * m.std(0) / np.sqrt(REPS) + 1e-6).all()


def test_sampled_statistics_have_the_spread_of_real_data():
    for n in (3, 30):  # n = 3 exercises singular (df < d) Wishart draws
        M, m = _stats_exact(n)
        Md, md = _stats_from_data(n)
        # same mean and same standard deviation, entry by entry, within Monte Carlo error
        for a, b in ((M, Md), (m, md)):
            sd_a, sd_b = a.std(0), b.std(0)
            se_sd = (sd_a + sd_b) / np.sqrt(2 * REPS) * 2.5  # generous for heavy-tailed entries
            assert (np.abs(a.mean(0) - b.mean(0)) <= 4 * np.sqrt((sd_a**2 + sd_b**2) / REPS) + 1e-6).all(), n
            assert (np.abs(sd_a - sd_b) <= 4 * se_sd + 1e-6).all(), n


def test_wishart_mean_is_df_sigma():
    Sigma = jnp.array([[2.0, 0.3], [0.3, 1.0]])
    for df in (1.0, 5.0):
        W = jax.vmap(wishart, in_axes=(0, None, None))(
            jax.random.split(jax.random.key(2), 20000), jnp.asarray(df), Sigma
        )
        W = np.asarray(W)
        assert (np.abs(W.mean(0) - df * np.asarray(Sigma)) <= 4 * W.std(0) / np.sqrt(20000)).all()


def _pi(mass):
    """(N, 2, G) cell priors with group masses ``mass`` (N, G), the labels balanced."""
    mass = jnp.asarray(mass, jnp.float32)
    return jnp.stack([mass / 2, mass / 2], axis=1)


def test_participation_disparity_counts_every_minority_group():
    """q_c = q (1 - rho m_c) / (1 - rho mean m_c), m_c the mass in the odd groups: with
    four groups a client whose data are all in group 3 joins as rarely as one all in
    group 1, and one all in group 2 as often as one all in group 0 (the old rule read
    group 1 only)."""
    from silentfail.sim.population import participation

    sc = Scenario(world={"groups": 4}, federation={"participation": 0.2, "participation_disparity": 0.5})
    eye = np.eye(4)
    shifted = ClientWorld(pi=_pi(eye), mu=None, scale=None)
    q = np.asarray(participation(sc, shifted))
    m = np.array([0.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(q, 0.2 * (1 - 0.5 * m) / (1 - 0.5 * m.mean()), rtol=1e-6)
    assert q[1] == q[3] < q[0] == q[2]


def test_participation_disparity_with_two_groups_is_the_group_1_rule_exactly():
    from silentfail.sim.population import participation

    sc = Scenario(federation={"participation": 0.1, "participation_disparity": 0.8})
    mass = np.random.default_rng(0).dirichlet([1.0, 1.0], size=50).astype(np.float32)
    q = participation(sc, ClientWorld(pi=_pi(mass), mu=None, scale=None))
    minority = _pi(mass).sum(axis=1)[:, 1]
    expected = jnp.clip(0.1 * ((1 - 0.8 * minority) / (1 - 0.8 * minority.mean())), 0.0, 1.0)
    np.testing.assert_array_equal(np.asarray(q), np.asarray(expected))
