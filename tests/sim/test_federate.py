"""Federation: secure aggregation releases only sums, DP noise has the stated scale, a
run is a pure function of (scenario, seed), and FedAvg reaches its fixed point."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from silentfail.sim.mechanism import clip_updates, local_noise, participants, secure_aggregate
from silentfail.sim.population import build_population
from silentfail.sim.run import run
from silentfail.sim.scenario import Scenario

SMALL = {
    "population": {"num_clients": 60, "trace_clients": 8, "ood_subset": 4},
    "federation": {"rounds": 6, "clients_per_round": 12, "participation": 0.3},
    "shifts": {"label_alpha": 2.0, "covariate_scale": 0.3},
}


def scenario(**over) -> Scenario:
    data = {k: dict(v) for k, v in SMALL.items()}
    for path, value in over.items():
        sec, key = path.split(".")
        data.setdefault(sec, {})[key] = value
    return Scenario.model_validate(data)


def test_secure_aggregate_is_a_function_of_the_sums_only():
    sc = scenario()
    rng = np.random.default_rng(0)
    delta = jnp.asarray(rng.normal(size=(10, 17)), jnp.float32)
    mask = jnp.asarray([1, 1, 0, 1, 0, 1, 1, 1, 0, 1], jnp.float32)
    w = jnp.ones(10)
    key = jax.random.key(0)
    base = secure_aggregate(delta, mask, w, key, sc)
    perm = np.array([3, 0, 9, 1, 2, 5, 4, 7, 8, 6])
    permuted = secure_aggregate(delta[perm], mask[perm], w[perm], key, sc)
    # move mass between two participants: every individual update changes, the sum does not
    v = jnp.asarray(rng.normal(size=17), jnp.float32)
    moved = secure_aggregate(delta.at[0].add(v).at[1].add(-v), mask, w, key, sc)
    # a non-participant's update is invisible
    hidden = secure_aggregate(delta.at[2].set(100.0), mask, w, key, sc)
    for other in (permuted, moved, hidden):
        for a, b in zip(base, other):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_secure_aggregation_threshold_withholds_small_rounds():
    sc = scenario(**{"federation.secagg_min": 5})
    out = secure_aggregate(jnp.ones((10, 17)), jnp.asarray([1.0] * 4 + [0.0] * 6), jnp.ones(10), jax.random.key(0), sc)
    assert float(out.count) == 0 and float(jnp.abs(out.update_sum).sum()) == 0


def test_trace_holds_no_individual_update():
    tr = run(scenario(), 0)
    for name, var in tr.data_vars.items():
        assert not ({"client", "param"} <= set(var.dims)), name


@pytest.mark.parametrize("mode", ["central", "local"])
def test_dp_noise_has_the_stated_scale(mode):
    z, C = 1.3, 0.7
    sc = scenario(
        **{
            "federation.dp": mode,
            "federation.noise_multiplier": z,
            "federation.clip": C,
            "federation.clients_per_round": 60,
        }
    )
    keys = jax.random.split(jax.random.key(1), 4000)
    zero = jnp.zeros((5, 17))
    if mode == "central":
        draws = jax.vmap(lambda k: secure_aggregate(zero, jnp.ones(5), jnp.ones(5), k, sc).update_sum)(keys)
    else:
        draws = jax.vmap(lambda k: local_noise(zero, k, sc))(keys).reshape(-1, 17)
    sd = float(np.asarray(draws).std())
    n = np.asarray(draws).size
    assert abs(sd - z * C) < 4 * z * C / np.sqrt(2 * n)
    assert abs(float(np.asarray(draws).mean())) < 4 * z * C / np.sqrt(n)


def test_clipping_bounds_every_update():
    d = jnp.asarray(np.random.default_rng(2).normal(size=(50, 17)) * 3, jnp.float32)
    norms = np.linalg.norm(np.asarray(clip_updates(d, 0.5)), axis=1)
    assert (norms <= 0.5 + 1e-5).all() and np.allclose(np.asarray(clip_updates(d * 1e-3, 0.5)), np.asarray(d * 1e-3))


def test_participation_respects_slots_and_probabilities():
    sc = scenario(**{"federation.clients_per_round": 5, "federation.dropout": 0.5})
    q = jnp.concatenate([jnp.ones(30), jnp.zeros(30)])
    masks = jax.vmap(lambda k: participants(sc, q, k))(jax.random.split(jax.random.key(3), 500))
    masks = np.asarray(masks)
    assert (masks.sum(1) <= 5).all() and masks[:, 30:].sum() == 0
    assert abs(masks.sum(1).mean() - 5) < 0.2  # 30 joiners x 0.5 survive: slots always fill


def test_run_is_a_pure_function_of_scenario_and_seed():
    sc = scenario()
    a, b, c = run(sc, 3), run(sc, 3), run(sc, 4)
    assert a.identical(b)
    assert not np.allclose(a["client_acc"].values, c["client_acc"].values)


def test_population_build_is_deterministic():
    sc = scenario()
    _, p1 = build_population(sc, jax.random.key(7))
    _, p2 = build_population(sc, jax.random.key(7))
    for x, y in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_fedavg_run_converges_to_the_vector_fixed_point():
    """Full participation, no noise, rule 'full': theta* = (I - mean_c P_c)^{-1} mean_c b_c."""
    sc = scenario(
        **{
            "personalization.rule": "full",
            "personalization.lam": 0.0,
            "federation.participation": 1.0,
            "federation.clients_per_round": 60,
            "federation.rounds": 400,
            "population.num_clients": 60,
        }
    )
    tr = run(sc, 0)
    kpop, _ = jax.random.split(jax.random.key(0))
    _, pop = build_population(sc, kpop)
    P, b = np.asarray(pop.P, np.float64), np.asarray(pop.b, np.float64)
    star = np.linalg.solve(np.eye(P.shape[1]) - P.mean(0), b.mean(0))
    np.testing.assert_allclose(tr["theta_global"].values[-1], star, rtol=1e-3, atol=1e-4)


def test_dp_epsilon_is_recorded():
    sc = scenario(
        **{
            "federation.dp": "central",
            "federation.noise_multiplier": 1.0,
            "federation.clip": 1.0,
            "federation.clients_per_round": 60,
        }
    )
    tr = run(sc, 0)
    assert 0 < tr.attrs["dp_epsilon"] < np.inf
    assert run(scenario(), 0).attrs["dp_epsilon"] == np.inf


def test_centralized_round_is_k_gradient_steps_on_the_public_objective():
    from silentfail.sim.population import make_context
    from silentfail.sim.world import pretraining_objective, public_steps

    sc = scenario(
        **{"federation.public_schedule": "alternate", "federation.public_steps": 7, "federation.public_lr": 0.05}
    )
    ctx = make_context(sc, jax.random.key(0))
    S, c = public_steps(ctx.world, sc)
    A, b = pretraining_objective(ctx.world, sc, ctx.world.pi0)
    theta = jnp.asarray(np.random.default_rng(1).normal(size=A.shape[0]), jnp.float32)
    x = theta
    for _ in range(7):
        x = x - 0.05 * (A @ x - b)
    np.testing.assert_allclose(np.asarray(S @ theta + c), np.asarray(x), rtol=1e-4, atol=1e-5)


def test_alternate_schedule_centralizes_every_kth_round_without_clients():
    sc = scenario(**{"federation.public_schedule": "alternate", "federation.public_every": 3, "federation.rounds": 9})
    tr = run(sc, 0)
    public = tr.public_round.values
    np.testing.assert_array_equal(public, (np.arange(9) + 1) % 3 == 0)
    assert np.all(tr.participants.values[public] == 0) and np.all(tr.participants.values[~public] > 0)
    # with a zero learning rate a centralized round leaves the global model where it was
    frozen = run(sc.replace(**{"federation.public_lr": 0.0}), 0)
    th = frozen.theta_global.values
    for t in np.flatnonzero(public)[:-1]:
        np.testing.assert_array_equal(th[t + 1], th[t])


def test_adaptive_schedule_switches_only_after_a_public_drop():
    tol = 0.01
    sc = scenario(
        **{
            "federation.public_schedule": "adaptive",
            "federation.public_tolerance": tol,
            "personalization.lam": 0.0,
            "personalization.rule": "full",
            "federation.rounds": 12,
        }
    )
    tr = run(sc, 0)
    drop = np.maximum(
        tr.attrs["fm_alignment"] - tr.global_alignment.values, tr.attrs["fm_p0_acc"] - tr.global_p0_acc.values
    )
    np.testing.assert_array_equal(tr.public_round.values, drop > tol)


def test_diverging_public_learning_rate_is_rejected():
    from silentfail.sim.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="federation.public_lr = 50 makes the centralized steps diverge"):
        run(scenario(**{"federation.public_schedule": "alternate", "federation.public_lr": 50.0}), 0)
