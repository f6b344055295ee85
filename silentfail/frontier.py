"""The privacy-silence frontier: P(silent) of every mode over (privacy budget epsilon x
shift strength), with the minimal detectable shift of the best allowed noised-mean
detector and the mu-GDP ceiling on any test (the silentfail reference paper
(paper/main.tex), The privacy-silence frontier; docs/theory.md, section 10).

The privacy axis is the noise multiplier z of the scenario's Gaussian releases; each z
is reported as the epsilon (at ``federation.dp_delta``) that ``sim/privacy.py``'s
dp_accounting RDP accountant gives for the run: T Poisson-subsampled rounds of the
composed releases.

Two closed forms are drawn over the simulated P(silent):

* **Minimal detectable shift** (result 4, ``proofs/dp_power.py``). A channel that reads
  the DP-noised mean of a report of L2 sensitivity S over M reports has, per round, the
  noise standard deviation sigma_T = sqrt(s2 / M + z^2 S^2 / M^2); its level-alpha' test
  has power 1 - beta exactly at delta_min = sigma_T (z_(1-alpha') + z_(1-beta)) / pi. The
  frontier takes pi = 1 (every client shifts), beta = 1/2 (the median power that the
  regimes use), alpha' = alpha / T (the detector's false-alarm rate over the horizon,
  split over its T rounds) and s2 = 0: the DP noise alone, so delta_min is a lower bound
  and every shift below it is silent on that channel. delta_min is a shift of the
  channel's statistic; the population-limit runs give the statistic's shift delta(f) at
  each strength f (``theory_stat_max`` of the sweep, minus its value at f = 0), and the
  curve is the smallest f with delta(f) >= delta_min(z), over the deployed noised-mean
  channels that watch the mode (federated evaluation, group-stratified monitor).
* **The mu-GDP ceiling** (Dong, Roth, Su 2022). One client's change is hidden from
  every test: the run is mu-GDP with mu = q sqrt(T (exp(1 / z_eff^2) - 1)) (the central
  limit theorem of Poisson-subsampled composition, Bu, Dong, Long, Su 2020), z_eff the
  single Gaussian equivalent of a round's releases, and no level-alpha test has power
  above Phi(mu - z_(1-alpha)). The frontier marks the epsilon below which that ceiling
  is under 1/2.

References:
    Dong, Roth, Su (2022), Gaussian Differential Privacy, JRSS-B.
    Bu, Dong, Long, Su (2020), Deep Learning with Gaussian Differential Privacy,
    Harvard Data Science Review.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from .sim.scenario import MODES, Scenario

#: BibTeX of the results the frontier draws that the taxonomy's references lack.
BIBTEX = r"""
@article{bu2020deep,
  author  = {Bu, Zhiqi and Dong, Jinshuo and Long, Qi and Su, Weijie J.},
  title   = {Deep Learning with {G}aussian Differential Privacy},
  journal = {Harvard Data Science Review},
  volume  = {2},
  number  = {3},
  year    = {2020},
  doi     = {10.1162/99608f92.cfc5dd25}
}
"""

Z = "federation.noise_multiplier"
STRENGTH = "shifts.strength"

#: The grids: noise multipliers (geometric; epsilon from about 280 down to about 1 on the
#: phase world) and shift strengths, and seeds per cell.
GRID = {
    "full": dict(z=np.geomspace(0.5, 16.0, 8), strength=np.linspace(0.0, 1.0, 8), seeds=8),
    "quick": dict(z=np.geomspace(0.5, 16.0, 5), strength=np.linspace(0.0, 1.0, 5), seeds=4),
}

#: Noised-mean channels: detector/channel -> (report key of sim/mechanism.REPORT_SENSITIVITY).
NOISED_MEAN_CHANNELS = {
    "federated_evaluation/alignment_drop": "fedeval",
    "federated_evaluation/p0_acc_drop": "fedeval",
    "federated_evaluation/mean_ece": "fedeval",
    "federated_evaluation/mean_within_round_drop": "fedeval",
    "group_stratified_monitor/acc_gap_growth": "group",
    "group_stratified_monitor/worst_group_drop": "group",
    "group_stratified_monitor/bias_amplification": "group",
}


def delta_min(s2: float, M: float, z: float, C: float, alpha: float, beta: float = 0.5, pi: float = 1.0) -> float:
    """Result 4's minimal detectable shift, sqrt(s2/M + z^2 C^2 / M^2) (z_(1-alpha) + z_(1-beta)) / pi
    (``proofs.minimal_detectable_shift``, evaluated from its derivation).

    Args:
        s2: per-client variance of the report.
        M: reports per round.
        z: noise multiplier.
        C: the report's L2 sensitivity.
        alpha: the test's level.
        beta: its type-II error (1/2: the median power).
        pi: the share of clients that shift.

    Returns:
        delta_min.
    """
    from .proofs import minimal_detectable_shift

    return float(minimal_detectable_shift().numeric("numpy")(pi, s2, M, z, C, alpha, beta))


def gdp_mu(sc: Scenario, q: float) -> float:
    """mu of the run's mu-GDP guarantee, q sqrt(T (exp(1 / z_eff^2) - 1)) under Poisson
    sampling (central DP; Bu et al. 2020's CLT) and sqrt(T) / z_eff without sampling.

    Args:
        sc: the scenario (its releases, noise multiplier and rounds).
        q: the sampling probability (``privacy.sampling_probability``).

    Returns:
        mu (inf without DP).
    """
    from .sim.privacy import effective_multiplier, noise_multipliers

    f = sc.federation
    if f.dp == "none":
        return math.inf
    z = effective_multiplier(noise_multipliers(sc))
    if f.dp == "local" or q >= 1.0:
        return math.sqrt(f.rounds) / z
    return q * math.sqrt(f.rounds * math.expm1(min(1.0 / z**2, 700.0)))


def ceiling_power(mu: float, alpha: float) -> float:
    """The mu-GDP ceiling Phi(mu - z_(1-alpha)) on the power of any level-alpha test
    (``proofs.gdp_ceiling``).

    Args:
        mu: the GDP parameter.
        alpha: the level.

    Returns:
        The largest power any test can have.
    """
    from .proofs import gdp_ceiling

    if math.isinf(mu):
        return 1.0
    return float(gdp_ceiling().numeric("numpy")(mu, alpha))


def epsilons(sc: Scenario, zs: np.ndarray) -> np.ndarray:
    """epsilon at ``dp_delta`` of a run of ``sc`` at each noise multiplier (the RDP
    accountant of ``sim/privacy.py``, with the population's largest participation).

    Args:
        sc: the scenario.
        zs: noise multipliers.

    Returns:
        epsilon per z.
    """
    from .sim.privacy import dp_epsilon, max_participation

    q = max_participation(sc)
    return np.array([dp_epsilon(sc.replace(**{Z: float(z)}), q) for z in zs])


def minimal_detectable_strength(ds: xr.Dataset, mode: str) -> tuple[np.ndarray, str | None]:
    """Per noise multiplier of a frontier sweep, the smallest shift strength whose
    population-limit shift of a deployed noised-mean channel watching ``mode`` reaches
    that channel's delta_min (module docstring; linear interpolation between grid
    strengths, NaN where no strength of the grid reaches it).

    Args:
        ds: a frontier sweep (axes noise multiplier x strength, with ``theory_stat_max``).
        mode: the mode.

    Returns:
        (f_min per z, the channel that attains it or None).
    """
    from .sim.detectors import REGISTRY
    from .sim.mechanism import REPORT_SENSITIVITY
    from .sim.scenario import scenario_from_dict

    sc = scenario_from_dict(json.loads(ds.attrs["scenario"]))
    f = sc.federation
    T = f.rounds
    M = f.participation * sc.population.num_clients * (1.0 - f.dropout)
    zs, fs = ds[Z].values.astype(float), ds[STRENGTH].values.astype(float)
    best, which = np.full(len(zs), np.nan), [None] * len(zs)
    for ch in ds["channel"].values:
        det, name = str(ch).split("/", 1)
        key = NOISED_MEAN_CHANNELS.get(str(ch))
        watches = [c.watches for c in REGISTRY[det].channels if c.name == name]
        if key is None or not watches or mode not in watches[0]:
            continue
        stat = ds["theory_stat_max"].sel(channel=ch).transpose(Z, STRENGTH).values
        for i, z in enumerate(zs):
            shift = stat[i] - stat[i, 0]
            dmin = delta_min(0.0, M, z, REPORT_SENSITIVITY[key], sc.monitor.alpha / T)
            fmin = _first_crossing(fs, shift, dmin)
            if np.isfinite(fmin) and not fmin >= best[i]:
                best[i], which[i] = fmin, str(ch)
    named = [w for w in which if w is not None]
    return best, (max(set(named), key=named.count) if named else None)


def _first_crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """The smallest x where the piecewise-linear y(x) reaches ``level`` (NaN if never)."""
    above = np.flatnonzero(y >= level)
    if not len(above):
        return float("nan")
    k = above[0]
    if k == 0:
        return float(x[0])
    return float(x[k - 1] + (level - y[k - 1]) * (x[k] - x[k - 1]) / (y[k] - y[k - 1]))


def gdp_boundary(sc: Scenario, alpha: float, lo: float = 0.3, hi: float = 64.0) -> float:
    """The epsilon below which the mu-GDP ceiling on any test's power is under 1/2
    (mu < z_(1-alpha)); NaN where the ceiling stays on one side over z in [lo, hi].

    Args:
        sc: the scenario.
        alpha: the level.
        lo: the smallest noise multiplier searched.
        hi: the largest.

    Returns:
        epsilon at the boundary.
    """
    from .sim.privacy import max_participation, sampling_probability

    q = sampling_probability(sc, max_participation(sc))
    zs = np.geomspace(lo, hi, 200)
    power = np.array([ceiling_power(gdp_mu(sc.replace(**{Z: float(z)}), q), alpha) for z in zs])
    under = np.flatnonzero(power < 0.5)
    if not len(under) or under[0] == 0:
        return float("nan")
    return float(epsilons(sc, zs[under[0] : under[0] + 1])[0])


def frontier(
    sc: Scenario,
    *,
    quick: bool = False,
    store: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> xr.Dataset:
    """The frontier sweep: noise multiplier x shift strength, with epsilon per noise
    multiplier (``epsilon`` coordinate), the minimal detectable strength per mode
    (``f_min``) and the mu-GDP boundary (attrs ``gdp_epsilon``).

    Args:
        sc: the scenario (central or local DP).
        quick: the reduced grid (:data:`GRID`).
        store: the sweep's store folder (resumable), or None.
        resume: continue an interrupted sweep in ``store``.
        progress: called with (runs done, runs in all).

    Returns:
        The sweep Dataset with the frontier variables.

    Raises:
        ValueError: a scenario without DP (there is no privacy axis).
    """
    from .sim.sweep import sweep

    if sc.federation.dp == "none":
        raise ValueError("federation.dp = 'none': the frontier needs DP noise to vary (set federation.dp)")
    g = GRID["quick" if quick else "full"]
    ds = sweep(
        sc,
        {Z: [float(z) for z in g["z"]], STRENGTH: [float(f) for f in g["strength"]]},
        seeds=g["seeds"],
        store=store,
        resume=resume,
        progress=progress,
    )
    ds = ds.assign_coords(epsilon=(Z, epsilons(sc, ds[Z].values)))
    fmin, chans = [], []
    for m in ds["mode"].values:
        f, ch = minimal_detectable_strength(ds, str(m))
        fmin.append(f)
        chans.append(ch or "")
    ds["f_min"] = (("mode", Z), np.stack(fmin))
    ds["f_min_channel"] = (("mode",), np.asarray(chans))
    ds.attrs.update(gdp_epsilon=gdp_boundary(sc, sc.monitor.alpha), kind="silentfail.frontier")
    return ds


def largest_silent_epsilon(ds: xr.Dataset) -> dict[str, float]:
    """Per mode, the largest epsilon at which a shift that causes the failure
    (P(fail) >= 1/2) is still silent with probability >= 1/2 (NaN: at no epsilon of the grid).

    Args:
        ds: a frontier sweep.

    Returns:
        {mode: epsilon}.
    """
    eps = ds["epsilon"].values
    out = {}
    for m in ds["mode"].values:
        pf = ds["p_fail"].sel(mode=m).transpose(Z, STRENGTH).values
        ps = ds["p_silent"].sel(mode=m).transpose(Z, STRENGTH).values
        hit = ((pf >= 0.5) & (ps >= 0.5)).any(axis=1)
        out[str(m)] = float(eps[hit].max()) if hit.any() else float("nan")
    return out


def frontier_rows(ds: xr.Dataset) -> tuple[list[str], list[list[str]]]:
    """The frontier's answer per mode (report, CLI, paper).

    Args:
        ds: a frontier sweep.

    Returns:
        (header, rows): the mode, the largest silent epsilon, the minimal detectable
        strength at the smallest and largest epsilon, and the channel.
    """
    largest = largest_silent_epsilon(ds)
    order = np.argsort(ds["epsilon"].values)
    fmt = lambda v: "-" if not np.isfinite(v) else f"{v:.3g}"  # noqa: E731
    header = [
        "mode",
        "largest epsilon silent with P >= 1/2",
        f"f_min at epsilon = {ds['epsilon'].values[order[0]]:.3g}",
        f"f_min at epsilon = {ds['epsilon'].values[order[-1]]:.3g}",
        "delta_min channel",
    ]
    rows = []
    for m in MODES:
        if m not in ds["mode"].values:
            continue
        f = ds["f_min"].sel(mode=m).values
        rows.append(
            [
                m,
                fmt(largest[m]),
                fmt(f[order[0]]),
                fmt(f[order[-1]]),
                str(ds["f_min_channel"].sel(mode=m).values) or "-",
            ]
        )
    return header, rows


def frontier_markdown(ds: xr.Dataset, figure: str | Path | None = None) -> str:
    """The frontier's report.

    Args:
        ds: a frontier sweep.
        figure: the figure to link (None: none).

    Returns:
        The Markdown.
    """
    from .report import _md_table

    gdp = ds.attrs["gdp_epsilon"]
    out = [
        f"# silentfail privacy-silence frontier: {ds.attrs.get('scenario_name', '')}",
        "",
        f"P(silent) over epsilon (the RDP accountant at delta = {json.loads(ds.attrs['scenario'])['federation']['dp_delta']:g}, "
        f"from the noise multiplier) x shift strength; {ds.attrs['seeds']} seeds per cell, detectors calibrated to alpha = "
        f"{ds.attrs['alpha']} per cell.",
        "",
        "## The largest epsilon at which a failing shift stays silent",
        "",
        _md_table(*frontier_rows(ds)),
        "",
        "f_min: the smallest shift strength whose population-limit shift of the channel reaches result 4's minimal "
        "detectable shift at median power with the DP noise alone (a lower bound: below it that channel is blind). "
        + (
            f"mu-GDP ceiling: below epsilon = {gdp:.3g} no test of any kind detects one client's change with power 1/2."
            if np.isfinite(gdp)
            else "mu-GDP ceiling: above 1/2 over the searched noise multipliers."
        ),
        "",
    ]
    if figure is not None:
        out += [f"![frontier]({Path(figure).name})", ""]
    return "\n".join(out)
