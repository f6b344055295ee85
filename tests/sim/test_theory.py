"""The theory's predicted regimes (sim/theory.py): the population-limit run against the
simulation (exact where nothing is random, the affine closed form of FedAvg where no
clipping binds, 4 standard errors under partial participation), the regime rule, the
agreement measure, and the overlays on the phase figure."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from silentfail.sim.batch import run_batch
from silentfail.sim.config import Config
from silentfail.sim.detectors import layout
from silentfail.sim.engine import simulate
from silentfail.sim.scenario import MODES, preset
from silentfail.sim.theory import (
    DETECTED,
    NO_FAILURE,
    SILENT,
    affine_trajectory,
    agreement,
    boundary_distance,
    judge_expected,
    predicted_regime,
)

SMALL = {
    "population.num_clients": 60,
    "federation.clients_per_round": 60,
    "federation.rounds": 8,
    "monitor.calibration_seeds": 24,
    "monitor.alpha": 0.2,
}
PATHS = ("personalization.lam", "shifts.strength")


def _outcomes(sc, seeds, expected, values=(0.05, 1.0)):
    vals = np.tile(values, (len(seeds), 1))
    return run_batch(
        sc, PATHS, ("aggregate_monitor",), vals, np.asarray(seeds), np.zeros((len(seeds), 1)), expected=expected
    )


def test_population_limit_is_the_simulation_when_nothing_is_random():
    """Every client reports every round and there is no DP noise: the expected run and
    the simulated run are the same run (failure rounds, metrics, channel maxima)."""
    sc = preset("phase").replace(
        **SMALL,
        **{"federation.participation": 1.0, "federation.participation_disparity": 0.0, "federation.dp": "none"},
    )
    e, s = _outcomes(sc, [0, 1, 2, 3], True), _outcomes(sc, [0, 1, 2, 3], False)
    np.testing.assert_array_equal(e.failure_round, s.failure_round)
    np.testing.assert_allclose(e.worst_value, s.worst_value, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(e.stat_max, s.stat_max, rtol=1e-6, atol=1e-7)


def test_population_limit_follows_the_affine_closed_form_of_fedavg():
    """No clipping and server SGD at rate 1: theta_(t+1) = Pbar theta_t + bbar with
    Pbar = sum_c w_c q_c P_c / sum_c w_c q_c (P_c, b_c the K-step personalization maps),
    so theta_t = theta* + Pbar^t (theta_0 - theta*), theta* = (I - Pbar)^(-1) bbar."""
    sc = preset("phase").replace(**SMALL, **{"federation.dp": "none", "federation.clip": None})
    sim = simulate(Config(sc), 3, expected=True)
    want = affine_trajectory(sim.pop, sim.ctx.theta0, sc.federation.rounds, sc.federation.dropout)
    got = np.asarray(sim.out.rounds["theta_global"], np.float64)  # the model each round starts from
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


def test_population_limit_is_the_mean_of_partial_participation_runs_within_4_se():
    """Poisson participation (q = 0.34, no DP): the simulated final metrics scatter around
    the population-limit run of the same population; the paired mean difference is within
    4 standard errors (plus the O(1/M) bias of a ratio of sums, 1e-3)."""
    sc = preset("phase").replace(**SMALL, **{"federation.dp": "none", "federation.participation_disparity": 0.0})
    seeds = np.arange(24)
    e, s = _outcomes(sc, seeds, True), _outcomes(sc, seeds, False)
    for m in ("confidence_miscalibration", "out_of_domain_degradation", "alignment_erosion"):
        i = MODES.index(m)
        d = s.final_value[:, i] - e.final_value[:, i]
        se = d.std(ddof=1) / np.sqrt(len(d))
        assert abs(d.mean()) <= 4 * se + 1e-3, (m, d.mean(), se)


def test_judge_expected_takes_the_majority_over_draws():
    """Per draw: failed and a watching channel over its threshold in [T_f - lead, T_f + grace]
    is detected, else silent; per point the regime is the majority over the draws."""
    sc = preset("phase")
    lay = layout(("federated_evaluation",))
    K, M = len(lay.channel), len(MODES)
    ece = lay.channel.index("federated_evaluation/mean_ece")
    c = MODES.index("confidence_miscalibration")
    t_f = np.full((2, 3, M), -1)
    alarm = np.full((2, 3, K), -1)
    t_f[0, :, c] = 4  # point 0: every draw fails at round 4 ...
    alarm[0, :2, ece] = 6  # ... two of three alarm within the grace (5): detected
    alarm[0, 2, ece] = 12  # the third alarms too late: silent
    t_f[1, :2, c] = 4  # point 1: two of three fail, none is caught: silent
    p = judge_expected(t_f, alarm, lay, sc)
    assert p.p_fail[0, c] == 1.0 and p.p_silent[0, c] == pytest.approx(1 / 3)
    assert p.failed[0, c] and not p.silent[0, c]
    assert p.p_fail[1, c] == pytest.approx(2 / 3) and p.silent[1, c]
    assert p.failure_round[0, c] == 4 and p.failure_round[1, MODES.index("amplified_bias")] == -1


def _toy(sim, pred):
    """A two-axis dataset with one mode, simulated and predicted regimes given per cell."""
    sim, pred = np.asarray(sim), np.asarray(pred)
    pf = (sim > 0).astype(float)
    ps = (sim == SILENT).astype(float)
    dims = ("a", "b", "mode")
    return xr.Dataset(
        {
            "p_fail": (dims, pf[..., None]),
            "p_silent": (dims, ps[..., None]),
            "theory_failed": (dims, (pred > 0)[..., None]),
            "theory_silent": (dims, (pred == SILENT)[..., None]),
        },
        coords={"a": np.arange(sim.shape[0]), "b": np.arange(sim.shape[1]), "mode": ["m"]},
    )


def test_agreement_counts_cells_and_measures_the_boundary_in_cells():
    N, D, S = NO_FAILURE, DETECTED, SILENT
    sim = [[N, N, N, N], [N, N, S, S], [N, D, D, S], [D, D, D, S]]
    pred = [[N, N, N, N], [N, N, N, S], [N, D, D, S], [D, D, D, S]]  # one cell off, next to a silent one
    a = agreement(_toy(sim, pred))["m"]
    assert a.share == pytest.approx(15 / 16) and a.failure_share == pytest.approx(15 / 16)
    assert (a.failure_distance, a.silence_distance, a.cells) == (1, 1, 16)
    exact = agreement(_toy(sim, sim))["m"]
    assert (exact.share, exact.failure_distance, exact.silence_distance) == (1.0, 0, 0)
    far = np.zeros((5, 5), bool)
    far[4, 4] = True  # the only predicted failure is 4 cells from the simulated one at (0, 0)
    sim_f = np.zeros((5, 5), bool)
    sim_f[0, 0] = True
    assert boundary_distance(far, sim_f, np.ones((5, 5), bool)) == 4


def test_phase_figure_draws_the_predicted_boundaries(tmp_path):
    """The theory's boundaries are drawn on the panels (their segments are written beside
    the figure) and named in the legend."""
    from silentfail.figures import phase_figure
    from silentfail.sim.sweep import sweep

    sc = preset("phase").replace(**SMALL)
    ds = sweep(sc, {"personalization.lam": [0.01, 1.0], "shifts.strength": [0.0, 0.5, 1.0]}, seeds=2)
    for v in ("theory_failed", "theory_silent", "theory_p_fail", "theory_p_silent", "theory_stat_max"):
        assert v in ds, v
    reg = predicted_regime(ds)
    assert set(np.unique(reg.values)) <= {NO_FAILURE, DETECTED, SILENT}
    # force a known boundary on one mode: fails above strength 0.25
    forced = ds["theory_failed"].copy()
    forced.loc[dict(mode="alignment_erosion")] = ds["shifts.strength"] > 0.25
    ds["theory_failed"] = forced.transpose(*ds["theory_failed"].dims)
    paths = phase_figure(ds, tmp_path / "phase")
    side = json.loads((tmp_path / "phase.overlay.json").read_text())
    assert set(side) == set(MODES) and paths[-1] == tmp_path / "phase.overlay.json"
    seg = side["alignment_erosion"]["failure"]
    assert seg, "the forced failure boundary is not drawn"
    ys = np.concatenate([np.asarray(s)[:, 1] for s in seg])
    np.testing.assert_allclose(ys, 0.25, atol=1e-9)  # the contour lies between the cells at 0 and 0.5


def test_the_default_phase_world_fails_in_every_mode_in_theory():
    """The default diagram (the phase preset over lambda x strength) has a failure
    transition for each of the six modes: the population limit fails somewhere in the grid
    and not at strength 0."""
    sc = preset("phase")
    lams, fs = np.geomspace(0.01, 10, 8), np.linspace(0, 1, 8)
    vals = np.array([(lam, f) for lam in lams for f in fs])
    e = run_batch(
        sc, PATHS, ("aggregate_monitor",), vals, np.full(len(vals), 7), np.zeros((len(vals), 1)), expected=True
    )
    failed = (e.failure_round >= 0).reshape(8, 8, len(MODES))
    for i, m in enumerate(MODES):
        assert failed[:, 1:, i].any(), f"{m} never fails in the default grid"
        assert not failed[:, 0, i].all(), f"{m} fails without shift everywhere"
    assert bool(jnp.all(jnp.asarray(e.finite)))


def test_a_sweep_without_theory_keeps_every_simulated_number():
    """``theory=False`` (for callers that read only the verdicts: checks, claims, the
    simulate summary) leaves out the population-limit runs and nothing else."""
    from silentfail.sim.sweep import sweep

    sc = preset("phase").replace(**{**SMALL, "federation.rounds": 6})
    a = sweep(sc, {"shifts.strength": [0.0, 1.0]}, seeds=3)
    b = sweep(sc, {"shifts.strength": [0.0, 1.0]}, seeds=3, theory=False)
    assert not [v for v in b.data_vars if v.startswith("theory")] and "theory_draws" not in b.attrs
    assert a.attrs["theory_draws"] == 3 and "theory_failed" in a
    for v in b.data_vars:
        if a[v].dtype.kind in "OUS":
            assert (a[v].values == b[v].values).all(), v
        else:
            np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
