"""Local personalization rules (paper/main.tex, The stylized model), as K steps of projected gradient
descent from the global model theta_g on

    F_c(theta) = (1 - beta) R_c(theta) + beta R_T(theta) + lambda/2 |theta - theta_g|^2,

with R_c the client's squared-loss risk (M_c, m_c), R_T the FM teacher's, and the
gradient projected by Pi (identity; U_r U_r^T for the subspace rule; a coordinate
mask for head-only). Every rule is one quadratic, so with H = (1 - beta) M_c + beta
M_T + lambda I, r = (1 - beta) m_c + beta m_T and B = I - eta Pi H,

    theta_K = B^K theta_g + eta S Pi (r + lambda theta_g),   S = sum_{k<K} B^k,

i.e. theta_K = P_c theta_g + b_c with P_c = B^K + eta lambda S Pi and b_c = eta S Pi r.
When Pi = I this is theta* + (I - eta H)^K (theta_g - theta*), theta* = H^{-1}(r +
lambda theta_g) (paper/main.tex, The stylized model), and ``tests/sim/test_personalize.py`` checks that
the scan and the closed form agree.

References:
    Li, Hu, Beirami, Smith (2021), Ditto: Fair and Robust Federated Learning Through
    Personalization, ICML.  Dinh, Tran, Nguyen (2020), Personalized Federated Learning
    with Moreau Envelopes, NeurIPS.  Hu et al. (2022), LoRA, ICLR.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from .scenario import Scenario, ScenarioError
from .world import World, prior, probe_moments, second_moments


class LocalProblem(NamedTuple):
    """One client's local quadratic: H, r (see module docstring)."""

    H: Array  # (D, D)
    r: Array  # (D,)


def projector(sc: Scenario, key: Array) -> Array:
    """Pi, the (D, D) projection of the update for the scenario's rule.

    ``subspace``: U_r U_r^T for a fixed random orthonormal U_r (D, r) drawn from ``key``
    (default r = max(1, d // 4)); ``head_only``: diag of the trainable coordinates
    (default: the bias and the first half of the features); otherwise I.

    Args:
        sc: the scenario (``personalization.rule``, ``rank``, ``trainable``).
        key: a JAX PRNG key (the subspace).

    Returns:
        (D, D) Pi.
    """
    p, D = sc.personalization, sc.world.d + 1
    if p.rule == "subspace":
        r = p.rank or max(1, sc.world.d // 4)
        q, _ = jnp.linalg.qr(jax.random.normal(key, (D, r)))
        return q @ q.T
    if p.rule == "head_only":
        idx = p.trainable if p.trainable is not None else (*range(sc.world.d // 2), sc.world.d)
        return jnp.diag(jnp.zeros(D).at[jnp.asarray(idx)].set(1.0))
    return jnp.eye(D)


def teacher_moments(world: World, sc: Scenario) -> tuple[Array, Array]:
    """(M_T, m_T): the FM teacher's view of the world: P0 with spurious correlation
    ``teacher_r`` (default the FM's r0), a fraction ``teacher_poison`` of it replaced by
    probe requests labelled +1 ('comply'): one-access external poisoning of the FM.

    Args:
        world: the base world.
        sc: the scenario (``teacher_r``, ``teacher_poison``).

    Returns:
        (M_T (D, D), m_T (D,)).
    """
    p = sc.personalization
    r = sc.fm.r0 if p.teacher_r is None else p.teacher_r
    M0, m0 = second_moments(prior(world.pi0.sum(axis=0), r, world.signs), world.mu, world.Sigma)
    Mh, mh = probe_moments(world)
    return (1 - p.teacher_poison) * M0 + p.teacher_poison * Mh, (1 - p.teacher_poison) * m0 + p.teacher_poison * mh


def local_problem(M: Array, m: Array, teacher: tuple[Array, Array], sc: Scenario) -> LocalProblem:
    """A client's local quadratic: Hessian H = (1 - beta) M + beta M_T + lambda I and its linear term, for the
    personalization rule.

    Args:
        M: (D, D) the client's second moment.
        m: (D,) its label-weighted mean.
        teacher: (M_T, m_T) the teacher's moments.
        sc: the scenario (``beta``, ``lam``).

    Returns:
        LocalProblem(H, r) of the client's local objective (module docstring).
    """
    p = sc.personalization
    MT, mT = teacher
    H = (1 - p.beta) * M + p.beta * MT + p.lam * jnp.eye(M.shape[-1])
    return LocalProblem(H=H, r=(1 - p.beta) * m + p.beta * mT)


def affine_map(prob: LocalProblem, Pi: Array, *, eta: float, lam: float, K: int) -> tuple[Array, Array]:
    """(P, b) with theta_K = P theta_g + b, by scanning the K powers of B = I - eta Pi H.

    Args:
        prob: the client's local problem.
        Pi: (D, D) the update projection.
        eta: the local learning rate.
        lam: the proximal strength lambda.
        K: the local steps.

    Returns:
        (P = B^K + eta lambda S Pi, b = eta S Pi r), S = sum_{k<K} B^k: theta_K = P theta_g + b.
    """
    D = prob.H.shape[-1]
    B = jnp.eye(D) - eta * Pi @ prob.H

    def step(carry, _):
        Bk, S = carry
        return (Bk @ B, S + Bk), None

    (BK, S), _ = jax.lax.scan(step, (jnp.eye(D), jnp.zeros((D, D))), None, length=K)
    SPi = S @ Pi
    return BK + eta * lam * SPi, eta * SPi @ prob.r


def client_maps(
    M: Array, m: Array, teacher: tuple[Array, Array], Pi: Array, sc: Scenario
) -> tuple[LocalProblem, Array, Array]:
    """Every client's local problem and affine map (P_c, b_c) from its statistics
    (leading axis: client).

    Args:
        M: (N, D, D) the clients' second moments.
        m: (N, D) their label-weighted means.
        teacher: the teacher's moments.
        Pi: (D, D) the update projection.
        sc: the scenario.

    Returns:
        (LocalProblem batched over N, P (N, D, D), b (N, D)).
    """
    p = sc.personalization
    prob = jax.vmap(local_problem, in_axes=(0, 0, None, None))(M, m, teacher, sc)
    P, b = jax.vmap(lambda pr: affine_map(pr, Pi, eta=p.eta, lam=p.lam, K=p.K))(prob)
    return prob, P, b


def personalize_scan(theta_g: Array, prob: LocalProblem, Pi: Array, *, eta: float, lam: float, K: int) -> Array:
    """Reference: K projected gradient steps on F_c, the gradient taken by autodiff.

    Args:
        theta_g: (D,) the global model.
        prob: the local problem.
        Pi: (D, D) the update projection.
        eta: the learning rate.
        lam: the proximal strength.
        K: the steps.

    Returns:
        (D,) theta_K (equals ``affine_map``'s P theta_g + b; a test checks it).
    """

    def objective(theta):
        # H already holds lambda I; add back the proximal centre's linear term
        return 0.5 * theta @ prob.H @ theta - theta @ (prob.r + lam * theta_g)

    grad = jax.grad(objective)

    def step(theta, _):
        return theta - eta * Pi @ grad(theta), None

    theta, _ = jax.lax.scan(step, theta_g, None, length=K)
    return theta


def logistic_personalize(
    theta_g: Array, X: Array, y: Array, mask: Array, teacher: tuple[Array, Array], Pi: Array, sc: Scenario
) -> Array:
    """Data-materializing mode: K projected gradient steps on
    (1 - beta) mean_i log(1 + exp(-y_i theta^T x~_i)) + beta R_T + lambda/2 |theta - theta_g|^2
    over the client's materialized samples (``mask`` marks the real ones).

    Args:
        theta_g: (D,) the global model.
        X: (n_max, D) the client's augmented samples.
        y: (n_max,) their labels in {-1, +1}.
        mask: (n_max,) 1 for a real sample.
        teacher: the teacher's moments (its squared risk R_T).
        Pi: (D, D) the update projection.
        sc: the scenario (``K``, ``eta``, ``lam``, ``beta``).

    Returns:
        (D,) the personal model.
    """
    p = sc.personalization
    MT, mT = teacher
    n = jnp.maximum(mask.sum(), 1.0)

    def objective(theta):
        margins = y * (X @ theta)
        logistic = jnp.sum(mask * jnp.logaddexp(0.0, -margins)) / n
        teach = 0.5 * theta @ MT @ theta - theta @ mT
        return (1 - p.beta) * logistic + p.beta * teach + 0.5 * p.lam * jnp.sum((theta - theta_g) ** 2)

    grad = jax.grad(objective)

    def step(theta, _):
        return theta - p.eta * Pi @ grad(theta), None

    theta, _ = jax.lax.scan(step, theta_g, None, length=p.K)
    return theta


#: Squarings in :func:`lambda_max_psd`: relative error <= 1 / (e 2^(SQUARINGS + 2)) ~ 2e-8.
SQUARINGS = 24


def lambda_max_psd(A: Array, squarings: int = SQUARINGS) -> Array:
    """Largest eigenvalue of symmetric positive semi-definite matrices (batched over the
    leading axes) by repeated squaring, matmuls only:

        B_0 = A / tr A,  B_{k+1} = B_k^2 / tr(B_k^2),  v = the largest column of B_s,
        lambda_max ~ v^T A v / v^T v.

    With M = 2^s, v is A^M x for a unit x with |<x, u_1>| >= 1/sqrt(n), so the Rayleigh
    quotient's error is sum_i (l_1 - l_i) w_i with w_i ∝ (l_i / l_1)^(2M) and is at most
    l_1 max_t (1 - t) t^(2M) <= l_1 / (2 e M): ~2e-8 relative at s = 24, below float32
    round-off, whatever the eigengap (a near-tie l_2 ~ l_1 costs only l_1 - l_2).

    Used instead of LAPACK's ``syevd`` (``jnp.linalg.eigvalsh``), whose batched CPU
    kernel deadlocks when several host devices run it at once (observed with jax
    0.10.2 and --xla_force_host_platform_device_count=2): a sharded sweep needs this.

    Args:
        A: (..., n, n) symmetric PSD matrices.
        squarings: s, the number of squarings.

    Returns:
        (...) lambda_max.
    """
    B = A / jnp.maximum(jnp.trace(A, axis1=-2, axis2=-1), 1e-30)[..., None, None]

    def square(B, _):
        B2 = B @ B
        return B2 / jnp.maximum(jnp.trace(B2, axis1=-2, axis2=-1), 1e-30)[..., None, None], None

    B, _ = jax.lax.scan(square, B, None, length=squarings)
    j = jnp.argmax(jnp.sum(B * B, axis=-2), axis=-1)  # the column of largest norm
    v = jnp.take_along_axis(B, j[..., None, None], axis=-1)[..., 0]
    return jnp.einsum("...i,...ij,...j->...", v, A, v) / jnp.maximum(jnp.einsum("...i,...i->...", v, v), 1e-30)


def max_curvature(H: Array, Pi: Array, *, curvature: float = 1.0) -> Array:
    """lambda_max(Pi H Pi) per client (``curvature`` scales H: 1/4 bounds the logistic
    loss's Hessian by the squared loss's); H is positive definite for every rule.

    Args:
        H: (N, D, D) local Hessians.
        Pi: (D, D) the update projection.
        curvature: the factor on H (1, or 1/4 for the logistic loss).

    Returns:
        (N,) lambda_max.
    """
    return lambda_max_psd(Pi @ (curvature * H) @ Pi)


def stable(lam_max, eta):
    """Local GD on a quadratic contracts iff eta * lambda_max < 2 (elementwise; NumPy or JAX).

    Args:
        lam_max: largest curvatures.
        eta: the learning rate.

    Returns:
        bool, elementwise.
    """
    return eta * lam_max < 2.0


def check_stable(lam_max: Array, sc: Scenario) -> None:
    """Raise if local GD diverges for some client: eta * lambda_max(Pi H Pi) must be < 2.

    Args:
        lam_max: (N,) the clients' largest curvatures.
        sc: the scenario (``personalization.eta``).

    Raises:
        ScenarioError: naming the largest eta * lambda_max, its client and the eta that would be stable.
    """
    p = sc.personalization
    worst = float(jnp.max(lam_max))
    if not jnp.isfinite(worst):
        raise ScenarioError("personalization: a client's local Hessian is not finite")
    if not stable(worst, p.eta):
        client = int(jnp.argmax(lam_max))
        raise ScenarioError(
            f"personalization.eta = {p.eta:g} makes local gradient descent diverge: "
            f"eta * lambda_max = {p.eta * worst:.3g} >= 2 (client {client}); choose eta < {2.0 / worst:.3g}"
        )
