"""Predicted regimes: whether each mode fails, and whether it stays silent, from the
theory of the stylized world rather than from the simulated runs (the silentfail
reference paper (paper/main.tex), Theory on the phase diagram; docs/theory.md, section 10).

**Failure** is predicted from the *population limit* of the federation: every draw of
the rounds replaced by its mean (``federate._make_run(expected=True)``). Client c reports
with probability E[mask_c] = q_c (1 - dropout), the DP noise and a noise attack have mean
0, and the server's FedAvg step is the deterministic recursion

    theta_(t+1) = theta_t + sum_c w_c E[mask_c] clip_C(P_c theta_t + b_c - theta_t) / sum_c w_c E[mask_c],

with P_c, b_c the closed-form K-step personalization map of client c
(``proofs/kstep_fedavg.py``, ``proofs/mean_field.py``). Without binding clipping it is
affine, theta_t = theta* + Pbar^t (theta_0 - theta*), theta* = (I - Pbar)^(-1) bbar. The
deployed models are P_c theta_t + b_c, and every mode metric of them is a closed form of
the Gaussian world (``sim/metrics.py``); a population fails where that deterministic
metric path crosses its threshold for ``thresholds.persist`` rounds. The clients
themselves are a random draw of the shift families, and a cell's failure depends on
the draw (a rare minority-rich client moves the worst decile): the theory averages the
rounds' randomness in closed form and the population's by :data:`THEORY_DRAWS` draws of
its own (seeds from :data:`THEORY_SEED0`, apart from the simulation's), and predicts the
majority regime over them, as the simulation's regime is the majority over seeds.

**Silence** is predicted by the median-power form of result 4 (``proofs/dp_power.py``):
a detector channel reads a statistic s_t = E[s_t] + noise, with noise symmetric about
its mean, and alarms where s_t exceeds its level-alpha threshold h (the calibrated null
quantile, which for a DP-noised mean is sigma_T z_(1-alpha)). Its power is then >= 1/2
exactly where E[s_t] >= h, i.e. where the population-limit statistic crosses h:
Phi(pi delta / sigma_T - z_(1-alpha)) >= 1/2 iff pi delta >= sigma_T z_(1-alpha). A
predicted failure is predicted *detected* when some channel watching the mode crosses
its threshold in the detection window [T_f - lead, T_f + grace] of the predicted failure
round, and *silent* otherwise.

Assumptions, stated: many reports per round (the ratio of the noised sums is its mean's
ratio; the law of large numbers over participants); statistics whose noise is
symmetric about the noise-free statistic (exact for the noised means and the update
projections, approximate for the maxima, CUSUMs and change-point odds, where the
noise also shifts the statistic); detection means power >= 1/2 in the window, the
simulated regime is the majority over seeds. Nothing in the prediction is fitted to the
simulated runs it is compared with; the thresholds come from the null runs, which the
detectors themselves are calibrated on.

References:
    Dong, Roth, Su (2022), Gaussian Differential Privacy, JRSS-B.
    Charles, Konecny (2021), Convergence and Accuracy Trade-Offs in Federated Learning and
    Meta-Learning, AISTATS (the fixed point of local-step FedAvg).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import xarray as xr

from .detectors import Layout
from .scenario import MODES, Scenario
from .verdict import detection_rounds, judge

#: The seeds of the populations the population-limit runs use: THEORY_SEED0 + i, apart
#: from the simulation's seeds 0..S-1 and the null seeds from 2**30.
THEORY_SEED0 = 1 << 31
#: Population draws per point (at most the sweep's seeds per cell).
THEORY_DRAWS = 8

#: The regimes, in the order of :func:`silentfail.figures.regimes`.
NO_FAILURE, DETECTED, SILENT = 0, 1, 2


class Prediction(NamedTuple):
    """Per point and mode, over the population draws: P(fail), P(silent), and the
    majority regime's failed and silent (as :func:`simulated_regime` reads a cell)."""

    p_fail: np.ndarray  # (P, modes) share of the draws whose population-limit run fails
    p_silent: np.ndarray  # (P, modes) share whose failure no channel detects in the window
    failed: np.ndarray  # (P, modes) bool: the majority regime is a failure
    silent: np.ndarray  # (P, modes) bool: the majority regime is a silent failure
    failure_round: np.ndarray  # (P, modes) median predicted failure round over the failing draws (-1: none)


def judge_expected(failure_round: np.ndarray, alarm_round: np.ndarray, lay: Layout, sc: Scenario) -> Prediction:
    """The predicted regimes from population-limit runs: per draw, the failure rounds and
    the first round each channel's noise-free statistic exceeds its level-alpha threshold;
    per point, the majority over the draws.

    Args:
        failure_round: (P, R, modes) the population-limit failure rounds of R draws.
        alarm_round: (P, R, K) the channels' first rounds over threshold (-1: never).
        lay: the channels' layout.
        sc: the scenario (``monitor.attribution``, ``grace``, ``lead``).

    Returns:
        The Prediction.
    """
    det = detection_rounds(alarm_round, lay, sc.monitor.attribution)
    j = judge(failure_round, det, sc.monitor.grace, sc.monitor.lead)
    failed = failure_round >= 0
    pf, ps = failed.mean(axis=1), j.silent.mean(axis=1)
    r = np.argmax(np.stack([1 - pf, pf - ps, ps], axis=-1), axis=-1)
    with warnings.catch_warnings():  # a mode no draw fails has an all-NaN median
        warnings.simplefilter("ignore", RuntimeWarning)
        t_f = np.nanmedian(np.where(failed, failure_round, np.nan), axis=1)
    return Prediction(pf, ps, r > NO_FAILURE, r == SILENT, np.where(np.isnan(t_f), -1, t_f).astype(int))


def affine_trajectory(pop, theta0, rounds: int, dropout: float) -> np.ndarray:
    """The population limit's global models in closed form (result 8, ``proofs/mean_field.py``),
    theta_t = theta* + Pbar^t (theta_0 - theta*), theta* = (I - Pbar)^(-1) bbar, with
    Pbar = sum_c w_c q_c (1 - dropout) P_c / sum_c w_c q_c (1 - dropout) and bbar likewise:
    the expected run's models when no clipping binds and the server's SGD has rate 1
    (float64).

    Args:
        pop: the population (``weight``, ``q``, the personalization maps ``P``, ``b``).
        theta0: (D,) the FM.
        rounds: T.
        dropout: ``federation.dropout``.

    Returns:
        (T, D) the model each round starts from, t = 0..T-1.
    """
    w = np.asarray(pop.weight * pop.q, np.float64) * (1.0 - dropout)
    Pbar = np.einsum("n,nij->ij", w, np.asarray(pop.P, np.float64)) / w.sum()
    bbar = np.einsum("n,ni->i", w, np.asarray(pop.b, np.float64)) / w.sum()
    theta0 = np.asarray(theta0, np.float64)
    star = np.linalg.solve(np.eye(len(bbar)) - Pbar, bbar)
    return np.stack([star + np.linalg.matrix_power(Pbar, t) @ (theta0 - star) for t in range(rounds)])


def regime(failed: np.ndarray, silent: np.ndarray) -> np.ndarray:
    """Regime index 0 no failure, 1 failure detected, 2 silent failure.

    Args:
        failed: bool array.
        silent: bool array (silent implies failed).

    Returns:
        int array of the same shape.
    """
    return np.where(silent, SILENT, np.where(failed, DETECTED, NO_FAILURE))


class Agreement(NamedTuple):
    """Theory against simulation on one mode's cells."""

    share: float  # share of valid cells whose predicted regime is the simulated majority regime
    failure_share: float  # the same for failed / not failed alone
    failure_distance: int  # grid cells from the simulated to the predicted failure boundary (max over cells)
    silence_distance: int  # the same for silent / not silent
    cells: int  # valid cells compared


def boundary_distance(pred: np.ndarray, sim: np.ndarray, valid: np.ndarray) -> int:
    """How far the predicted boundary of a yes/no regime lies from the simulated one, in
    grid cells: the largest, over valid cells where the two differ, Chebyshev distance to
    the nearest cell whose prediction is that cell's simulated value (the grid size where
    no cell is predicted so); 0 where they agree everywhere.

    Args:
        pred: bool or int array over the grid, the predicted value per cell.
        sim: the simulated value per cell, same shape.
        valid: the cells compared.

    Returns:
        The distance in grid cells.
    """
    idx = np.argwhere(valid & (pred != sim))
    if not len(idx):
        return 0
    worst = 0
    every = np.indices(pred.shape).reshape(pred.ndim, -1).T
    for cell in idx:
        hits = every[(pred == sim[tuple(cell)]).reshape(-1)]
        d = int(np.abs(hits - cell).max(axis=1).min()) if len(hits) else max(pred.shape)
        worst = max(worst, d)
    return worst


def simulated_regime(ds: xr.Dataset) -> xr.DataArray:
    """Regime index per cell and mode of the simulated runs: the most probable of no
    failure (1 - P(fail)), failure detected (P(fail) - P(silent)) and silent failure
    (P(silent)); -1 where invalid.

    Args:
        ds: a sweep (``p_fail``, ``p_silent``).

    Returns:
        int DataArray over the sweep's axes and mode: 0 no failure, 1 detected, 2 silent, -1 invalid.
    """
    p = np.stack([1 - ds["p_fail"], ds["p_fail"] - ds["p_silent"], ds["p_silent"]], axis=-1)
    idx = np.where(np.isnan(p).any(-1), -1, np.argmax(np.nan_to_num(p, nan=-1), axis=-1))
    return xr.DataArray(idx, dims=ds["p_fail"].dims, coords=ds["p_fail"].coords)


def predicted_regime(ds: xr.Dataset) -> xr.DataArray:
    """Regime index per cell and mode of the theory (``theory_failed``, ``theory_silent``).

    Args:
        ds: a sweep with the theory variables.

    Returns:
        int DataArray over the sweep's axes and mode: 0 no failure, 1 detected, 2 silent.
    """
    r = regime(ds["theory_failed"].values, ds["theory_silent"].values)
    return xr.DataArray(r, dims=ds["theory_failed"].dims, coords=ds["theory_failed"].coords)


def agreement(ds: xr.Dataset) -> dict[str, Agreement]:
    """Per mode, the agreement of the predicted regimes (``theory_failed``,
    ``theory_silent``) with the simulated majority regime of each cell
    (:func:`simulated_regime`: the most probable of no failure, detected, silent).

    Args:
        ds: a sweep with the theory variables.

    Returns:
        {mode: Agreement}.
    """
    sim, pred = simulated_regime(ds), predicted_regime(ds)
    axes = [d for d in ds["theory_failed"].dims if d != "mode"]
    out = {}
    for mode in ds["mode"].values:
        s = sim.sel(mode=mode).transpose(*axes).values
        p = pred.sel(mode=mode).transpose(*axes).values
        valid = s >= 0
        n = int(valid.sum())
        share = float((p == s)[valid].mean()) if n else float("nan")
        fshare = float(((p > 0) == (s > 0))[valid].mean()) if n else float("nan")
        dist = [
            boundary_distance(p == k if k == SILENT else p > 0, s == k if k == SILENT else s > 0, valid)
            for k in (DETECTED, SILENT)
        ]
        out[str(mode)] = Agreement(share, fshare, dist[0], dist[1], n)
    return out


def theory_frame(ds: xr.Dataset) -> list[dict]:
    """The agreement per mode as rows (report, paper, CLI).

    Args:
        ds: a sweep with the theory variables.

    Returns:
        [{mode, agreement, failure_agreement, failure_distance, silence_distance, cells}] in mode order.
    """
    return [
        dict(
            mode=m,
            agreement=a.share,
            failure_agreement=a.failure_share,
            failure_distance=a.failure_distance,
            silence_distance=a.silence_distance,
            cells=a.cells,
        )
        for m, a in agreement(ds).items()
        if m in MODES
    ]
