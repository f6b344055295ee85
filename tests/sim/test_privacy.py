"""Privacy accounting matches the simulated mechanism: one Poisson-sampled composition
of a round's releases, nothing released unaccounted (the count included), no report
slots under DP, and the accountants agree (PLD <= RDP)."""

from __future__ import annotations

import json
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dp_accounting import dp_event, rdp

from silentfail.sim.mechanism import participation_draw, release, secure_aggregate
from silentfail.sim.observe import accounted_releases
from silentfail.sim.privacy import Accounting, account
from silentfail.sim.run import run
from silentfail.sim.scenario import Scenario, ScenarioError, preset, scenario_from_dict

DP = {
    "population": {"num_clients": 60, "trace_clients": 8, "ood_subset": 4},
    "federation": {
        "rounds": 6,
        "clients_per_round": 60,
        "participation": 0.3,
        "dp": "central",
        "noise_multiplier": 0.8,
        "clip": 1.0,
    },
    "shifts": {"label_alpha": 2.0, "covariate_scale": 0.3},
}


def dp_scenario(**over) -> Scenario:
    data = json.loads(json.dumps(DP))
    for path, value in over.items():
        sec, key = path.split(".")
        data.setdefault(sec, {})[key] = value
    return scenario_from_dict(data)


def rdp_epsilon(event, delta: float) -> float:
    logging.getLogger("absl").setLevel(logging.ERROR)
    acc = rdp.RdpAccountant()
    acc.compose(event)
    return acc.get_epsilon(delta)


def test_round_is_one_poisson_sampled_composition_of_its_releases():
    """The phase preset (z = 0.5, q = 0.34, T = 30; four noised sums and the noised count):
    epsilon is that of T x PoissonSampled(q, Composed(5 Gaussians)), not of 4T (or 5T)
    independently sampled Gaussians, which assume a fresh sample per release (170 for the
    four sums, what the engine reported before)."""
    sc = preset("phase")
    f = sc.federation
    acc = account(sc, f.participation)
    assert acc.releases == (
        "noised_update_sum",
        "aggregate_metrics",
        "group_stratified_metrics",
        "federated_eval_reports",
        "participant_counts",
    )
    joint = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(
            f.participation, dp_event.ComposedDpEvent([dp_event.GaussianDpEvent(f.noise_multiplier)] * 5)
        ),
        f.rounds,
    )
    assert acc.epsilon == pytest.approx(rdp_epsilon(joint, f.dp_delta), rel=1e-9)
    four_sums = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(
            f.participation, dp_event.ComposedDpEvent([dp_event.GaussianDpEvent(f.noise_multiplier)] * 4)
        ),
        f.rounds,
    )
    assert 215 < rdp_epsilon(four_sums, f.dp_delta) < 221  # the independent check: 218
    for k, joint_eps in ((4, rdp_epsilon(four_sums, f.dp_delta)), (5, acc.epsilon)):
        independent = dp_event.SelfComposedDpEvent(
            dp_event.PoissonSampledDpEvent(f.participation, dp_event.GaussianDpEvent(f.noise_multiplier)), k * f.rounds
        )
        assert joint_eps > 1.15 * rdp_epsilon(independent, f.dp_delta)  # 218 vs 170 for the four sums


def test_blocked_observables_are_not_released_and_cost_nothing():
    sc = dp_scenario()
    full = account(sc, 0.3)
    no_attr = account(sc.replace(**{"federation.attribute_use": False}), 0.3)
    no_probe = account(sc.replace(**{"federation.attribute_use": False, "federation.public_probe": False}), 0.3)
    assert len(full.releases) == 5 and "group_stratified_metrics" not in no_attr.releases
    assert no_probe.releases == ("noised_update_sum", "aggregate_metrics", "participant_counts")
    assert full.epsilon > no_attr.epsilon > no_probe.epsilon
    blocked = sc.replace(**{"federation.attribute_use": False, "federation.public_probe": False})
    assert no_probe.releases == accounted_releases(blocked) + ("participant_counts",)


def test_secagg_threshold_multiplies_the_sensitivity():
    """Below the threshold m a round withholds every contribution; the m-th client then
    releases m at once: the accounted multiplier is z / m."""
    sc = dp_scenario(**{"federation.secagg_min": 3})
    acc = account(sc, 0.3)
    assert acc.noise_multipliers == (0.8 / 3,) * 4 + (0.8,)  # the count's sensitivity stays 1
    assert acc.epsilon > account(dp_scenario(), 0.3).epsilon


def test_nothing_leaves_a_central_dp_round_unnoised():
    """Under central DP the count and weight sum carry N(0, z^2) noise and every report
    sum is a number whoever joined (NaN-or-not would tell the count): only noised,
    accounted values depend on the mask."""
    sc = dp_scenario(**{"federation.secagg_min": 3})
    delta = jnp.ones((10, 17))
    key = jax.random.key(0)
    few, many, none = (jnp.asarray(m, jnp.float32) for m in ([1] * 2 + [0] * 8, [1] * 7 + [0] * 3, [0] * 10))
    outs = [secure_aggregate(delta, m, jnp.ones(10), key, sc) for m in (few, many, none)]
    for out, m in zip(outs, (few, many, none)):
        assert float(out.count) != float(m.sum()) and float(out.weight_sum) == float(out.count)
        assert np.isfinite(np.asarray(out.update_sum)).all()
    # below the threshold (2 reports < 3) only the noise is released: the same sum as no report at all
    np.testing.assert_allclose(np.asarray(outs[0].update_sum), np.asarray(outs[2].update_sum))
    keys = jax.random.split(jax.random.key(9), 4000)
    counts = np.asarray(jax.vmap(lambda k: secure_aggregate(delta, many, jnp.ones(10), k, sc).count)(keys))
    assert abs(counts.mean() - 7) < 4 * 0.8 / np.sqrt(4000) and abs(counts.std() - 0.8) < 4 * 0.8 / np.sqrt(2 * 4000)
    rep = [release(jnp.ones((10, 3)), m, 1.0, key, sc) for m in (few, many)]
    assert all(np.isfinite(np.asarray(r)).all() for r in rep)
    # without DP the threshold withholds the round and the server knows it (nothing is private)
    plain = dp_scenario(**{"federation.dp": "none", "federation.secagg_min": 3})
    assert np.isnan(np.asarray(release(jnp.ones((10, 3)), few, 1.0, key, plain))).all()


def test_central_dp_trace_holds_only_the_noised_count():
    sc = dp_scenario(**{"federation.dropout": 0.2, "federation.rounds": 40})
    tr = run(sc, 0)
    err = tr.obs_count.values - tr.participants.values
    assert np.all(err != 0) and abs(err.std() - 0.8) < 0.8 * 4 / np.sqrt(2 * 40)
    assert tr.attrs["dp_count_release"].startswith("released with N(0, 0.8^2) noise")
    plain = run(
        dp_scenario(**{"federation.dp": "none", "federation.clip": None, "federation.noise_multiplier": 0.0}), 0
    )
    np.testing.assert_array_equal(plain.obs_count.values, plain.participants.values)


def test_dp_sampling_is_never_truncated_by_report_slots():
    with pytest.raises(
        ScenarioError, match=r"federation.clients_per_round \(20\) must equal population.num_clients \(60\)"
    ):
        dp_scenario(**{"federation.clients_per_round": 20})
    sc = dp_scenario(**{"federation.participation": 0.5})
    q = jnp.full(60, 0.5)
    draws = jax.vmap(lambda k: participation_draw(sc, q, k))(jax.random.split(jax.random.key(5), 4000))
    masks, volunteers = np.asarray(draws[0]), np.asarray(draws[1])
    np.testing.assert_array_equal(masks.sum(1), volunteers)  # nothing cut
    # the Poisson sample the accountant assumes: Binomial(60, 0.5) counts
    assert abs(masks.sum(1).mean() - 30) < 4 * np.sqrt(15 / 4000)
    assert abs(masks.sum(1).var() - 15) < 4 * 15 * np.sqrt(2 / 4000)
    tr = run(dp_scenario(**{"federation.participation": 0.9}), 0)
    assert float(tr.capped_reports.sum()) == 0
    # without DP the slots do cut, and the trace says by how much
    capped = run(
        dp_scenario(**{"federation.dp": "none", "federation.clients_per_round": 10, "federation.participation": 0.9}), 0
    )
    assert float(capped.capped_reports.min()) > 0
    np.testing.assert_array_equal(capped.participants.values, 10)


def test_pld_is_tighter_than_rdp_and_both_finite():
    for sc, q in (
        (preset("phase"), 0.34),
        (preset("dp-heavy"), 0.1),
        (dp_scenario(), 0.3),
        (dp_scenario(**{"federation.dp": "local", "federation.clients_per_round": 20}), 0.3),
    ):
        r, p = account(sc, q, "rdp").epsilon, account(sc, q, "pld").epsilon
        assert np.isfinite(r) and np.isfinite(p) and 0 < p <= r, (sc.name, r, p)


def test_local_dp_accounts_replace_one_adjacency():
    """A local randomizer's two inputs differ by up to 2 s: multiplier z / 2, no sampling."""
    sc = dp_scenario(**{"federation.dp": "local", "federation.clients_per_round": 20})
    acc = account(sc, 0.3)
    assert acc.adjacency == "replace_one_client" and acc.sampling_probability == 1.0
    assert acc.noise_multipliers == (0.4,) * 4 and "participant_counts" not in acc.releases
    joint = dp_event.SelfComposedDpEvent(dp_event.ComposedDpEvent([dp_event.GaussianDpEvent(0.4)] * 4), 6)
    assert acc.epsilon == pytest.approx(rdp_epsilon(joint, 1e-5), rel=1e-9)


def test_trace_records_the_whole_accounting():
    tr = run(dp_scenario(), 0)
    acc = Accounting.from_attrs(tr.attrs)
    assert acc == account(dp_scenario(), float(np.float32(0.3)))  # q_max = max_c q_c, in the engine's float32
    assert acc.adjacency == "add_or_remove_one_client" and "Poisson" in acc.sampling
    assert json.loads(tr.attrs["dp_releases"]) == list(acc.releases)
    none = run(dp_scenario(**{"federation.dp": "none", "federation.clip": None, "federation.noise_multiplier": 0.0}), 0)
    assert none.attrs["dp_epsilon"] == np.inf and Accounting.from_attrs(none.attrs).releases == ()
