"""A theorist's own clients: ``run(scenario, seed, clients=ClientWorld(pi, mu, scale))``
in place of the shift families. Supplying the very clients the shift families draw gives
the scenario's own run; bad arrays are refused naming the array."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import silentfail as sf
from silentfail.sim.population import build_population

SMALL = {"population.num_clients": 40, "federation.clients_per_round": 40, "federation.rounds": 6}
NO_SHIFT = {
    "shifts.label_alpha": None,
    "shifts.attribute_alpha": None,
    "shifts.spurious_mean": None,
    "shifts.covariate_scale": 0.0,
    "shifts.covariate_var_spread": 0.0,
    "shifts.concept_angle": 0.0,
}


def _drawn_clients(sc, seed):
    kpop, _ = jax.random.split(jax.random.key(seed))
    return build_population(sc, kpop)[1].shifted


def test_supplying_the_drawn_clients_reproduces_the_run():
    sc = sf.preset("label-shift").replace(**SMALL)
    clients = _drawn_clients(sc, 3)
    own = sf.run(sc, seed=3)
    mine = sc.replace(**NO_SHIFT, **{"monitor.calibration_seeds": 76})  # the monitor does not change a run
    supplied = sf.run(mine, seed=3, clients=sf.ClientWorld(*map(np.asarray, clients)))
    for var in ("mode_metric", "theta_global", "acc_mean", "obs_count"):
        np.testing.assert_allclose(supplied[var].values, own[var].values, rtol=1e-5, atol=1e-6, err_msg=var)
    assert supplied.attrs["clients"].startswith("supplied (sha256 ")
    # judged like any run of its scenario: the detectors are calibrated on its null runs
    v = sf.verdict(supplied, sf.calibrate(mine))
    np.testing.assert_array_equal(v["failure_round"].values, supplied["failure_round"].values)


def test_a_client_set_by_hand_is_the_one_the_engine_measures():
    """One client with label and group aligned, set by hand: the FM's accuracy on it in
    the supplied population is the closed form sum_{y,a} pi(y, a) Phi(y m_{y,a} / s_a)."""
    from scipy.stats import norm

    from silentfail.sim import metrics as mt

    sc = sf.preset("default").replace(**SMALL, **NO_SHIFT)
    base = _drawn_clients(sc, 0)
    pi = np.asarray(base.pi).copy()
    pi[0] = [[0.45, 0.05], [0.05, 0.45]]
    clients = sf.ClientWorld(pi, np.asarray(base.mu), np.asarray(base.scale))
    tr = sf.run(sc, seed=0, clients=clients)
    assert np.isfinite(tr["mode_metric"].values).all()
    kpop, _ = jax.random.split(jax.random.key(0))
    ctx, pop = build_population(sc, kpop, clients)
    c0 = sf.ClientWorld(pi[0], np.asarray(base.mu)[0], np.asarray(base.scale)[0])
    cs = mt.cell_scores(ctx.theta0, c0, ctx.world)
    y = np.array([-1.0, 1.0])[:, None]
    want = float((pi[0] * norm.cdf(y * np.asarray(cs.mean) / np.asarray(cs.sd)[None, :])).sum())
    assert abs(float(pop.fm_acc[0]) - want) < 1e-5
    np.testing.assert_allclose(np.asarray(pop.shifted.pi[0]), pi[0], atol=1e-7)  # shifts.strength = 1: as given


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c._replace(pi=c.pi[:-1]), "clients.pi has shape"),
        (lambda c: c._replace(mu=c.mu[..., :-1]), "clients.mu has shape"),
        (lambda c: c._replace(pi=c.pi * 2), "must be non-negative and sum to 1"),
        (lambda c: c._replace(scale=-c.scale), "clients.scale must be > 0"),
        (lambda c: c._replace(mu=np.where(True, np.nan, c.mu)), "clients.mu has non-finite values"),
    ],
)
def test_bad_clients_are_refused_naming_the_array(change, message):
    sc = sf.preset("default").replace(**SMALL, **NO_SHIFT)
    good = sf.ClientWorld(*map(np.asarray, _drawn_clients(sc, 0)))
    with pytest.raises(sf.ScenarioError, match=message):
        sf.run(sc, seed=0, clients=change(good))


def test_supplied_clients_need_the_shift_families_off():
    sc = sf.preset("label-shift").replace(**SMALL)
    good = sf.ClientWorld(*map(np.asarray, _drawn_clients(sc, 0)))
    with pytest.raises(sf.ScenarioError, match="shift families must be off: shifts.label_alpha"):
        sf.run(sc, seed=0, clients=good)
