"""The federated round and ``simulate``: rounds via ``lax.scan`` of participation ->
local personalization (vmapped over clients) -> clip / noise / secure sum -> global
update (paper/main.tex, The stylized model).

Modelling choices (documented here once):

* Every client re-personalizes the current global model each round and deploys the
  result; participation only gates who contributes to the aggregate (the round's
  ground truth is ``sim/ground_truth.py``, the privacy mechanics ``sim/mechanism.py``,
  the adversary ``sim/adversary.py``, the client reports ``sim/observe.py``).
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

from . import scale
from .adversary import crafted_updates
from .aggregators import Aggregator, aggregator
from .config import Config
from .ground_truth import client_block, client_pass, replicated_round_metrics, round_metrics, round_panel
from .mechanism import (
    REPORT_SENSITIVITY,
    Aggregate,
    clip_updates,
    local_noise,
    participation_draw,
    release,
    secure_aggregate,
)
from .models import client_model, param_directions
from .observe import inspect_updates
from .population import Context, Population
from .scenario import Scenario, ScenarioError
from .world import public_steps

#: A global model whose norm exceeds this many times (1 + |theta_0|) has diverged (the
#: run's ``finite`` flag is off from that round): no fixed point of the personalized
#: federation in this world is that far from the FM, so it is a learning rate that
#: explodes, long before float32 overflows (server_lr = 50 grows it 1e6-fold in 6 rounds).
DIVERGENCE_FACTOR = 1e3


def server_optimizer(sc: Scenario) -> optax.GradientTransformation:
    """The optax server optimizer applied to the pseudo-gradient -mean(Delta).

    Args:
        sc: the scenario (``server_optimizer``, ``server_lr``).

    Returns:
        The optax transformation.
    """
    f = sc.federation
    return {
        "sgd": lambda: optax.sgd(f.server_lr),
        "momentum": lambda: optax.sgd(f.server_lr, momentum=0.9),
        "adam": lambda: optax.adam(f.server_lr),
        "yogi": lambda: optax.yogi(f.server_lr),
        "adagrad": lambda: optax.adagrad(f.server_lr),
    }[f.server_optimizer]()


def read_aggregate(rule: Aggregator, delta: Array, mask: Array, weight: Array, federation) -> Aggregate:
    """A rule that reads every update (``rule.secure`` False), in the shape of what a
    secure sum releases: the rule's mean update times the weight sum, so that
    update_sum / weight_sum is the rule's update; count = the number of reports.

    Args:
        rule: the aggregation rule.
        delta: (N, D) clipped (and locally noised) updates.
        mask: (N,) participation mask.
        weight: (N,) FedAvg weights.
        federation: the scenario's federation section (the rule's parameters).

    Returns:
        The Aggregate; zeros in a round without reports (the server keeps its model).
    """
    count = jnp.sum(mask)
    weight_sum = jnp.sum(mask * weight)
    mean = jnp.where(count > 0, rule.combine(delta, mask, weight, federation), 0.0)
    return Aggregate(update_sum=mean * weight_sum, weight_sum=weight_sum, count=count)


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

    Args:
        sc: the scenario.
        t: the round.
        theta_g: (D,) the global model.
        ctx: the world.
        fm_public: the FM's (alignment, P0 accuracy).

    Returns:
        () bool.
    """
    f = sc.federation
    if f.public_schedule == "alternate":
        return (t + 1) % f.public_every == 0
    align_fm, p0_fm = fm_public
    glob = client_model(sc).global_metrics(theta_g, ctx.world)
    drop = jnp.maximum(align_fm - glob.alignment, p0_fm - glob.p0_acc)
    return drop > f.public_tolerance


def expected_mask(sc: Scenario, q: Array) -> Array:
    """The expectation of a round's report mask (the population limit): client c reports
    with probability q_c (1 - dropout), scaled down so that the expected count fits in
    the ``clients_per_round`` slots.

    Args:
        sc: the scenario (``dropout``, ``clients_per_round``).
        q: (N,) the clients' participation probabilities.

    Returns:
        (N,) the fractional mask E[mask_c].
    """
    f = sc.federation
    mask = q * (1.0 - f.dropout)
    if f.clients_per_round >= q.shape[0]:
        return mask
    return mask * jnp.minimum(1.0, f.clients_per_round / jnp.maximum(mask.sum(), 1e-12))


def _quiet(sc: Scenario) -> Scenario:
    """``sc`` without its random draws' spread: no DP noise and no noise attack (their
    means are 0); the weights and the accounting of DP stay as they are."""
    from .config import substitute

    values = {"federation.noise_multiplier": 0.0}
    if sc.federation.byzantine_kind == "noise":
        values["federation.byzantine_scale"] = 0.0
    return substitute(sc, values)


def _make_run(sc: Scenario, chunk: int | None = None, expected: bool = False, devices: int = 1):
    """The round scan of ``sc`` as a function (ctx, pop, key) -> RunOutput; the per-client
    work runs over blocks of ``chunk`` clients (None: all at once) laid out for the
    ``devices`` the client axis is sharded over, see sim/scale.py.

    ``expected``: the population-limit run, every draw of the rounds replaced by its mean
    (the participation mask by :func:`expected_mask`, the DP noise and the noise attack by
    0): the deterministic recursion theta_(t+1) = theta_t + sum_c w_c E[mask_c]
    clip(theta_c(theta_t) - theta_t) / sum_c w_c E[mask_c] that the theory predicts from
    (``sim/theory.py``)."""
    if expected:
        sc = _quiet(sc)
    f = sc.federation
    opt = server_optimizer(sc)
    N = sc.population.num_clients
    C = min(sc.population.trace_clients, N)
    dp_weights = f.dp != "none"
    rule = aggregator(f.aggregator)
    model = client_model(sc)
    # the parameters clients send (a LoRA client's frozen backbone is not one); None: all
    shared = model.communicated() if hasattr(model, "communicated") else None
    send = (lambda a: a * shared) if shared is not None else (lambda a: a)

    def run(ctx: Context, pop: Population, key: Array) -> RunOutput:
        directions = param_directions(sc, ctx)  # once per run (a gradient for the mlp)
        if f.public_schedule != "never":
            S_pub, c_pub = public_steps(ctx.world, sc)
            fm = client_model(sc).global_metrics(ctx.theta0, ctx.world)
            fm_public = (fm.alignment, fm.p0_acc)
        clients = client_block(pop)
        blocks = scale.to_blocks(clients, chunk, devices) if chunk is not None else clients  # laid out once per run

        def round_fn(carry, t):
            theta_g, opt_state, key = carry
            key, kpart, kbyz, kldp, kcdp = jax.random.split(key, 5)
            panel = round_panel(sc, ctx, pop, t)
            one = functools.partial(client_pass, sc, ctx, theta_g=theta_g, t=t, panel=panel)
            pc = one(blocks) if chunk is None else scale.from_blocks(jax.lax.map(one, blocks), N, devices)
            theta_c = pc["theta"]
            if expected:
                mask = expected_mask(sc, pop.q)
                volunteers = mask.sum()
            else:
                mask, volunteers = participation_draw(sc, pop.q, kpart)
            capped = volunteers - mask.sum()  # reports the slots turned away (0 under DP)
            if f.public_schedule != "never":
                public = public_round(sc, t, theta_g, ctx, fm_public)
                mask = jnp.where(public, 0.0, mask)  # a centralized round: no client contributes
            delta = theta_c - theta_g
            if f.byzantine_fraction > 0:
                delta = jnp.where(pop.byzantine[:, None], crafted_updates(sc, delta, kbyz, directions), delta)
            delta = send(local_noise(clip_updates(send(delta), f.clip), kldp, sc))
            weight = jnp.ones_like(pop.weight) if dp_weights else pop.weight
            if rule.secure:
                agg = secure_aggregate(delta, mask, weight, kcdp, sc)
            else:  # the server reads every update (no secure aggregation, no central DP)
                agg = read_aggregate(rule, delta, mask, weight, f)
            mean_update = send(agg.update_sum / jnp.maximum(agg.weight_sum, 1.0 if f.dp == "central" else 1e-12))
            updates, new_state = opt.update(-mean_update, opt_state, theta_g)
            released = (
                agg.count >= 1.0 if f.dp == "central" else agg.count > 0
            )  # under DP: a noised count below 1 reads as empty
            new_theta = jnp.where(released, optax.apply_updates(theta_g, updates), theta_g)
            new_state = jax.tree.map(lambda a, b: jnp.where(released, a, b), new_state, opt_state)
            if f.public_schedule != "never":
                new_theta = jnp.where(public, S_pub @ theta_g + c_pub, new_theta)
            out = (round_metrics if model.exact else replicated_round_metrics)(sc, ctx, pop, theta_g, pc)
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
                obs_inspect=inspect_updates(delta, mask, directions),
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


@functools.partial(jax.jit, static_argnames=("chunk", "devices"))
def scan(
    cfg: Config, ctx: Context, pop: Population, key: Array, chunk: int | None = None, devices: int = 1
) -> RunOutput:
    """The round scan of ``cfg.scenario`` as one compiled program (JAX's cache: one
    program per distinct scenario, traced paths and block size).

    Args:
        cfg: the scenario as a jit argument.
        ctx: the shared world and FM.
        pop: the clients.
        key: a JAX PRNG key.
        chunk: clients per block, or None.
        devices: the device count the client axis of ``pop`` is sharded over.

    Returns:
        RunOutput(theta_final, rounds).
    """
    return _make_run(cfg.scenario, chunk, devices=devices)(ctx, pop, key)


def check_supported(sc: Scenario) -> None:
    """Reject what the engine cannot run, before anything is compiled.

    Args:
        sc: the scenario.

    Raises:
        ScenarioError: temporal drift outside population mode, or centralized steps that diverge.
    """
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
