"""Interventions on one failure mode's mechanism, for testing the influence edges
between modes (``sim/influence.py``).

``scenario.intervention`` names a source mode A, a strength delta >= 0 and a blocking
fraction beta in [0, 1]. Every round, after personalization, each client's model is
moved along the direction v_A of a taxonomy mechanism that causes A (below), scaled to
the model's own norm:

    u = |theta_c| v_A / |v_A|,   theta_c <- theta_c + delta (u - beta (u . g_A / |g_A|^2) g_A),

where g_A = d A_c / d theta_c is the gradient of the client's own A-metric (autodiff of
the closed forms of ``sim/metrics.py``). With beta = 0 the cause moves A (and whatever
else it moves); with beta = 1 it moves the same cause with A's mechanism blocked: the
component that changes A is removed, so A does not move to first order and whatever B
still does is the cause's direct effect on B, not its effect through A (a local,
parameter-space mediation: the change of B along g_A is the indirect part). The moved
model is both deployed and sent, so effects also travel through the federation (the
next round's global model) as the paper's feedback influences do.

**Monte Carlo client models** (``model.kind = "mlp"``, ``"lora"``) have no closed-form
metrics to differentiate: g_A is the gradient of the same per-client metric on the same
held-out draws with the indicator 1{s > 0} replaced by sigmoid(s / tau)
(tau = :data:`SMOOTH_TEMPERATURE`; ``MLPModel.smoothed``), so the block is first order
in that surrogate; the mechanisms are the same in the model's parameters
(:func:`_smooth_direction`), and both v_A and g_A are restricted to the parameters the
client trains (a LoRA client never moves its frozen backbone). The moved models are
measured by the unsmoothed Monte Carlo metrics, as every model is.

The mechanisms (taxonomy node -> mode):

* ``amplified_bias`` <- spurious_reliance: more weight on the spurious direction, with
  the sign of the client's own label-feature correlation E_c[y <x, e_spu>];
* ``confidence_miscalibration`` <- personal_overfitting: the logit scale, +-theta_c on the
  side that worsens the client's calibration (over- or under-confidence; every decision
  stays for delta < 1);
* ``fairness_collapse`` <- majority_dominance: the gradient of the client's accuracy on
  P0's largest group minus that on its smallest (the minority's accuracy traded for the
  majority's); with two groups this is the direction of the client's own group gap, so
  the block removes the whole move and the effect through the mode is the total effect;
* ``adaptation_misalignment`` and ``out_of_domain_degradation`` <- domain_overspecialization:
  further along the client's own adaptation, theta_c - theta_g;
* ``alignment_erosion`` <- alignment_overwrite: toward the client's task optimum
  M_c^{-1} m_c (the closed-form target that overwrites the FM's alignment,
  ``proofs/erosion.py``).

References:
    Baron & Kenny (1986), The moderator-mediator variable distinction, J. Pers. Soc.
    Psychol. 51(6). Pearl (2001), Direct and Indirect Effects, UAI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from . import metrics as mt
from .models import client_model
from .world import ClientWorld, alignment_score, param_direction

if TYPE_CHECKING:
    from .ground_truth import ClientBlock, Panel
    from .population import Context
    from .scenario import Scenario

#: Keeps |g_A|^2 and |v_A| away from 0 (a client whose A-metric is flat is not blocked).
EPS = 1e-12


class Mechanism(NamedTuple):
    """The taxonomy mechanism an intervention on a mode moves."""

    mode: str  # the mode it raises
    node: str  # the taxonomy mechanism node that causes the mode
    description: str


MECHANISMS: dict[str, Mechanism] = {
    m.mode: m
    for m in (
        Mechanism("amplified_bias", "spurious_reliance", "more weight on the spurious direction"),
        Mechanism(
            "confidence_miscalibration", "personal_overfitting", "the logit scale, on the side that worsens calibration"
        ),
        Mechanism("fairness_collapse", "majority_dominance", "the minority's accuracy traded for the majority's"),
        Mechanism("adaptation_misalignment", "domain_overspecialization", "further along the client's adaptation"),
        Mechanism("out_of_domain_degradation", "domain_overspecialization", "further along the client's adaptation"),
        Mechanism("alignment_erosion", "alignment_overwrite", "toward the client's task optimum"),
    )
}


def client_mode_metric(
    mode: str,
    sc: Scenario,
    ctx: Context,
    block: ClientBlock,
    theta_c: Array,
    cw: ClientWorld,
    panel: Panel,
    theta_g: Array,
) -> Array:
    """Each client's own contribution to mode ``mode``: the per-client quantity the
    mode pools (``ground_truth.round_metrics``), as a function of its model.

    Args:
        mode: a built-in mode id.
        sc: the scenario.
        ctx: the shared world and FM.
        block: the clients.
        theta_c: (n, D) their models.
        cw: their distributions.
        panel: the OOD panel this round.
        theta_g: (D,) the global model.

    Returns:
        (n,) bias amplification, calibration error, group accuracy range, within-round
        drop, out-of-domain drop, or the FM's alignment minus the client's.
    """
    from .models import LinearModel

    world = ctx.world
    if client_model(sc).exact:
        out = LinearModel().client_metrics(sc, ctx, block, theta_c, cw, panel)

        def glob(theta):  # (P0 accuracy, alignment) of one model, in closed form
            return mt.base_accuracy(theta, world), alignment_score(theta, world)
    else:  # a Monte Carlo model: its smooth surrogate on the same draws
        out, smooth = _smooth_metrics(sc, ctx, block, theta_c, cw, panel)

        def glob(theta):
            g = smooth.global_metrics(theta, world)
            return g.p0_acc, g.alignment

    if mode == "amplified_bias":
        return out["bias_amp"]
    if mode == "confidence_miscalibration":
        return out["ece_top_label"] if sc.thresholds.ece_kind == "top_label" else out["ece_classwise"]
    if mode == "fairness_collapse":
        present = mt.present_groups(out["group_mass"]).T
        return mt.group_gap(out["group_acc"].T, present)
    if mode == "adaptation_misalignment":
        p0_g, align_g = glob(theta_g)
        return mt.within_round_drop(p0_g, out["p0_acc"], align_g, out["alignment"])
    if mode == "out_of_domain_degradation":
        return out["ood"]
    if mode == "alignment_erosion":
        return glob(ctx.theta0)[1] - out["alignment"]
    raise ValueError(f"no intervention for mode {mode!r}; interventions exist for {', '.join(MECHANISMS)}")


def mechanism_direction(
    mode: str,
    sc: Scenario,
    ctx: Context,
    block: ClientBlock,
    theta_c: Array,
    cw: ClientWorld,
    theta_g: Array,
    grad: Array,
) -> Array:
    """v_A per client: the direction of the mechanism that causes ``mode`` (module docstring).

    Args:
        mode: a built-in mode id.
        sc: the scenario.
        ctx: the shared world and FM.
        block: the clients (their moments M_c, m_c).
        theta_c: (n, D) their personalized models.
        cw: their distributions.
        theta_g: (D,) the global model.
        grad: (n, D) the gradient g_A of each client's own mode metric (it picks the side
            of the logit scale that worsens calibration).

    Returns:
        (n, D) directions (not normalized).
    """
    world = ctx.world
    if mode == "amplified_bias":
        # E_c[y <x, e_spu>] = sum_{y, a} pi[y, a] y <mu[y, a], e_spu>
        corr = jnp.einsum("nya,y,nyai,i->n", cw.pi, jnp.array([-1.0, 1.0]), cw.mu, world.e_spu)
        sign = jnp.where(corr < 0, -1.0, 1.0)
        return sign[:, None] * param_direction(world.e_spu)[None, :]
    if mode == "confidence_miscalibration":  # the logit scale, on the side that worsens calibration
        return jnp.where(jnp.sum(theta_c * grad, -1, keepdims=True) < 0, -1.0, 1.0) * theta_c
    if mode == "fairness_collapse":  # trade P0's smallest group's accuracy for its largest's
        shares = world.pi0.sum(0)
        major, minor = jnp.argmax(shares), jnp.argmin(shares)

        def dominance(theta):
            acc = mt.client_metrics_batch(theta, cw, world).group_acc
            return (acc[:, major] - acc[:, minor]).sum()

        return jax.grad(dominance)(theta_c)
    if mode in ("adaptation_misalignment", "out_of_domain_degradation"):
        return theta_c - theta_g
    if mode == "alignment_erosion":
        task = jnp.linalg.solve(block.pop.M, block.pop.m[..., None])[..., 0]
        return task - theta_c
    raise ValueError(f"no intervention for mode {mode!r}; interventions exist for {', '.join(MECHANISMS)}")


def intervene(
    sc: Scenario, ctx: Context, block: ClientBlock, theta_c: Array, cw: ClientWorld, panel: Panel, theta_g: Array
) -> Array:
    """The clients' models after ``sc.intervention`` (module docstring); unchanged when
    it names no mode.

    Args:
        sc: the scenario.
        ctx: the shared world and FM.
        block: the clients.
        theta_c: (n, D) their personalized models.
        cw: their distributions.
        panel: the OOD panel this round.
        theta_g: (D,) the global model.

    Returns:
        (n, D) the moved models.
    """
    iv = sc.intervention
    if iv.mode == "none":
        return theta_c

    def total(theta):
        return client_mode_metric(iv.mode, sc, ctx, block, theta, cw, panel, theta_g).sum()

    g = jax.grad(total)(theta_c)  # finite: metrics.calibration_points keeps the bin edges' scores finite
    model = client_model(sc)
    if model.exact:
        v = mechanism_direction(iv.mode, sc, ctx, block, theta_c, cw, theta_g, g)
    else:  # a client moves only the parameters it trains (a LoRA client: never the backbone)
        g = g * model.trainable(sc.personalization.rule)
        v = _smooth_direction(iv.mode, sc, ctx, block, theta_c, cw, panel, theta_g, g)
    v = v * jnp.linalg.norm(theta_c, axis=-1, keepdims=True) / (jnp.linalg.norm(v, axis=-1, keepdims=True) + EPS)
    proj = jnp.sum(v * g, -1, keepdims=True) / (jnp.sum(g * g, -1, keepdims=True) + EPS)
    return theta_c + iv.strength * (v - iv.block * proj * g)


#: Temperature (score units) of the sigmoid that replaces 1{s > 0} in a Monte Carlo
#: model's metrics when an intervention differentiates them (scores are O(1): the
#: models regress +-1 labels).
SMOOTH_TEMPERATURE = 0.1


def _smooth_metrics(sc: Scenario, ctx: Context, block: ClientBlock, theta_c: Array, cw: ClientWorld, panel: Panel):
    """A Monte Carlo model's per-client metrics with the indicator smoothed
    (``MLPModel.smoothed``), replicates averaged, and the smoothed model."""
    model = client_model(sc).smoothed(SMOOTH_TEMPERATURE)
    out = model.client_metrics(sc, ctx, block, theta_c, cw, panel)
    return {k: v.mean(1) for k, v in out.items() if k != "theta"}, model


def _smooth_direction(
    mode: str,
    sc: Scenario,
    ctx: Context,
    block: ClientBlock,
    theta_c: Array,
    cw: ClientWorld,
    panel: Panel,
    theta_g: Array,
    grad: Array,
) -> Array:
    """:func:`mechanism_direction` of a Monte Carlo model, the same mechanisms in its
    parameters, restricted to those the client trains:

    * spurious reliance: the model's parameter direction of e_spu (``direction``, the
      gradient at theta_0 of E_P0[f(x + e_spu) - f(x)]), signed by E_c[y <x, e_spu>];
    * personal overfitting: the output layer's parameters scaled (for an MLP exactly the
      logit scale), on the side that worsens calibration;
    * majority dominance: the gradient of the smoothed accuracy of P0's largest group
      minus that of its smallest;
    * domain overspecialization: theta_c - theta_g;
    * alignment overwrite: toward the client's task optimum, -grad of its sample loss.
    """
    model = client_model(sc)
    mask = model.trainable(sc.personalization.rule)
    world = ctx.world
    if mode == "amplified_bias":
        corr = jnp.einsum("nya,y,nyai,i->n", cw.pi, jnp.array([-1.0, 1.0]), cw.mu, world.e_spu)
        sign = jnp.where(corr < 0, -1.0, 1.0)
        v = sign[:, None] * model.direction(ctx, world.e_spu)[None, :]
    elif mode == "confidence_miscalibration":
        head = theta_c * model.trainable("head_only")
        v = jnp.where(jnp.sum(head * grad, -1, keepdims=True) < 0, -1.0, 1.0) * head
    elif mode == "fairness_collapse":
        shares = world.pi0.sum(0)
        major, minor = jnp.argmax(shares), jnp.argmin(shares)

        def dominance(theta):
            acc = _smooth_metrics(sc, ctx, block, theta, cw, panel)[0]["group_acc"]
            return (acc[:, major] - acc[:, minor]).sum()

        v = jax.grad(dominance)(theta_c)
    elif mode in ("adaptation_misalignment", "out_of_domain_degradation"):
        v = theta_c - theta_g
    elif mode == "alignment_erosion":
        pop = block.pop
        v = -jax.vmap(jax.grad(lambda th, x, y, w: model.sample_loss(sc, th, x, y, w)))(
            theta_c, pop.X[..., :-1], pop.y, pop.mask
        )
    else:
        raise ValueError(f"no intervention for mode {mode!r}; interventions exist for {', '.join(MECHANISMS)}")
    return v * mask
