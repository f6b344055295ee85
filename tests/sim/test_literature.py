"""The literature's claims (sim/literature.py): each stated qualitative outcome holds with
fixed seeds and its margin, the experiment's numbers are the engine's, and the
assessment rule is what it says."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import xarray as xr

from silentfail.sim import literature as L
from silentfail.sim.population import build_population
from silentfail.sim.run import run
from silentfail.sim.scenario import ScenarioError
from silentfail.sim.transfer import overrides


@pytest.mark.parametrize("key", L.CLAIM_KEYS)
def test_each_claim_holds_with_fixed_seeds_and_margin(claim_results, key):
    ds = claim_results[key]
    claim = L.get_claim(key)
    q = claim.quantity
    assert int(ds["n_valid"].sel(quantity=q).min()) == claim.seeds, "a run diverged or was dropped"
    m = ds["mean"].sel(quantity=q).values
    effect = claim.direction * (m[-1] - m[0])
    assert effect > claim.margin, f"{key}: effect {effect:.4f} <= margin {claim.margin}"
    assert effect > 3 * ds.attrs["effect_se"], f"{key}: effect {effect:.4f} within 3 SE ({ds.attrs['effect_se']:.4f})"
    assert ds.attrs["holds"] == 1


def test_every_claim_cites_known_references_and_names_valid_arms():
    from silentfail.taxonomy.references import BIBTEX

    for c in L.CLAIMS:
        assert set(c.cites) <= set(BIBTEX), c.key
        assert len(c.arms) == len(c.x) >= 2, c.key
        assert c.direction in (-1, 1) and c.margin > 0
        c.arm_scenarios()  # every arm validates


def test_switching_holds_back_erosion_and_uses_centralized_rounds(claim_results):
    ds = claim_results["adaptive_switching"]
    pub = ds["mean"].sel(quantity="public_rounds").values
    assert pub[0] == 0 and pub[1] > 0 and pub[2] > 0
    # the alternating schedule centralizes exactly every second round of the 30
    assert L.get_claim("adaptive_switching").scenario().federation.rounds == 30 and pub[1] == 15


def test_client_drift_vanishes_without_heterogeneity(claim_results):
    drift = claim_results["client_drift"]["value"].sel(quantity="drift").values
    np.testing.assert_allclose(drift[0], 0.0, atol=1e-4)
    assert np.all(drift[-1] > drift[0])


def test_claim_quantities_are_the_engines_trace_values():
    """One arm of a claim, seed 3: the late values measure() reports equal those of the
    full Trace of run() on the same (scenario, seed)."""
    claim = L.get_claim("byzantine")
    arm = claim.arms[2]
    values = L.measure(claim.scenario(), (arm,), seeds=4)[0, 3]
    tr = run(claim.scenario().replace(**arm), 3)
    late = lambda v: float(tr[v].values[-8:].mean())  # noqa: E731 - 30 rounds: the last quarter is 8 rounds
    for name in ("global_p0_acc", "acc_parity_gap", "global_alignment", "acc_mean"):
        np.testing.assert_allclose(values[L.quantities().index(name)], late(name), rtol=2e-5, atol=2e-6)
    for i, m in enumerate(tr.mode.values):
        np.testing.assert_allclose(
            values[L.quantities().index(f"mode:{m}")], float(tr.mode_metric.values[-8:, i].mean()), rtol=2e-5, atol=2e-6
        )
        assert values[L.quantities().index(f"failed:{m}")] == float(tr.failed.values[i])


def test_minority_accuracy_is_the_worst_odd_group_with_more_than_two_groups():
    """With four groups, ``minority_acc`` is the worst of the minority groups (1 and 3)
    in each round, late-averaged as the trace's group accuracies are (with two groups it
    is group 1's, the test above); group 3's noisier data make it the worst."""
    claim = L.get_claim("byzantine")
    sc = claim.scenario().replace(**{"world.groups": 4, "world.noise_std": [1.0, 1.0, 1.0, 1.6]})
    values = L.measure(sc, (claim.arms[0],), seeds=2)[0, 1]
    tr = run(sc.replace(**claim.arms[0]), 1)
    worst = tr["group_acc"].values[-8:][:, [1, 3]].min(-1).mean()
    np.testing.assert_allclose(values[L.quantities().index("minority_acc")], worst, rtol=2e-5, atol=2e-6)
    assert worst < tr["group_acc"].values[-8:, 1].mean() - 0.01  # not group 1's, as the two-group rule read


def test_client_drift_is_fedavgs_fixed_point():
    """The closed-form fixed point equals iterating the expected FedAvg round."""
    claim = L.get_claim("client_drift")
    sc = claim.scenario().replace(**{"population.num_clients": 40, "federation.clients_per_round": 40})
    _, pop = build_population(sc, jax.random.key(0))
    P, b, M, m = (np.asarray(a, np.float64) for a in (pop.P, pop.b, pop.M, pop.m))
    p = np.asarray(pop.weight * pop.q, np.float64)
    theta = np.zeros(P.shape[-1])
    for _ in range(20000):
        step = np.einsum("n,ni->i", p, np.einsum("nij,j->ni", P, theta) + b - theta) / p.sum()
        theta = theta + step
        if np.abs(step).max() < 1e-12:
            break
    star = np.linalg.solve(np.einsum("n,nij->ij", p, M), np.einsum("n,ni->i", p, m))
    expected = np.linalg.norm(theta - star) / np.linalg.norm(star)
    np.testing.assert_allclose(float(L.client_drift(pop)), expected, rtol=1e-3)


def _fake(values, direction=1, margin=0.1) -> xr.Dataset:
    v = np.asarray(values, float)[:, :, None]
    ds = xr.Dataset(
        {"value": (("arm", "seed", "quantity"), v)},
        coords={"arm": np.arange(v.shape[0]), "seed": np.arange(v.shape[1]), "quantity": ["q"]},
    )
    ds.attrs.update(quantity="q", direction=direction, margin=margin)
    return L.assess(ds)


def test_assess_needs_the_margin_and_three_standard_errors():
    assert _fake([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]).attrs["holds"] == 1
    assert _fake([[0.0, 0.0, 0.0], [0.05, 0.05, 0.05]]).attrs["holds"] == 0  # below the margin
    noisy = _fake([[0.0, 1.0, -1.0], [0.2, 1.5, -0.8]])  # above the margin, within 3 SE
    assert noisy.attrs["effect"] > 0.1 and noisy.attrs["holds"] == 0
    assert _fake([[0.5, 0.5], [0.0, 0.0]], direction=-1).attrs["holds"] == 1
    se = _fake([[0.0, 2.0], [1.0, 1.0]]).attrs["effect_se"]
    assert se == pytest.approx(np.std([0.0, 2.0], ddof=1) / np.sqrt(2))


def test_unknown_claims_and_too_few_seeds_are_rejected():
    with pytest.raises(ScenarioError, match="unknown literature claim 'nope'; known: silent_under_privacy"):
        L.get_claim("nope")
    with pytest.raises(ValueError, match="seeds must be >= 2"):
        L.run_claim("teacher_bias", seeds=1)


def test_an_interrupted_claims_run_resumes_without_recomputing(tmp_path, monkeypatch):
    first = L.run_claims(("synthetic_bias",), seeds=2, folder=tmp_path)
    assert (tmp_path / "synthetic_bias.nc").exists()

    def boom(*a, **k):
        raise AssertionError("a finished claim was run again")

    monkeypatch.setattr(L, "run_claim", boom)
    again = L.run_claims(("synthetic_bias",), seeds=2, folder=tmp_path)
    np.testing.assert_array_equal(again["synthetic_bias"]["value"].values, first["synthetic_bias"]["value"].values)
    with pytest.raises(AssertionError, match="run again"):  # other seeds: a different result, so it is run
        L.run_claims(("synthetic_bias",), seeds=3, folder=tmp_path)


def test_measure_runs_whole_lanes_and_drops_the_padding():
    """lax.map's remainder batch is never used (the client-drift program's remainder path
    never returned on XLA's CPU runtime): the runs are padded to a multiple of LANES."""
    from silentfail.sim.batch import LANES
    from silentfail.sim.literature import _whole_lanes

    seen = []

    def fn(values, seeds):
        seen.append(len(seeds))
        return np.stack([seeds.astype(np.float32), values[:, 0]], axis=1)

    values = np.arange(12, dtype=np.float32)[:, None]
    out = _whole_lanes(fn, values, np.arange(12, dtype=np.uint32))
    assert seen == [2 * LANES] and out.shape == (12, 2)
    np.testing.assert_array_equal(out[:, 0], np.arange(12))  # each run's own seed, in order
    _whole_lanes(fn, values[:8], np.arange(8, dtype=np.uint32))
    assert seen[-1] == LANES  # a whole number of lanes is not padded


def test_a_claim_with_no_valid_value_in_an_arm_is_undetermined_not_failed():
    # every run of the last arm NaN (e.g. a quantity the model does not define): the
    # verdict is NaN with the count of valid runs, never "does not hold"
    ds = _fake([[0.0, 0.1, 0.2], [np.nan, np.nan, np.nan]])
    assert np.isnan(ds.attrs["holds"]) and np.isnan(ds.attrs["effect"])
    assert "no valid run" in ds.attrs["undetermined"]


def test_drift_is_a_linear_readout_quantity():
    # FedAvg's fixed point is the closed form of the linear readout's affine local maps:
    # under a Monte Carlo model the claim does not apply, and its runs never carry the
    # linear closed form as if it were the model's
    for kind in ("mlp", "lora", "digits"):
        claim, why = L.claim_with("client_drift", overrides(kind))
        assert claim is None and "'drift'" in why and "linear readout" in why, kind
    claim, why = L.claim_with("client_drift", overrides("linear"))
    assert claim is not None and why is None
