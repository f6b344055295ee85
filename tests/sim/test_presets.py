"""Every preset keeps its promise, and the taxonomy graph and the simulation agree on
what each constraint set can see (a structurally silent mode is never detected; every
simulated detection has a surviving detector path, of either scope: the simulation
counts an alarm of a global-model channel in the failure's window too).

One sweep per preset, 8 seeds, with every access granted: the server's access only
decides which detectors run (it changes nothing in the world or in any one detector's
calibration; checked below), so the verdict under any constraint set is the same runs
judged with the detectors that set leaves. The preset's own constraints give its
promise; every subset of the access constraints is checked against the graph."""

from __future__ import annotations

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


def open_runs(sc, seeds=SEEDS, attribute_nulls=False):
    """The runs of ``sc`` with every detector deployed (the simulated verdicts only: no
    population-limit runs of the theory, which nothing here reads)."""
    return sweep(sc.replace(**ALL_ACCESS), {}, seeds=seeds, attribute_nulls=attribute_nulls, theory=False)


def judged(ds, sc):
    """The verdicts of ``ds``'s runs with only the detectors ``sc`` deploys."""
    cols = [list(ds.detector.values).index(d) for d in deployed(sc)]
    t_f = ds["failure_round"].values
    return t_f, judge(t_f, ds["detection_round"].values[..., cols], sc.monitor.grace, sc.monitor.lead)


def graph_disagreements(ds, base) -> tuple[list, int]:
    """Over every subset of the access constraints: the (subset, mode, detectors) where a
    deployed detector detected the mode in the simulation although the graph has no
    surviving detector path for it (or the graph's and the engine's deployed sets
    differ), and the number of detections checked."""
    bad, checked = [], 0
    names = list(ds.detector.values)
    for k in range(len(ACCESS_CONSTRAINTS) + 1):
        for subset in itertools.combinations(ACCESS_CONSTRAINTS, k):
            sc = with_constraints(base, subset)
            cons = scenario_constraints(sc)
            dets = deployed(sc)
            alive = {d for d in names if detector_status(TAX, str(d), cons).survives}
            if set(dets) != alive:
                bad.append((subset, "deployed", set(dets) ^ alive))
            t_f, j = judged(ds, sc)
            rounds = ds["detection_round"].values[..., [names.index(d) for d in dets]]
            for m, mode in enumerate(MODES):
                surviving = set(detectors_for(TAX, mode, cons))
                tf = t_f[:, m, None]
                window = (tf >= 0) & (rounds[:, m] >= tf - sc.monitor.lead) & (rounds[:, m] <= tf + sc.monitor.grace)
                caught = {d for i, d in enumerate(dets) if window[:, i].any()}
                if caught - surviving or (not surviving and j.detected[:, m].any()):
                    bad.append((subset, mode, caught - surviving))
                checked += len(caught)
    return bad, checked


def test_every_preset_states_what_it_exhibits():
    promised = {name: preset_exhibits(name) for name in preset_names()}
    assert all(promised.values()), [n for n, e in promised.items() if not e]
    assert {m for e in promised.values() for m in e} == set(MODES)  # every mode has a preset that shows it
    assert {k for e in promised.values() for k in e.values()} == {"silent", "detected"}
    # both kinds of silence are promised: structural (no detector path survives the
    # preset's constraints) and statistical (a detector survives but lacks the power)
    statistical = [
        (n, m)
        for n, e in promised.items()
        for m, k in e.items()
        if k == "silent" and detectors_for(TAX, m, scenario_constraints(preset(n)))
    ]
    assert statistical, promised


#: The presets whose promise this module checks; ``test_presets_rest.py`` checks the
#: others (two modules, so that the two test workers of ``--dist loadfile`` share the
#: ten full-size sweeps).
FIRST_HALF = tuple(preset_names()[: len(preset_names()) // 2])
SECOND_HALF = tuple(preset_names()[len(preset_names()) // 2 :])


@pytest.mark.default_compiler
@pytest.mark.parametrize("name", FIRST_HALF)
def test_the_preset_keeps_its_promise_over_8_seeds_and_agrees_with_the_graph(name):
    check_promise(name)


def check_promise(name: str) -> None:
    """The preset ``name`` shows what its ``[exhibits]`` table promises over 8 seeds,
    and its detections agree with the taxonomy graph under every access subset."""
    sc = preset(name)
    ds = open_runs(sc)
    assert ds["valid_run"].values.all(), f"{name}: a seed diverged (eta * lambda_max {ds['eta_lambda_max'].values})"
    t_f, j = judged(ds, sc)
    s = summarize(t_f, j, axis=0)
    broken = []
    for mode, kind in preset_exhibits(name).items():
        m = MODES.index(mode)
        rate = {"silent": s["p_silent_given_fail"][m], "detected": s["p_detected_given_fail"][m]}[kind]
        if not (s["p_fail"][m] >= 0.5 and rate >= 0.5):
            broken.append(f"{mode} ({kind}): P(fail) {s['p_fail'][m]:.2f}, P({kind} | fail) {rate:.2f}")
    assert not broken, f"{name} does not show what it promises: {broken}"
    bad, checked = graph_disagreements(ds, sc.replace(**ALL_ACCESS))
    assert not bad, f"{name}: graph and simulation disagree: {bad[:5]}"


def test_the_verdict_under_a_constraint_set_is_the_open_runs_judged_with_its_detectors():
    """What lets one sweep serve every constraint set: a scenario's own sweep gives the
    same failures and verdicts as its open runs judged with its detectors."""
    small = preset("phase").replace(
        **{
            "population.num_clients": 60,
            "federation.clients_per_round": 60,
            "federation.rounds": 10,
            "population.ood_subset": 4,
            "federation.attribute_use": False,
        }
    )
    own = sweep(small, {}, seeds=4, attribute_nulls=False)
    t_f, j = judged(open_runs(small, seeds=4), small)
    np.testing.assert_array_equal(own["failure_round"].values, t_f)
    np.testing.assert_array_equal(own["detected"].values, j.detected)
    np.testing.assert_array_equal(own["silent"].values, j.silent)
    np.testing.assert_array_equal(own["early_warning"].values, j.early_warning)
    bad, checked = graph_disagreements(open_runs(small, seeds=4), small.replace(**ALL_ACCESS))
    assert not bad and checked > 0  # the comparison sees detections, not only silence


def test_a_bad_exhibits_entry_is_refused_naming_the_mode(monkeypatch):
    from silentfail.sim import scenario as scn

    monkeypatch.setattr(scn, "_preset_data", lambda name: {"exhibits": {"no_such_mode": "silent"}})
    with pytest.raises(ScenarioError, match="exhibits.no_such_mode"):
        preset_exhibits("default")
    monkeypatch.setattr(scn, "_preset_data", lambda name: {"exhibits": {"amplified_bias": "loud"}})
    with pytest.raises(ScenarioError, match=f"one of {', '.join(EXHIBIT_KINDS)}"):
        preset_exhibits("default")
