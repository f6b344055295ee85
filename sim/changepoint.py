"""Bayesian change-point posterior of a stream with known noise (paper/main.tex, The six modes):
the privacy-preserving behavioural evaluation run on the DP-noised secure aggregates.

Model of a stream y_0, ..., y_t (e.g. the mean reported accuracy), with per-round noise
variances v_i that the server knows (the DP noise scale is public; a floor adds the
clients' sampling variation):

    y_i = a + delta * 1[i >= tau] + eps_i,   eps_i ~ N(0, v_i),
    a ~ flat,   delta ~ 2 N(0, s^2) 1[delta < 0]   (a deterioration of size ~ s),
    P(tau = j) = h (1 - h)^(j-1), j >= 1          (geometric hazard h per round).

Integrating a (flat) leaves the weighted difference of means
delta_hat = ybar_post - ybar_pre ~ N(delta, w), w = 1/W_pre + 1/W_post (W = sum 1/v), so
the Bayes factor of "change at tau <= t" against "no change by t" is exact:

    BF(tau, t) = 2 N(delta_hat; 0, w + s^2) / N(delta_hat; 0, w) * Phi(-m / sqrt(q)),
    m = s^2 delta_hat / (w + s^2),   q = w s^2 / (w + s^2),

and P(tau <= t | y_0..t) = sum_j pi_j BF(j, t) / ((1 - h)^t + sum_j pi_j BF(j, t)).
Every round uses only the data released up to that round (causal), all prefixes at once
from cumulative sums: O(T^2) per stream, vectorized.

References:
    Adams, MacKay (2007), Bayesian Online Changepoint Detection, arXiv:0710.3742.
    Smith (1975), A Bayesian approach to inference about a change-point in a sequence
    of random variables, Biometrika 62(2).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.scipy.special import log_ndtr, logsumexp

LOG2 = float(jnp.log(2.0))


def _log_normal_ratio(x: Array, a: Array, b: Array) -> Array:
    """log N(x; 0, a) - log N(x; 0, b)."""
    return -0.5 * jnp.log(a / b) - 0.5 * x * x * (1.0 / a - 1.0 / b)


def changepoint_log_odds(y: Array, var: Array, scale: float | Array, hazard: float | Array) -> Array:
    """Per round t, the log posterior odds log P(tau <= t | y_0..t) / P(tau > t | y_0..t)
    of a downward change (module docstring). ``y``, ``var``: (T,); returns (T,), -inf at t = 0.
    A monotone function of the posterior probability, kept in log space so that odds
    near certainty stay distinct in float32.

    Args:
        y: (T,) the stream.
        var: (T,) its noise variances v_i.
        scale: s, the prior scale of the change.
        hazard: h, the per-round hazard.

    Returns:
        (T,) log odds.
    """
    T = y.shape[0]
    w = 1.0 / var
    W, S = jnp.cumsum(w), jnp.cumsum(w * y)
    t = jnp.arange(T)[:, None]  # prefix end
    j = jnp.arange(T)[None, :]  # change round tau
    ok = (j >= 1) & (j <= t)
    jm = jnp.clip(j - 1, 0, T - 1)
    w_pre, s_pre = W[jm], S[jm]
    w_post = jnp.where(ok, W[t] - w_pre, 1.0)
    s_post = S[t] - s_pre
    d = jnp.where(ok, s_post / w_post - s_pre / w_pre, 0.0)
    v = 1.0 / w_pre + 1.0 / w_post
    s2 = jnp.asarray(scale, y.dtype) ** 2
    m = s2 * d / (v + s2)
    q = v * s2 / (v + s2)
    log_bf = LOG2 + _log_normal_ratio(d, v + s2, v) + log_ndtr(-m / jnp.sqrt(q))
    h = jnp.asarray(hazard, y.dtype)
    log_prior = jnp.log(h) + (j - 1) * jnp.log1p(-h)
    num = logsumexp(jnp.where(ok, log_prior + log_bf, -jnp.inf), axis=1)
    den = t[:, 0] * jnp.log1p(-h)
    return num - den


def changepoint_probability(y: Array, var: Array, scale: float | Array, hazard: float | Array) -> Array:
    """P(a downward change has happened by round t | y_0..t), each round t (0 at t = 0).

    Args:
        y: (T,) the stream.
        var: (T,) its noise variances.
        scale: s, the prior scale of the change.
        hazard: h, the per-round hazard.

    Returns:
        (T,) posterior probabilities.
    """
    lo = changepoint_log_odds(y, var, scale, hazard)
    return jnp.where(jnp.isfinite(lo), 1.0 / (1.0 + jnp.exp(-lo)), 0.0)
