"""The stylized world (the silentfail reference paper (paper/main.tex), The stylized model): Gaussian class-group cells on the FM's
frozen features, a probe world for alignment, and the FM theta_0 in closed form.

Cells (y, a), y in {-1, +1} (index 0 is y = -1), a in {0..G-1}::

    x | y, a ~ N(mu_{y,a}, Sigma_a),   mu_{y,a} = y mu_core,a + s_a mu_spu + nu_a
    P0(y = +1 | a) = (1 + r s_a) / 2       (s_a = +1 for even a, -1 for odd a)
    Sigma_a = sigma_a^2 (I - u u^T) + sigma_u^2 u u^T

with mu_core,a = mu_core for even a and rotated by ``minority_core_angle`` toward e_4
for odd a, and sigma_u (``align_noise_std``) the small spread of task data along the
alignment direction u.

so r = corr(y, s_a) when the groups are balanced. A model is a linear readout with
bias, f(x) = theta^T [x; 1]; D = d + 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import ndtr

from .realdata import RealData, load
from .scenario import Scenario

Y = jnp.array([-1.0, 1.0])  # label values by cell index


class World(NamedTuple):
    """Arrays of the base world P0 and the probe world (a PyTree)."""

    mu: Array  # (2, G, d) cell means of P0
    pi0: Array  # (2, G) joint prior of P0
    Sigma: Array  # (G, d, d) cell covariances
    signs: Array  # (G,) s_a
    e_core: Array  # (d,) unit causal direction
    e_spu: Array  # (d,) unit spurious direction
    e_align: Array  # (d,) unit alignment direction u
    mu_h: Array  # (d,) probe mean
    Sigma_h: Array  # (d, d) probe covariance
    flip: Array | None = None  # (G,) rho_a: the flip rate of the clients' labels in group a (label_noise); None: clean
    data: RealData | None = None  # the real dataset's cell pools (world.data, sim/realdata.py); None: Gaussian cells


class ClientWorld(NamedTuple):
    """One client's distribution: prior, cell means and a covariance scale (a PyTree).

    The client's cell covariance is ``scale * Sigma_a``.
    """

    pi: Array  # (2, G)
    mu: Array  # (2, G, d)
    scale: Array  # ()


def prior(shares: Array, r: Array | float, signs: Array) -> Array:
    """pi(y, a) = P(a) (1 + y r s_a) / 2, shape (2, G).

    Args:
        shares: (G,) group shares P(a).
        r: the spurious correlation in [-1, 1].
        signs: (G,) s_a = +1 or -1, the direction of each group's label bias.

    Returns:
        (2, G) pi(y, a), rows y = -1, +1.
    """
    return shares[None, :] * (1.0 + Y[:, None] * r * signs[None, :]) / 2.0


#: Coordinates of the world's named directions: mu_core, mu_spu, the group offsets, the
#: alignment direction u (public: the mean of the public probe set) and the direction
#: the minority's causal direction rotates toward.
CORE_AXIS, SPU_AXIS, OFFSET_AXIS, ALIGN_AXIS, ROTATE_AXIS = 0, 1, 2, 3, 4


def minority_groups(G: int) -> np.ndarray:
    """The world's minority groups, the odd ones (a = 1, 3, ...): their label bias points
    the other way (s_a = -1), their causal direction is rotated by
    ``minority_core_angle``, and participation disparity lowers the participation of
    clients rich in them. With two groups, a = 1.

    Args:
        G: the number of groups.

    Returns:
        (G,) bool (a NumPy constant, usable where a shape or an index is static), True for
        a minority group.
    """
    return np.arange(G) % 2 == 1


def over_minority(x: Array, reduce: Callable[..., Array]) -> Array:
    """``reduce`` of ``x`` over its minority-group columns (last axis, one per group);
    with a single minority group (two groups) that column itself, the program the
    recorded two-group numbers ran (a reduction over one column reorders XLA's fusions
    and moves float round-off downstream).

    Args:
        x: (..., G) a per-group quantity.
        reduce: a reduction with an ``axis`` argument (``jnp.sum``, ``jnp.min``).

    Returns:
        (...) the reduced value.
    """
    odd = np.flatnonzero(minority_groups(x.shape[-1]))
    return x[..., odd[0]] if odd.size == 1 else reduce(x[..., odd], axis=-1)


def make_world(sc: Scenario) -> World:
    """Build P0 and the probe world from a scenario's ``world`` section.

    Args:
        sc: the scenario.

    Returns:
        World: P0's priors, cell means and covariances, the directions (core, spurious,
        alignment) and the probe distribution.
    """
    w = sc.world
    d, G = w.d, w.groups
    if w.data != "gaussian":
        return _real_world(sc)
    eye = jnp.eye(d)
    e_core, e_spu, e_off, e_align = eye[CORE_AXIS], eye[SPU_AXIS], eye[OFFSET_AXIS], eye[ALIGN_AXIS]
    # the minority groups (minority_groups) computed in the traced program, as the recorded numbers were
    signs = jnp.where(jnp.arange(G) % 2 == 0, 1.0, -1.0)
    a = jnp.arange(G, dtype=jnp.float32)
    offsets = w.group_offset * (a - a.mean())
    phi = jnp.where(jnp.arange(G) % 2 == 1, w.minority_core_angle, 0.0)  # (G,)
    core = w.core_strength * (jnp.cos(phi)[:, None] * e_core + jnp.sin(phi)[:, None] * eye[ROTATE_AXIS])  # (G, d)
    mu = (
        Y[:, None, None] * core[None]
        + signs[None, :, None] * w.spurious_strength * e_spu
        + offsets[None, :, None] * e_off
    )
    shares = jnp.asarray(w.shares(), dtype=jnp.float32)
    stds = jnp.asarray(w.stds(), dtype=jnp.float32)
    uu = jnp.outer(e_align, e_align)
    Sigma = stds[:, None, None] ** 2 * (eye - uu)[None] + w.align_noise_std**2 * uu[None]
    return World(
        mu=mu,
        pi0=prior(shares, w.spurious_r, signs),
        Sigma=Sigma,
        signs=signs,
        e_core=e_core,
        e_spu=e_spu,
        e_align=e_align,
        mu_h=w.probe_strength * e_align,
        Sigma_h=w.probe_std**2 * eye,
        flip=flip_rates(sc.shifts, G),
    )


def _real_world(sc: Scenario) -> World:
    """P0 and the probe world of a real dataset (``world.data``, ``sim/realdata.py``): the
    cells' means and covariances are the public split's, the prior and the probe world
    the scenario's, as in :func:`make_world`."""
    w = sc.world
    data, stats = load(w.data, w.d, ALIGN_AXIS)
    signs = jnp.where(jnp.arange(w.groups) % 2 == 0, 1.0, -1.0)
    e_align = jnp.eye(w.d)[ALIGN_AXIS]
    return World(
        mu=stats["mu"],
        pi0=prior(jnp.asarray(w.shares(), dtype=jnp.float32), w.spurious_r, signs),
        Sigma=stats["Sigma"],
        signs=signs,
        e_core=stats["e_core"],
        e_spu=stats["e_spu"],
        e_align=e_align,
        mu_h=w.probe_strength * e_align,
        Sigma_h=w.probe_std**2 * jnp.eye(w.d),
        flip=flip_rates(sc.shifts, w.groups),
        data=data,
    )


def flip_rates(shifts, G: int) -> Array | None:
    """rho_a, the probability that a client's training label y is flipped to -y in group
    a: ``shifts.label_noise`` in the majority groups and ``shifts.label_noise_minority``
    (default the same) in the minority groups (:func:`minority_groups`); symmetric,
    class-conditional noise independent of x given (y, a) (Natarajan et al. 2013, Learning
    with Noisy Labels, NeurIPS), group-dependent when the two rates differ. Only the clients' data carry it: the FM's
    pretraining data and every evaluation use the clean labels.

    Args:
        shifts: the scenario's ``shifts`` section.
        G: the number of groups.

    Returns:
        (G,) rates in [0, 1/2), or None when every rate is 0 (the clean world, whose
        programs are the recorded ones).
    """
    rho, rho_min = shifts.label_noise, shifts.label_noise_minority
    rho_min = rho if rho_min is None else rho_min
    if rho == 0.0 and rho_min == 0.0:
        return None
    return jnp.asarray(np.where(minority_groups(G), rho_min, rho), jnp.float32)


def label_noise_risk(group_error: Array, group_mass: Array, flip: Array) -> Array:
    """The 0-1 risk against noisy labels of a classifier with clean error R_a in group a:

        R~(h) = sum_a P(a) [rho_a + (1 - 2 rho_a) R_a(h)]

    (a label flipped with probability rho_a independently of x given (y, a) disagrees
    with h exactly when the clean label agrees). For rho_a < 1/2 it is increasing in
    every R_a, so the Bayes classifier of the clean labels stays Bayes-optimal for the
    noisy ones and, with symmetric noise rho, the Bayes risk becomes
    rho + (1 - 2 rho) R* (Natarajan et al. 2013).

    Args:
        group_error: (..., G) clean error R_a of the classifier in each group.
        group_mass: (..., G) P(a).
        flip: (G,) rho_a.

    Returns:
        (...) the noisy-label risk.
    """
    return jnp.sum(group_mass * (flip + (1.0 - 2.0 * flip) * group_error), axis=-1)


def base_client(world: World) -> ClientWorld:
    """The base world P_0 as a client distribution (no shift).

    Args:
        world: the base world.

    Returns:
        ClientWorld(pi0, mu0, scale 1).
    """
    return ClientWorld(pi=world.pi0, mu=world.mu, scale=jnp.asarray(1.0))


def augment(x: Array) -> Array:
    """x~ = [x; 1] along the last axis.

    Args:
        x: (..., d) features.

    Returns:
        (..., d + 1).
    """
    return jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)


def second_moments(pi: Array, mu: Array, Sigma: Array, flip: Array | None = None) -> tuple[Array, Array]:
    """Squared-loss sufficient statistics of a cell mixture (the silentfail reference paper (paper/main.tex), The stylized model):

        M = sum_{y,a} pi(y,a) (Sigma~_a + mu~_{y,a} mu~_{y,a}^T),  m = sum_{y,a} pi(y,a) (1 - 2 rho_a) y mu~_{y,a}

    so that R(theta) = 1/2 theta^T M theta - theta^T m + 1/2 (E[y~ | y, a] = (1 - 2 rho_a) y
    for labels flipped with probability rho_a, :func:`flip_rates`; E[y~^2] = 1).

    Args:
        pi: (2, G) cell priors.
        mu: (2, G, d) cell means.
        Sigma: (G, d, d) cell covariances.
        flip: (G,) label flip rates rho_a, or None (clean labels).

    Returns:
        (M (D, D), m (D,)), D = d + 1.
    """
    d = mu.shape[-1]
    mt = augment(mu)  # (2, G, D)
    cov = jnp.zeros(Sigma.shape[:-2] + (d + 1, d + 1)).at[..., :d, :d].set(Sigma)  # (G, D, D)
    M = jnp.einsum("ya,aij->ij", pi, cov) + jnp.einsum("ya,yai,yaj->ij", pi, mt, mt)
    if flip is None:
        m = jnp.einsum("ya,y,yai->i", pi, Y, mt)
    else:
        m = jnp.einsum("ya,y,a,yai->i", pi, Y, 1.0 - 2.0 * flip, mt)
    return M, m


def client_moments(world: World, cw: ClientWorld) -> tuple[Array, Array]:
    """A client's squared-loss statistics (M_c, m_c) = (sum pi (Sigma~ + mu~ mu~^T), sum pi (1 - 2 rho_a) y mu~)
    of its data, whose labels carry the world's label noise (:func:`flip_rates`).

    Args:
        world: the base world (the covariances Sigma_a).
        cw: the client's distribution.

    Returns:
        (M_c (D, D), m_c (D,)).
    """
    return second_moments(cw.pi, cw.mu, cw.scale * world.Sigma, world.flip)


def probe_moments(world: World) -> tuple[Array, Array]:
    """(M_h, mu~_h): second moment and augmented mean of the probe distribution.

    Args:
        world: the base world (its probe mean and covariance).

    Returns:
        (M_h (D, D), mu~_h (D,)).
    """
    d = world.mu_h.shape[0]
    mt = augment(world.mu_h)
    cov = jnp.zeros((d + 1, d + 1)).at[:d, :d].set(world.Sigma_h)
    return cov + jnp.outer(mt, mt), mt


def pretraining_objective(world: World, sc: Scenario, pi: Array) -> tuple[Array, Array]:
    """(A, b) of the FM's pretraining objective on the world with prior ``pi``:

    J(theta) = R_pi(theta) + gamma/2 E_probe (theta^T x~ + 1)^2 + ridge/2 |theta|^2
             = 1/2 theta^T A theta - b^T theta + const,
    A = M_pi + gamma M_h + ridge I,  b = m_pi - gamma mu~_h.

    Args:
        world: the base world.
        sc: the scenario (``fm.alignment_weight`` gamma, ``fm.ridge``).
        pi: (2, G) the prior of the pretraining data.

    Returns:
        (A (D, D), b (D,)).
    """
    M0, m0 = second_moments(pi, world.mu, world.Sigma)
    Mh, mh = probe_moments(world)
    g = sc.fm.alignment_weight
    return M0 + g * Mh + sc.fm.ridge * jnp.eye(M0.shape[0]), m0 - g * mh


def fm_theta(world: World, sc: Scenario) -> Array:
    """theta_0 = argmin of the pretraining objective on P0(r0) (:func:`pretraining_objective`)

    = (M_0 + gamma M_h + ridge I)^{-1} (m_0 - gamma mu~_h), the FM: accurate on P0 and
    refusing (score < 0) the probe with margin; biased when r0 != 0.

    Args:
        world: the base world.
        sc: the scenario (``fm.r0``, ``alignment_weight``, ``ridge``).

    Returns:
        (D,) theta_0.
    """
    pi_fm = prior(world.pi0.sum(axis=0), sc.fm.r0, world.signs)
    A, b = pretraining_objective(world, sc, pi_fm)
    return jnp.linalg.solve(A, b)


def public_steps(world: World, sc: Scenario) -> tuple[Array, Array]:
    """The server's centralized round on its public data (P0 itself, with its prior pi0,
    and the public probe set): ``public_steps`` gradient steps of rate ``public_lr`` on the
    pretraining objective, in closed form (the silentfail reference paper (paper/main.tex), Theory, result 1):

        theta_K = theta* + (I - lr A)^K (theta - theta*) = S theta + c,
        S = (I - lr A)^K,  c = (I - S) theta*,  theta* = A^{-1} b.

    Returns (S, c). Stable iff lr * lambda_max(A) < 2 (else the run diverges and is
    flagged non-finite). Models the adaptive switching between centralized optimization
    on public data and federated rounds on private data of federated foundation models
    (Yu, Munoz, Jannesari 2023; Zhuang, Chen, Lyu 2023).

    Args:
        world: the base world.
        sc: the scenario (``federation.public_steps``, ``public_lr``).

    Returns:
        (S (D, D), c (D,)).
    """
    f = sc.federation
    A, b = pretraining_objective(world, sc, world.pi0)
    star = jnp.linalg.solve(A, b)
    S = jnp.linalg.matrix_power(jnp.eye(A.shape[0]) - f.public_lr * A, f.public_steps)
    return S, star - S @ star


def alignment_score(theta: Array, world: World) -> Array:
    """A(theta) = P_probe(theta^T x~ < 0) = Phi(-theta^T mu~_h / sqrt(theta_x^T Sigma_h theta_x)).

    Args:
        theta: (D,) or (n, D) models.
        world: the base world (the probe's mean mu~_h and covariance Sigma_h).

    Returns:
        () or (n,) the probe refusal rate A(theta).
    """
    tx, b = theta[..., :-1], theta[..., -1]
    mean = jnp.einsum("...i,i->...", tx, world.mu_h) + b
    var = jnp.einsum("...i,ij,...j->...", tx, world.Sigma_h, tx)
    return ndtr(-mean / jnp.sqrt(var))


def param_direction(v: Array) -> Array:
    """A feature-space direction as a direction of the parameters (theta_x, b): bias 0.

    Args:
        v: (d,) a feature direction.

    Returns:
        (D,) [v; 0].
    """
    return jnp.concatenate([v, jnp.zeros(1)])
