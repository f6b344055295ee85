"""Seeds: the one rule for every seed and seed count a user gives.

A run is a pure function of (scenario, seed), with the seed turned into a JAX key by
``jax.random.key``, which keeps 32 bits: seeds 2**32 and 0 would be the same run. The
seeds of null (calibration) runs start at :data:`NULL_SEED0` = 2**30, so the seeds of the
runs judged are 0 .. 2**30 - 1 and never meet them.
"""

from __future__ import annotations

import numpy as np

#: Seeds of null (calibration) runs start here, disjoint from the seeds of judged runs.
NULL_SEED0 = 1 << 30
#: The largest seed of a judged run.
MAX_SEED = NULL_SEED0 - 1


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int in [0, MAX_SEED], or a ValueError naming it.

    Args:
        seed: the value.
        name: its name, for the message.

    Returns:
        The seed.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(
            f"{name} must be an integer in [0, 2**30 - 1] (seeds from 2**30 up are the null runs'), got {seed!r}"
        )
    return int(seed)


def check_seed_count(count, name: str = "seeds", minimum: int = 1) -> int:
    """A number of seeds 0 .. count - 1 as an int in [minimum, 2**30], or a ValueError naming it.

    Args:
        count: the value.
        name: its name, for the message.
        minimum: the least allowed.

    Returns:
        The count.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not minimum <= int(count) <= NULL_SEED0:
        raise ValueError(f"{name} must be an integer in [{minimum}, 2**30], got {count!r}")
    return int(count)
