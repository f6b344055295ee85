"""Ground-truth metrics of the six silent failure modes in closed form (DESIGN.md
section 4). For a linear readout and Gaussian cells the score theta^T x~ is Gaussian in
each cell, so

    P(yhat = +1 | y, a) = Phi(theta^T mu~_{y,a} / sqrt(theta_x^T Sigma_a theta_x)),
    P(correct | y, a)   = Phi(y theta^T mu~_{y,a} / sqrt(theta_x^T Sigma_a theta_x)),

and every metric below is exact except the calibration error, which integrates the
1-D score density by quadrature. The mode metrics are this package's formalization of
the prose of Oh & Bui (KDD '26); each function says which.

References:
    Wang, Russakovsky (2021), Directional Bias Amplification, ICML.
    Guo, Pleiss, Sun, Weinberger (2017), On Calibration of Modern Neural Networks, ICML.
    Hardt, Price, Srebro (2016), Equality of Opportunity in Supervised Learning, NeurIPS.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import ndtr

from .world import Y, ClientWorld, World, alignment_score

LOG_SQRT_2PI = 0.5 * jnp.log(2 * jnp.pi)


class CellScores(NamedTuple):
    mean: Array  # (2, G) score mean per cell
    sd: Array  # (G,) score std per group


def cell_scores(theta: Array, cw: ClientWorld, world: World) -> CellScores:
    """Mean and std of theta^T x~ in each cell of a client's distribution."""
    tx, b = theta[:-1], theta[-1]
    mean = jnp.einsum("yad,d->ya", cw.mu, tx) + b
    var = cw.scale * jnp.einsum("i,aij,j->a", tx, world.Sigma, tx)
    return CellScores(mean, jnp.sqrt(jnp.maximum(var, 1e-30)))


def positive_rate(cs: CellScores) -> Array:
    """P(yhat = +1 | y, a), shape (2, G)."""
    return ndtr(cs.mean / cs.sd[None, :])


def accuracy(theta: Array, cw: ClientWorld, world: World) -> Array:
    """Accuracy of theta on a client's distribution: sum_{y,a} pi(y,a) Phi(y m_{y,a} / s_a)."""
    cs = cell_scores(theta, cw, world)
    return jnp.sum(cw.pi * ndtr(Y[:, None] * cs.mean / cs.sd[None, :]))


class ClientMetrics(NamedTuple):
    """Per-client metrics of a deployed model on the client's own distribution."""

    acc: Array  # ()
    group_acc: Array  # (G,)
    group_mass: Array  # (G,) P_c(a)
    tpr: Array  # (G,)
    fpr: Array  # (G,)
    bias_amp: Array  # () directional bias amplification (see below)
    ece: Array  # () binned calibration error
    reliability: Array  # (2, B): per bin P(y=+1, p in b) and E[p 1{p in b}] (for the pooled ECE)


def directional_bias_amplification(pos: Array, pi: Array) -> Array:
    """[P(yhat=1|a=1) - P(yhat=1|a=0)] - [P(y=1|a=1) - P(y=1|a=0)], signed so that a
    positive value means the model exaggerates the data's disparity in its direction
    (the sign of the data gap; of the model gap when the data has none).
    Wang & Russakovsky (2021); this package's formalization of amplified bias.
    """
    pa = jnp.maximum(pi.sum(axis=0), 1e-12)  # a group absent from the client has weight 0
    model = (pi * pos).sum(axis=0) / pa  # P(yhat=1 | a)
    data = pi[1] / pa  # P(y=1 | a)
    model_gap, data_gap = model[1] - model[0], data[1] - data[0]
    direction = jnp.where(jnp.abs(data_gap) > 1e-6, jnp.sign(data_gap), jnp.sign(model_gap))
    return direction * (model_gap - data_gap)


def fm_confidence(fm_cells: CellScores, fm_pi: Array) -> callable:
    """The FM's confidence map g(s) = P0(y = +1 | FM score = s): the exact posterior of
    the FM's Gaussian score mixture on P0. Personal models keep this map (DESIGN.md
    section 4, mode 2)."""

    def g(s: Array) -> Array:
        z = (s[..., None, None] - fm_cells.mean) / fm_cells.sd[None, :]
        logp = jnp.log(jnp.maximum(fm_pi, 1e-30)) - 0.5 * z**2 - jnp.log(fm_cells.sd)[None, :]
        pos = jax.nn.logsumexp(logp[..., 1, :], axis=-1)
        tot = jax.nn.logsumexp(logp.reshape(logp.shape[:-2] + (-1,)), axis=-1)
        return jnp.exp(pos - tot)

    return g


def calibration(cs: CellScores, pi: Array, g, *, bins: int, grid: int) -> tuple[Array, Array]:
    """Binned calibration error of the positive-class probability p = g(s) on a client:

        ECE = sum_b | P(y = +1, p in b) - E[p 1{p in b}] |,

    each term integrated over the Gaussian score mixture by the trapezoid rule on
    ``grid`` points over +-8 std (Guo et al. 2017 binning with ``bins`` equal bins).
    Returns (ECE, reliability (2, bins)).
    """
    sd_max = jnp.max(cs.sd)
    lo, hi = jnp.min(cs.mean) - 8 * sd_max, jnp.max(cs.mean) + 8 * sd_max
    s = jnp.linspace(lo, hi, grid)
    w = jnp.full(grid, (hi - lo) / (grid - 1)).at[0].multiply(0.5).at[-1].multiply(0.5)
    z = (s[:, None, None] - cs.mean[None]) / cs.sd[None, None, :]
    dens = pi[None] * jnp.exp(-0.5 * z**2 - LOG_SQRT_2PI) / cs.sd[None, None, :]  # (Q, 2, G)
    f_pos = dens[:, 1].sum(-1)
    f_all = dens.sum((-1, -2))
    p = g(s)
    onehot = jax.nn.one_hot(jnp.clip(jnp.floor(p * bins), 0, bins - 1).astype(jnp.int32), bins)  # (Q, B)
    pos_b = (w * f_pos) @ onehot
    conf_b = (w * p * f_all) @ onehot
    return jnp.sum(jnp.abs(pos_b - conf_b)), jnp.stack([pos_b, conf_b])


def client_metrics(theta: Array, cw: ClientWorld, world: World, g, *, bins: int, grid: int) -> ClientMetrics:
    """All per-client metrics of a deployed model on its client's own distribution."""
    cs = cell_scores(theta, cw, world)
    pos = positive_rate(cs)
    correct = ndtr(Y[:, None] * cs.mean / cs.sd[None, :])
    pa = cw.pi.sum(axis=0)
    ece, rel = calibration(cs, cw.pi, g, bins=bins, grid=grid)
    # accuracy given the group, Phi-averaged over P(y | a); defined even where P_c(a) = 0
    y_given_a = jnp.where(pa > 1e-12, cw.pi / jnp.maximum(pa, 1e-12), 0.5)
    return ClientMetrics(
        acc=jnp.sum(cw.pi * correct),
        group_acc=(y_given_a * correct).sum(0),
        group_mass=pa,
        tpr=pos[1],
        fpr=pos[0],
        bias_amp=directional_bias_amplification(pos, cw.pi),
        ece=ece,
        reliability=rel,
    )


def base_accuracy(theta: Array, world: World) -> Array:
    """Accuracy on the base world P0."""
    return accuracy(theta, ClientWorld(world.pi0, world.mu, jnp.asarray(1.0)), world)


def group_accuracy_p0(theta: Array, world: World) -> Array:
    """Accuracy per group on P0, shape (G,)."""
    cs = cell_scores(theta, ClientWorld(world.pi0, world.mu, jnp.asarray(1.0)), world)
    correct = ndtr(Y[:, None] * cs.mean / cs.sd[None, :])
    return (world.pi0 * correct).sum(0) / world.pi0.sum(0)


def spurious_weight(theta: Array, world: World) -> Array:
    """<theta_x, e_spu>: the weight on the spurious direction."""
    return theta[..., :-1] @ world.e_spu


def equalized_odds_gap(tpr: Array, fpr: Array) -> Array:
    """max(range of TPR over groups, range of FPR over groups) (Hardt et al. 2016)."""
    return jnp.maximum(tpr.max(-1) - tpr.min(-1), fpr.max(-1) - fpr.min(-1))


def accuracy_spread(acc: Array, q: float = 0.1) -> Array:
    """Fairness collapse (mode 3): mean client accuracy minus its q-quantile (the
    worst-decile gap). The mode's metric is its growth over the FM's spread while mean
    accuracy holds (this package's formalization)."""
    return acc.mean() - jnp.quantile(acc, q)


def within_round_drop(p0_start: Array, p0_end: Array, align_start: Array, align_end: Array) -> Array:
    """Adaptation misalignment (mode 4): the larger of the drops of base-world accuracy
    and probe alignment from the model a round starts from to the model after the K
    local steps (this package's formalization)."""
    return jnp.maximum(p0_start - p0_end, align_start - align_end)


def out_of_domain_drop(fm_acc_other: Array, acc_other: Array, p0_fm: Array, p0: Array) -> Array:
    """Out-of-domain degradation (mode 5): the larger of the mean accuracy drop on R other
    clients' distributions (last axis) and the P0 accuracy drop, both relative to the FM
    (this package's formalization)."""
    return jnp.maximum((fm_acc_other - acc_other).mean(-1), p0_fm - p0)


def alignment_erosion(align_fm: Array, align: Array) -> Array:
    """Alignment erosion (mode 6): A(theta_0) - A(theta_t) (this package's formalization)."""
    return align_fm - align


__all__ = [
    "accuracy_spread", "alignment_erosion", "out_of_domain_drop", "within_round_drop", 
    "CellScores", "ClientMetrics", "accuracy", "alignment_score", "base_accuracy", "calibration", "cell_scores",
    "client_metrics", "directional_bias_amplification", "equalized_odds_gap", "fm_confidence",
    "group_accuracy_p0", "positive_rate", "spurious_weight",
]
