"""Privacy mechanics of a round: who reports (Poisson participation, dropout, slots),
update clipping, local and central Gaussian noise, the secure sum with its threshold,
and the DP-noised secure sums of the clients' report vectors. Detectors import the
noise scales from here without importing the engine (``sim/federate.py``).

The output of a round's aggregation is a function of sum_c mask_c w_c Delta_c,
sum_c mask_c w_c and sum_c mask_c only (secure aggregation); what each release costs
in privacy is accounted in ``sim/privacy.py``.

References:
    Bonawitz et al. (2017), Practical Secure Aggregation for Privacy-Preserving Machine
    Learning, CCS.  McMahan, Ramage, Talwar, Zhang (2018), Learning Differentially
    Private Recurrent Language Models, ICLR.  Abadi et al. (2016), Deep Learning with
    Differential Privacy, CCS.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from .scale import client_sum
from .scenario import Scenario


class Aggregate(NamedTuple):
    """What secure aggregation releases to the server in one round."""

    update_sum: Array  # (D,) noised weighted sum of clipped updates
    weight_sum: Array  # () sum of the participants' weights
    count: Array  # () number of reports


def clip_updates(delta: Array, clip: float | None) -> Array:
    """Delta_c * min(1, C / |Delta_c|).

    Args:
        delta: (N, D) updates.
        clip: the norm bound C (None: no clipping).

    Returns:
        (N, D) the clipped updates.
    """
    if clip is None:
        return delta
    norm = jnp.linalg.norm(delta, axis=-1, keepdims=True)
    return delta * jnp.minimum(1.0, clip / jnp.maximum(norm, 1e-12))


def local_noise(delta: Array, key: Array, sc: Scenario) -> Array:
    """Local DP: each client adds N(0, (z C)^2 I) to its clipped update before it leaves.

    Args:
        delta: (N, D) clipped updates.
        key: a JAX PRNG key.
        sc: the scenario (``federation.dp``, ``noise_multiplier`` z, ``clip`` C).

    Returns:
        (N, D) the updates as they leave the clients (unchanged without local DP).
    """
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
    own (``sim/privacy.py``), so nothing leaves the round unnoised.

    Args:
        delta: (N, D) clipped (and locally noised) updates.
        mask: (N,) this round's reports.
        weight: (N,) FedAvg weights (1 under DP).
        key: a JAX PRNG key (the central noise).
        sc: the scenario.

    Returns:
        Aggregate(update_sum (D,), weight_sum (), count ()): what the server receives.
    """
    f = sc.federation
    count = jnp.sum(mask)
    released = count >= f.secagg_min
    total = jnp.where(released, client_sum((mask * weight)[:, None] * delta), 0.0)
    if f.dp == "central":
        noised = total + f.noise_multiplier * f.clip * jax.random.normal(key, total.shape)
        n = count + f.noise_multiplier * jax.random.normal(jax.random.fold_in(key, 7), ())
        return Aggregate(update_sum=noised, weight_sum=n, count=n)
    return Aggregate(
        update_sum=total,
        weight_sum=jnp.where(released, client_sum(mask * weight), 0.0),
        count=jnp.where(released, count, 0.0),
    )


def participation_draw(sc: Scenario, q: Array, key: Array) -> tuple[Array, Array]:
    """This round's reports: the mask (N,) of clients that joined, did not drop out and
    got a slot, and the number that joined and did not drop out (the slots cut the
    difference; with ``clients_per_round >= N``, as DP requires, they cut nothing).

    Args:
        sc: the scenario (``dropout``, ``clients_per_round``).
        q: (N,) the clients' participation probabilities.
        key: a JAX PRNG key.

    Returns:
        (mask (N,) float 0/1, the number of volunteers ()).
    """
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
    """Mask (N,) of this round's reports: joined, not dropped, within the slots.

    Args:
        sc: the scenario.
        q: (N,) participation probabilities.
        key: a JAX PRNG key.

    Returns:
        (N,) float 0/1 mask.
    """
    return participation_draw(sc, q, key)[0]


#: Per-client L2 bound of each locally computed report vector (its DP sensitivity):
#: accuracy in [0, 1]; per-group mass, correct, predicted-positive and positive-label
#: mass (each a sub-probability vector over groups, so L2 <= 1 each, 2 in all); and
#: probe alignment, P0 accuracy, ECE in [0, 1] and the within-round drop in [-2, 2].
REPORT_SENSITIVITY = {"report": 1.0, "group": 2.0, "fedeval": (1.0 + 1.0 + 1.0 + 4.0) ** 0.5}


def report_noise_std(sc: Scenario, sensitivity: float, count: Array) -> Array:
    """Std of the DP noise on a secure sum of per-client vectors of L2 norm <= sensitivity:
    z s on the sum (central), z s sqrt(count) (local: each client noises its own), 0 without DP.

    Args:
        sc: the scenario.
        sensitivity: the L2 bound s of one client's report vector.
        count: the number of reports.

    Returns:
        The noise standard deviation per coordinate of the released sum.
    """
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
    released, as for the updates (:func:`secure_aggregate`).

    Args:
        values: (N, ...) each client's report vector.
        mask: (N,) this round's reports.
        sensitivity: the vectors' L2 bound (:data:`REPORT_SENSITIVITY`).
        key: a JAX PRNG key.
        sc: the scenario.

    Returns:
        (...) the released sum, sum_c mask_c values_c + noise; NaN below the threshold
        without central DP (under it, only the noise).
    """
    count = jnp.sum(mask)
    released = count >= sc.federation.secagg_min
    total = client_sum(mask.reshape((-1,) + (1,) * (values.ndim - 1)) * values)
    if sc.federation.dp == "central":
        total = jnp.where(released, total, 0.0)
    total = total + report_noise_std(sc, sensitivity, count) * jax.random.normal(key, total.shape)
    return total if sc.federation.dp == "central" else jnp.where(released, total, jnp.nan)
