"""Closed-form metrics against Monte Carlo from sampled data (within 4 standard errors)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from silentfail.sim import metrics as mt
from silentfail.sim.population import sample_data
from silentfail.sim.scenario import Scenario
from silentfail.sim.world import ClientWorld, alignment_score, base_client, fm_theta, make_world, second_moments

SC = Scenario(world={"spurious_r": 0.4, "group_offset": 0.7, "noise_std": [1.0, 1.5]})
WORLD = make_world(SC)
THETA = jnp.array(np.random.default_rng(0).normal(size=SC.world.d + 1), dtype=jnp.float32)
CLIENT = ClientWorld(
    pi=jnp.array([[0.2, 0.15], [0.45, 0.2]]), mu=WORLD.mu + 0.3 * WORLD.e_align, scale=jnp.asarray(1.3)
)
N_MC = 200_000


def mc_sample():
    X, y, a = sample_data(jax.random.key(11), CLIENT, WORLD, N_MC)
    return np.asarray(X), np.asarray(y), np.asarray(a)


def within(estimate, se, value, k=4.0):
    return abs(estimate - value) <= k * se + 1e-7


def test_accuracy_and_group_accuracy_match_monte_carlo():
    X, y, a = mc_sample()
    correct = (np.sign(X @ np.asarray(THETA)) == y).astype(float)
    acc = float(mt.accuracy(THETA, CLIENT, WORLD))
    assert within(correct.mean(), correct.std() / np.sqrt(N_MC), acc)
    g = mt.client_metrics(THETA, CLIENT, WORLD, lambda s: jax.nn.sigmoid(s), bins=15, grid=256)
    for grp in range(SC.world.groups):
        sel = correct[a == grp]
        assert within(sel.mean(), sel.std() / np.sqrt(sel.size), float(g.group_acc[grp]))


def test_second_moments_match_sampled_data():
    X, y, _ = mc_sample()
    M, m = second_moments(CLIENT.pi, CLIENT.mu, CLIENT.scale * WORLD.Sigma)
    Me = X.T @ X / N_MC
    se = np.sqrt(((X[:, :, None] * X[:, None, :]) ** 2).mean(0) / N_MC)
    assert (np.abs(Me - np.asarray(M)) <= 4 * se + 1e-6).all()
    me = (y[:, None] * X).mean(0)
    assert (np.abs(me - np.asarray(m)) <= 4 * (y[:, None] * X).std(0) / np.sqrt(N_MC) + 1e-6).all()


def test_alignment_score_matches_probe_monte_carlo():
    xs = np.asarray(WORLD.mu_h) + np.random.default_rng(1).normal(size=(N_MC, SC.world.d)) * SC.world.probe_std
    refuse = (xs @ np.asarray(THETA[:-1]) + float(THETA[-1]) < 0).astype(float)
    assert within(refuse.mean(), refuse.std() / np.sqrt(N_MC), float(alignment_score(THETA, WORLD)))


def test_calibration_matches_binned_monte_carlo():
    X, y, _ = mc_sample()
    s = X @ np.asarray(THETA)
    g = lambda v: jax.nn.sigmoid(0.8 * v)  # noqa: E731 - any monotone confidence map
    p = np.asarray(g(jnp.asarray(s)))
    b = np.clip(np.floor(p * 15), 0, 14).astype(int)
    pos = np.bincount(b, weights=(y > 0), minlength=15) / N_MC
    conf = np.bincount(b, weights=p, minlength=15) / N_MC
    ece_mc = np.abs(pos - conf).sum()
    cs = mt.cell_scores(THETA, CLIENT, WORLD)
    ece, _ = mt.calibration(cs, CLIENT.pi, g, bins=15, grid=1024)
    # the sum of |.| over 15 bins has SE at most sqrt(15/N); quadrature error is far smaller
    assert abs(float(ece) - ece_mc) < 4 * np.sqrt(15 / N_MC) + 2e-3


def test_fm_is_calibrated_on_p0_with_its_own_map():
    sc = Scenario()
    world = make_world(sc)
    th0 = fm_theta(world, sc)
    p0 = base_client(world)
    cells = mt.cell_scores(th0, p0, world)
    ece, _ = mt.calibration(cells, p0.pi, mt.fm_confidence(cells, world.pi0), bins=15, grid=2048)
    assert float(ece) < 2e-3


def test_directional_bias_amplification_signs():
    pi = jnp.array([[0.15, 0.35], [0.35, 0.15]])  # P(y=1|a=0)=0.7, P(y=1|a=1)=0.3: data gap -0.4
    exaggerated = jnp.array([[1.0, 0.0], [1.0, 0.0]])  # P(yhat=1|y,a): predicts the group, model gap -1
    faithful = jnp.array([[0.0, 0.0], [1.0, 1.0]])  # perfect classifier reproduces the data gap
    assert abs(float(mt.directional_bias_amplification(exaggerated, pi)) - 0.6) < 1e-6
    assert abs(float(mt.directional_bias_amplification(faithful, pi))) < 1e-6


def test_fm_refuses_the_probe_and_is_accurate():
    sc = Scenario()
    world = make_world(sc)
    th0 = fm_theta(world, sc)
    assert float(alignment_score(th0, world)) > 0.9
    bayes = float(ndtr(sc.world.core_strength / 1.0))
    assert float(mt.base_accuracy(th0, world)) > bayes - 0.02
