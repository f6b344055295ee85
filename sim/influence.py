"""The paper's influence graph, tested by intervention: does raising one mode's cause
raise another mode, and does it do so *through* the first mode?

For a source mode A the experiment runs three arms on the same seeds (common random
numbers, so each seed's differences are paired): the baseline, the intervention on A's
mechanism at strength delta (``sim/intervention.py``), and the same intervention with
A's mechanism blocked (the component of the move that changes A removed). Per seed
and mode, a run's value is the late mean of the mode's metric (the last quarter of the
rounds, relative to the FM as the verdicts measure it). For each target B != A:

* dA = A(delta) - A(0): did the intervention raise A? (``untestable`` if not: a mean
  not significant at level :data:`ALPHA`, or below the margin);
* effect = B(delta) - B(0), the total response of B, with its SE over seeds;
* through = B(delta) - B(delta, blocked): the part of the response that goes away when
  A's mechanism is blocked, the effect *through* A; direct = B(delta, blocked) - B(0);
  mediated_share = mean(through) / mean(effect);
* verdict: ``supported`` when the effect through A is positive, significant at level
  :data:`ALPHA` (one-sided Student t over the S paired seeds) and beyond the margin,
  ``reversed`` when it is negative beyond both, ``not_supported`` otherwise;
* precedence: among the intervention arm's runs in which both A and B fail, the share
  in which A's failure round comes first, ties counting one half (NaN when none).

The margin is ``margin`` times B's failure threshold, so a response too small to move B
toward failure is not an influence. Under the null (no effect through A, Gaussian
seed-to-seed noise) a verdict of ``supported`` has probability at most ALPHA = 1 - Phi(3)
= 1.35e-3 per pair (the level of a one-sided 3-sigma test; the margin only lowers it),
about 0.04 false supports over the 30 pairs; the tests measure it over seeds on a toy
world. :func:`assess` is the statistics alone, on per-seed samples, so
a planted toy world and the stylized world are judged by the same rule.

References:
    Baron & Kenny (1986), The moderator-mediator variable distinction, J. Pers. Soc.
    Psychol. 51(6). Pearl (2001), Direct and Indirect Effects, UAI. Imai, Keele &
    Tingley (2010), A general approach to causal mediation analysis, Psychol. Methods 15(4).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .batch import LANES, batch_config, run_failures
from .config import Config
from .effort import effort_jit
from .engine import simulate
from .intervention import MECHANISMS
from .literature import late
from .registry import BUILTIN_MODES
from .scenario import Scenario, ScenarioError, preset

#: The paper's nine influence edges (Oh & Bui 2026) by strength, in sim mode ids.
PAPER_EDGES: dict[tuple[str, str], str] = {
    ("amplified_bias", "confidence_miscalibration"): "primary",
    ("amplified_bias", "fairness_collapse"): "primary",
    ("confidence_miscalibration", "adaptation_misalignment"): "primary",
    ("confidence_miscalibration", "out_of_domain_degradation"): "primary",
    ("fairness_collapse", "alignment_erosion"): "primary",
    ("out_of_domain_degradation", "alignment_erosion"): "primary",
    ("fairness_collapse", "adaptation_misalignment"): "feedback",
    ("adaptation_misalignment", "alignment_erosion"): "feedback",
    ("alignment_erosion", "amplified_bias"): "feedback",
}
#: Verdicts.
VERDICTS = ("supported", "not_supported", "reversed", "untestable")
#: One-sided level of every test (that of 3 sigma: 1 - Phi(3)).
ALPHA = 0.0013498980316301035
#: Intervention strength (relative size of the move, |delta theta| / |theta|).
DELTA = 0.25
#: The margin in units of the target's failure threshold.
MARGIN = 0.05
#: The three arms: (intervention.strength factor, intervention.block).
ARMS = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))
PATHS = ("intervention.strength", "intervention.block")


def all_pairs() -> list[tuple[str, str]]:
    """Every ordered pair of distinct built-in modes (30).

    Returns:
        (source, target) pairs, sources in mode order.
    """
    return [(a, b) for a in BUILTIN_MODES for b in BUILTIN_MODES if a != b]


def parse_pairs(specs: Iterable[str]) -> list[tuple[str, str]]:
    """``"source:target"`` strings as pairs, each mode checked.

    Args:
        specs: e.g. ``["amplified_bias:fairness_collapse"]``.

    Returns:
        The pairs.

    Raises:
        ScenarioError: a malformed pair, an unknown mode or a pair of one mode, named.
    """
    pairs = []
    for spec in specs:
        source, sep, target = spec.partition(":")
        if not sep:
            raise ScenarioError(f"pair {spec!r}: write it as SOURCE:TARGET, e.g. amplified_bias:fairness_collapse")
        for mode in (source, target):
            if mode not in BUILTIN_MODES:
                raise ScenarioError(f"pair {spec!r}: unknown mode {mode!r}; modes: {', '.join(BUILTIN_MODES)}")
        if source == target:
            raise ScenarioError(f"pair {spec!r}: a mode's influence on itself is not an edge")
        pairs.append((source, target))
    return pairs


def assess(
    d_source: np.ndarray,
    effect: np.ndarray,
    direct: np.ndarray,
    *,
    margin_source: float,
    margin_target: float,
    alpha: float = ALPHA,
) -> dict:
    """The statistics and verdict of one edge from per-seed paired differences.

    Args:
        d_source: (S,) A(delta) - A(0) per seed.
        effect: (S,) B(delta) - B(0) per seed.
        direct: (S,) B(delta, blocked) - B(0) per seed.
        margin_source: the least mean raise of A that counts as raising it.
        margin_target: the least mean effect through A that counts.
        alpha: the one-sided level of the t tests (of dA > 0 and of the effect through A).

    Returns:
        ``{d_source, d_source_se, effect, se, through, through_se, direct, direct_se,
        mediated_share, verdict, reason}``.
    """
    from scipy.stats import t as student_t

    d_source, effect, direct = (np.asarray(x, float) for x in (d_source, effect, direct))
    ok = np.isfinite(d_source) & np.isfinite(effect) & np.isfinite(direct)  # seeds with every arm finite
    through = effect - direct
    out = {}
    for name, x in (("d_source", d_source), ("effect", effect), ("through", through), ("direct", direct)):
        x = x[ok]
        mean = float(x.mean()) if x.size else math.nan
        se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
        out[name], out[f"{name}_se" if name != "effect" else "se"] = mean, se
    out["mediated_share"] = out["through"] / out["effect"] if abs(out["effect"]) > 1e-12 else math.nan
    m, s = out["through"], out["through_se"]
    crit = float(student_t.ppf(1.0 - alpha, ok.sum() - 1)) if ok.sum() > 1 else math.inf
    if ok.sum() < 2 or not np.isfinite([m, s]).all():
        verdict, reason = "untestable", f"{int(ok.sum())} seed(s) with every arm finite (a test needs two)"
    elif out["d_source"] <= max(crit * out["d_source_se"], margin_source):
        verdict = "untestable"
        reason = (
            f"the intervention does not raise the source (dA = {out['d_source']:.3g} +- {out['d_source_se']:.2g}, "
            f"needs > {crit:.2f} SE and > {margin_source:.3g})"
        )
    elif m > max(crit * s, margin_target):
        verdict, reason = "supported", ""
    elif m < -max(crit * s, margin_target):
        verdict, reason = "reversed", ""
    else:
        verdict, reason = "not_supported", ""
    out.update(verdict=verdict, reason=reason)
    return out


def precedence(t_source: np.ndarray, t_target: np.ndarray) -> float:
    """Share of runs in which the source fails before the target, a tie (the same
    failure round) counting one half, among the runs in which both fail (failure
    rounds, -1 = never): 1 when the source always fails first, 0.5 for no order.

    Args:
        t_source: (S,) the source's failure rounds.
        t_target: (S,) the target's.

    Returns:
        The share, or NaN when no run has both failures.
    """
    both = (t_source >= 0) & (t_target >= 0)
    if not both.any():
        return math.nan
    s, t = t_source[both], t_target[both]
    return float(np.mean((s < t) + 0.5 * (s == t)))


def _one(cfg: Config, values, seed):
    view, ctx, pop, _, out = simulate(cfg.with_values(PATHS, values), seed)
    metric, (t_f, _) = run_failures(view, ctx, pop, out.rounds)
    ok = jnp.all(out.rounds["finite"])
    return jnp.where(ok, late(metric), jnp.nan), t_f


@effort_jit(runs_arg=1)
def program(cfg: Config, values: jax.Array, seeds: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The late mode metrics and failure rounds of a batch of intervened runs.

    Args:
        cfg: the scenario with ``intervention.mode`` set (:func:`~silentfail.sim.batch.batch_config`).
        values: (B, 2) intervention strength and block per run.
        seeds: (B,) the runs' seeds.

    Returns:
        ((B, modes) late metrics (NaN for a non-finite run), (B, modes) failure rounds).
    """
    return jax.lax.map(lambda a: _one(cfg, *a), (values, seeds), batch_size=LANES)


def source_runs(sc: Scenario, source: str, seeds: int, delta: float = DELTA) -> tuple[np.ndarray, np.ndarray]:
    """The three arms of the intervention on ``source`` (baseline, cause, blocked) over
    seeds 0..S-1.

    Args:
        sc: the scenario.
        source: the source mode.
        seeds: seeds per arm.
        delta: the intervention strength.

    Returns:
        (late metrics (3, S, modes), failure rounds (3, S, modes)).
    """
    if source not in MECHANISMS:
        raise ScenarioError(f"no intervention for mode {source!r}; interventions exist for {', '.join(MECHANISMS)}")
    arm_sc = sc.replace(**{"intervention.mode": source})
    values = np.repeat(np.array([[f * delta, b] for f, b in ARMS], np.float32), seeds, axis=0)
    seed_ids = np.tile(np.arange(seeds, dtype=np.uint32), len(ARMS))
    late, t_f = program(batch_config(arm_sc), values, seed_ids)
    shape = (len(ARMS), seeds, -1)
    return np.asarray(late).reshape(shape), np.asarray(t_f).reshape(shape)


def reduced(sc: Scenario) -> Scenario:
    """``sc`` at the size of a quick influence run: at most 60 clients (8 on the OOD
    panel) and 12 rounds.

    Args:
        sc: the scenario.

    Returns:
        The reduced scenario.
    """
    n = min(sc.population.num_clients, 60)
    return sc.replace(
        **{
            "population.num_clients": n,
            "population.trace_clients": min(sc.population.trace_clients, n),
            "population.ood_subset": min(sc.population.ood_subset, 8),
            "federation.clients_per_round": min(sc.federation.clients_per_round, n),
            "federation.rounds": min(sc.federation.rounds, 12),
        }
    )


def influences(
    scenario: Scenario | str = "default",
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    seeds: int = 16,
    delta: float = DELTA,
    margin: float = MARGIN,
    quick: bool = False,
) -> xr.Dataset:
    """Test the influence edges: every ordered pair of modes (or ``pairs``), each by
    intervention on the source's mechanism with a mediation control (module docstring).

    Args:
        scenario: a Scenario or a preset name.
        pairs: (source, target) pairs; default all 30.
        seeds: seeds per arm (>= 2).
        delta: the intervention strength.
        margin: the margin in units of the target's (and source's) failure threshold.
        quick: the scenario at the size of :func:`reduced`.

    Returns:
        Dataset over ``pair`` with source, target, strength (primary | feedback | none),
        effect, se, d_source, d_source_se, through, through_se, direct, direct_se,
        mediated_share, precedence, verdict and reason, and the scenario, seeds, delta,
        margin and wall time in its attrs.
    """
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 (a standard error needs two), got {seeds}")
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    sc = preset(scenario) if isinstance(scenario, str) else scenario
    sc = reduced(sc) if quick else sc
    pairs = all_pairs() if pairs is None else list(pairs)
    modes = list(BUILTIN_MODES)
    t0 = time.perf_counter()
    runs = {s: source_runs(sc, s, seeds, delta) for s in dict.fromkeys(a for a, _ in pairs)}
    rows = []
    for source, target in pairs:
        late, t_f = runs[source]
        i, j = modes.index(source), modes.index(target)
        stats = assess(
            late[1, :, i] - late[0, :, i],
            late[1, :, j] - late[0, :, j],
            late[2, :, j] - late[0, :, j],
            margin_source=margin * sc.thresholds.threshold(source),
            margin_target=margin * sc.thresholds.threshold(target),
        )
        stats["precedence"] = precedence(t_f[1, :, i], t_f[1, :, j])
        rows.append(dict(source=source, target=target, strength=PAPER_EDGES.get((source, target), "none"), **stats))
    names = [k for k in rows[0]]
    ds = xr.Dataset(
        {k: (("pair",), np.array([r[k] for r in rows])) for k in names},
        coords={"pair": [f"{r['source']}->{r['target']}" for r in rows]},
    )
    ds.attrs.update(
        scenario=sc.to_json(),
        seeds=seeds,
        delta=delta,
        margin=margin,
        alpha=ALPHA,
        wall_s=time.perf_counter() - t0,
        mechanisms=", ".join(f"{m.mode}: {m.node}" for m in MECHANISMS.values()),
    )
    return ds


#: The CSV's columns, in order.
COLUMNS = (
    "source",
    "target",
    "strength",
    "effect",
    "se",
    "mediated_share",
    "precedence",
    "verdict",
    "reason",
    "d_source",
    "d_source_se",
    "through",
    "through_se",
    "direct",
    "direct_se",
)


def to_frame(ds: xr.Dataset):
    """The influence table as a pandas DataFrame (the CSV's columns, in order).

    Args:
        ds: :func:`influences`' Dataset.

    Returns:
        pandas.DataFrame, one row per pair.
    """
    return ds.to_dataframe().reset_index(drop=True)[list(COLUMNS)]


#: The mediation references the influence tests cite (BibTeX).
BIBTEX = r"""
@article{baron1986moderator,
  title = {The moderator-mediator variable distinction in social psychological research: conceptual, strategic, and statistical considerations},
  author = {Baron, Reuben M. and Kenny, David A.},
  journal = {Journal of Personality and Social Psychology},
  volume = {51},
  number = {6},
  pages = {1173--1182},
  year = {1986}
}

@inproceedings{pearl2001direct,
  title = {Direct and Indirect Effects},
  author = {Pearl, Judea},
  booktitle = {Proceedings of the 17th Conference on Uncertainty in Artificial Intelligence (UAI)},
  pages = {411--420},
  year = {2001}
}

@article{imai2010general,
  title = {A general approach to causal mediation analysis},
  author = {Imai, Kosuke and Keele, Luke and Tingley, Dustin},
  journal = {Psychological Methods},
  volume = {15},
  number = {4},
  pages = {309--334},
  year = {2010}
}
"""
