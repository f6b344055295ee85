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

from .population import Context
from .scenario import Scenario
from .world import param_direction


def crafted_updates(sc: Scenario, ctx: Context, delta: Array, key: Array) -> Array:
    """Byzantine clients' updates: along +alignment direction (erodes refusal), along
    +spurious direction (amplifies bias), the honest update flipped, or noise."""
    f = sc.federation
    D = delta.shape[-1]
    if f.byzantine_kind == "alignment":
        return jnp.broadcast_to(f.byzantine_scale * param_direction(ctx.world.e_align), delta.shape)
    if f.byzantine_kind == "spurious":
        return jnp.broadcast_to(f.byzantine_scale * param_direction(ctx.world.e_spu), delta.shape)
    if f.byzantine_kind == "sign_flip":
        return -f.byzantine_scale * delta
    return f.byzantine_scale * jax.random.normal(key, delta.shape) / jnp.sqrt(D)
