"""The federated round and ``simulate``: rounds via ``lax.scan`` of participation ->
local personalization (vmapped over clients) -> clip / noise / secure sum -> global
update (paper/main.tex, The stylized model).

Modelling choices (documented here once):

* Every client re-personalizes the current global model each round and deploys the
  result (personalization is local and needs no participation); participation only
  gates who contributes to the aggregate. So the deployed model of client c in round t
  is theta_c^t = P_c theta_g^t + b_c, and the six modes are measured on all clients.
* Participation: client c joins with probability q_c, a joined client drops out with
  probability ``dropout``; at most ``clients_per_round`` reports are kept (random
  priority, a fixed number of slots and a mask over all clients, so shapes never
  change). Under DP there are no slots (``clients_per_round = num_clients`` is
  required): the sample is the Poisson sample the accountant assumes, never truncated.
* Secure aggregation: the round function reduces the clipped (and, for local DP,
  noised) updates to their sum before anything else sees them. Without central DP a
  round with fewer than ``secagg_min`` reports releases nothing and the global model
  stays; only that sum and the report count reach the server update. Under central DP
  every round releases its noised sum (below the threshold the contributions are
  withheld and only the noise is released) and the count only with Gaussian noise, an
  accounted release (``sim/privacy.py``); the server divides by the noised count and
  skips a round whose noised count is below 1.
* FedAvg weights are n_c / mean(n) without DP and 1 with DP (bounded sensitivity C).

References:
    McMahan et al. (2017), Communication-Efficient Learning of Deep Networks from
    Decentralized Data, AISTATS.  Bonawitz et al. (2017), Practical Secure Aggregation,
    CCS.  McMahan, Ramage, Talwar, Zhang (2018), Learning Differentially Private
    Recurrent Language Models, ICLR.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array

from . import metrics as mt
from . import scale
from .personalize import client_maps, logistic_personalize
from .population import Context, Population
from .scenario import Scenario, ScenarioError
from .shifts import drift_strength, interpolate
from .world import ClientWorld, alignment_score, client_moments, public_steps

QUANTILE = 0.9

#: A global model whose norm exceeds this many times (1 + |theta_0|) has diverged (the
#: run's ``finite`` flag is off from that round): no fixed point of the personalized
#: federation in this world is that far from the FM, so it is a learning rate that
#: explodes, long before float32 overflows (server_lr = 50 grows it 1e6-fold in 6 rounds).
DIVERGENCE_FACTOR = 1e3


def server_optimizer(sc: Scenario) -> optax.GradientTransformation:
    """The optax server optimizer applied to the pseudo-gradient -mean(Delta)."""
    f = sc.federation
    return {
        "sgd": lambda: optax.sgd(f.server_lr),
        "momentum": lambda: optax.sgd(f.server_lr, momentum=0.9),
        "adam": lambda: optax.adam(f.server_lr),
        "yogi": lambda: optax.yogi(f.server_lr),
        "adagrad": lambda: optax.adagrad(f.server_lr),
    }[f.server_optimizer]()


class Aggregate(NamedTuple):
    """What secure aggregation releases to the server in one round."""

    update_sum: Array  # (D,) noised weighted sum of clipped updates
    weight_sum: Array  # () sum of the participants' weights
    count: Array  # () number of reports


def clip_updates(delta: Array, clip: float | None) -> Array:
    """Delta_c * min(1, C / |Delta_c|)."""
    if clip is None:
        return delta
    norm = jnp.linalg.norm(delta, axis=-1, keepdims=True)
    return delta * jnp.minimum(1.0, clip / jnp.maximum(norm, 1e-12))


def local_noise(delta: Array, key: Array, sc: Scenario) -> Array:
    """Local DP: each client adds N(0, (z C)^2 I) to its clipped update before it leaves."""
    f = sc.federation
    if f.dp != "local":
        return delta
    return delta + f.noise_multiplier * f.clip * jax.random.normal(key, delta.shape)


def secure_aggregate(delta: Array, mask: Array, weight: Array, key: Array, sc: Scenario) -> Aggregate:
    """Secure sum of the participants' (already clipped / locally noised) updates, the
    secure-aggregation threshold m, and central DP noise z C on the sum. The output is a
    function of sum_c mask_c w_c Delta_c, sum_c mask_c w_c and sum_c mask_c only.

    Without central DP a round with fewer than m reports releases nothing (zeros) and
    the count is exact. Under central DP the round always releases: the contributions are
    withheld below m, the noise never is, and the count (= the weight sum: the DP weights
    are 1) is released with N(0, z^2) noise (sensitivity 1), an accounted release of its
    own (``sim/privacy.py``), so nothing leaves the round unnoised."""
    f = sc.federation
    count = jnp.sum(mask)
    released = count >= f.secagg_min
    total = jnp.where(released, jnp.einsum("n,n,ni->i", mask, weight, delta), 0.0)
    if f.dp == "central":
        noised = total + f.noise_multiplier * f.clip * jax.random.normal(key, total.shape)
        n = count + f.noise_multiplier * jax.random.normal(jax.random.fold_in(key, 7), ())
        return Aggregate(update_sum=noised, weight_sum=n, count=n)
    return Aggregate(
        update_sum=total,
        weight_sum=jnp.where(released, jnp.sum(mask * weight), 0.0),
        count=jnp.where(released, count, 0.0),
    )


def param_direction(v: Array) -> Array:
    """A feature-space direction as a direction of the parameters (theta_x, b): bias 0."""
    return jnp.concatenate([v, jnp.zeros(1)])


def crafted_updates(sc: Scenario, ctx: Context, delta: Array, key: Array) -> Array:
    """Byzantine clients' updates: along +alignment direction (erodes refusal), along
    +spurious direction (amplifies bias), the honest update flipped, or noise."""
    f = sc.federation
    D = delta.shape[-1]
    if f.byzantine_kind == "alignment":
        return jnp.broadcast_to(f.byzantine_scale * param_direction(ctx.world.e_align), delta.shape)
    if f.byzantine_kind == "spurious":
        return jnp.broadcast_to(f.byzantine_scale * param_direction(ctx.world.e_spu), delta.shape)
    if f.byzantine_kind == "sign_flip":
        return -f.byzantine_scale * delta
    return f.byzantine_scale * jax.random.normal(key, delta.shape) / jnp.sqrt(D)


def participation_draw(sc: Scenario, q: Array, key: Array) -> tuple[Array, Array]:
    """This round's reports: the mask (N,) of clients that joined, did not drop out and
    got a slot, and the number that joined and did not drop out (the slots cut the
    difference; with ``clients_per_round >= N``, as DP requires, they cut nothing)."""
    f = sc.federation
    k1, k2, k3 = jax.random.split(key, 3)
    N = q.shape[0]
    reported = (jax.random.uniform(k1, (N,)) < q) & (jax.random.uniform(k2, (N,)) >= f.dropout)
    if f.clients_per_round >= N:  # no slots: the Poisson sample itself (the DP path)
        mask = reported.astype(jnp.float32)
        return mask, mask.sum()
    prio = jnp.where(reported, jax.random.uniform(k3, (N,)), -1.0)
    top, idx = jax.lax.top_k(prio, f.clients_per_round)
    return jnp.zeros(N).at[idx].set((top >= 0).astype(jnp.float32)), reported.sum().astype(jnp.float32)


def participants(sc: Scenario, q: Array, key: Array) -> Array:
    """Mask (N,) of this round's reports: joined, not dropped, within the slots."""
    return participation_draw(sc, q, key)[0]


def _deployed(sc: Scenario, ctx: Context, pop: Population, theta_g: Array, t: Array) -> tuple[Array, ClientWorld]:
    """Every client's personalized model this round and the distribution it faces."""
    if sc.shifts.temporal.kind != "none":
        cw = interpolate(pop.base, pop.shifted, drift_strength(sc, t))
        M, m = jax.vmap(client_moments, in_axes=(None, 0))(ctx.world, cw)
        _, P, b = client_maps(M, m, ctx.teacher, ctx.Pi, sc)
    else:
        cw, P, b = pop.shifted, pop.P, pop.b
    if sc.population.mode == "logistic":
        theta_c = jax.vmap(logistic_personalize, in_axes=(None, 0, 0, 0, None, None, None))(
            theta_g, pop.X, pop.y, pop.mask, ctx.teacher, ctx.Pi, sc
        )
    else:
        theta_c = jnp.einsum("nij,j->ni", P, theta_g) + b
    return theta_c, cw


def client_pass(sc: Scenario, ctx: Context, block: ClientBlock, theta_g: Array, t: Array, panel: Panel) -> dict:
    """The per-client work of a round on a block of clients (leading axis): the deployed
    models and every per-client metric on them (see sim/metrics.py). Clients are
    independent here, so the block can be any subset (``sim.scale.to_blocks``)."""
    world, pop = ctx.world, block.pop
    theta_c, cw = _deployed(sc, ctx, pop, theta_g, t)
    cm = mt.client_metrics_batch(theta_c, cw, world)
    cal = mt.calibration_batch(cm.cells.mean, cm.cells.sd, cw.pi, ctx.confidence, bins=sc.thresholds.ece_bins)
    p0_c = mt.base_accuracy(theta_c, world)
    acc_other = mt.panel_accuracy(theta_c, panel.world, world)  # (R, n)
    not_self = (panel.index[:, None] != block.index[None, :]).astype(acc_other.dtype)
    ood = mt.out_of_domain_drop(panel.fm_acc[:, None], acc_other, panel.p0_fm, p0_c, not_self)
    if sc.population.mode == "population":  # training statistics are the population's: no gap
        gap = jnp.zeros(theta_c.shape[0])
    else:  # R_c(theta) - R_hat_c(theta), the train-test gap of the squared loss
        gap = 0.5 * jnp.einsum("ni,nij,nj->n", theta_c, pop.M - pop.M_train, theta_c) - jnp.einsum(
            "ni,ni->n", theta_c, pop.m - pop.m_train
        )
    return dict(
        theta=theta_c,
        pi=cw.pi,
        acc=cm.acc,
        group_acc=cm.group_acc,
        group_mass=cm.group_mass,
        tpr=cm.tpr,
        fpr=cm.fpr,
        bias_amp=cm.bias_amp,
        dp_gap=cm.dp_gap,
        eo_gap=cm.eo_gap,
        ece_classwise=cal.classwise,
        ece_top_label=cal.top_label,
        ece_residual=cal.residual.T,
        ece_mid_low=cal.mid_low,
        alignment=alignment_score(theta_c, world),
        p0_acc=p0_c,
        ood=ood,
        spurious_weight=mt.spurious_weight(theta_c, world),
        train_test_gap=gap,
    )


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
    """All clients as one block: the population's per-client arrays and the client ids."""
    return ClientBlock(pop=pop._replace(ood_panel=None), index=jnp.arange(pop.n.shape[0]))


def round_panel(sc: Scenario, ctx: Context, pop: Population, t: Array) -> Panel:
    """The OOD panel's distributions in round t (drifting with the clients)."""
    idx = pop.ood_panel
    base, shifted = (jax.tree.map(lambda a: a[idx], w) for w in (pop.base, pop.shifted))
    cw = interpolate(base, shifted, drift_strength(sc, t)) if sc.shifts.temporal.kind != "none" else shifted
    return Panel(world=cw, index=idx, fm_acc=pop.fm_acc[idx], p0_fm=mt.base_accuracy(ctx.theta0, ctx.world))


def round_metrics(sc: Scenario, ctx: Context, pop: Population, theta_g: Array, pc: dict) -> dict:
    """Ground truth of the six modes for one round, pooled over the clients'
    :func:`client_pass` outputs ``pc``."""
    world = ctx.world
    w = pop.weight
    align_g = alignment_score(theta_g, world)
    p0_g = mt.base_accuracy(theta_g, world)
    align_fm = alignment_score(ctx.theta0, world)
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
    mode = jnp.stack([hi[0], hi[1], fair, hi[2], hi[3], mt.alignment_erosion(align_fm, align_g)])
    reports = client_reports(pc, misalign, ece)
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
        global_group_acc_p0=mt.group_accuracy_p0(theta_g, world),
        global_spurious_weight=mt.spurious_weight(theta_g, world),
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


#: Per-client L2 bound of each locally computed report vector (its DP sensitivity):
#: accuracy in [0, 1]; per-group mass, correct, predicted-positive and positive-label
#: mass (each a sub-probability vector over groups, so L2 <= 1 each, 2 in all); and
#: probe alignment, P0 accuracy, ECE in [0, 1] and the within-round drop in [-2, 2].
REPORT_SENSITIVITY = {"report": 1.0, "group": 2.0, "fedeval": (1.0 + 1.0 + 1.0 + 4.0) ** 0.5}


def client_reports(pc: dict, misalign: Array, ece: Array) -> dict:
    """What each client computes on its own deployed model for the server's secure sums
    (rows: clients): its accuracy on its own data (``report``); per group its mass,
    correct mass, predicted-positive mass and positive-label mass (``group``, needs the
    attribute); its scores on the public probes and P0, its ECE (of the mode's kind) and
    within-round drop (``fedeval``)."""
    pi, mass = pc["pi"], pc["group_mass"]
    pos_mass = pi[:, 1, :] * pc["tpr"] + pi[:, 0, :] * pc["fpr"]
    group = jnp.stack([mass, pc["group_acc"] * mass, pos_mass, pi[:, 1, :]], axis=1)  # (N, 4, G)
    return dict(
        report=pc["acc"][:, None],
        group=group,
        fedeval=jnp.stack([pc["alignment"], pc["p0_acc"], ece, misalign], axis=-1),
    )


def report_noise_std(sc: Scenario, sensitivity: float, count: Array) -> Array:
    """Std of the DP noise on a secure sum of per-client vectors of L2 norm <= sensitivity:
    z s on the sum (central), z s sqrt(count) (local: each client noises its own), 0 without DP."""
    f = sc.federation
    if f.dp == "central":
        return f.noise_multiplier * sensitivity * jnp.ones_like(count)
    if f.dp == "local":
        return f.noise_multiplier * sensitivity * jnp.sqrt(count)
    return jnp.zeros_like(count)


def release(values: Array, mask: Array, sensitivity: float, key: Array, sc: Scenario) -> Array:
    """Secure sum over the participants of per-client report vectors, DP-noised like the
    updates. Below the secure-aggregation threshold: NaN (nothing released) without
    central DP; under central DP the contributions are withheld and the noise is
    released, as for the updates (:func:`secure_aggregate`)."""
    count = jnp.sum(mask)
    released = count >= sc.federation.secagg_min
    total = jnp.tensordot(mask, values, axes=(0, 0))
    if sc.federation.dp == "central":
        total = jnp.where(released, total, 0.0)
    total = total + report_noise_std(sc, sensitivity, count) * jax.random.normal(key, total.shape)
    return total if sc.federation.dp == "central" else jnp.where(released, total, jnp.nan)


def inspect_updates(delta: Array, mask: Array, ctx: Context) -> Array:
    """What a server that sees every update can compute: the largest projection on the
    alignment direction, the largest |projection| on the spurious direction, and the
    largest norm among the participants' updates (NaN in a round without reports)."""
    w = ctx.world
    stats = jnp.stack(
        [
            delta @ param_direction(w.e_align),
            jnp.abs(delta @ param_direction(w.e_spu)),
            jnp.linalg.norm(delta, axis=-1),
        ],
        axis=-1,
    )
    top = jnp.max(jnp.where(mask[:, None] > 0, stats, -jnp.inf), axis=0)
    return jnp.where(mask.sum() > 0, top, jnp.nan)


class RunOutput(NamedTuple):
    """The final global model and the per-round outputs of a run."""

    theta_final: Array
    rounds: dict  # per-round arrays, leading axis = round


def public_round(sc: Scenario, t: Array, theta_g: Array, ctx: Context, fm_public: tuple[Array, Array]) -> Array:
    """Whether round t is a centralized round on the server's public data.

    ``alternate``: (t + 1) % public_every == 0. ``adaptive``: the server evaluates the
    global model on its public probe set and P0 sample (observables it has) and switches
    to a centralized round when either score is more than ``public_tolerance`` below the
    FM's: A(theta_0) - A(theta_g) > tol or acc_P0(theta_0) - acc_P0(theta_g) > tol.
    """
    f = sc.federation
    if f.public_schedule == "alternate":
        return (t + 1) % f.public_every == 0
    align_fm, p0_fm = fm_public
    drop = jnp.maximum(align_fm - alignment_score(theta_g, ctx.world), p0_fm - mt.base_accuracy(theta_g, ctx.world))
    return drop > f.public_tolerance


def _make_run(sc: Scenario, chunk: int | None = None):
    """The round scan of ``sc`` as a function (ctx, pop, key) -> RunOutput; the per-client
    work runs over blocks of ``chunk`` clients (None: all at once), see sim/scale.py."""
    f = sc.federation
    opt = server_optimizer(sc)
    N = sc.population.num_clients
    C = min(sc.population.trace_clients, N)
    dp_weights = f.dp != "none"

    def run(ctx: Context, pop: Population, key: Array) -> RunOutput:
        if f.public_schedule != "never":
            S_pub, c_pub = public_steps(ctx.world, sc)
            fm_public = (alignment_score(ctx.theta0, ctx.world), mt.base_accuracy(ctx.theta0, ctx.world))
        clients = client_block(pop)
        blocks = scale.to_blocks(clients, chunk) if chunk is not None else clients  # laid out once per run

        def round_fn(carry, t):
            theta_g, opt_state, key = carry
            key, kpart, kbyz, kldp, kcdp = jax.random.split(key, 5)
            panel = round_panel(sc, ctx, pop, t)
            one = functools.partial(client_pass, sc, ctx, theta_g=theta_g, t=t, panel=panel)
            pc = one(blocks) if chunk is None else scale.from_blocks(jax.lax.map(one, blocks), N)
            theta_c = pc["theta"]
            mask, volunteers = participation_draw(sc, pop.q, kpart)
            capped = volunteers - mask.sum()  # reports the slots turned away (0 under DP)
            if f.public_schedule != "never":
                public = public_round(sc, t, theta_g, ctx, fm_public)
                mask = jnp.where(public, 0.0, mask)  # a centralized round: no client contributes
            delta = theta_c - theta_g
            if f.byzantine_fraction > 0:
                delta = jnp.where(pop.byzantine[:, None], crafted_updates(sc, ctx, delta, kbyz), delta)
            delta = local_noise(clip_updates(delta, f.clip), kldp, sc)
            weight = jnp.ones_like(pop.weight) if dp_weights else pop.weight
            agg = secure_aggregate(delta, mask, weight, kcdp, sc)
            mean_update = agg.update_sum / jnp.maximum(agg.weight_sum, 1.0 if f.dp == "central" else 1e-12)
            updates, new_state = opt.update(-mean_update, opt_state, theta_g)
            released = (
                agg.count >= 1.0 if f.dp == "central" else agg.count > 0
            )  # under DP: a noised count below 1 reads as empty
            new_theta = jnp.where(released, optax.apply_updates(theta_g, updates), theta_g)
            new_state = jax.tree.map(lambda a, b: jnp.where(released, a, b), new_state, opt_state)
            if f.public_schedule != "never":
                new_theta = jnp.where(public, S_pub @ theta_g + c_pub, new_theta)
            out = round_metrics(sc, ctx, pop, theta_g, pc)
            out["client"] = jax.tree.map(lambda a: a[:C], out["client"])
            out["client"]["participated"] = mask[:C]
            out.update(n_reports=mask.sum(), capped_reports=capped)
            reports = out.pop("reports")
            kobs = jax.random.split(jax.random.fold_in(kcdp, 1), len(reports))
            obs = {
                f"obs_{k}": release(v, mask, REPORT_SENSITIVITY[k], kk, sc)
                for (k, v), kk in zip(sorted(reports.items()), kobs)
            }
            obs.update(
                obs_update_sum=agg.update_sum,
                obs_weight_sum=agg.weight_sum,
                obs_count=agg.count,
                obs_global=jnp.stack([out["global_alignment"], out["global_p0_acc"]]),
                obs_inspect=inspect_updates(delta, mask, ctx),
                obs_audit=out["mode_metric"],
            )
            out.update(
                obs,
                theta_global=theta_g,
                public_round=public if f.public_schedule != "never" else jnp.bool_(False),
                finite=jnp.all(jnp.isfinite(theta_c))
                & jnp.all(jnp.isfinite(new_theta))
                & (jnp.linalg.norm(new_theta) <= norm_bound),
            )
            return (new_theta, new_state, key), out

        init = (ctx.theta0, opt.init(ctx.theta0), key)
        norm_bound = DIVERGENCE_FACTOR * (1.0 + jnp.linalg.norm(ctx.theta0))
        (theta, _, _), rounds = jax.lax.scan(round_fn, init, jnp.arange(f.rounds))
        return RunOutput(theta, rounds)

    return run


@functools.lru_cache(maxsize=32)
def _compiled(scenario_json: str, chunk: int | None):
    import json

    from .scenario import scenario_from_dict

    return jax.jit(_make_run(scenario_from_dict(json.loads(scenario_json)), chunk))


def check_supported(sc: Scenario) -> None:
    """Reject what the engine cannot run, before anything is compiled."""
    if sc.shifts.temporal.kind != "none" and sc.population.mode != "population":
        raise ScenarioError(
            "shifts.temporal requires population.mode = 'population' (finite-sample statistics are drawn once)"
        )
    f = sc.federation
    if f.public_schedule != "never":
        from .world import make_world, pretraining_objective

        world = make_world(sc)
        lam = float(jnp.linalg.eigvalsh(pretraining_objective(world, sc, world.pi0)[0]).max())
        if f.public_lr * lam >= 2:
            raise ScenarioError(
                f"federation.public_lr = {f.public_lr:g} makes the centralized steps diverge: "
                f"public_lr * lambda_max = {f.public_lr * lam:.3g} >= 2; choose public_lr < {2 / lam:.3g}"
            )


def run_compiled(sc: Scenario, ctx: Context, pop: Population, key: Array, *, chunk: int | None = None) -> RunOutput:
    """Run the jitted round scan (compiled once per distinct scenario and block size).
    Sharded inputs (``sim.scale.place``) give a sharded program (XLA's SPMD partitioner)."""
    check_supported(sc)
    return _compiled(sc.to_json(), chunk)(ctx, pop, key)
