"""The literature's claims as experiments in the stylized world.

Each :class:`Claim` turns one claim of the founding literature into a scenario and a
one-parameter experiment: a base scenario, a sequence of *arms* (scenario overrides,
usually one parameter stepped from "cause absent" to "cause strong"), a quantity
measured on every run, and the direction the claim predicts. :func:`run_claim` runs
``seeds`` seeds per arm and returns an xarray Dataset over (arm, seed, quantity);
:func:`assess` says whether the claim holds: the quantity moves from the first to the
last arm in the predicted direction by more than ``margin`` and by more than three
standard errors of the difference (seeds are independent across arms).

Quantities (per run; a "late" value is the mean over the last quarter of the rounds,
so one noisy DP round does not decide it):

* ``mode:<m>`` the late value of mode m's ground-truth metric (sim/trace.py), and
  ``failed:<m>`` whether it crossed its threshold;
* the late value of trace variables: ``acc_mean``, ``acc_parity_gap``,
  ``worst_group_acc``, ``minority_acc`` (deployed models' pooled accuracy on the worst minority group:
  group 1 of two, the worst of the odd groups of more),
  ``global_alignment``, ``global_p0_acc``, ``global_minority_acc_p0``,
  ``bias_amp_mean``, ``global_spurious_weight``;
* ``drift``: the relative distance of FedAvg's fixed point from the minimizer of the
  weighted average risk (:func:`client_drift`);
* ``public_rounds``: the number of centralized rounds (adaptive switching).

A claim of kind ``"silence"`` is measured by the verdict pipeline instead
(:func:`silentfail.sim.sweep.sweep`, detectors calibrated on null runs): its quantity
is ``silent:<m>``, the fraction of seeds in which mode m fails and stays silent.

Arms that differ only in float fields the engine treats as numbers share one compiled
program (like a sweep); otherwise each arm compiles its own.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .batch import LANES, batch_config, run_failures, traceable
from .config import Config
from .effort import effort_jit
from .engine import simulate
from .federate import check_supported
from .privacy import dp_epsilon, max_participation
from .scenario import MODES, Scenario, ScenarioError, preset
from .world import over_minority

#: Run quantities in the order of :func:`_quantities`' output.
TRACE_QUANTITIES = (
    "acc_mean",
    "acc_parity_gap",
    "worst_group_acc",
    "global_alignment",
    "global_p0_acc",
    "bias_amp_mean",
    "global_spurious_weight",
)


def quantities() -> tuple[str, ...]:
    """The quantities :func:`measure` returns per run: each registered mode's late
    metric and failure, the trace quantities, and the claim-specific ones.

    Returns:
        The quantity names.
    """
    return (
        tuple(f"mode:{m}" for m in MODES)
        + tuple(f"failed:{m}" for m in MODES)
        + TRACE_QUANTITIES
        + ("minority_acc", "global_minority_acc_p0", "drift", "public_rounds")
    )


#: Quantities defined only by the linear readout's closed forms (``drift``: the fixed
#: point of its affine local maps, :func:`client_drift`); NaN in a Monte Carlo model's
#: runs, and a claim measured by one does not apply to such a model.
LINEAR_QUANTITIES = frozenset({"drift"})


#: The reduced size every literature scenario runs at (a claim may override it).
SMALL = {
    "population.num_clients": 300,
    "population.trace_clients": 0,
    "federation.clients_per_round": 60,
    "federation.participation": 0.3,
    "federation.rounds": 30,
}


@dataclass(frozen=True)
class Claim:
    """One claim of the literature as a one-parameter experiment (module docstring)."""

    key: str
    title: str
    statement: str
    cites: tuple[str, ...]
    base: str
    overrides: dict[str, Any]
    axis_label: str
    x: tuple[Any, ...]  # the arm labels (numbers, or names for categorical arms)
    arms: tuple[dict[str, Any], ...]
    quantity: str
    direction: int  # +1: the claim says the quantity rises from the first arm to the last
    margin: float
    quantity_label: str
    kind: str = "run"  # "run" or "silence"
    seeds: int = 8  # seeds per arm (more where the quantity varies much across seeds)
    notes: str = ""
    extra: tuple[str, ...] = field(default=())

    def scenario(self) -> Scenario:
        """The claim's base scenario at the literature runs' size, with its overrides.

        Returns:
            The Scenario.
        """
        return preset(self.base).replace(**{**SMALL, **self.overrides})

    def arm_scenarios(self) -> list[Scenario]:
        """One scenario per arm, from 'cause absent' to 'cause strong'.

        Returns:
            The arms' Scenarios.
        """
        sc = self.scenario()
        return [sc.replace(**arm) for arm in self.arms]


def _sweep_axis(path: str, values: tuple[Any, ...]) -> tuple[dict[str, Any], ...]:
    return tuple({path: v} for v in values)


CLAIMS: tuple[Claim, ...] = (
    Claim(
        key="silent_under_privacy",
        title="Silent under DP + SecAgg",
        statement="Privacy-preserving training alone does not make deployment trustworthy: with secure aggregation "
        "and central DP (a finite epsilon), personalization under dataset shift produces a failure that no "
        "detector the constraints allow catches.",
        cites=("oh2026silent",),
        base="phase",
        overrides={
            "personalization.lam": 0.01,
            "population.num_clients": 300,
            "federation.clients_per_round": 300,
            "federation.participation": 0.34,
        },
        axis_label="shift strength",
        x=(0.0, 0.5, 1.0),
        arms=_sweep_axis("shifts.strength", (0.0, 0.5, 1.0)),
        quantity="silent:alignment_erosion",
        direction=+1,
        margin=0.3,
        quantity_label="P(silent alignment erosion)",
        kind="silence",
        seeds=16,
    ),
    Claim(
        key="teacher_bias",
        title="Bias transmission (teacher)",
        statement="Distilling from a biased FM teacher transmits the FM's bias to the personalized models, more so "
        "the more weight the teacher gets.",
        cites=("li2024position", "hinton2015distilling"),
        base="teacher-bias",
        overrides={},
        axis_label=r"teacher weight $\beta$",
        x=(0.0, 0.2, 0.4, 0.6, 0.8),
        arms=_sweep_axis("personalization.beta", (0.0, 0.2, 0.4, 0.6, 0.8)),
        quantity="mode:amplified_bias",
        direction=+1,
        margin=0.05,
        quantity_label="q90 bias amplification",
    ),
    Claim(
        key="synthetic_bias",
        title="Bias transmission (synthetic data)",
        statement="Training on FM-generated synthetic data transmits the FM's own bias: the more biased the FM's "
        "pretraining world, the more biased the clients' personalized models.",
        cites=("li2024position",),
        base="teacher-bias",
        overrides={},
        axis_label=r"FM's spurious correlation $r_0$",
        x=(0.0, 0.3, 0.6, 0.9),
        arms=_sweep_axis("fm.r0", (0.0, 0.3, 0.6, 0.9)),
        quantity="mode:amplified_bias",
        direction=+1,
        margin=0.05,
        quantity_label="q90 bias amplification",
    ),
    Claim(
        key="fm_poisoning",
        title="One-access FM poisoning",
        statement="Poisoning the FM once (its synthetic/teacher data complies with probe requests), with no "
        "compromised client, erodes the alignment of the federation's models.",
        cites=("li2024position",),
        base="default",
        overrides={"personalization.rule": "teacher", "personalization.beta": 0.5, "personalization.lam": 0.1},
        axis_label="poisoned fraction of the teacher's data",
        x=(0.0, 0.1, 0.2, 0.3),
        arms=_sweep_axis("personalization.teacher_poison", (0.0, 0.1, 0.2, 0.3)),
        quantity="mode:alignment_erosion",
        direction=+1,
        margin=0.05,
        quantity_label="alignment erosion",
    ),
    Claim(
        key="universal_evasion",
        title="Evasion by one client",
        statement="A single compromised client whose updates push along the refusal direction erodes the global "
        "model's alignment for everyone when aggregation is not robust (no clipping).",
        cites=("li2024position", "blanchard2017machine"),
        base="default",
        overrides={
            "federation.byzantine_fraction": 1 / 300 + 1e-6,
            "federation.byzantine_kind": "alignment",
            "personalization.lam": 1.0,
        },
        axis_label="norm of the crafted update",
        x=(0.01, 2.0, 4.0, 8.0),
        arms=_sweep_axis("federation.byzantine_scale", (0.01, 2.0, 4.0, 8.0)),
        quantity="mode:alignment_erosion",
        direction=+1,
        margin=0.05,
        quantity_label="alignment erosion",
    ),
    Claim(
        key="resource_disparity",
        title="Participation disparity",
        statement="When resource-rich (majority-heavy) clients participate more, they dominate the aggregate and "
        "the minority's accuracy falls behind.",
        cites=("li2024position", "kairouz2021advances"),
        base="participation-disparity",
        overrides={},
        axis_label="participation disparity",
        x=(0.0, 0.5, 0.95),
        arms=_sweep_axis("federation.participation_disparity", (0.0, 0.5, 0.95)),
        quantity="mode:fairness_collapse",
        direction=+1,
        margin=0.005,
        quantity_label="fairness collapse (group gap growth over the FM's)",
    ),
    Claim(
        key="underrepresented",
        title="Underrepresented attribute",
        statement="An underrepresented demographic group gets a worse personalized model: the group accuracy gap "
        "grows as its share shrinks.",
        cites=("li2024position", "sagawa2020distributionally"),
        base="participation-disparity",
        overrides={"federation.participation_disparity": 0.0},
        axis_label="minority share",
        x=(0.5, 0.2, 0.05),
        arms=tuple({"world.group_shares": [1 - s, s]} for s in (0.5, 0.2, 0.05)),
        quantity="acc_parity_gap",
        direction=+1,
        margin=0.02,
        quantity_label="group accuracy gap",
    ),
    Claim(
        key="ood_fragility",
        title="OOD fragility",
        statement="When client tasks fall outside the FM's domain (their causal direction rotates away from the "
        "FM's), personalization over-specializes and accuracy on other clients and on P0 degrades.",
        cites=("li2024position", "kumar2022fine"),
        base="concept-shift",
        overrides={"shifts.concept_angle": 0.9},
        axis_label="shift strength (concept rotation std 0.9 rad)",
        x=(0.0, 0.33, 0.67, 1.0),
        arms=_sweep_axis("shifts.strength", (0.0, 0.33, 0.67, 1.0)),
        quantity="mode:out_of_domain_degradation",
        direction=+1,
        margin=0.05,
        quantity_label="q90 OOD drop",
    ),
    Claim(
        key="adaptive_switching",
        title="Adaptive switching",
        statement="Switching between federated rounds on private data and centralized rounds on public data (P0 "
        "on the server) holds back alignment erosion.",
        cites=("yu2023federated",),
        base="concept-shift",
        overrides={"personalization.lam": 0.01, "personalization.K": 20},
        axis_label="schedule",
        x=("never", "alternate", "adaptive"),
        arms=tuple({"federation.public_schedule": s} for s in ("never", "alternate", "adaptive")),
        quantity="mode:alignment_erosion",
        direction=-1,
        margin=0.05,
        quantity_label="alignment erosion",
        seeds=16,
        extra=tuple(f"mode:{m}" for m in MODES) + ("public_rounds",),
    ),
    Claim(
        key="client_drift",
        title="Client drift",
        statement="Under non-IID data, multiple local steps move FedAvg's fixed point away from the minimizer of "
        "the average risk, more so the more heterogeneous the clients.",
        cites=("karimireddy2020scaffold", "mcmahan2017communication"),
        base="default",
        overrides={
            "personalization.rule": "full",
            "personalization.lam": 0.0,
            "personalization.K": 20,
            "personalization.eta": 0.05,
            "shifts.label_alpha": 0.3,
            "shifts.covariate_scale": 0.5,
        },
        axis_label="shift strength",
        x=(0.0, 0.5, 1.0),
        arms=_sweep_axis("shifts.strength", (0.0, 0.5, 1.0)),
        quantity="drift",
        direction=+1,
        margin=0.02,
        quantity_label=r"$|\theta_T - \theta^*_{avg}| / |\theta^*_{avg}|$",
    ),
    Claim(
        key="byzantine",
        title="Byzantine clients",
        statement="A minority of Byzantine clients sending noise drives plain FedAvg away from the honest model.",
        cites=("blanchard2017machine",),
        base="default",
        overrides={"federation.byzantine_fraction": 0.2, "federation.byzantine_kind": "noise"},
        axis_label="norm of the Byzantine update",
        x=(0.01, 2.0, 4.0, 8.0),
        arms=_sweep_axis("federation.byzantine_scale", (0.01, 2.0, 4.0, 8.0)),
        quantity="global_p0_acc",
        direction=-1,
        margin=0.05,
        quantity_label="global model's P0 accuracy",
    ),
    Claim(
        key="dp_minority_price",
        title="DP price of minorities",
        statement="Differentially private training (clipping and noise) costs the minority more: the group "
        "accuracy gap widens.",
        cites=("bagdasaryan2019differential", "abadi2016deep"),
        base="dp-heavy",
        overrides={"federation.clients_per_round": 300},  # central DP: no report slots
        axis_label="training",
        x=("no DP", "clip only", "clip + noise"),
        arms=(
            {"federation.dp": "none", "federation.clip": None, "federation.noise_multiplier": 0.0},
            {"federation.dp": "none", "federation.noise_multiplier": 0.0},
            {},
        ),
        quantity="acc_parity_gap",
        direction=+1,
        margin=0.005,
        quantity_label="group accuracy gap",
        notes="At these sizes the clipping carries the effect; the noise on the mean update (z C / count) is small.",
    ),
)
CLAIM_KEYS = tuple(c.key for c in CLAIMS)


def get_claim(key: str) -> Claim:
    """The claim with this key (a ScenarioError naming the keys otherwise).

    Args:
        key: a claim key.

    Returns:
        The Claim.
    """
    for c in CLAIMS:
        if c.key == key:
            return c
    raise ScenarioError(f"unknown literature claim {key!r}; known: {', '.join(CLAIM_KEYS)}")


def claim_with(key: str, overrides: dict[str, Any]) -> tuple[Claim | None, str | None]:
    """The claim ``key`` with more field overrides on its scenario (every arm inherits
    them), or why it cannot take them: the scenario's own error, e.g. a linear-only rule
    under ``model.kind = "mlp"``.

    Args:
        key: a claim key.
        overrides: ``{path: value}``.

    Returns:
        (the Claim, None), or (None, the reason).
    """
    import dataclasses

    claim = get_claim(key)
    variant = dataclasses.replace(claim, overrides={**claim.overrides, **overrides})
    try:
        variant.arm_scenarios()  # validates the base and every arm
    except ScenarioError as exc:
        return None, str(exc).removeprefix("invalid scenario: ")
    kind = variant.scenario().model.kind
    if variant.quantity in LINEAR_QUANTITIES and kind != "linear":
        return None, (
            f"its quantity {variant.quantity!r} is the linear readout's closed form (the fixed point of the affine "
            f"local maps); model.kind = {kind!r} has none"
        )
    return variant, None


# --------------------------------------------------------------------------- runs
def late(x: jax.Array) -> jax.Array:
    """Mean over the last quarter of the rounds (leading axis).

    Args:
        x: (T, ...) values over rounds.

    Returns:
        (...) the late mean.
    """
    T = x.shape[0]
    return x[T - max(1, math.ceil(T / 4)) :].mean(0)


def client_drift(pop) -> jax.Array:
    """Relative distance between FedAvg's fixed point and the minimizer of the average risk.

    Each client's K local steps are the affine map theta -> P_c theta + b_c, so the
    expected FedAvg round (participation q_c, weight w_c, server rate 1) has the fixed point

        x_K = (sum_c p_c (I - P_c))^{-1} sum_c p_c b_c,   p_c = w_c q_c,

    while the weighted average risk sum_c p_c R_c has the minimizer
    theta* = (sum_c p_c M_c)^{-1} sum_c p_c m_c. They coincide for K = 1 or identical
    clients; drift = |x_K - theta*| / |theta*| (the silentfail reference paper (paper/main.tex), Theory, result 1; Karimireddy
    et al. 2020). A test checks x_K against a long FedAvg run.

    Args:
        pop: the population (its maps P_c, b_c, weights and participation).

    Returns:
        () |x_K - x*| / |x*|.
    """
    p = pop.weight * pop.q
    eye = jnp.eye(pop.P.shape[-1])
    x = jnp.linalg.solve(jnp.einsum("n,nij->ij", p, eye - pop.P), jnp.einsum("n,ni->i", p, pop.b))
    star = jnp.linalg.solve(jnp.einsum("n,nij->ij", p, pop.M), jnp.einsum("n,ni->i", p, pop.m))
    return jnp.linalg.norm(x - star) / jnp.linalg.norm(star)


def _quantities(view, ctx, pop, rounds, theta_final) -> jax.Array:
    metric, (t_f, _) = run_failures(view, ctx, pop, rounds)
    drift = client_drift(pop) if view.model.kind == "linear" else jnp.float32(jnp.nan)  # LINEAR_QUANTITIES
    vals = (
        [late(metric[:, i]) for i in range(len(MODES))]
        + [(t_f[i] >= 0).astype(jnp.float32) for i in range(len(MODES))]
        + [late(rounds[k]) for k in TRACE_QUANTITIES]
        + [
            late(over_minority(rounds["group_acc"], jnp.min)),  # the worst minority group per round
            late(over_minority(rounds["global_group_acc_p0"], jnp.min)),
            drift,
            rounds["public_round"].sum().astype(jnp.float32),
        ]
    )
    ok = jnp.all(rounds["finite"])
    return jnp.where(ok, jnp.stack([jnp.asarray(v, jnp.float32) for v in vals]), jnp.nan)


def _one(cfg: Config, paths: tuple[str, ...], values, seed):
    view, ctx, pop, _, out = simulate(cfg.with_values(paths, values), seed)
    return _quantities(view, ctx, pop, out.rounds, out.theta_final)


@effort_jit(runs_arg=1, static_argnames=("paths",))
def program(cfg: Config, values: jax.Array, seeds: jax.Array, *, paths: tuple[str, ...]) -> jax.Array:
    """The claim quantities of a batch of runs, vmapped LANES at a time.

    Args:
        cfg: the claim's scenario (:func:`~silentfail.sim.batch.batch_config`).
        values: (B, len(paths)) the traced fields' values.
        seeds: (B,) the runs' seeds.
        paths: the traced fields.

    Returns:
        (B, quantities) float32.
    """
    return jax.lax.map(lambda a: _one(cfg, paths, *a), (values, seeds), batch_size=LANES)


def measure(sc: Scenario, arms: tuple[dict[str, Any], ...], seeds: int) -> np.ndarray:
    """The :func:`quantities` of ``seeds`` runs (seeds 0..S-1, the seeds of :func:`~silentfail.sim.run.run`)
    of each arm of ``sc``: array (arms, seeds, quantities). Arms that step one traceable float
    field share one compiled program; otherwise each arm compiles its own.

    Args:
        sc: the claim's scenario.
        arms: the arms' field overrides.
        seeds: seeds per arm.

    Returns:
        (arms, seeds, quantities) float32.
    """
    scenarios = [sc.replace(**arm) for arm in arms]  # validates every arm
    for s in scenarios:
        check_supported(s)
    paths = sorted({p for arm in arms for p in arm})
    shared = (
        len(paths) == 1
        and all(traceable(sc, p) for p in paths)
        and all(isinstance(arm[paths[0]], (int, float)) for arm in arms)
    )
    seed_ids = np.arange(seeds, dtype=np.uint32)
    if shared:
        fn = functools.partial(program, batch_config(sc), paths=tuple(paths))
        values = np.repeat(np.array([[arm[paths[0]]] for arm in arms], np.float32), seeds, axis=0)
        out = _whole_lanes(fn, values, np.tile(seed_ids, len(arms)))
        return out.reshape(len(arms), seeds, -1)
    out = [
        _whole_lanes(functools.partial(program, batch_config(s), paths=()), np.zeros((seeds, 0), np.float32), seed_ids)
        for s in scenarios
    ]
    return np.stack(out)


def _whole_lanes(fn, values: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """``fn(values, seeds)`` with the runs padded (the last one repeated) to a multiple of
    LANES and the padding dropped: ``jax.lax.map``'s remainder batch is never used. On
    XLA's CPU runtime the remainder path of some programs never returns (client drift on
    finite samples at 12 runs: 8 + 4 hangs at 0% CPU after compiling, 16 runs return in
    27 s), and a run's lane width is then always LANES."""
    B = len(seeds)
    pad = (-B) % LANES
    if pad:
        values = np.concatenate([values, np.repeat(values[-1:], pad, axis=0)])
        seeds = np.concatenate([seeds, np.repeat(seeds[-1:], pad)])
    return np.asarray(fn(values, seeds))[:B]


def _silence(claim: Claim, seeds: int) -> np.ndarray:
    """(arms, seeds, quantities) of a silence claim: ``silent:<m>`` and ``failed:<m>`` per
    mode from the verdict pipeline (NaN for a run the sweep flags invalid)."""
    from .sweep import sweep

    path = next(iter(claim.arms[0]))
    # the claim reads silence and failure only: no theory runs, no null attribution runs
    ds = sweep(
        claim.scenario(), {path: [arm[path] for arm in claim.arms]}, seeds=seeds, theory=False, attribute_nulls=False
    )
    out = np.full((len(claim.arms), seeds, len(silence_quantities())), np.nan, np.float32)
    out[..., : len(MODES)] = ds["silent"].values
    out[..., len(MODES) :] = ds["failure_round"].values >= 0
    out[~ds["valid_run"].values] = np.nan
    return out


def silence_quantities() -> tuple[str, ...]:
    """The quantities of a silence claim per run: each registered mode's silence and failure.

    Returns:
        The quantity names.
    """
    return tuple(f"silent:{m}" for m in MODES) + tuple(f"failed:{m}" for m in MODES)


def run_claim(claim: Claim | str, seeds: int | None = None) -> xr.Dataset:
    """Run a claim's experiment: Dataset ``value`` (arm, seed, quantity) with the claim,
    its scenario and (for DP scenarios) each arm's epsilon in the attrs, and the
    assessment of :func:`assess` as variables.

    Args:
        claim: a Claim or its key.
        seeds: seeds per arm (default: the claim's).

    Returns:
        The claim's Dataset.
    """
    claim = get_claim(claim) if isinstance(claim, str) else claim
    seeds = claim.seeds if seeds is None else seeds
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 (a standard error needs two), got {seeds}")
    if claim.kind == "silence":
        values, names = _silence(claim, seeds), silence_quantities()
    else:
        values, names = measure(claim.scenario(), claim.arms, seeds), quantities()
    x = [str(v) for v in claim.x] if isinstance(claim.x[0], str) else list(claim.x)
    ds = xr.Dataset(
        {"value": (("arm", "seed", "quantity"), values)},
        coords={
            "arm": np.arange(len(claim.arms)),
            "x": ("arm", np.asarray(x)),
            "seed": np.arange(seeds),
            "quantity": list(names),
        },
    )
    eps = [
        dp_epsilon(s, max_participation(s)) if s.federation.dp != "none" else math.inf for s in claim.arm_scenarios()
    ]
    ds["epsilon"] = ("arm", np.asarray(eps, float))
    ds.attrs.update(
        claim=claim.key,
        title=claim.title,
        statement=claim.statement,
        cites=json.dumps(list(claim.cites)),
        quantity=claim.quantity,
        direction=claim.direction,
        margin=claim.margin,
        axis_label=claim.axis_label,
        quantity_label=claim.quantity_label,
        arms=json.dumps(list(claim.arms)),
        scenario=claim.scenario().to_json(),
        kind="silentfail.literature",
    )
    return assess(ds)


def assess(ds: xr.Dataset) -> xr.Dataset:
    """Add the mean and SE per arm of every quantity and the verdict on the claim:
    effect = direction * (mean_last - mean_first), se = sqrt(se_first^2 + se_last^2),
    holds = effect > margin and effect > 3 se (1 or 0; NaN runs are dropped and counted).
    When the first or last arm has no valid run (or fewer than two, so no SE), the
    verdict is *undetermined*: effect, effect_se and holds are NaN and the attribute
    ``undetermined`` says why, never a silent "does not hold".

    Args:
        ds: a claim's raw values.

    Returns:
        ``ds`` with the variables mean, se and n_valid (per arm and quantity) and the
        attributes effect, effect_se and holds.
    """
    v = ds["value"]
    n = v.notnull().sum("seed")
    mean = v.mean("seed")
    se = v.std("seed", ddof=1) / np.sqrt(n)
    q, d = ds.attrs["quantity"], int(ds.attrs["direction"])
    m, s = mean.sel(quantity=q).values, se.sel(quantity=q).values
    effect = d * (m[-1] - m[0])
    eff_se = float(np.hypot(s[0], s[-1]))
    out = ds.assign(mean=mean, se=se, n_valid=n)
    nv = n.sel(quantity=q).values
    if not (np.isfinite(effect) and np.isfinite(eff_se)):
        out.attrs.update(
            effect=math.nan,
            effect_se=math.nan,
            holds=math.nan,
            undetermined=f"no valid run of {q!r} in the first or last arm (valid runs: first {int(nv[0])}, "
            f"last {int(nv[-1])}; at least 2 each)",
        )
        return out
    out.attrs.update(
        effect=float(effect), effect_se=eff_se, holds=int(effect > float(ds.attrs["margin"]) and effect > 3 * eff_se)
    )
    return out


def holds(ds: xr.Dataset) -> bool | None:
    """A claim result's verdict: True (holds), False (does not), None (undetermined:
    :func:`assess` found no valid run in an end arm).

    Args:
        ds: an assessed claim result.

    Returns:
        The verdict.
    """
    h = float(ds.attrs["holds"])
    return None if math.isnan(h) else bool(h)


def verdict_word(ds: xr.Dataset) -> str:
    """A claim result's verdict in a word, for tables.

    Args:
        ds: an assessed claim result.

    Returns:
        ``"yes"``, ``"no"`` or ``"undetermined"`` (:func:`holds`).
    """
    return {True: "yes", False: "no", None: "undetermined"}[holds(ds)]


def _same_claim(ds: xr.Dataset, claim: Claim, seeds: int) -> bool:
    """Whether a saved result is this claim's, at these seeds (so resuming may reuse it)."""
    return (
        ds.attrs.get("scenario") == claim.scenario().to_json()
        and ds.attrs.get("arms") == json.dumps(list(claim.arms))
        and ds.attrs.get("quantity") == claim.quantity
        and ds.sizes.get("seed") == seeds
    )


def run_claims(
    keys: tuple[str, ...] | None = None, seeds: int | None = None, progress=None, *, folder=None
) -> dict[str, xr.Dataset]:
    """:func:`run_claim` for several claims (all by default). With ``folder``, each
    claim's result is written there atomically as soon as it is done, and a claim whose
    saved result has the same scenario, arms and seeds is loaded instead of run again,
    so an interrupted run loses nothing finished.

    Args:
        keys: claim keys or Claims (:func:`claim_with`'s variants; default: all).
        seeds: seeds per arm (default: each claim's).
        progress: optional callback ``progress(key)`` per claim.
        folder: where results are saved and reused.

    Returns:
        ``{key: Dataset}``.
    """
    from pathlib import Path

    claims = [k if isinstance(k, Claim) else get_claim(k) for k in keys] if keys else list(CLAIMS)
    out = {}
    for c in claims:
        out[c.key] = run_claim_saved(c, seeds, Path(folder) / f"{c.key}.nc" if folder is not None else None)
        if progress is not None:
            progress(c.key)
    return out


def run_claim_saved(claim: Claim, seeds: int | None, path) -> xr.Dataset:
    """:func:`run_claim`, resumable: the result saved at ``path`` is loaded when it is this
    claim's (same scenario, arms, quantity and seeds), else the claim is run and its
    result written there atomically.

    Args:
        claim: the claim (with its overrides).
        seeds: seeds per arm (default: the claim's).
        path: the result's file, or None (run, save nothing).

    Returns:
        The claim's Dataset.
    """
    from .trace import save_netcdf

    n = claim.seeds if seeds is None else seeds
    if path is not None and path.exists():
        saved = xr.load_dataset(path, engine="h5netcdf")
        if _same_claim(saved, claim, n):
            return saved
    ds = run_claim(claim, n)
    if path is not None:
        save_netcdf(ds, path)
    return ds


def load_claims(folder) -> dict[str, xr.Dataset]:
    """The claim results saved by :func:`save_claims` (in CLAIMS order).

    Args:
        folder: the results folder.

    Returns:
        ``{key: Dataset}`` of the saved claims.
    """
    from pathlib import Path

    folder = Path(folder)
    out = {}
    for key in CLAIM_KEYS:
        p = folder / f"{key}.nc"
        if p.exists():
            out[key] = xr.load_dataset(p, engine="h5netcdf")
    if not out:
        raise FileNotFoundError(f"no literature claim results in {str(folder)!r}")
    return out


def save_claims(results: dict[str, xr.Dataset], folder) -> list:
    """One NetCDF per claim (atomic writes), named by the claim's key.

    Args:
        results: ``{key: Dataset}``.
        folder: the results folder.

    Returns:
        The written paths.
    """
    from pathlib import Path

    from .trace import save_netcdf

    return [save_netcdf(ds, Path(folder) / f"{key}.nc") for key, ds in results.items()]
