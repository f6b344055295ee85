"""A plain NumPy loop over clients doing one round's work of ``silentfail.sim`` for the
same population: deploy each personal model (P_c theta_g + b_c) and compute its
accuracy, binned calibration error, bias amplification, alignment and accuracy on the
OOD panel, one client at a time. It is the speed floor of the benchmark and an
independent check of the JAX metrics (``tests/sim/test_numpy_reference.py``).
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


def _ece(mean, sd, pi, alpha, beta, bins, nodes, weights):
    edges = np.linspace(0.0, 1.0, bins + 1)
    with np.errstate(divide="ignore"):
        s_of = lambda p: (np.log(p) - np.log1p(-p) - beta) / alpha  # noqa: E731

    def cdf(s, labels):
        return sum(pi[y, a] * ndtr((s - mean[y, a]) / sd[a]) for y in labels for a in range(mean.shape[1]))

    with np.errstate(divide="ignore"):
        se = s_of(edges)
    F_pos, F_all = cdf(se, (1,)), cdf(se, (0, 1))
    total = 0.0
    for b in range(bins):
        lo, hi = edges[b], edges[b + 1]
        pos = F_pos[b + 1] - F_pos[b]
        mass = F_all[b + 1] - F_all[b]
        u = 0.5 * (hi - lo) * (nodes + 1.0) + lo
        tail = F_all[b + 1] - cdf(s_of(u), (0, 1))
        conf = lo * mass + 0.5 * (hi - lo) * np.dot(tail, weights)
        total += abs(pos - conf)
    return total


def _bias_amp(pos, pi):
    pa = np.maximum(pi.sum(0), 1e-12)
    model = (pi * pos).sum(0) / pa
    data = pi[1] / pa
    mg, dg = model[1] - model[0], data[1] - data[0]
    direction = np.sign(dg) if abs(dg) > 1e-6 else np.sign(mg)
    return direction * (mg - dg)


def arrays_from(ctx, pop) -> dict:
    """NumPy (float64) copies of what :func:`round_numpy` needs from a built population."""
    arrays = {k: np.asarray(v, np.float64) for k, v in dict(
        P=pop.P, b=pop.b, pi=pop.shifted.pi, mu=pop.shifted.mu, scale=pop.shifted.scale, fm_acc=pop.fm_acc,
        Sigma=ctx.world.Sigma, mu_h=ctx.world.mu_h, Sigma_h=ctx.world.Sigma_h,
        alpha=ctx.confidence.alpha, beta=ctx.confidence.beta).items()}
    arrays["ood_panel"] = np.asarray(pop.ood_panel)
    return arrays


def round_numpy(theta_g, arrays: dict, *, bins: int = 15, gl_order: int = 4) -> dict:
    """One round, one client at a time. ``arrays`` holds numpy copies of the population
    (P, b, pi, mu, scale, ood_panel, fm_acc), the world (Sigma, mu_h, Sigma_h) and the
    FM's confidence map (alpha, beta)."""
    nodes, weights = np.polynomial.legendre.leggauss(gl_order)
    P, b, pi, mu, scale = (arrays[k] for k in ("P", "b", "pi", "mu", "scale"))
    Sigma, mu_h, Sigma_h = arrays["Sigma"], arrays["mu_h"], arrays["Sigma_h"]
    panel, fm_acc = arrays["ood_panel"], arrays["fm_acc"]
    N = P.shape[0]
    out = {k: np.empty(N) for k in ("acc", "ece", "bias_amp", "alignment", "ood_other")}
    for c in range(N):
        theta = P[c] @ theta_g + b[c]
        mean, sd = _cells(theta, mu[c], scale[c], Sigma)
        correct = ndtr(Y[:, None] * mean / sd[None, :])
        out["acc"][c] = np.sum(pi[c] * correct)
        out["bias_amp"][c] = _bias_amp(ndtr(mean / sd[None, :]), pi[c])
        out["ece"][c] = _ece(mean, sd, pi[c], arrays["alpha"], arrays["beta"], bins, nodes, weights)
        tx = theta[:-1]
        out["alignment"][c] = ndtr(-(tx @ mu_h + theta[-1]) / np.sqrt(tx @ Sigma_h @ tx))
        others = [r for r in panel if r != c]
        out["ood_other"][c] = np.mean([fm_acc[r] - _accuracy(theta, pi[r], mu[r], scale[r], Sigma) for r in others])
    return out
