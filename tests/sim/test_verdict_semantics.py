"""What counts as failed, detected and silent (sim/verdict.py): a failure persists, an
alarm detects only in its window (earlier ones are early warnings), and failures the
null runs already show are reported as caused without shift, never folded into silence."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from silentfail.sim.scenario import ScenarioError, preset
from silentfail.sim.sweep import sweep
from silentfail.sim.trace import failure_rounds
from silentfail.sim.verdict import judge, summarize


def _metric(*columns):
    return np.stack([np.asarray(c, float) for c in columns], axis=1)


def test_a_brief_crossing_is_a_transient_not_a_failure():
    thr = np.array([0.5, 0.5, 0.5, 0.5])
    m = _metric(
        [0, 1, 0, 0, 0, 0, 0, 0],  # one round over: a transient
        [0, 1, 1, 0, 1, 1, 1, 0],  # a 2-round transient, then a 3-round failure at round 4
        [0, 0, 0, 0, 0, 0, 1, 1],  # over for the last 2 rounds: lasts to the horizon, a failure
        [1, 1, 0, 1, 1, 0, 1, 0],  # three short crossings, no failure
    )
    out = failure_rounds(m, thr, persist=np.array([3, 3, 3, 3]))
    assert list(out.round) == [-1, 4, 6, -1]
    assert list(out.transients) == [1, 1, 0, 3]
    # the first-crossing rule is persist = 1
    assert list(failure_rounds(m, thr).round) == [1, 1, 6, 0]
    jx = failure_rounds(jnp.asarray(m), jnp.asarray(thr), persist=jnp.array([3, 3, 3, 3]), xp=jnp)
    assert list(np.asarray(jx.round)) == [-1, 4, 6, -1] and list(np.asarray(jx.transients)) == [1, 1, 0, 3]


def test_per_mode_persistence_overrides_the_default():
    th = preset("default").thresholds.model_copy(update={"persist": 2, "persist_by_mode": {"alignment_erosion": 7}})
    assert th.persistence() == (2, 2, 2, 2, 2, 7)


def test_an_alarm_before_the_failure_is_an_early_warning_not_a_detection():
    t_f = np.array([10, 10, 10, -1])
    # detectors' first alarms per mode: (modes, detectors)
    det = np.array([[3, -1], [3, 12], [9, -1], [2, -1]])
    j = judge(t_f, det, grace=5)
    assert list(j.detected) == [False, True, False, False]
    assert list(j.silent) == [True, False, True, False]
    assert list(j.early_warning) == [True, True, True, False]
    assert list(j.detection_round) == [-1, 12, -1, -1]
    assert j.delay[1] == 2
    # with a lead of 1 round the alarm at 9 detects (delay -1); one at 3 still does not
    j1 = judge(t_f, det, grace=5, lead=1)
    assert list(j1.detected) == [False, True, True, False] and j1.delay[2] == -1
    # a late alarm, after the grace, does not detect either
    assert not judge(np.array([10]), np.array([[16]]), grace=5).detected[0]


def test_summaries_give_every_rate_the_verdict_defines():
    t_f = np.array([[10], [10], [-1], [4]])
    det = np.array([[[3]], [[11]], [[-1]], [[-1]]])
    s = summarize(t_f, judge(t_f, det, grace=5), axis=0)
    assert s["p_fail"][0] == 0.75 and s["p_early_warning"][0] == 0.25
    assert s["p_detected_given_fail"][0] == pytest.approx(1 / 3) and s["p_silent_given_fail"][0] == pytest.approx(2 / 3)
    assert s["p_silent"][0] == 0.5 and s["delay_median"][0] == 1


@pytest.fixture(scope="module")
def noisy_null():
    """Central DP noise alone erodes alignment: no shift, and still a failure."""
    sc = preset("phase").replace(
        **{
            "shifts.strength": 0.0,
            "federation.noise_multiplier": 2.5,
            "population.num_clients": 60,
            "federation.clients_per_round": 60,
            "federation.rounds": 20,
            "monitor.alpha": 0.2,
            "monitor.calibration_seeds": 32,
        }
    )
    return sc, sweep(sc, {}, seeds=4, theory=False)


def test_a_mode_that_fails_in_the_null_runs_is_reported_as_caused_without_shift(noisy_null):
    sc, ds = noisy_null
    rate = float(ds["null_failure_rate"].sel(mode="alignment_erosion"))
    assert rate > sc.monitor.alpha
    assert bool(ds["caused_without_shift"].sel(mode="alignment_erosion"))
    assert int(ds["null_rejected"]) == 0  # the no_shift null keeps every null run
    # the DP noise causes it: without the mechanism the null runs do not erode
    assert str(ds["null_cause"].sel(mode="alignment_erosion").values) == "the constraints"
    assert float(ds["null_failure_rate_lifted"].sel(mode="alignment_erosion")) <= sc.monitor.alpha
    from silentfail.report import caused_text

    assert caused_text(ds, "alignment_erosion") == (
        " (caused without shift, by: the constraints; its detectors, calibrated on those null runs, cannot separate it)"
    )
    flags = {m: caused_text(ds, m) for m in ds.mode.values}
    assert all((f == "") == (not bool(ds["caused_without_shift"].sel(mode=m))) for m, f in flags.items())
    assert "" in flags.values()  # some mode the null runs do not show


def test_a_null_failure_without_a_mechanism_to_lift_is_the_personalizations():
    """No DP, no clipping: a threshold the sampling noise of the global model's alignment
    crosses with no shift is personalization's own doing (no extra null runs needed)."""
    sc = preset("default").replace(
        **{
            "shifts.strength": 0.0,
            "population.num_clients": 60,
            "federation.clients_per_round": 10,
            "federation.rounds": 12,
            "population.ood_subset": 4,
            "thresholds.alignment_erosion": 1e-4,
            "monitor.calibration_seeds": 16,
            "monitor.alpha": 0.25,
        }
    )
    ds = sweep(sc, {}, seeds=2, theory=False)
    assert bool(ds["caused_without_shift"].sel(mode="alignment_erosion"))
    assert str(ds["null_cause"].sel(mode="alignment_erosion").values) == "personalization"
    assert str(ds["null_cause"].sel(mode="amplified_bias").values) == ""


def test_an_attack_that_erodes_with_no_shift_is_named_the_cause():
    """Byzantine clients push along the alignment direction in the null runs too; lifting
    the clipping alone does not stop them, removing them does."""
    sc = preset("poisoned-clients").replace(
        **{
            "shifts.strength": 0.0,
            "population.num_clients": 60,
            "federation.clients_per_round": 20,
            "federation.rounds": 10,
            "population.ood_subset": 4,
            "monitor.calibration_seeds": 16,
            "monitor.alpha": 0.25,
        }
    )
    ds = sweep(sc, {}, seeds=2, theory=False)
    assert bool(ds["caused_without_shift"].sel(mode="alignment_erosion"))
    assert str(ds["null_cause"].sel(mode="alignment_erosion").values) == "byzantine clients"


def test_null_cause_names_the_constraints_only_where_lifting_them_removes_the_failure():
    from silentfail.sim.verdict import null_cause

    caused = np.array([True, True, False, True, True])
    single = {
        "the constraints": np.array([0.0, 0.3, 0.9, 0.3, 0.3]),
        "byzantine clients": np.array([0.0, 0.3, 0.9, 0.0, 0.3]),
    }
    both = np.array([0.0, 0.3, 0.9, 0.0, 0.0])
    assert list(null_cause(caused, single, both, alpha=0.05)) == [
        "the constraints / byzantine clients",
        "personalization",
        "",
        "byzantine clients",
        "the constraints and byzantine clients together",
    ]
    one = {"the constraints": np.array([0.0, 0.3, 0.9, 0.3, 0.3])}
    assert list(null_cause(caused, one, one["the constraints"], alpha=0.05)) == [
        "the constraints",
        "personalization",
        "",
        "personalization",
        "personalization",
    ]


def test_the_no_failure_null_calibrates_on_failure_free_runs_and_counts_the_rejected(noisy_null):
    sc, ds = noisy_null
    ds2 = sweep(sc.replace(**{"monitor.null": "no_failure"}), {}, seeds=4, theory=False)
    rejected = int(ds2["null_rejected"])
    assert rejected >= round(float(ds["null_failure_rate"].sel(mode="alignment_erosion")) * 32)
    assert float(ds2["null_failure_rate"].sel(mode="alignment_erosion")) == float(
        ds["null_failure_rate"].sel(mode="alignment_erosion")
    )
    assert ds2.attrs["null"] == "no_failure"


@pytest.mark.parametrize(
    "update, field",
    [
        ({"monitor.lead": -1}, "monitor.lead"),
        ({"thresholds.persist": 0}, "thresholds.persist"),
        ({"monitor.null": "bogus"}, "monitor.null"),
        ({"thresholds.persist_by_mode": {"no_such_mode": 3}}, "thresholds.persist_by_mode"),
        ({"thresholds.persist_by_mode": {"alignment_erosion": 0}}, "thresholds.persist_by_mode"),
    ],
)
def test_bad_verdict_settings_are_one_line_errors_naming_the_field(update, field):
    with pytest.raises(ScenarioError) as e:
        preset("default").replace(**update)
    msg = str(e.value)
    assert field in msg and "\n" not in msg


def test_a_trace_from_before_persistence_is_refused_not_misjudged():
    from silentfail.sim.run import run
    from silentfail.sim.verdict import verdict

    sc = preset("default").replace(
        **{
            "population.num_clients": 40,
            "federation.clients_per_round": 10,
            "federation.rounds": 3,
            "population.ood_subset": 4,
        }
    )
    old = run(sc, 0).drop_vars(["transient_crossings", "persist"])
    with pytest.raises(ValueError, match="older silentfail"):
        verdict(old)


def test_calibration_is_a_value_verdict_takes_and_checks():
    """calibrate(scenario) is inspectable and reusable; verdict(trace, calibrated) uses
    it (same verdict as the default path) and refuses one made for another scenario;
    all through the front door (sf.preset, sf.run, sf.calibrate, sf.verdict)."""
    import silentfail as sf
    from silentfail.sim.verdict import calibrate, verdict

    assert sf.calibrate is calibrate and sf.verdict is verdict
    small = {
        "population.num_clients": 40,
        "federation.clients_per_round": 10,
        "federation.rounds": 4,
        "population.ood_subset": 4,
    }
    sc = sf.preset("default").replace(**small)
    cal = sf.calibrate(sc)
    assert len(cal.calibration.thresholds) == len(cal.layout.channel) and cal.calibration.null_runs == 100
    tr = sf.run(sc, seed=0)
    assert sf.verdict(tr, cal).equals(verdict(tr))
    other = sf.calibrate(sc.replace(**{"federation.rounds": 5}))
    with pytest.raises(ValueError, match="another scenario"):
        sf.verdict(tr, other)
