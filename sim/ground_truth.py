"""Ground truth of a round: every client's deployed model, the per-client metrics on
it (``sim/metrics.py``), and their pooling over clients into the modes' round metrics
(what an all-seeing auditor would compute; paper/main.tex, The six modes).

Every client re-personalizes the current global model each round and deploys the
result (personalization is local and needs no participation), so the deployed model of
client c in round t is (for the linear model) theta_c^t = P_c theta_g^t + b_c and the
modes are measured on all clients, participants or not. What a client deploys and the
metrics of a deployed model are the scenario's client model's (``sim/models.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from . import metrics as mt
from .intervention import intervene
from .models import GlobalMetrics, client_model
from .observe import client_reports
from .population import Context, Population
from .registry import RoundView, plugin_modes
from .scenario import Scenario
from .shifts import drift_strength, interpolate
from .world import ClientWorld

QUANTILE = 0.9


def deployed_models(sc: Scenario, ctx: Context, pop: Population, theta_g: Array, t: Array) -> tuple[Array, ClientWorld]:
    """Every client's personalized model this round and the distribution it faces (the
    scenario's client model, ``sim/models.py``).

    Args:
        sc: the scenario.
        ctx: the world, the FM and the teacher.
        pop: the clients (their maps P_c, b_c, or their data in logistic mode).
        theta_g: (D,) the global model.
        t: the round (for the temporal drift).

    Returns:
        (theta_c (N, D), the clients' distributions this round); for the linear model
        theta_c = P_c theta_g + b_c.
    """
    return client_model(sc).personalize(sc, ctx, pop, theta_g, t)


def client_pass(sc: Scenario, ctx: Context, block: ClientBlock, theta_g: Array, t: Array, panel: Panel) -> dict:
    """The per-client work of a round on a block of clients (leading axis): the deployed
    models and every per-client metric on them (the scenario's client model,
    ``sim/models.py``). Clients are independent here, so the block can be any subset
    (``sim.scale.to_blocks``).

    Args:
        sc: the scenario.
        ctx: the shared world and FM.
        block: the block's clients.
        theta_g: (D,) the global model.
        t: the round.
        panel: the OOD panel this round.

    Returns:
        ``{name: (n, ...)}`` per-client outputs (theta, acc, group_acc, ece_*, alignment, ood, train_test_gap, ...).
    """
    model = client_model(sc)
    theta_c, cw = model.personalize(sc, ctx, block.pop, theta_g, t)
    if sc.intervention.mode != "none":  # an influence experiment (sim/intervention.py)
        theta_c = intervene(sc, ctx, block, theta_c, cw, panel, theta_g)
    return model.client_metrics(sc, ctx, block, theta_c, cw, panel)


class Panel(NamedTuple):
    """The fixed panel of clients every personal model is also evaluated on (mode 5)."""

    world: ClientWorld  # (R, ...) the panel clients' distributions this round
    index: Array  # (R,) their client ids
    fm_acc: Array  # (R,) the FM's accuracy on them
    p0_fm: Array  # () the FM's P0 accuracy


class ClientBlock(NamedTuple):
    """What :func:`client_pass` needs of each client: the population's per-client
    arrays and the client ids (leading axis: client)."""

    pop: Population  # with ood_panel = None
    index: Array


def client_block(pop: Population) -> ClientBlock:
    """All clients as one block: the population's per-client arrays and the client ids.

    Args:
        pop: the population.

    Returns:
        ClientBlock(pop without the panel, ids 0..N-1).
    """
    return ClientBlock(pop=pop._replace(ood_panel=None), index=jnp.arange(pop.n.shape[0]))


def round_panel(sc: Scenario, ctx: Context, pop: Population, t: Array) -> Panel:
    """The OOD panel's distributions in round t (drifting with the clients).

    Args:
        sc: the scenario.
        ctx: the shared world and FM.
        pop: the population (its panel ids).
        t: the round.

    Returns:
        Panel(world, index, fm_acc, p0_fm).
    """
    idx = pop.ood_panel
    base, shifted = (jax.tree.map(lambda a: a[idx], w) for w in (pop.base, pop.shifted))
    cw = interpolate(base, shifted, drift_strength(sc, t)) if sc.shifts.temporal.kind != "none" else shifted
    p0_fm = client_model(sc).global_metrics(ctx.theta0, ctx.world).p0_acc
    return Panel(world=cw, index=idx, fm_acc=pop.fm_acc[idx], p0_fm=p0_fm)


def round_metrics(
    sc: Scenario,
    ctx: Context,
    pop: Population,
    theta_g: Array,
    pc: dict,
    glob: GlobalMetrics | None = None,
    glob_fm: GlobalMetrics | None = None,
) -> dict:
    """Ground truth of the modes for one round, pooled over the clients'
    :func:`client_pass` outputs ``pc``: the six built-in modes' kernels, then each
    plugin mode's round metric on the same outputs (``sim/registry.py``).

    Args:
        sc: the scenario.
        ctx: the shared world and FM.
        pop: the population (its pooling weights).
        theta_g: (D,) the global model.
        pc: the clients' :func:`client_pass` outputs.
        glob: the global model's metrics (default: the client model's ``global_metrics``).
        glob_fm: the FM's metrics (default: the same).

    Returns:
        ``{mode_metric: (modes,), reports, pooled summaries, client: {...}}``.
    """
    model = client_model(sc)
    w = pop.weight
    glob = model.global_metrics(theta_g, ctx.world) if glob is None else glob
    align_g, p0_g = glob.alignment, glob.p0_acc
    align_fm = (model.global_metrics(ctx.theta0, ctx.world) if glob_fm is None else glob_fm).alignment
    misalign = mt.within_round_drop(p0_g, pc["p0_acc"], align_g, pc["alignment"])
    acc = pc["acc"]
    ece = pc["ece_top_label"] if sc.thresholds.ece_kind == "top_label" else pc["ece_classwise"]
    # pooled over clients (what an all-seeing auditor would compute)
    group_acc = mt.pooled_group_accuracy(pc["group_acc"], pc["group_mass"], w)
    p_pos = w[:, None] * pc["pi"][:, 1, :]
    p_neg = w[:, None] * pc["pi"][:, 0, :]
    tpr = (p_pos * pc["tpr"]).sum(0) / p_pos.sum(0)
    fpr = (p_neg * pc["fpr"]).sum(0) / p_neg.sum(0)
    cal = mt.Calibration(pc["ece_classwise"], pc["ece_top_label"], pc["ece_residual"].T, pc["ece_mid_low"])
    ece_agg_classwise, ece_agg_top = cal.pooled(w)
    ece_agg = ece_agg_top if sc.thresholds.ece_kind == "top_label" else ece_agg_classwise
    acc_mean = acc.mean()
    # one batched partial sort for every quantile over clients
    qs = mt.quantile(
        jnp.stack([pc["bias_amp"], ece, misalign, pc["ood"], acc, pc["alignment"]]),
        jnp.array([QUANTILE] * 4 + [1 - QUANTILE] * 2),
    )
    hi, lo = qs[:4], qs[4:]
    # fairness collapse: mt.group_accuracy_gap or mt.accuracy_spread (the quantile shared);
    # the FM's value (mt.fm_fairness) is subtracted after the run
    fair = mt.group_accuracy_gap(group_acc) if sc.thresholds.fairness_metric == "group_gap" else acc_mean - lo[0]
    builtin = [hi[0], hi[1], fair, hi[2], hi[3], mt.alignment_erosion(align_fm, align_g)]
    view = RoundView(sc, ctx, pop, theta_g, pc)
    mode = jnp.stack(builtin + [jnp.asarray(m.metric(view), builtin[0].dtype).reshape(()) for m in plugin_modes()])
    reports = client_reports(pc, misalign, ece, ctx.world.flip)
    return dict(
        reports=reports,
        mode_metric=mode,
        acc_mean=acc_mean,
        acc_std=acc.std(),
        acc_q10=lo[0],
        group_acc=group_acc,
        worst_group_acc=group_acc.min(),
        acc_parity_gap=mt.group_accuracy_gap(group_acc),
        eo_gap=mt.equalized_odds_gap(tpr, fpr),
        ece_agg=ece_agg,
        ece_agg_classwise=ece_agg_classwise,
        ece_agg_top_label=ece_agg_top,
        ece_max=ece.max(),
        ece_q90=hi[1],
        global_alignment=align_g,
        global_p0_acc=p0_g,
        global_group_acc_p0=glob.group_acc_p0,
        global_spurious_weight=glob.spurious_weight,
        deployed_alignment_q10=lo[1],
        bias_amp_mean=pc["bias_amp"].mean(),
        misalign_q90=hi[2],
        ood_q90=hi[3],
        train_test_gap_mean=pc["train_test_gap"].mean(),
        client=dict(
            acc=acc,
            ece=ece,
            ece_classwise=pc["ece_classwise"],
            ece_top_label=pc["ece_top_label"],
            bias_amp=pc["bias_amp"],
            alignment=pc["alignment"],
            misalignment=misalign,
            ood=pc["ood"],
            spurious_weight=pc["spurious_weight"],
            p0_acc=pc["p0_acc"],
            group_acc=pc["group_acc"],
            group_mass=pc["group_mass"],
            label_pos=pc["pi"][:, 1, :],
            tpr=pc["tpr"],
            fpr=pc["fpr"],
            eo_gap=pc["eo_gap"],
            dp_gap=pc["dp_gap"],
            ece_residual=pc["ece_residual"],
            ece_mid_low=pc["ece_mid_low"],
            train_test_gap=pc["train_test_gap"],
        ),
    )


#: The pooled round variables whose Monte Carlo standard error a run of a model without
#: closed forms reports beside them (``<name>_se``), with the mode metrics'.
SE_VARS = (
    "acc_mean",
    "acc_q10",
    "worst_group_acc",
    "acc_parity_gap",
    "eo_gap",
    "ece_agg",
    "global_alignment",
    "global_p0_acc",
    "bias_amp_mean",
    "misalign_q90",
    "ood_q90",
)


def replicated_round_metrics(sc: Scenario, ctx: Context, pop: Population, theta_g: Array, pc: dict) -> dict:
    """:func:`round_metrics` of a Monte Carlo client model (``exact`` False): every
    per-client metric in ``pc`` but ``theta`` carries a replicate axis (axis 1, R
    independent held-out draws, ``sim/mlp.py``); each replicate is pooled over clients
    on its own, and the round reports the replicates' mean and its standard error
    sd / sqrt(R) (batch means), for the mode metrics (``mode_metric_se``) and the
    pooled variables of :data:`SE_VARS` (``se``).

    Args:
        sc: the scenario.
        ctx: the shared world and FM.
        pop: the population.
        theta_g: (D,) the global model.
        pc: the clients' outputs, ``{name: (N, R, ...)}`` and ``theta`` (N, D).

    Returns:
        :func:`round_metrics`'s dict (replicate means) with ``mode_metric_se`` (modes,)
        and ``se`` ``{name: ()}``.
    """
    model = client_model(sc)
    theta = pc["theta"]
    reps = {k: v for k, v in pc.items() if k != "theta"}
    glob, glob_fm = model.global_replicates(theta_g, ctx.world), model.global_replicates(ctx.theta0, ctx.world)
    outs = jax.vmap(
        lambda r, g, f: round_metrics(sc, ctx, pop, theta_g, {**r, "theta": theta}, glob=g, glob_fm=f),
        in_axes=(1, 0, 0),
    )(reps, glob, glob_fm)
    R = outs["mode_metric"].shape[0]
    out = jax.tree.map(lambda a: a.mean(0), outs)
    se = lambda a: a.std(0, ddof=1) / jnp.sqrt(R)  # noqa: E731
    out["mode_metric_se"] = se(outs["mode_metric"])
    out["se"] = {k: se(outs[k]) for k in SE_VARS}
    return out
