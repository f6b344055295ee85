"""Detectors and observables: they match the taxonomy, their calibration holds its
false-alarm rate, blocked access never reaches a verdict, aggregate masking."""

from __future__ import annotations

import numpy as np
import pytest

from silentfail.constraints import scenario_constraints, with_constraints
from silentfail.sim import detectors as dt
from silentfail.sim.observe import ACCESS, OBSERVABLES, available_access, available_observables
from silentfail.sim.run import run
from silentfail.sim.scenario import DETECTORS, MODES, ScenarioError, preset
from silentfail.sim.sweep import sweep
from silentfail.sim.verdict import verdict
from silentfail.taxonomy import builtin_taxonomy
from silentfail.taxonomy.schema import NodeKind

TAX = builtin_taxonomy()

#: A small DP world: every secure sum the server sees is noised.
SMALL = preset("phase").replace(
    **{
        "world.spurious_strength": 1.0,  # the world these detector checks were set in (the phase
        "personalization.eta": 0.1,  # preset's before it was tuned to fail in all six modes)
        "population.num_clients": 100,
        "federation.clients_per_round": 100,
        "federation.participation": 0.5,
        "federation.noise_multiplier": 0.2,
        "federation.rounds": 12,
        "monitor.calibration_seeds": 200,
    }
)


def test_detectors_match_the_taxonomy():
    for name, det in dt.REGISTRY.items():
        node = TAX.node(name)
        assert node.kind == NodeKind.DETECTOR
        assert node.implementation == f"silentfail.sim.detectors.{det.statistic.__name__}"
        assert set(det.observables) == set(TAX.successors(name, "observes")), name
        assert set(det.requires) == set(TAX.successors(name, "requires")), name
        assert set(dt.watched(name)) == set(TAX.successors(name, "detects")), name
    assert set(TAX.ids(NodeKind.DETECTOR)) == set(dt.REGISTRY)
    assert tuple(dt.REGISTRY) == DETECTORS


def test_observables_and_access_match_the_taxonomy():
    assert set(ACCESS) == set(TAX.ids(NodeKind.ACCESS))
    for name, ob in OBSERVABLES.items():
        assert set(ob.requires) == set(TAX.successors(name, "requires")), name
    # each access constraint blocks exactly what the taxonomy says
    everything = preset("default").replace(
        **{
            "federation.secure_aggregation": False,
            "federation.personal_model_access": True,
            "federation.raw_data_access": True,
        }
    )
    assert available_access(everything) == frozenset(ACCESS)
    for c in ("secure_aggregation", "no_attribute_use", "no_personal_model_access", "no_raw_data_access"):
        sc = with_constraints(everything, [c])
        assert set(ACCESS) - available_access(sc) == set(TAX.successors(c, "blocks")), c


def test_blocked_observables_are_absent_from_the_trace_not_zero_filled():
    sc = with_constraints(
        SMALL, ["secure_aggregation", "no_attribute_use", "no_personal_model_access", "no_raw_data_access"]
    )
    tr = run(sc, 0)
    assert "obs_group" not in tr and "obs_inspect" not in tr and "obs_audit" not in tr
    assert {"obs_update_sum", "obs_report", "obs_fedeval", "obs_global", "obs_count"} <= set(tr.data_vars)
    granted = SMALL.replace(**{"federation.raw_data_access": True, "federation.personal_model_access": True})
    open_ = run(with_constraints(granted, []), 0)
    assert {"obs_group", "obs_inspect", "obs_audit"} <= set(open_.data_vars)
    assert set(available_observables(with_constraints(granted, []))) == set(OBSERVABLES)


def test_unlisted_constraints_keep_the_federated_baseline():
    """Naming some constraints never lifts the baseline: without the scenario granting
    raw data or personal models, the oracle audit and update inspection stay undeployed."""
    sc = with_constraints(preset("phase"), ["secure_aggregation", "central_dp"])
    assert {"no_raw_data_access", "no_personal_model_access", "secure_aggregation", "central_dp"} <= set(
        scenario_constraints(sc)
    )
    assert not {"central_audit", "update_inspection"} & set(dt.deployed(sc))
    assert "no_attribute_use" not in scenario_constraints(sc)  # not named: lifted


def test_citation_uses_the_one_scenario_to_constraint_mapping():
    from silentfail.citation import scenario_nodes

    for name in ("default", "phase", "dp-heavy", "participation-disparity"):
        sc = preset(name)
        nodes = set(scenario_nodes(sc))
        constraints = set(TAX.ids(NodeKind.CONSTRAINT))
        assert nodes & constraints == set(scenario_constraints(sc)), name


@pytest.fixture(scope="module")
def small_sweep():
    """Detector behaviour over shift strength in the small DP world (one compile)."""
    return sweep(SMALL, {"shifts.strength": [0.0, 0.5, 1.0]}, seeds=24, chunk=64, theory=False)


def test_conformal_rule_holds_its_false_alarm_rate_on_synthetic_data():
    """Union of 3 correlated channels with unequal scales and a heavy tail, 20 + 19
    calibration runs: the split-conformal false-alarm rate on fresh runs is at most
    alpha, and within the discreteness 1/(n+1) of it."""
    rng = np.random.default_rng(0)
    alpha, nf, n, reps = 0.1, 20, 19, 3000
    rates = []
    for _ in range(reps):
        m = nf + n + 200
        z = rng.standard_normal((m, 1))
        x = z + rng.standard_normal((m, 3)) * np.array([0.3, 1.0, 3.0])
        x[:, 0] += rng.standard_cauchy(m) * 0.1  # a heavy-tailed channel
        h, ok = dt._split_conformal(x[:nf], x[nf : nf + n], alpha)
        assert ok
        rates.append(np.mean(np.any(x[nf + n :] > h, axis=1)))
    mean, se = float(np.mean(rates)), float(np.std(rates) / np.sqrt(reps))
    assert alpha - 1 / (n + 1) - 3 * se <= mean <= alpha + 3 * se, (mean, se)


def test_too_few_calibration_runs_is_rejected_naming_the_field():
    with pytest.raises(ScenarioError, match="monitor.calibration_seeds"):
        SMALL.replace(**{"monitor.calibration_seeds": 60, "monitor.alpha": 0.05})


def test_false_alarm_rate_on_null_runs_is_within_the_binomial_interval(small_sweep):
    """Achieved on 100 held-out null runs per detector; and on the judged runs at shift
    strength 0 (24 seeds, themselves null runs with other seeds)."""
    ds = small_sweep
    alpha = ds.attrs["alpha"]
    n = ds.attrs["calibration_seeds"] // 2
    far = ds["false_alarm_rate"].sel({"shifts.strength": 0.0}).values
    se = np.sqrt(alpha * (1 - alpha) / n)
    assert np.all(far <= alpha + 3 * se), far
    assert np.all(ds["calibrated"].values)
    p0 = ds["p_alarm"].sel({"shifts.strength": 0.0}).values
    assert np.all(p0 <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / 24)), p0
    # the pooled rate is not far below alpha either: at most the discreteness of the
    # conformal quantile (1 / (n_cal + 1), n_cal = a quarter of the runs) plus sampling error
    n_cal = ds.attrs["calibration_seeds"] // 4
    assert far.mean() >= alpha - 1 / (n_cal + 1) - 3 * se / np.sqrt(len(far)), far


def test_bayesian_changepoint_holds_its_false_alarm_rate_and_sees_erosion(small_sweep):
    """The observable-only numpyro-model detector (exact posterior odds with the public DP
    noise scale): deployed under secure aggregation + central DP, its achieved false-alarm
    rate on held-out null runs is at most alpha (binomial tolerance), and it alarms more
    often under full shift than under none."""
    ds = small_sweep
    assert "bayesian_changepoint" in ds.detector.values
    alpha, n = ds.attrs["alpha"], ds.attrs["calibration_seeds"] // 2
    far = ds["false_alarm_rate"].sel(detector="bayesian_changepoint").values
    assert np.all(far <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / n)), far
    p = ds["p_alarm"].sel(detector="bayesian_changepoint").values
    assert p[-1] > p[0], p


def test_power_increases_with_shift_strength(small_sweep):
    ds = small_sweep
    det = (ds["first_detection"] >= 0).mean("seed")  # any counting alarm, per mode
    watched_and_failing = [m for m in MODES if float(ds["p_fail"].sel(mode=m, **{"shifts.strength": 1.0})) > 0.5]
    assert watched_and_failing
    for m in watched_and_failing:
        d = det.sel(mode=m).values
        assert d[2] >= d[0], (m, d)
    p = ds["p_alarm"].max("detector").values
    assert p[2] > p[0] + 0.3 and p[1] >= p[0], p


def test_a_blocked_detector_never_appears_in_a_verdict():
    sc = with_constraints(
        SMALL, ["secure_aggregation", "no_attribute_use", "no_personal_model_access", "no_raw_data_access"]
    )
    assert "no_attribute_use" in scenario_constraints(sc)
    assert "group_stratified_monitor" not in dt.deployed(sc)
    ds = sweep(sc, {}, seeds=2, chunk=8, theory=False)
    assert "group_stratified_monitor" not in ds.detector.values
    assert not {"update_inspection", "central_audit"} & set(ds.detector.values)
    # lifting secure aggregation makes individual updates visible; the oracle needs both model and data
    open_ = with_constraints(SMALL, ["no_personal_model_access"])
    assert "update_inspection" in dt.deployed(open_) and "central_audit" not in dt.deployed(open_)


def test_aggregate_masking_is_reproduced():
    """Minority-rich clients rarely join and the minority's best classifier differs: the
    participants' reported accuracy holds while the minority's falls; the aggregate
    monitor stays at its false-alarm rate, the group-stratified monitor fires when the
    attribute may be used, and is absent when it may not."""
    sc = preset("participation-disparity").replace(
        **{
            "population.num_clients": 300,
            "federation.clients_per_round": 300,
            "federation.participation": 0.2,
            "federation.rounds": 30,
            "personalization.lam": 10.0,
            "shifts.spurious_mean": 0.0,  # the preset's label-attribute correlation off: a pure masking world
            "shifts.spurious_spread": 0.0,
            "world.minority_core_angle": 2.0,
            "federation.participation_disparity": 1.0,
            "federation.dp": "central",
            "federation.clip": 1.0,
            "federation.noise_multiplier": 0.3,
            "monitor.calibration_seeds": 80,
        }
    )
    agg_alarms, grp_alarms = 0, 0
    seeds = range(4)
    for seed in seeds:
        tr = run(sc, seed)
        reported = tr["obs_report"].values[:, 0] / tr["obs_count"].values
        assert reported[-5:].mean() >= reported[:5].mean() - 0.01
        minority, majority = tr["group_acc"].values[:, 1], tr["group_acc"].values[:, 0]
        assert minority[-1] < minority[0] - 0.05 and majority[-1] > majority[0]
        v = verdict(tr)
        agg_alarms += int(v["alarm_round"].sel(detector="aggregate_monitor")) >= 0
        grp_alarms += int(v["alarm_round"].sel(detector="group_stratified_monitor")) >= 0
    assert grp_alarms == len(seeds)
    assert agg_alarms <= 1  # at most what a 5% false-alarm rate gives over 4 runs
    assert "group_stratified_monitor" not in dt.deployed(sc.replace(**{"federation.attribute_use": False}))


@pytest.mark.parametrize(
    "update, field",
    [
        ({"monitor.detectors": ["aggregate_monitor", "no_such_detector"]}, "monitor.detectors"),
        ({"monitor.alpha": 0.0}, "monitor.alpha"),
        ({"monitor.grace": -1}, "monitor.grace"),
        ({"shifts.strength": 1.5}, "shifts.strength"),
        ({"federation.secure_aggregation": "maybe"}, "federation.secure_aggregation"),
    ],
)
def test_bad_monitor_and_access_settings_are_rejected_naming_the_field(update, field):
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        SMALL.replace(**update)


def test_no_public_probe_is_a_constraint_the_graph_and_the_engine_agree_on():
    """Without public data the probe-based detectors cannot run: the scenario puts the
    constraint no_public_probe in force, the graph blocks exactly the detectors that need
    the public probe set, and the engine deploys none of them."""
    from silentfail.taxonomy.queries import detector_status

    sc = SMALL.replace(**{"federation.public_probe": False})
    cons = scenario_constraints(sc)
    assert "no_public_probe" in cons and "no_public_probe" not in scenario_constraints(SMALL)
    needs_probe = {d for d in dt.DETECTORS if "public_probe_set" in TAX.successors(d, "requires")}
    assert needs_probe  # server_probe_eval and federated_evaluation
    for scenario in (SMALL, sc):
        graph = {d for d in dt.DETECTORS if detector_status(TAX, d, scenario_constraints(scenario)).survives}
        assert set(dt.deployed(scenario)) == graph
    assert not needs_probe & set(dt.deployed(sc)) and needs_probe <= set(dt.deployed(SMALL))
