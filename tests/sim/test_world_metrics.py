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
    g = mt.client_metrics(THETA, CLIENT, WORLD)
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
    conf = mt.Confidence(jnp.asarray(0.8), jnp.asarray(-0.2))
    p = np.asarray(conf(jnp.asarray(s)))
    b = np.clip(np.floor(p * 15), 0, 14).astype(int)
    pos = np.bincount(b, weights=(y > 0), minlength=15) / N_MC
    cnf = np.bincount(b, weights=p, minlength=15) / N_MC
    ece_mc = np.abs(pos - cnf).sum()
    cal = mt.calibration(mt.cell_scores(THETA, CLIENT, WORLD), CLIENT.pi, conf, bins=15)
    # the sum of |.| over 15 bins has SE at most sqrt(15/N)
    assert abs(float(cal.classwise) - ece_mc) < 4 * np.sqrt(15 / N_MC)
    np.testing.assert_allclose(np.asarray(cal.residual), pos - cnf, atol=4 * np.sqrt(0.25 / N_MC) * 3)


def test_phi_fast_absolute_error_bound():
    """A&S 7.1.26 in float32: |phi_fast - Phi| <= 3e-7 everywhere (float64 reference),
    exact limits at +-inf, and within 3e-5 relative of lax.erfc's Phi where Phi > 0.01."""
    from scipy.special import ndtr as ndtr64

    z = np.concatenate([np.linspace(-12, 12, 400_001), [-np.inf, np.inf, 0.0, -0.0]]).astype(np.float32)
    got = np.asarray(mt.phi_fast(jnp.asarray(z)), np.float64)
    ref = ndtr64(z.astype(np.float64))
    assert np.abs(got - ref).max() <= 3e-7
    assert got[-4] == 0.0 and got[-3] == 1.0 and abs(got[-2] - 0.5) < 1e-7
    assert np.all(np.diff(got[:-4]) >= -3e-7)  # monotone up to the bound
    mid = ref > 0.01
    assert np.abs(got[mid] / np.asarray(mt.phi(jnp.asarray(z)))[mid] - 1).max() < 3e-5


def test_calibration_equals_brute_force_quadrature():
    """The exact-edges + Gauss-Legendre formula against a 200k-point Riemann sum."""
    conf = mt.Confidence(jnp.asarray(1.7), jnp.asarray(0.3))
    for theta in (THETA, 3.0 * THETA, 0.2 * THETA):
        cs = mt.cell_scores(theta, CLIENT, WORLD)
        cal = mt.calibration(cs, CLIENT.pi, conf, bins=15)
        m, sd = np.asarray(cs.mean, np.float64), np.asarray(cs.sd, np.float64)
        grid = np.linspace(m.min() - 12 * sd.max(), m.max() + 12 * sd.max(), 200_001)
        ds = grid[1] - grid[0]
        z = (grid[:, None, None] - m[None]) / sd[None, None, :]
        dens = np.asarray(CLIENT.pi, np.float64)[None] * np.exp(-0.5 * z**2) / (np.sqrt(2 * np.pi) * sd[None, None, :])
        p = 1 / (1 + np.exp(-(1.7 * grid + 0.3)))
        b = np.clip(np.floor(p * 15), 0, 14).astype(int)
        pos = np.bincount(b, weights=dens[:, 1].sum(-1) * ds, minlength=15)
        cnf = np.bincount(b, weights=p * dens.sum((1, 2)) * ds, minlength=15)
        assert abs(float(cal.classwise) - np.abs(pos - cnf).sum()) < 2e-4
        np.testing.assert_allclose(np.asarray(cal.residual), pos - cnf, atol=2e-4)
        # top-label: bins of max(p, 1 - p), correct when argmax p is the label
        c = np.maximum(p, 1 - p)
        bc = np.clip(np.floor(c * 15), 0, 14).astype(int)
        correct = np.where(p >= 0.5, dens[:, 1].sum(-1), dens[:, 0].sum(-1)) * ds
        acc_b = np.bincount(bc, weights=correct, minlength=15)
        cnf_b = np.bincount(bc, weights=c * dens.sum((1, 2)) * ds, minlength=15)
        assert abs(float(cal.top_label) - np.abs(acc_b - cnf_b).sum()) < 2e-4


def test_fm_is_calibrated_on_p0_with_its_own_map():
    sc = Scenario()
    world = make_world(sc)
    th0 = fm_theta(world, sc)
    p0 = base_client(world)
    cells = mt.cell_scores(th0, p0, world)
    cal = mt.calibration(cells, p0.pi, mt.fit_confidence(cells, world.pi0), bins=15)
    assert float(cal.classwise) < 5e-3 and float(cal.top_label) < 5e-3


def test_directional_bias_amplification_signs():
    pi = jnp.array([[0.15, 0.35], [0.35, 0.15]])  # P(y=1|a=0)=0.7, P(y=1|a=1)=0.3: data gap -0.4
    exaggerated = jnp.array([[1.0, 0.0], [1.0, 0.0]])  # P(yhat=1|y,a): predicts the group, model gap -1
    faithful = jnp.array([[0.0, 0.0], [1.0, 1.0]])  # perfect classifier reproduces the data gap
    mass = pi.sum(0)

    def ba(pos):
        return float(mt.directional_bias_amplification((pi * pos).sum(0) / mass, pi[1] / mass, mass))

    assert abs(ba(exaggerated) - 0.6) < 1e-6
    assert abs(ba(faithful)) < 1e-6


def test_fm_refuses_the_probe_and_is_accurate():
    sc = Scenario()
    world = make_world(sc)
    th0 = fm_theta(world, sc)
    assert float(alignment_score(th0, world)) > 0.9
    bayes = float(ndtr(sc.world.core_strength / 1.0))
    assert float(mt.base_accuracy(th0, world)) > bayes - 0.02


def test_topk_quantile_equals_jnp_quantile():
    x = jax.random.normal(jax.random.key(9), (3, 1001))
    for n in (1, 2, 7, 10, 1001):
        for q in (0.1, 0.9, 0.5, 0.0, 1.0):
            np.testing.assert_allclose(
                np.asarray(mt.quantile(x[:, :n], q)),
                np.asarray(jnp.quantile(x[:, :n], q, axis=1)),
                rtol=1e-6,
                atol=1e-6,
            )


def test_panel_accuracy_equals_per_client_accuracy():
    thetas = jax.random.normal(jax.random.key(4), (5, SC.world.d + 1))
    panel = jax.tree.map(lambda a, b: jnp.stack([a, b]), CLIENT, base_client(WORLD))
    got = np.asarray(mt.panel_accuracy(thetas, panel, WORLD))
    for i in range(5):
        for r, cw in enumerate((CLIENT, base_client(WORLD))):
            assert abs(got[r, i] - float(mt.accuracy(thetas[i], cw, WORLD))) < 1e-5


def test_quantile_selection_equals_numpy():
    """The exact bisection selection (worst-decile metrics) equals np.quantile with linear
    interpolation, with ties, constant rows, negative values and tiny sizes; per-row q."""
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 10, 101, 4096):
        rows = [
            rng.standard_normal(n),
            np.round(rng.standard_normal(n), 1),
            np.full(n, 0.5),
            -np.abs(rng.standard_normal(n)),
            rng.standard_normal(n) * 1e-30,
        ]
        x = np.stack(rows).astype(np.float32)
        for q in (0.0, 0.1, 0.5, 0.9, 1.0):
            np.testing.assert_allclose(
                np.asarray(mt.quantile(jnp.asarray(x), q)), np.quantile(x, q, axis=-1), rtol=1e-6, atol=1e-6
            )
        qs = np.array([0.1, 0.9, 0.5, 0.0, 1.0], np.float32)
        want = np.array([np.quantile(r, q) for r, q in zip(x, qs)])
        np.testing.assert_allclose(np.asarray(mt.quantile(jnp.asarray(x), jnp.asarray(qs))), want, rtol=1e-6, atol=1e-6)
    k = np.asarray(mt.kth_smallest(jnp.asarray(x), 7))
    np.testing.assert_array_equal(k, np.sort(x, axis=-1)[:, 7])


def test_calibration_quadrature_matches_a_16_point_rule_on_a_population(monkeypatch):
    """The 4-point Gauss-Legendre rule per bin against 16 points per bin, on the deployed
    models of 2,000 clients of two presets at three model scales: ECE within 2e-4."""
    from silentfail.sim import ground_truth as gt
    from silentfail.sim.population import build_population
    from silentfail.sim.scenario import preset

    for name in ("default", "label-shift"):
        sc = preset(name).replace(**{"population.num_clients": 2000, "federation.clients_per_round": 200})
        ctx, pop = build_population(sc, jax.random.key(0))
        for scale in (0.3, 1.0, 3.0):
            theta_c, cw = gt.deployed_models(sc, ctx, pop, ctx.theta0 * scale, 0)
            cm = mt.client_metrics_batch(theta_c, cw, ctx.world)
            args = (cm.cells.mean, cm.cells.sd, cw.pi, ctx.confidence)
            cal = mt.calibration_batch(*args, bins=15)
            ece, top = np.asarray(cal.classwise), np.asarray(cal.top_label)
            with monkeypatch.context() as m:
                nodes, weights = (jnp.asarray(a, jnp.float32) for a in np.polynomial.legendre.leggauss(16))
                m.setattr(mt, "GL_ORDER", 16)
                m.setattr(mt, "_GL_NODES", nodes)
                m.setattr(mt, "_GL_WEIGHTS", weights)
                ref_cal = mt.calibration_batch(*args, bins=15)
                ref, ref_top = np.asarray(ref_cal.classwise), np.asarray(ref_cal.top_label)
            assert np.abs(ece - ref).max() < 2e-4, (name, scale, np.abs(ece - ref).max())
            assert np.abs(top - ref_top).max() < 2e-4, (name, scale, np.abs(top - ref_top).max())
