"""Ground-truth metrics of the six silent failure modes in closed form
(paper/main.tex, The six modes). For a linear readout and Gaussian cells the score theta^T x~ is Gaussian in
each cell, so

    P(yhat = +1 | y, a) = Phi(theta^T mu~_{y,a} / sqrt(theta_x^T Sigma_a theta_x)),
    P(correct | y, a)   = Phi(y theta^T mu~_{y,a} / sqrt(theta_x^T Sigma_a theta_x)),

and every metric below is exact except the calibration error, whose per-bin
confidence mass is a smooth 1-D integral done by Gauss-Legendre quadrature. Phi is
``lax.erfc`` (:func:`phi`), except in the two hot kernels whose outputs are sums of
probabilities, the calibration error and the OOD panel's accuracies, where it is
:func:`phi_fast` (absolute error <= 3e-7). The mode metrics are this package's formalization of
the prose of Oh & Bui (KDD '26); each function says which.

References:
    Wang, Russakovsky (2021), Directional Bias Amplification, ICML.
    Guo, Pleiss, Sun, Weinberger (2017), On Calibration of Modern Neural Networks, ICML.
    Hardt, Price, Srebro (2016), Equality of Opportunity in Supervised Learning, NeurIPS.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .world import ClientWorld, World, Y, alignment_score, base_client

LOG_SQRT_2PI = 0.5 * jnp.log(2 * jnp.pi)


class CellScores(NamedTuple):
    """Mean (2, G) and standard deviation (G,) of the score theta^T x~ in each (label, group) cell."""

    mean: Array  # (2, G) score mean per cell
    sd: Array  # (G,) score std per group


def cell_scores(theta: Array, cw: ClientWorld, world: World) -> CellScores:
    """Mean and std of theta^T x~ in each cell of a client's distribution.

    Args:
        theta: (D,) the model (theta_x, b).
        cw: the client's distribution (cell priors pi, means mu, covariance scale).
        world: the base world (its cell covariances Sigma_a).

    Returns:
        CellScores: m_{y,a} = theta_x^T mu_{y,a} + b (2, G) and s_a = sqrt(scale theta_x^T Sigma_a theta_x) (G,).
    """
    tx, b = theta[:-1], theta[-1]
    mean = jnp.einsum("yad,d->ya", cw.mu, tx) + b
    var = cw.scale * jnp.einsum("i,aij,j->a", tx, world.Sigma, tx)
    return CellScores(mean, jnp.sqrt(jnp.maximum(var, 1e-30)))


def positive_rate(cs: CellScores) -> Array:
    """P(yhat = +1 | y, a), shape (2, G).

    Args:
        cs: the cell scores (:func:`cell_scores`).

    Returns:
        (2, G) Phi(m_{y,a} / s_a).
    """
    return phi(cs.mean / cs.sd[None, :])


def correct_rate(cs: CellScores) -> Array:
    """P(correct | y, a) = Phi(y m_{y,a} / s_a), shape (2, G).

    Args:
        cs: the cell scores (:func:`cell_scores`).

    Returns:
        (2, G) the accuracy in each (label, group) cell.
    """
    return phi(Y[:, None] * cs.mean / cs.sd[None, :])


def accuracy(theta: Array, cw: ClientWorld, world: World) -> Array:
    """Accuracy of theta on a client's distribution: sum_{y,a} pi(y,a) Phi(y m_{y,a} / s_a).

    Args:
        theta: (D,) the model.
        cw: the client's distribution.
        world: the base world.

    Returns:
        () the exact accuracy.
    """
    return jnp.sum(cw.pi * correct_rate(cell_scores(theta, cw, world)))


class ClientMetrics(NamedTuple):
    """Per-client metrics of a deployed model on the client's own distribution
    (calibration is computed for all clients at once by :func:`calibration_batch`)."""

    acc: Array  # ()
    group_acc: Array  # (G,)
    group_mass: Array  # (G,) P_c(a)
    tpr: Array  # (G,)
    fpr: Array  # (G,)
    bias_amp: Array  # () directional bias amplification (see below)
    dp_gap: Array  # () demographic parity difference over the present groups
    eo_gap: Array  # () equalized odds difference over the present cells
    cells: CellScores  # score mean (2, G) and std (G,)


#: A group whose mass in a client's distribution is below this is absent from the
#: client: fewer than one example in ten thousand, so no finite sample of the client
#: shows it and no conditional on it (P(. | a), group accuracy, TPR / FPR) is
#: defined for the client. One rule for every per-group quantity (:func:`present_groups`).
GROUP_MASS_MIN = 1e-4

#: A disparity in the data or the model smaller than this is none (float32 round-off).
GAP_TOL = 1e-6


def present_groups(mass: Array) -> Array:
    """Which groups a client has: P_c(a) >= :data:`GROUP_MASS_MIN` (bool, same shape).

    Args:
        mass: group masses P_c(a), any shape.

    Returns:
        bool array of ``mass``'s shape.
    """
    return mass >= GROUP_MASS_MIN


def _signs(rate: Array, w: Array, present: Array) -> Array:
    """sign(r_a - rbar) over the present groups (axis 0), rbar the w-weighted mean of r
    over them, computed as sum_b w_b (r_a - r_b) / sum_b w_b (no cancellation)."""
    dev = sum(w[b] * (rate - rate[b][None]) for b in range(rate.shape[0]))
    return jnp.where(present, jnp.sign(dev), 0.0)


def directional_bias_amplification(
    model_rate: Array, data_rate: Array, mass: Array, present: Array | None = None
) -> Array:
    """Directional bias amplification (attribute -> task) over the groups present,

        BA = (2 / |A|) sum_{a in A} s_a [P(yhat=1 | a) - P(y=1 | a)],

    A the present groups (:func:`present_groups`), s_a = +1 where the data over-represents
    the positive label in group a (P(y=1 | a) > P(y=1), P over the present groups) and -1
    where it under-represents it; where the data shows no disparity, s_a is the model's
    (the sign of P(yhat=1 | a) - P(yhat=1)). A client with fewer than two groups present
    has no disparity: BA = 0. Positive BA means the model exaggerates the data's
    disparity in its direction. This is Wang & Russakovsky's BA_{A->T} summed (not
    averaged) over the two labels, so that for two groups it is the difference
    s [(P(yhat=1|a=1) - P(yhat=1|a=0)) - (P(y=1|a=1) - P(y=1|a=0))], s the sign of the
    data gap. This package's formalization of amplified bias.

    Args:
        model_rate: P(yhat=1 | a), shape (G, ...).
        data_rate: P(y=1 | a), shape (G, ...).
        mass: P(a), shape (G, ...) (the weights of the mean P(y=1)).
        present: which groups count (default :func:`present_groups` of ``mass``).

    Reference:
        Wang, Russakovsky (2021), Directional Bias Amplification, ICML.

    Returns:
        BA, shape (...): positive when the model exaggerates the data's disparity.
    """
    present = present_groups(mass) if present is None else present
    w = jnp.where(present, mass, 0.0)
    k = jnp.sum(present, axis=0)
    spread = lambda r: jnp.max(jnp.where(present, r, -jnp.inf), 0) - jnp.min(jnp.where(present, r, jnp.inf), 0)
    s = jnp.where(spread(data_rate) > GAP_TOL, _signs(data_rate, w, present), _signs(model_rate, w, present))
    total = jnp.sum(jnp.where(present, s * (model_rate - data_rate), 0.0), axis=0)
    return jnp.where(k >= 2, 2.0 * total / jnp.maximum(k, 1), 0.0)


def group_gap(rate: Array, present: Array) -> Array:
    """max_a - min_a of ``rate`` (G, ...) over the groups present (0 with fewer than two).

    Args:
        rate: (G, ...) a per-group rate.
        present: (G, ...) bool, the groups present.

    Returns:
        (...) the range over the present groups.
    """
    hi = jnp.max(jnp.where(present, rate, -jnp.inf), axis=0)
    lo = jnp.min(jnp.where(present, rate, jnp.inf), axis=0)
    return jnp.where(jnp.sum(present, axis=0) >= 2, hi - lo, 0.0)


class Confidence(NamedTuple):
    """The FM's confidence map p(s) = sigmoid(alpha s + beta) (Platt scaling of the FM's
    score on P0). Personal models keep it (paper/main.tex, The six modes, mode 2)."""

    alpha: Array
    beta: Array

    def __call__(self, s: Array) -> Array:
        return jax.nn.sigmoid(self.alpha * s + self.beta)

    def inverse(self, p: Array) -> Array:
        """s(p) = (logit p - beta) / alpha, with s(0) = -inf and s(1) = +inf.

        Args:
            p: probabilities.

        Returns:
            The scores s(p).
        """
        return (jnp.log(p) - jnp.log1p(-p) - self.beta) / self.alpha


def fit_confidence(fm_cells: CellScores, pi: Array, *, grid: int = 4001, iters: int = 50) -> Confidence:
    """Platt-scale the FM: (alpha, beta) minimizing the expected log loss of
    sigmoid(alpha s + beta) for y on P0, by Newton's method on a fine score quadrature.
    For one group with equal class variances this is the exact posterior (LDA).

    Args:
        fm_cells: the FM's cell scores on P0.
        pi: (2, G) P0's cell priors.
        grid: points of the score quadrature.
        iters: Newton iterations.

    Returns:
        Confidence(alpha, beta), the Platt map p(s) = sigmoid(alpha s + beta).
    """
    sd_max = jnp.max(fm_cells.sd)
    s = jnp.linspace(jnp.min(fm_cells.mean) - 10 * sd_max, jnp.max(fm_cells.mean) + 10 * sd_max, grid)
    z = (s[:, None, None] - fm_cells.mean[None]) / fm_cells.sd[None, None, :]
    dens = pi[None] * jnp.exp(-0.5 * z**2 - LOG_SQRT_2PI) / fm_cells.sd[None, None, :] * (s[1] - s[0])
    w_pos, w_all = dens[:, 1].sum(-1), dens.sum((-1, -2))
    X = jnp.stack([s, jnp.ones_like(s)], axis=1)

    def newton(ab, _):
        p = jax.nn.sigmoid(X @ ab)
        grad = X.T @ (w_all * p - w_pos)
        hess = (X * (w_all * p * (1 - p))[:, None]).T @ X + 1e-9 * jnp.eye(2)
        return ab - jnp.linalg.solve(hess, grad), None

    ab, _ = jax.lax.scan(newton, jnp.array([1.0, 0.0]), None, length=iters)
    return Confidence(ab[0], ab[1])


#: Gauss-Legendre nodes per calibration bin (tests/sim/test_world_metrics.py bounds the
#: error; a 5-point Gauss-Lobatto rule reusing the bin edges was 6x less accurate in the
#: end bins, where s(u) = logit(u) is singular, measured)
GL_ORDER = 4
_GL_NODES, _GL_WEIGHTS = (jnp.asarray(a, jnp.float32) for a in np.polynomial.legendre.leggauss(GL_ORDER))


def phi(z: Array) -> Array:
    """Standard normal CDF, Phi(z) = erfc(-z / sqrt 2) / 2 (accurate in both tails).

    Args:
        z: any array.

    Returns:
        Phi(z), the shape of ``z``.
    """
    return 0.5 * jax.lax.erfc(-z * 0.7071067811865476)


#: Hastings' coefficients of Abramowitz & Stegun (1964) formula 7.1.26
_AS_P, _AS_A = 0.3275911, (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def phi_fast(z: Array) -> Array:
    """Standard normal CDF to an absolute error of 1.5e-7 (A&S 7.1.26; 3e-7 in float32,
    tested), for sums of probabilities where only absolute error matters (the
    calibration error, the OOD panel's accuracies); :func:`phi` keeps relative accuracy
    in the tails. With x = |z| / sqrt 2 and t = 1 / (1 + p x),

        erfc(x) = t (a1 + a2 t + a3 t^2 + a4 t^3 + a5 t^4) exp(-x^2) + eps,  |eps| <= 1.5e-7,

    and Phi(z) = erfc(x) / 2 for z < 0, 1 - erfc(x) / 2 otherwise. One exp, one division
    and a degree-5 polynomial: 2.5x the rate of ``lax.erfc`` on this CPU (benchmarks/README).

    Reference:
        Abramowitz, Stegun (1964), Handbook of Mathematical Functions, formula 7.1.26
        (after Hastings 1955).

    Args:
        z: any array.

    Returns:
        Phi(z) to 1.5e-7 absolute, the shape of ``z``.
    """
    x = jnp.abs(z) * 0.7071067811865476
    t = 1.0 / (1.0 + _AS_P * x)
    poly = _AS_A[-1]
    for c in _AS_A[-2::-1]:
        poly = poly * t + c
    half_tail = 0.5 * poly * t * jnp.exp(-x * x)
    return jnp.where(z < 0, half_tail, 1.0 - half_tail)


#: The finite stand-in for the infinite scores of p = 0 and p = 1 (:func:`calibration_points`).
EDGE_SCORE = 1e30


def calibration_points(conf: Confidence, bins: int) -> tuple[Array, Array, Array, Array]:
    """The score points every client's calibration integral is evaluated at, shared by
    all clients since the confidence map is the FM's: the B + 1 bin edges a_b and their
    scores s(a_b), and GL_ORDER Gauss-Legendre nodes u per bin and their scores s(u).

    Args:
        conf: the FM's confidence map.
        bins: the number B of equal bins of p.

    The scores of p = 0 and p = 1 (-inf, +inf) are returned as -+:data:`EDGE_SCORE`:
    every Gaussian CDF there is still exactly 0 or 1 (:func:`phi_fast` of a float32
    argument beyond 1e19 is), and derivatives with respect to the cells' means and
    spreads are 0 instead of the 0 * inf = NaN an infinite edge gives (the influence
    interventions differentiate the calibration error, ``sim/intervention.py``).

    Returns:
        (edges a_b (B + 1,), their scores s(a_b), nodes u (B, GL_ORDER), their scores s(u)).
    """
    edges = jnp.linspace(0.0, 1.0, bins + 1)
    lo, hi = edges[:-1], edges[1:]
    u = 0.5 * (hi - lo)[:, None] * (_GL_NODES[None, :] + 1.0) + lo[:, None]  # (B, GL_ORDER)
    return edges, jnp.clip(conf.inverse(edges), -EDGE_SCORE, EDGE_SCORE), u, conf.inverse(u)


def client_last(*arrays: Array) -> list[Array]:
    """Each (n, ...) array as (..., n), contiguous, by one identity matmul over their
    concatenated per-client entries. XLA:CPU otherwise fuses a transpose into every
    consumer as strided reads, which keeps the CDF loops from vectorizing (12% of a
    round at 1e4 clients, measured). The matmul mixes a client's entries only with
    themselves (a non-finite entry spoils just its own client).

    Args:
        *arrays: arrays with the client axis first, (n, ...).

    Returns:
        The same arrays as (..., n).
    """
    n = arrays[0].shape[0]
    flat = jnp.concatenate([x.reshape(n, -1) for x in arrays], axis=1)  # (n, k)
    t = jnp.dot(jnp.eye(flat.shape[1], dtype=flat.dtype), flat.T, precision=jax.lax.Precision.HIGHEST)
    out, start = [], 0
    for x in arrays:
        size = math.prod(x.shape[1:])
        out.append(t[start : start + size].reshape(x.shape[1:] + (n,)))
        start += size
    return out


def _mixture_cdf(s: Array, mean_t: Array, inv_t: Array, pi_t: Array, labels: tuple[int, ...]) -> Array:
    """sum over cells (y, a), y in ``labels`` (indices), of pi Phi((s - m) / sd), for every
    point of ``s`` (K,) and every client: shape (K, n). Inputs client axis last (see
    :func:`client_last`): mean_t, pi_t (2, G, n), inv_t (G, n). XLA on CPU vectorizes only
    the innermost axis (8x faster than clients outermost, measured)."""
    out = jnp.zeros(s.shape + mean_t.shape[-1:])
    for y in labels:  # one (K, n) broadcast per cell
        for a in range(mean_t.shape[1]):
            out = out + pi_t[y, a][None] * phi_fast((s[:, None] - mean_t[y, a][None]) * inv_t[a][None])
    return out


def _edge_differences(bins: int) -> Array:
    """The (3B, 2(B+1)) matrix taking the edge CDFs [F_neg; F_pos] (each at the B + 1
    edges) to [P(y=+1, bin b); P(bin b); F_all(c_b)]: one small matmul, whose operand
    XLA:CPU materializes once (slicing it in a fused loop recomputed the CDFs per use)."""
    E = bins + 1
    D = np.zeros((3 * bins, 2 * E), np.float32)
    for b in range(bins):
        D[b, E + b + 1], D[b, E + b] = 1.0, -1.0
        for off in (0, E):
            D[bins + b, off + b + 1] += 1.0
            D[bins + b, off + b] -= 1.0
            D[2 * bins + b, off + b + 1] = 1.0
    return jnp.asarray(D)


class Calibration(NamedTuple):
    """The calibration of a batch of clients' deployed models (client axis last)."""

    classwise: Array  # (n,) classwise ECE (the mode's default metric)
    top_label: Array  # (n,) top-label ECE (Guo et al.)
    residual: Array  # (bins, n) signed P(y=+1, p in b) - E[p 1{p in b}] per bin of p
    mid_low: Array  # (n,) the same residual on the lower half [a, 1/2) of the middle bin (odd bins; else 0)

    def pooled(self, w: Array) -> tuple[Array, Array]:
        """Classwise and top-label ECE of the w-weighted mixture of the clients'
        distributions (the residuals are linear in the distribution).

        Args:
            w: (n,) the clients' pooling weights.

        Returns:
            (classwise ECE, top-label ECE) of the pooled distribution.
        """
        res = self.residual @ w / w.sum()
        low = self.mid_low @ w / w.sum()
        return jnp.abs(res).sum(0), top_label_ece(res, low)


def top_label_ece(residual: Array, mid_low: Array) -> Array:
    """Top-label ECE from the signed class-probability residuals e_b (bins on axis 0).

    The prediction is the class p favours (+1 iff p >= 1/2) and its confidence is
    c = max(p, 1 - p); c in bin k (over [0, 1], k >= B/2) collects p in bin k (predicts
    +1: residual e_k) and p in the mirror bin B - 1 - k (predicts -1: residual -e_{B-1-k},
    since P(y = -1, b) - E[1 - p; b] = -(P(y = +1, b) - E[p; b])). So

        ECE_top = sum_{k > (B-1)/2} |e_k - e_{B-1-k}|  (+ |e_hi - e_lo| for odd B),

    e_lo and e_hi the residuals of the middle bin's halves below and above 1/2.

    Args:
        residual: (B, ...) the signed residuals e_b of the B bins of p.
        mid_low: (...) the residual of the lower half of the middle bin (odd B).

    Returns:
        (...) the top-label ECE.
    """
    B = residual.shape[0]
    hi = jnp.arange(B // 2 + B % 2, B)
    pairs = jnp.abs(residual[hi] - residual[B - 1 - hi]).sum(0)
    if B % 2 == 0:
        return pairs
    mid = residual[B // 2]
    return pairs + jnp.abs((mid - mid_low) - mid_low)


def calibration_batch(mean: Array, sd: Array, pi: Array, conf: Confidence, *, bins: int) -> Calibration:
    """Binned calibration errors of the confidence map p = conf(s) for a batch of clients
    (leading axis n of ``mean`` (n, 2, G), ``sd`` (n, G), ``pi`` (n, 2, G)), exactly.

    With B equal bins of p, e_b = P(y = +1, p in b) - E[p 1{p in b}] (signed):

    * classwise ECE = sum_b |e_b|, the class-probability reliability error of both classes
      (for two classes the class -1 reliability is the mirror image, so this is the sum
      over the classes of Kull et al.'s / Nixon et al.'s classwise ECE, each class's
      calibration in its own probability). The mode's default: label shift, the main cause
      of miscalibration in this world, moves p(+1) in one direction, which the top-label
      ECE partly cancels (over-confident +1 predictions against under-confident -1 ones
      land in the same confidence bin), hiding the miscalibration the mode is about.
    * top-label ECE (Guo et al. 2017) = sum over bins of the confidence max(p, 1 - p) of
      |P(correct, c in b) - E[c 1{c in b}]|, the prediction argmax p (:func:`top_label_ece`).
      Always <= the classwise ECE; equal when the residuals of mirror bins have opposite
      signs (the miscalibration is in the confidence, not in the label balance).

    Because p is monotone in the Gaussian-mixture score s, bin b = [a_b, c_b) is the score
    interval [s(a_b), s(c_b)), so P(y = +1, p in b) is exact (Phi at the edges), and

        E[p 1{p in b}] = a_b P(p in b) + int_{a_b}^{c_b} P(u < p < c_b) du
                       = a_b P(p in b) + w_b F(c_b) - (w_b / 2) sum_j w_j F(u_j)

    (F the mixture CDF of p, w_b = c_b - a_b, u_j and w_j the GL_ORDER Gauss-Legendre
    nodes and weights of the bin, sum_j w_j = 2): a smooth 1-D integral of Gaussian CDFs.
    For odd B the top-label error also needs the middle bin split at 1/2: one more edge
    and GL_ORDER more nodes on its lower half. The CDFs are :func:`phi_fast`: absolute
    error <= 3e-7 each, so <= 1.2e-6 + 6e-7 w_b per bin and <= 2e-5 in either ECE.

    References:
        Guo, Pleiss, Sun, Weinberger (2017), On Calibration of Modern Neural Networks, ICML.
        Kull, Perello-Nieto, Kangsepp, Silva Filho, Song, Flach (2019), Beyond Temperature
        Scaling: Obtaining Well-Calibrated Multiclass Probabilities with Dirichlet
        Calibration, NeurIPS.  Nixon, Dusenberry, Zhang, Jerfel, Tran (2019), Measuring
        Calibration in Deep Learning, CVPR Workshops.

    Args:
        mean: (n, 2, G) score means per cell.
        sd: (n, G) score standard deviations per group.
        pi: (n, 2, G) the clients' cell priors.
        conf: the FM's confidence map.
        bins: the number B of equal bins of p.

    Returns:
        Calibration(classwise (n,), top_label (n,), residual (B, n), mid_low (n,)).
    """
    edges, s_edges, _, s_nodes = calibration_points(conf, bins)
    mean_t, inv_t, pi_t = client_last(mean, 1.0 / sd, pi)
    odd = bins % 2 == 1
    if odd:  # the split point 1/2 of the middle bin and GL nodes on its lower half
        a_mid = edges[bins // 2]
        u_low = 0.5 * (0.5 - a_mid) * (_GL_NODES + 1.0) + a_mid
        s_extra = jnp.concatenate([conf.inverse(jnp.full((1,), 0.5)), conf.inverse(u_low)])
        s_edges = jnp.concatenate([s_edges, s_extra[:1]])
    F_edges = jnp.concatenate([_mixture_cdf(s_edges, mean_t, inv_t, pi_t, (y,)) for y in (0, 1)])  # (2E, n)
    E = bins + 1 + odd
    F_neg, F_pos = F_edges[:E], F_edges[E:]
    F_std = jnp.concatenate([F_neg[: bins + 1], F_pos[: bins + 1]])
    diffs = jnp.dot(_edge_differences(bins), F_std, precision=jax.lax.Precision.HIGHEST)
    pos_b, mass_b, F_hi = diffs[:bins], diffs[bins : 2 * bins], diffs[2 * bins :]
    # nodes node-major, (GL_ORDER, B, n): the weighted sum over nodes is a sum of
    # contiguous slices, one vectorized loop (a reduction over the middle axis of
    # (B, GL_ORDER, n) went to a library kernel: 1.8 ms of a ~14 ms round, measured)
    F_nodes = _mixture_cdf(s_nodes.T.reshape(-1), mean_t, inv_t, pi_t, (0, 1)).reshape(GL_ORDER, bins, -1)
    wsum = sum(_GL_WEIGHTS[j] * F_nodes[j] for j in range(GL_ORDER))  # (B, n)
    width = (edges[1:] - edges[:-1])[:, None]
    conf_b = edges[:-1, None] * mass_b + width * F_hi - 0.5 * width * wsum
    residual = pos_b - conf_b
    if odd:
        m = bins // 2
        F_all_half = F_neg[-1] + F_pos[-1]  # F(1/2)
        F_all_a = F_neg[m] + F_pos[m]
        F_low = _mixture_cdf(s_extra[1:], mean_t, inv_t, pi_t, (0, 1))  # (GL_ORDER, n)
        w_low = 0.5 - a_mid
        mass_low = F_all_half - F_all_a
        conf_low = (
            a_mid * mass_low
            + w_low * F_all_half
            - 0.5 * w_low * sum(_GL_WEIGHTS[j] * F_low[j] for j in range(GL_ORDER))
        )
        mid_low = (F_pos[-1] - F_pos[m]) - conf_low
    else:
        mid_low = jnp.zeros(residual.shape[1:], residual.dtype)
    return Calibration(jnp.abs(residual).sum(0), top_label_ece(residual, mid_low), residual, mid_low)


def calibration(cs: CellScores, pi: Array, conf: Confidence, *, bins: int) -> Calibration:
    """:func:`calibration_batch` for one client (client axis dropped).

    Args:
        cs: the client's cell scores.
        pi: (2, G) its cell priors.
        conf: the FM's confidence map.
        bins: the number of bins.

    Returns:
        Calibration of one client (scalars and (B,) residuals).
    """
    return jax.tree.map(lambda a: a[..., 0], calibration_batch(cs.mean[None], cs.sd[None], pi[None], conf, bins=bins))


def client_metrics(theta: Array, cw: ClientWorld, world: World) -> ClientMetrics:
    """All per-client metrics (but calibration) of a deployed model on its client's own
    distribution (one client; :func:`client_metrics_batch` for many).

    Args:
        theta: (D,) the deployed model.
        cw: the client's distribution.
        world: the base world.

    Returns:
        ClientMetrics: accuracy, per-group accuracy and mass, TPR / FPR per group, bias
        amplification, demographic-parity and equalized-odds gaps, and the cell scores.
    """
    cm = client_metrics_batch(theta[None], jax.tree.map(lambda a: a[None], cw), world)
    return jax.tree.map(lambda a: a[0], cm)


def _scores_t(theta: Array, mu: Array, scale: Array, world: World) -> tuple[Array, Array]:
    """Score means (2, G, n) and stds (G, n) of models ``theta`` (n, D) on cells with means
    ``mu`` ((n, 2, G, d) per model, or (2, G, d) shared) and covariance scale (n,) or ()
    times Sigma_a; the model axis is innermost (XLA on CPU vectorizes it)."""
    tx, b = theta[:, :-1], theta[:, -1]
    spec = "nyad,nd->yan" if mu.ndim == 4 else "yad,nd->yan"
    mean = jnp.einsum(spec, mu, tx) + b
    quad = jnp.einsum("ni,aij,nj->an", tx, world.Sigma, tx)
    return mean, jnp.sqrt(jnp.maximum(scale * quad, 1e-30))


def client_metrics_batch(theta: Array, cw: ClientWorld, world: World) -> ClientMetrics:
    """:func:`client_metrics` of n models ``theta`` (n, D) on n clients ``cw`` (batched
    over its leading axis), computed with the client axis innermost; same shapes as a
    vmap of the one-client function.

    Args:
        theta: (n, D) the deployed models.
        cw: the n clients' distributions (leading axis n).
        world: the base world.

    Returns:
        ClientMetrics with a leading client axis.
    """
    mean, sd = _scores_t(theta, cw.mu, cw.scale, world)
    pi = jnp.moveaxis(cw.pi, 0, -1)  # (2, G, n)
    z = mean / sd[None]
    return rate_metrics(phi(z), phi(Y[:, None, None] * z), pi)._replace(
        cells=CellScores(jnp.moveaxis(mean, -1, 0), sd.T)
    )


def rate_metrics(pos: Array, correct: Array, pi: Array) -> ClientMetrics:
    """The per-client metrics of :class:`ClientMetrics` from the cells' rates: accuracy,
    group accuracies and masses, TPR / FPR, bias amplification, demographic parity and
    equalized odds gaps, all functions of P(yhat = +1 | y, a), P(correct | y, a) and the
    prior pi(y, a) (exact rates for the linear model, Monte Carlo rates for a model
    without closed forms, ``sim/mlp.py``). Client axis last.

    Args:
        pos: (2, G, n) P(yhat = +1 | y, a).
        correct: (2, G, n) P(yhat = y | y, a).
        pi: (2, G, n) the cell priors.

    Returns:
        ClientMetrics with a leading client axis (``cells`` None).
    """
    # sums over the two labels written out: XLA:CPU hands a reduction over a leading
    # axis of (2, G, n) to a library kernel that was slower than the fused adds (measured)
    pa = pi[0] + pi[1]
    here = present_groups(pa)
    # P(y | a) on the present groups; an absent group (P_c(a) < GROUP_MASS_MIN) takes
    # y | a uniform, so its group accuracy stays a number (weighted by its mass, ~0)
    y_given_a = jnp.where(here, pi / jnp.maximum(pa, GROUP_MASS_MIN), 0.5)
    group_acc = y_given_a[0] * correct[0] + y_given_a[1] * correct[1]  # (G, n)
    model_rate = y_given_a[0] * pos[0] + y_given_a[1] * pos[1]  # P(yhat = 1 | a)
    # per-cell presence for the rates conditioned on the label as well
    pos_cell, neg_cell = pi[1] >= GROUP_MASS_MIN, pi[0] >= GROUP_MASS_MIN
    return ClientMetrics(
        acc=sum(pi[y, a] * correct[y, a] for y in (0, 1) for a in range(pa.shape[0])),
        group_acc=group_acc.T,
        group_mass=pa.T,
        tpr=pos[1].T,
        fpr=pos[0].T,
        bias_amp=directional_bias_amplification(model_rate, y_given_a[1], pa, here),
        dp_gap=group_gap(model_rate, here),
        eo_gap=jnp.maximum(group_gap(pos[1], pos_cell), group_gap(pos[0], neg_cell)),
        cells=None,
    )


def base_accuracy(theta: Array, world: World) -> Array:
    """Accuracy on the base world P0 of one model (D,) or of each row of (n, D).

    Args:
        theta: (D,) or (n, D) models.
        world: the base world (P0's priors and cells).

    Returns:
        () or (n,) accuracy on P0.
    """
    th = jnp.atleast_2d(theta)
    mean, sd = _scores_t(th, world.mu, jnp.asarray(1.0), world)
    acc = jnp.sum(world.pi0[..., None] * phi(Y[:, None, None] * mean / sd[None]), axis=(0, 1))
    return acc if theta.ndim == 2 else acc[0]


def group_accuracy_p0(theta: Array, world: World) -> Array:
    """Accuracy per group on P0, shape (G,).

    Args:
        theta: (D,) the model.
        world: the base world.

    Returns:
        (G,) P0 accuracy in each group.
    """
    correct = correct_rate(cell_scores(theta, base_client(world), world))
    return (world.pi0 * correct).sum(0) / world.pi0.sum(0)


def spurious_weight(theta: Array, world: World) -> Array:
    """<theta_x, e_spu>: the weight on the spurious direction.

    Args:
        theta: (D,) or (n, D) models.
        world: the base world (its unit spurious direction e_spu).

    Returns:
        () or (n,) <theta_x, e_spu>.
    """
    return theta[..., :-1] @ world.e_spu


def equalized_odds_gap(tpr: Array, fpr: Array) -> Array:
    """max(range of TPR over groups, range of FPR over groups) (Hardt et al. 2016).

    Args:
        tpr: (G,) P(yhat = +1 | y = +1, a).
        fpr: (G,) P(yhat = +1 | y = -1, a).

    Returns:
        () the equalized odds difference.

    Reference:
        Hardt, Price, Srebro (2016), Equality of Opportunity in Supervised Learning, NeurIPS.
    """
    return jnp.maximum(tpr.max(-1) - tpr.min(-1), fpr.max(-1) - fpr.min(-1))


def _order_key(x: Array) -> Array:
    """An int32 key with the order of the float32 values (negative floats' bits reversed)."""
    b = jax.lax.bitcast_convert_type(x, jnp.int32)
    return jnp.where(b < 0, jnp.int32(-(2**31)) - b - 1, b)


def kth_smallest(x: Array, k: Array) -> Array:
    """The k-th smallest (0-based) value of each row of float32 ``x`` (last axis), exact:
    bisection over the 2^32 order keys, one counting pass per bit (32 passes of O(n),
    branch-free and vectorized; a partial sort by ``lax.top_k`` was 6-10x slower on CPU
    for k ~ n/10, measured). ``k``: an int per row (broadcast against x.shape[:-1]).

    Args:
        x: (..., n) float32.
        k: (...) int, 0 <= k < n.

    Returns:
        (...) the k-th smallest value of each row.
    """
    key = _order_key(x)
    k = jnp.broadcast_to(jnp.asarray(k, jnp.int32), x.shape[:-1])
    lo = jnp.full(x.shape[:-1], jnp.iinfo(jnp.int32).min, jnp.int32)
    hi = jnp.full(x.shape[:-1], jnp.iinfo(jnp.int32).max, jnp.int32)

    def bisect(_, lh):
        lo, hi = lh
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)  # floor((lo + hi) / 2) without overflow
        enough = jnp.sum(key <= mid[..., None], axis=-1) >= k + 1
        return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

    lo, _ = jax.lax.fori_loop(0, 32, bisect, (lo, hi))
    return jax.lax.bitcast_convert_type(jnp.where(lo < 0, jnp.int32(-(2**31)) - lo - 1, lo), jnp.float32)


def quantile(x: Array, q: float | Array) -> Array:
    """The q-quantile of each row of ``x`` (last axis), equal to ``jnp.quantile`` with
    linear interpolation: order statistic i = floor(q (n - 1)) by exact selection
    (:func:`kth_smallest`; ``q`` may differ per row), statistic i + 1 from one more pass
    (equal to it, or the smallest value above it).

    Args:
        x: (..., n) values.
        q: (...) or () quantile levels in [0, 1].

    Returns:
        (...) x_(i) + (q (n - 1) - i) (x_(i+1) - x_(i)) per row.
    """
    n = x.shape[-1]
    pos = jnp.asarray(q, jnp.float32) * (n - 1)
    i = jnp.floor(pos).astype(jnp.int32)
    frac = pos - i
    if x.dtype != jnp.float32:  # the order-key trick is for float32; other dtypes sort
        srt = jnp.sort(x, axis=-1)
        i = jnp.broadcast_to(i, x.shape[:-1])
        lo_v = jnp.take_along_axis(srt, i[..., None], -1)[..., 0]
        hi_v = jnp.take_along_axis(srt, jnp.minimum(i + 1, n - 1)[..., None], -1)[..., 0]
        return lo_v + frac * (hi_v - lo_v)
    lo_v = kth_smallest(x, i)
    ties = jnp.sum(x <= lo_v[..., None], axis=-1)  # how many values are <= the i-th
    above = jnp.min(jnp.where(x > lo_v[..., None], x, jnp.inf), axis=-1)
    hi_v = jnp.where((ties >= i + 2) | (i + 1 >= n), lo_v, above)
    return lo_v + frac * (hi_v - lo_v)


#: The two measures of fairness collapse (mode 3), named by ``thresholds.fairness_metric``.
FAIRNESS_METRICS = ("group_gap", "client_spread")


def pooled_group_accuracy(group_acc: Array, group_mass: Array, weight: Array) -> Array:
    """Accuracy of each group pooled over the clients (what an auditor who saw every
    client's data would measure), shape (G,):

        Acc_a = sum_c w_c P_c(a) Acc_c(a) / sum_c w_c P_c(a),

    ``group_acc`` and ``group_mass`` (N, G), ``weight`` (N,) the pooling weights n_c / mean(n).

    Args:
        group_acc: (N, G) each client's accuracy in each group, Acc_c(a).
        group_mass: (N, G) the group masses P_c(a) (0 where a group is absent).
        weight: (N,) the clients' pooling weights.

    Returns:
        (G,) the pooled group accuracies Acc_a.
    """
    gm = weight[:, None] * group_mass
    return (gm * group_acc).sum(0) / gm.sum(0)


def group_accuracy_gap(pooled: Array) -> Array:
    """Fairness collapse (mode 3), the taxonomy's measure: the group accuracy gap
    max_a Acc_a - min_a Acc_a of the pooled group accuracies (:func:`pooled_group_accuracy`).
    The mode's metric is its growth over the FM's gap on the same clients while mean
    accuracy holds (Oh & Bui: aggregation widens the performance gap while the mean
    holds; this package's formalization).

    Args:
        pooled: (G,) pooled group accuracies.

    Returns:
        () max_a Acc_a - min_a Acc_a.
    """
    return pooled.max() - pooled.min()


def accuracy_spread(acc: Array, q: float = 0.1) -> Array:
    """Fairness collapse measured across clients (``fairness_metric = "client_spread"``):
    mean client accuracy minus its q-quantile (the worst-decile gap); its growth over the
    FM's spread while mean accuracy holds (this package's formalization).

    Args:
        acc: (N,) the clients' accuracies.
        q: the quantile (0.1: the worst decile).

    Returns:
        () mean(acc) - quantile_q(acc).
    """
    return acc.mean() - quantile(acc, q)


def fairness_value(kind: str, acc: Array, group_acc: Array, group_mass: Array, weight: Array) -> Array:
    """The fairness-collapse measure ``kind`` (one of :data:`FAIRNESS_METRICS`) of models
    with client accuracies ``acc`` (N,) and per-client group accuracies and masses (N, G).

    Args:
        kind: ``group_gap`` or ``client_spread``.
        acc: (N,) client accuracies.
        group_acc: (N, G) per-client group accuracies.
        group_mass: (N, G) per-client group masses.
        weight: (N,) pooling weights.

    Returns:
        () the measure (:func:`group_accuracy_gap` of the pooled group accuracies, or
        :func:`accuracy_spread`).
    """
    if kind == "group_gap":
        return group_accuracy_gap(pooled_group_accuracy(group_acc, group_mass, weight))
    if kind == "client_spread":
        return accuracy_spread(acc, 0.1)
    raise ValueError(f"thresholds.fairness_metric must be one of {FAIRNESS_METRICS}, got {kind!r}")


def fm_fairness(kind: str, theta0: Array, shifted: ClientWorld, weight: Array, world: World, fm_acc: Array) -> Array:
    """The foundation model's fairness measure ``kind`` (:func:`fairness_value`) on the
    clients' (shifted) distributions, against which fairness collapse is measured;
    ``fm_acc`` (N,) its client accuracies (``Population.fm_acc``).

    Args:
        kind: ``group_gap`` or ``client_spread``.
        theta0: (D,) the FM.
        shifted: the clients' shifted distributions (leading axis N).
        weight: (N,) pooling weights.
        world: the base world.
        fm_acc: (N,) the FM's client accuracies.

    Returns:
        () the FM's fairness measure.
    """
    if kind == "client_spread":
        return accuracy_spread(fm_acc, 0.1)
    n = weight.shape[0]
    cm = client_metrics_batch(jnp.broadcast_to(theta0, (n, theta0.shape[0])), shifted, world)
    return fairness_value(kind, fm_acc, cm.group_acc, cm.group_mass, weight)


def within_round_drop(p0_start: Array, p0_end: Array, align_start: Array, align_end: Array) -> Array:
    """Adaptation misalignment (mode 4): the larger of the drops of base-world accuracy
    and probe alignment from the model a round starts from to the model after the K
    local steps (this package's formalization).

        max(acc_P0(theta_start) - acc_P0(theta_end), A(theta_start) - A(theta_end))

    Args:
        p0_start: base-world accuracy of the model the round starts from (the global model).
        p0_end: base-world accuracy after the local steps (per client).
        align_start: probe alignment A of the starting model.
        align_end: probe alignment after the local steps (per client).

    Returns:
        The drop per client (broadcast shape of the inputs).
    """
    return jnp.maximum(p0_start - p0_end, align_start - align_end)


def panel_accuracy(theta: Array, panel: ClientWorld, world: World) -> Array:
    """Accuracy of each model (rows of ``theta``, (n, D)) on each panel client's
    distribution (``panel`` batched over R): shape (R, n),

        acc[r, n] = sum_{y, a} pi_r(y, a) Phi(y m_{r,y,a,n} / s_{r,a,n}).

    One matmul for the score means; the score variance is theta_x^T Sigma_a theta_x
    scaled per panel client. The CDFs are :func:`phi_fast` (absolute error <= 3e-7 per
    accuracy); the 2G cells are summed explicitly, (R, n) each, client axis innermost
    (a reduction over the cell axes ran 6% slower inside the round, measured).

    Args:
        theta: (n, D) models.
        panel: R clients' distributions (leading axis R).
        world: the base world.

    Returns:
        (R, n) accuracies.
    """
    tx, b = theta[:, :-1], theta[:, -1]
    mean = jnp.einsum("ryad,nd->ryan", panel.mu, tx) + b  # (R, 2, G, n)
    quad = jnp.einsum("ni,aij,nj->an", tx, world.Sigma, tx)  # (G, n)
    out = jnp.zeros(mean.shape[:1] + mean.shape[-1:])
    for a in range(quad.shape[0]):
        inv_sd = jax.lax.rsqrt(jnp.maximum(panel.scale[:, None] * quad[a][None], 1e-30))  # (R, n)
        for y in (0, 1):
            out = out + panel.pi[:, y, a][:, None] * phi_fast((2 * y - 1) * mean[:, y, a] * inv_sd)
    return out


def out_of_domain_drop(
    fm_acc_other: Array, acc_other: Array, p0_fm: Array, p0: Array, mask: Array | None = None
) -> Array:
    """Out-of-domain degradation (mode 5): the larger of the mean accuracy drop on other
    clients' distributions (axis 0, ``mask`` selecting the other clients) and the P0
    accuracy drop, both relative to the FM (this package's formalization).

        max( sum_r mask_r (Acc_FM(r) - Acc_theta(r)) / sum_r mask_r, acc_P0(theta_0) - acc_P0(theta) )

    Args:
        fm_acc_other: (R, ...) the FM's accuracy on the panel clients.
        acc_other: (R, N) each personal model's accuracy on the panel clients.
        p0_fm: () the FM's P0 accuracy.
        p0: (N,) each personal model's P0 accuracy.
        mask: (R, N) 1 where the panel client is another client (default: all).

    Returns:
        (N,) the out-of-domain drop of each personal model.
    """
    mask = jnp.ones_like(acc_other) if mask is None else mask
    drop = ((fm_acc_other - acc_other) * mask).sum(0) / jnp.maximum(mask.sum(0), 1.0)
    return jnp.maximum(drop, p0_fm - p0)


def alignment_erosion(align_fm: Array, align: Array) -> Array:
    """Alignment erosion (mode 6): A(theta_0) - A(theta_t) (this package's formalization).

    Args:
        align_fm: () the FM's probe alignment A(theta_0).
        align: the alignment of the model(s) at round t.

    Returns:
        A(theta_0) - A(theta_t), positive when the alignment erodes.
    """
    return align_fm - align


__all__ = [
    "FAIRNESS_METRICS",
    "accuracy_spread",
    "fairness_value",
    "fm_fairness",
    "group_accuracy_gap",
    "pooled_group_accuracy",
    "alignment_erosion",
    "calibration_batch",
    "kth_smallest",
    "panel_accuracy",
    "quantile",
    "out_of_domain_drop",
    "phi",
    "within_round_drop",
    "CellScores",
    "ClientMetrics",
    "accuracy",
    "alignment_score",
    "base_accuracy",
    "calibration",
    "cell_scores",
    "client_metrics",
    "Confidence",
    "directional_bias_amplification",
    "equalized_odds_gap",
    "fit_confidence",
    "correct_rate",
    "group_accuracy_p0",
    "positive_rate",
    "spurious_weight",
]
