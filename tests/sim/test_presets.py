"""Every preset keeps its promise, and the taxonomy graph and the simulation agree on
what each constraint set can see.

One sweep per preset, 8 seeds, with every access granted: the server's access only
decides which detectors run (it changes nothing in the world or in any one detector's
calibration), so the verdict under any constraint set is the same runs judged with the
detectors that set leaves. The preset's own constraints give its promise; every subset
of the access constraints is checked against the graph."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

from silentfail.constraints import ACCESS_CONSTRAINTS, scenario_constraints, with_constraints
from silentfail.sim.detectors import deployed
from silentfail.sim.scenario import EXHIBIT_KINDS, MODES, ScenarioError, preset, preset_exhibits, preset_names
from silentfail.sim.sweep import sweep
from silentfail.sim.verdict import judge, summarize
from silentfail.taxonomy import builtin_taxonomy
from silentfail.taxonomy.queries import detector_status, detectors_for

TAX = builtin_taxonomy()
SEEDS = 8
#: Every access the server could have (no access constraint in force).
ALL_ACCESS = {f"federation.{flag}": not value for flag, value in ACCESS_CONSTRAINTS.values()}


@functools.lru_cache(maxsize=None)
def open_runs(name: str):
    """The preset's runs with every detector deployed."""
    return sweep(preset(name).replace(**ALL_ACCESS), {}, seeds=SEEDS)


def judged(ds, sc):
    """The verdicts of ``ds``'s runs with only the detectors ``sc`` deploys."""
    cols = [list(ds.detector.values).index(d) for d in deployed(sc)]
    t_f = ds["failure_round"].values
    j = judge(t_f, ds["detection_round"].values[..., cols], sc.monitor.grace, sc.monitor.lead)
    return t_f, j


def test_every_preset_states_what_it_exhibits():
    promised = {name: preset_exhibits(name) for name in preset_names()}
    assert all(promised.values()), [n for n, e in promised.items() if not e]
    assert {m for e in promised.values() for m in e} == set(MODES)  # every mode has a preset that shows it
    assert {k for e in promised.values() for k in e.values()} == {"silent", "detected"}


@pytest.mark.parametrize("name", preset_names())
def test_the_preset_keeps_its_promise_over_8_seeds(name):
    sc = preset(name)
    ds = open_runs(name)
    assert ds["valid_run"].values.all(), f"{name}: a seed diverged (eta * lambda_max {ds['eta_lambda_max'].values})"
    t_f, j = judged(ds, sc)
    s = summarize(t_f, j, axis=0)
    for mode, kind in preset_exhibits(name).items():
        m = MODES.index(mode)
        assert s["p_fail"][m] >= 0.5, (name, mode, s["p_fail"][m])
        if kind == "silent":
            assert s["p_silent_given_fail"][m] >= 0.5, (name, mode, s["p_silent_given_fail"][m])
        if kind == "detected":
            assert s["p_detected_given_fail"][m] >= 0.5, (name, mode, s["p_detected_given_fail"][m])


@pytest.mark.parametrize("name", preset_names())
def test_graph_and_simulation_agree_under_every_subset_of_the_access_constraints(name):
    """Structurally silent in the graph implies never detected in the simulation, and a
    simulated detection by a detector implies it survives the constraint set in the graph."""
    base = preset(name).replace(**ALL_ACCESS)
    ds = open_runs(name)
    detections = 0
    for k in range(len(ACCESS_CONSTRAINTS) + 1):
        for subset in itertools.combinations(ACCESS_CONSTRAINTS, k):
            sc = with_constraints(base, subset)
            cons = scenario_constraints(sc)
            alive = {d for d in ds.detector.values if detector_status(TAX, str(d), cons).survives}
            assert set(deployed(sc)) == alive, (name, subset)
            t_f, j = judged(ds, sc)
            det_rounds = ds["detection_round"].values[..., [list(ds.detector.values).index(d) for d in deployed(sc)]]
            for m, mode in enumerate(MODES):
                surviving = set(detectors_for(TAX, mode, cons))
                if not surviving:
                    assert not j.detected[:, m].any(), (name, subset, mode)
                window = (det_rounds[:, m] >= t_f[:, m, None] - sc.monitor.lead) & (t_f[:, m, None] >= 0)
                window &= det_rounds[:, m] <= t_f[:, m, None] + sc.monitor.grace
                caught = {d for i, d in enumerate(deployed(sc)) if window[:, i].any()}
                assert caught <= surviving, (name, subset, mode, caught - surviving)
                detections += len(caught)
    assert detections > 0  # the check saw detections, not only silence


def test_the_preset_verdict_is_the_open_runs_judged_with_its_detectors():
    """What lets one sweep serve every constraint set: the preset's own sweep gives the
    same verdicts as the open runs judged with the preset's detectors."""
    name = "spurious-correlation"
    own = sweep(preset(name), {}, seeds=SEEDS)
    t_f, j = judged(open_runs(name), preset(name))
    np.testing.assert_array_equal(own["failure_round"].values, t_f)
    np.testing.assert_array_equal(own["detected"].values, j.detected)
    np.testing.assert_array_equal(own["silent"].values, j.silent)


def test_poisoned_clients_erode_with_no_shift_and_the_attack_is_named_the_cause():
    ds = open_runs("poisoned-clients")
    assert bool(ds["caused_without_shift"].sel(mode="alignment_erosion"))
    assert str(ds["null_cause"].sel(mode="alignment_erosion").values) == "byzantine clients"


def test_a_bad_exhibits_entry_is_refused_naming_the_mode(monkeypatch):
    from silentfail.sim import scenario as scn

    monkeypatch.setattr(scn, "_preset_data", lambda name: {"exhibits": {"no_such_mode": "silent"}})
    with pytest.raises(ScenarioError, match="exhibits.no_such_mode"):
        preset_exhibits("default")
    monkeypatch.setattr(scn, "_preset_data", lambda name: {"exhibits": {"amplified_bias": "loud"}})
    with pytest.raises(ScenarioError, match=f"one of {', '.join(EXHIBIT_KINDS)}"):
        preset_exhibits("default")
