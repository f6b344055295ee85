"""Bias amplification over the groups present, both calibration errors and the
Fairlearn-style group gaps, each exact against brute force on sampled data (4 SE), and
every pooled number recomputed from its per-client source in the trace."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from silentfail.sim import metrics as mt
from silentfail.sim.run import run
from silentfail.sim.scenario import Scenario, preset
from silentfail.sim.world import ClientWorld, make_world

SC3 = Scenario(world={"groups": 3, "spurious_r": 0.4, "group_offset": 0.7})
WORLD3 = make_world(SC3)
THETA3 = jnp.array(np.random.default_rng(4).normal(size=SC3.world.d + 1) * 0.5, dtype=jnp.float32)
N_MC = 2_000_000


def client(pa, y_given_a, world=WORLD3, shift=0.3) -> ClientWorld:
    pa, pos = np.asarray(pa, np.float64), np.asarray(y_given_a, np.float64)
    pi = np.stack([pa * (1 - pos), pa * pos]).astype(np.float32)
    return ClientWorld(pi=jnp.asarray(pi), mu=world.mu + shift * world.e_align, scale=jnp.asarray(1.2))


def sampled_scores(theta, cw, world, n, seed):
    """(score, y, a) for n draws of the client's distribution, by cell (exact Gaussian scores)."""
    cs = mt.cell_scores(theta, cw, world)
    mean, sd = np.asarray(cs.mean, np.float64), np.asarray(cs.sd, np.float64)
    pi = np.asarray(cw.pi, np.float64)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, (pi / pi.sum()).reshape(-1)).reshape(pi.shape)
    s, y, a = [], [], []
    for yi in range(2):
        for ai in range(pi.shape[1]):
            k = counts[yi, ai]
            s.append(rng.normal(mean[yi, ai], sd[ai], k))
            y.append(np.full(k, yi))
            a.append(np.full(k, ai))
    return np.concatenate(s), np.concatenate(y), np.concatenate(a)


def mc_bias_amplification(s, y, a):
    """Wang & Russakovsky's BA (times the two labels) on a sample, over the groups in it, with its SE."""
    groups = np.unique(a)
    yhat = (s > 0).astype(float)
    rate = {g: y[a == g].mean() for g in groups}
    w = {g: (a == g).mean() for g in groups}
    dbar = sum(w[g] * rate[g] for g in groups) / sum(w.values())
    total, var = 0.0, 0.0
    for g in groups:
        d = yhat[a == g] - y[a == g]
        total += np.sign(rate[g] - dbar) * d.mean()
        var += d.var() / d.size
    k = len(groups)
    return 2 * total / k, 2 / k * np.sqrt(var)


def test_bias_amplification_of_a_client_with_an_empty_group_is_over_the_groups_present():
    present = client([0.6, 0.4, 0.0], [0.35, 0.7, 0.5])
    value = float(mt.client_metrics(THETA3, present, WORLD3).bias_amp)
    est, se = mc_bias_amplification(*sampled_scores(THETA3, present, WORLD3, N_MC, 0))
    assert abs(value - est) <= 4 * se, (value, est, se)
    assert abs(value) > 10 * se  # the test sees a real amplification, not zero against zero
    # a group of mass 1e-13 is absent: the same value as a group of mass 0 (the old clamp at
    # 1e-12 scaled its conditionals by P(a) / 1e-12 instead)
    tiny = client([0.6, 0.4 - 1e-13, 1e-13], [0.35, 0.7, 0.5])
    assert float(mt.client_metrics(THETA3, tiny, WORLD3).bias_amp) == pytest.approx(value, abs=1e-6)


def test_a_client_with_one_group_present_has_no_disparity():
    from silentfail.sim.world import make_world as mw

    sc = Scenario()
    world = mw(sc)
    theta = jnp.array(np.random.default_rng(1).normal(size=sc.world.d + 1), dtype=jnp.float32)
    for mass in (0.0, 1e-13, 1e-6, 0.5 * mt.GROUP_MASS_MIN):
        cw = client([1 - mass, mass], [0.3, 0.9], world=world)
        assert float(mt.client_metrics(theta, cw, world).bias_amp) == 0.0, mass


def test_two_group_bias_amplification_is_the_signed_gap_difference():
    """For two groups present: s [(P(yhat|1) - P(yhat|0)) - (P(y|1) - P(y|0))], s the data gap's sign."""
    sc = Scenario()
    world = make_world(sc)
    theta = jnp.array(np.random.default_rng(2).normal(size=sc.world.d + 1), dtype=jnp.float32)
    for pa, ya in (([0.7, 0.3], [0.4, 0.6]), ([0.5, 0.5], [0.8, 0.2]), ([0.9, 0.1], [0.5, 0.5])):
        cw = client(pa, ya, world=world)
        cm = mt.client_metrics(theta, cw, world)
        pos = np.asarray(mt.positive_rate(mt.cell_scores(theta, cw, world)), np.float64)
        model = np.asarray(ya) * pos[1] + (1 - np.asarray(ya)) * pos[0]
        mg, dg = model[1] - model[0], ya[1] - ya[0]
        s = np.sign(dg) if abs(dg) > 1e-6 else np.sign(mg)
        assert float(cm.bias_amp) == pytest.approx(s * (mg - dg), abs=2e-6)


@pytest.mark.parametrize("bins", [15, 10])
def test_both_calibration_errors_match_monte_carlo(bins):
    cw = client([0.55, 0.3, 0.15], [0.25, 0.6, 0.8])
    conf = mt.Confidence(jnp.asarray(0.8), jnp.asarray(-0.2))
    cal = mt.calibration(mt.cell_scores(THETA3, cw, WORLD3), cw.pi, conf, bins=bins)
    s, y, _ = sampled_scores(THETA3, cw, WORLD3, N_MC, 1)
    p = np.asarray(conf(jnp.asarray(s, jnp.float32)), np.float64)
    pos = (y == 1).astype(float)
    # classwise: signed residual per bin of p
    b = np.clip(np.floor(p * bins), 0, bins - 1).astype(int)
    v = (pos - p)[:, None] * (b[:, None] == np.arange(bins))
    res, se = v.mean(0), v.std(0) / np.sqrt(N_MC)
    np.testing.assert_array_less(np.abs(np.asarray(cal.residual, np.float64) - res), 4 * se + 2e-5)
    assert abs(float(cal.classwise) - np.abs(res).sum()) <= 4 * se.sum() + 2e-5
    # top-label (Guo et al.): confidence max(p, 1 - p) against the accuracy of argmax p
    c = np.maximum(p, 1 - p)
    correct = ((p >= 0.5) == (y == 1)).astype(float)
    bc = np.clip(np.floor(c * bins), 0, bins - 1).astype(int)
    vt = (correct - c)[:, None] * (bc[:, None] == np.arange(bins))
    rt, set_ = vt.mean(0), vt.std(0) / np.sqrt(N_MC)
    assert abs(float(cal.top_label) - np.abs(rt).sum()) <= 4 * set_.sum() + 2e-5
    # residuals of mirror bins cancel in the top-label bins: top-label <= classwise
    assert float(cal.top_label) <= float(cal.classwise) + 1e-6


def test_demographic_parity_and_equalized_odds_match_brute_force():
    """Fairlearn's demographic_parity_difference and equalized_odds_difference on sampled
    predictions (max - min over groups of the selection rate; max of the TPR and FPR ranges)."""
    cw = client([0.5, 0.35, 0.15], [0.3, 0.6, 0.75])
    cm = mt.client_metrics(THETA3, cw, WORLD3)
    s, y, a = sampled_scores(THETA3, cw, WORLD3, N_MC, 2)
    yhat = (s > 0).astype(float)

    def rate_range(sel):
        rates = [yhat[sel & (a == g)].mean() for g in range(3)]
        ses = [yhat[sel & (a == g)].std() / np.sqrt((sel & (a == g)).sum()) for g in range(3)]
        return max(rates) - min(rates), 2 * max(ses)

    dp, dp_se = rate_range(np.ones_like(y, bool))
    tpr, tpr_se = rate_range(y == 1)
    fpr, fpr_se = rate_range(y == 0)
    assert abs(float(cm.dp_gap) - dp) <= 4 * dp_se
    eo = max(tpr, fpr)
    assert abs(float(cm.eo_gap) - eo) <= 4 * max(tpr_se, fpr_se)
    assert float(cm.dp_gap) > 10 * dp_se and float(cm.eo_gap) > 10 * max(tpr_se, fpr_se)


def test_pooled_numbers_are_recomputed_from_their_per_client_sources():
    sc = preset("phase").replace(
        **{
            "population.num_clients": 80,
            "population.trace_clients": 80,
            "federation.clients_per_round": 80,
            "federation.rounds": 3,
            "population.ood_subset": 8,
        }
    )
    tr = run(sc, 0)
    w = tr.client_weight.values[None, :, None]
    mass, lab = tr.client_group_mass.values, tr.client_label_pos.values
    tpr = (w * lab * tr.client_tpr.values).sum(1) / (w * lab).sum(1)
    fpr = (w * (mass - lab) * tr.client_fpr.values).sum(1) / (w * (mass - lab)).sum(1)
    eo = np.maximum(np.ptp(tpr, axis=-1), np.ptp(fpr, axis=-1))
    np.testing.assert_allclose(tr.eo_gap.values, eo, rtol=1e-4, atol=1e-6)
    group_acc = (w * mass * tr.client_group_acc.values).sum(1) / (w * mass).sum(1)
    np.testing.assert_allclose(tr.acc_parity_gap.values, np.ptp(group_acc, axis=-1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(tr.bias_amp_mean.values, tr.client_bias_amp.values.mean(1), rtol=1e-4, atol=1e-6)
    wc = tr.client_weight.values
    res = np.einsum("c,tcb->tb", wc, tr.client_ece_residual.values) / wc.sum()
    low = tr.client_ece_mid_low.values @ wc / wc.sum()
    np.testing.assert_allclose(tr.ece_agg_classwise.values, np.abs(res).sum(-1), rtol=1e-4, atol=1e-6)
    top = np.asarray(mt.top_label_ece(jnp.asarray(res.T), jnp.asarray(low)))
    np.testing.assert_allclose(tr.ece_agg_top_label.values, top, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(tr.client_ece.values, tr.client_ece_classwise.values)  # the default kind
    # the mode's kind is a setting: top-label ECE drives the miscalibration metric when chosen
    top_tr = run(sc.replace(**{"thresholds.ece_kind": "top_label"}), 0)
    np.testing.assert_allclose(top_tr.client_ece.values, top_tr.client_ece_top_label.values)
    np.testing.assert_allclose(top_tr.ece_agg.values, top_tr.ece_agg_top_label.values)
