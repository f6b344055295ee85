"""The metrics' readable definitions: a plain NumPy (float64) loop over clients doing
one round's work of the engine for the same population, one client at a time and one
formula at a time: deploy each personal model (P_c theta_g + b_c) and compute its
accuracy, binned calibration errors (classwise and top-label, bin by bin),
directional bias amplification (Wang & Russakovsky's sum over groups), alignment and
accuracy on the OOD panel.

The engine computes the same quantities with kernels shaped for XLA:CPU (batched over
clients, the calibration bins as differences of one mixture CDF, partial sorts for the
quantiles; ``sim/metrics.py``); ``tests/sim/test_numpy_reference.py`` checks that the
two agree. This loop is also the speed floor of ``silentfail bench``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

Y = np.array([-1.0, 1.0])


def _cells(theta, mu, scale, Sigma):
    tx, b = theta[:-1], theta[-1]
    mean = mu @ tx + b  # (2, G)
    sd = np.sqrt(scale * np.einsum("i,aij,j->a", tx, Sigma, tx))
    return mean, sd


def _accuracy(theta, pi, mu, scale, Sigma):
    mean, sd = _cells(theta, mu, scale, Sigma)
    return float(np.sum(pi * ndtr(Y[:, None] * mean / sd[None, :])))


def _interval_moments(cdf, s_of, lo, hi, nodes, weights):
    """P(y=+1, p in [lo, hi)), P(p in [lo, hi)) and E[p 1{p in [lo, hi)}] by the
    identity E[p 1{.}] = lo P(.) + int_lo^hi P(u < p < hi) du and Gauss-Legendre."""
    with np.errstate(divide="ignore"):
        s_lo, s_hi = s_of(np.array([lo, hi]))
    pos = cdf(s_hi, (1,)) - cdf(s_lo, (1,))
    mass = cdf(s_hi, (0, 1)) - cdf(s_lo, (0, 1))
    u = 0.5 * (hi - lo) * (nodes + 1.0) + lo
    tail = cdf(s_hi, (0, 1)) - cdf(s_of(u), (0, 1))
    return pos, mass, lo * mass + 0.5 * (hi - lo) * np.dot(tail, weights)


def _ece(mean, sd, pi, alpha, beta, bins, nodes, weights):
    """(classwise ECE, top-label ECE), bin by bin: the classwise error over bins of p,
    the top-label error over bins of the confidence max(p, 1 - p), each confidence bin
    collecting p in [max(lo, 1/2), hi) (predicts +1) and p in (1 - hi, min(1 - lo, 1/2)]
    (predicts -1, correct when y = -1, confidence 1 - p)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    with np.errstate(divide="ignore"):
        s_of = lambda p: (np.log(p) - np.log1p(-p) - beta) / alpha  # noqa: E731

    def cdf(s, labels):
        return sum(pi[y, a] * ndtr((s - mean[y, a]) / sd[a]) for y in labels for a in range(mean.shape[1]))

    classwise = 0.0
    for b in range(bins):
        pos, _, conf = _interval_moments(cdf, s_of, edges[b], edges[b + 1], nodes, weights)
        classwise += abs(pos - conf)
    top = 0.0
    for b in range(bins):
        lo, hi = edges[b], edges[b + 1]
        if hi <= 0.5:
            continue
        pos_u, _, conf_u = _interval_moments(cdf, s_of, max(lo, 0.5), hi, nodes, weights)
        pos_l, mass_l, conf_l = _interval_moments(cdf, s_of, 1.0 - hi, min(1.0 - lo, 0.5), nodes, weights)
        correct = pos_u + (mass_l - pos_l)
        confidence = conf_u + (mass_l - conf_l)
        top += abs(correct - confidence)
    return classwise, top


def _bias_amp(pos, pi, min_mass=1e-4):
    """Directional bias amplification over the groups with P(a) >= min_mass, written as
    Wang & Russakovsky's sum over groups (times the two labels)."""
    pa = pi.sum(0)
    present = [a for a in range(pa.size) if pa[a] >= min_mass]
    if len(present) < 2:
        return 0.0
    data = {a: pi[1, a] / pa[a] for a in present}
    model = {a: (pi[0, a] * pos[0, a] + pi[1, a] * pos[1, a]) / pa[a] for a in present}
    W = sum(pa[a] for a in present)
    dbar = sum(pa[a] * data[a] for a in present) / W
    mbar = sum(pa[a] * model[a] for a in present) / W
    disparity = max(data.values()) - min(data.values()) > 1e-6
    total = 0.0
    for a in present:
        s = np.sign(data[a] - dbar) if disparity else np.sign(model[a] - mbar)
        total += s * (model[a] - data[a])
    return 2.0 * total / len(present)


def arrays_from(ctx, pop) -> dict:
    """NumPy (float64) copies of what :func:`round_numpy` needs from a built population.

    Args:
        ctx: the shared world and FM (``population.build_population``).
        pop: the clients.

    Returns:
        ``{P, b, pi, mu, scale, fm_acc, Sigma, mu_h, Sigma_h, alpha, beta, ood_panel}``.
    """
    arrays = {
        k: np.asarray(v, np.float64)
        for k, v in dict(
            P=pop.P,
            b=pop.b,
            pi=pop.shifted.pi,
            mu=pop.shifted.mu,
            scale=pop.shifted.scale,
            fm_acc=pop.fm_acc,
            Sigma=ctx.world.Sigma,
            mu_h=ctx.world.mu_h,
            Sigma_h=ctx.world.Sigma_h,
            alpha=ctx.confidence.alpha,
            beta=ctx.confidence.beta,
        ).items()
    }
    arrays["ood_panel"] = np.asarray(pop.ood_panel)
    return arrays


def round_numpy(theta_g, arrays: dict, *, bins: int = 15, gl_order: int = 4) -> dict:
    """One round, one client at a time.

    Args:
        theta_g: (D,) the global model.
        arrays: NumPy copies of the population (P, b, pi, mu, scale, ood_panel, fm_acc),
            the world (Sigma, mu_h, Sigma_h) and the FM's confidence map (alpha, beta)
            (:func:`arrays_from`).
        bins: calibration bins.
        gl_order: Gauss-Legendre nodes per bin for E[p 1{p in bin}].

    Returns:
        ``{acc, ece_classwise, ece_top_label, bias_amp, alignment, ood_other}``, each (N,).
    """
    nodes, weights = np.polynomial.legendre.leggauss(gl_order)
    P, b, pi, mu, scale = (arrays[k] for k in ("P", "b", "pi", "mu", "scale"))
    Sigma, mu_h, Sigma_h = arrays["Sigma"], arrays["mu_h"], arrays["Sigma_h"]
    panel, fm_acc = arrays["ood_panel"], arrays["fm_acc"]
    N = P.shape[0]
    out = {k: np.empty(N) for k in ("acc", "ece_classwise", "ece_top_label", "bias_amp", "alignment", "ood_other")}
    for c in range(N):
        theta = P[c] @ theta_g + b[c]
        mean, sd = _cells(theta, mu[c], scale[c], Sigma)
        correct = ndtr(Y[:, None] * mean / sd[None, :])
        out["acc"][c] = np.sum(pi[c] * correct)
        out["bias_amp"][c] = _bias_amp(ndtr(mean / sd[None, :]), pi[c])
        out["ece_classwise"][c], out["ece_top_label"][c] = _ece(
            mean, sd, pi[c], arrays["alpha"], arrays["beta"], bins, nodes, weights
        )
        tx = theta[:-1]
        out["alignment"][c] = ndtr(-(tx @ mu_h + theta[-1]) / np.sqrt(tx @ Sigma_h @ tx))
        others = [r for r in panel if r != c]
        out["ood_other"][c] = np.mean([fm_acc[r] - _accuracy(theta, pi[r], mu[r], scale[r], Sigma) for r in others])
    return out
