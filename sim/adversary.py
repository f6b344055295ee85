"""The Byzantine adversary: the updates that compromised clients submit in place of
their honest ones (the taxonomy's ``byzantine_clients`` and ``universal_evasion``).

References:
    Blanchard et al. (2017), Machine Learning with Adversaries: Byzantine Tolerant
    Gradient Descent, NeurIPS.  Bagdasaryan et al. (2020), How To Backdoor Federated
    Learning, AISTATS.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from .scenario import Scenario


def crafted_updates(sc: Scenario, delta: Array, key: Array, directions: tuple[Array, Array]) -> Array:
    """Byzantine clients' updates: along +alignment direction (erodes refusal), along
    +spurious direction (amplifies bias), the honest update flipped, or noise.

    The ``alignment`` and ``spurious`` attacks are the universal evasion of the taxonomy:
    every Byzantine client sends s e (norm s = ``byzantine_scale``), the same vector, so
    the secure sum moves by s e times their share of the reports.

    Args:
        sc: the scenario (``byzantine_kind``, ``byzantine_scale``).
        delta: (N, D) the honest updates.
        key: a JAX PRNG key (the noise attack).
        directions: the alignment and spurious directions in parameter space
            (``models.param_directions``, computed once per run).

    Returns:
        (N, D) the crafted updates (the engine uses them for the Byzantine clients only).
    """
    f = sc.federation
    D = delta.shape[-1]
    if f.byzantine_kind in ("alignment", "spurious"):
        e = directions[0] if f.byzantine_kind == "alignment" else directions[1]
        return jnp.broadcast_to(f.byzantine_scale * e, delta.shape)
    if f.byzantine_kind == "sign_flip":
        return -f.byzantine_scale * delta
    return f.byzantine_scale * jax.random.normal(key, delta.shape) / jnp.sqrt(D)
