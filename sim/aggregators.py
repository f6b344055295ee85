"""Server aggregation rules: how the round's client updates become one update.

An :class:`Aggregator` is a small record. ``fedavg`` is computed from secure sums alone
(``sim/mechanism.py``: the weighted sum of updates and the weight sum), so it works
under secure aggregation and central DP. The robust rules need every participant's
update: they require ``federation.secure_aggregation = false`` and no central DP
(``check_aggregator``), and they are what the taxonomy lists as mitigations of
Byzantine clients. Every rule sees the same clipped (and, under local DP, noised)
updates, a participation mask and the FedAvg weights, and returns the mean update
the server optimizer steps along; shapes never depend on who participated.

Rules (mask m_c in {0, 1}, weights w_c, updates Delta_c in R^D):

* ``fedavg``: sum_c m_c w_c Delta_c / sum_c m_c w_c.
* ``median``: coordinate-wise median of {Delta_c : m_c = 1} (Yin et al. 2018).
* ``trimmed_mean``: per coordinate, drop the floor(beta k) largest and smallest of the
  k participants' values and average the rest (Yin et al. 2018); beta =
  ``federation.trim_fraction``.
* ``norm_bounded``: FedAvg of Delta_c min(1, M / |Delta_c|), M = ``federation.norm_bound``
  (Sun et al. 2019).

A plugin adds a rule with :func:`register_aggregator` (``silentfail.plugins``).

References:
    Yin, Chen, Kannan, Bartlett (2018), Byzantine-Robust Distributed Learning: Towards
    Optimal Statistical Rates, ICML.  Sun, Kairouz, Suresh, McMahan (2019), Can You
    Really Backdoor Federated Learning?, arXiv:1911.07963.  McMahan et al. (2017),
    Communication-Efficient Learning of Deep Networks from Decentralized Data, AISTATS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from .registry import check_new_id
from .scale import client_sum

#: combine(delta (N, D), mask (N,), weight (N,), federation) -> mean update (D,)
Combine = Callable[[Array, Array, Array, object], Array]


class Aggregator(NamedTuple):
    """A server aggregation rule.

    Attributes:
        id: the name ``federation.aggregator`` selects it by.
        description: one line for ``silentfail fields`` and the docs.
        secure: computable from secure sums alone (then the engine's secure-sum path
            runs it, with its threshold and DP noise); False: it reads every update.
        combine: ``(delta, mask, weight, federation) -> (D,)`` mean update of the
            participants (any value in a round without participants: the engine keeps
            the global model then).
        reference: the rule's citation.
    """

    id: str
    description: str
    secure: bool
    combine: Combine
    reference: str = ""


def fedavg(delta: Array, mask: Array, weight: Array, federation: object = None) -> Array:
    """Weighted mean of the participants' updates, sum m w Delta / sum m w.

    Args:
        delta: (N, D) updates.
        mask: (N,) participation mask.
        weight: (N,) FedAvg weights.
        federation: unused (the rule has no parameters).

    Returns:
        (D,) the weighted mean (0 in a round without participants).
    """
    total = client_sum((mask * weight)[:, None] * delta)
    return total / jnp.maximum(client_sum(mask * weight), 1e-12)


def coordinate_median(delta: Array, mask: Array, weight: Array, federation: object = None) -> Array:
    """Coordinate-wise median of the participants' updates (Yin et al. 2018).

    Args:
        delta: (N, D) updates.
        mask: (N,) participation mask (non-participants are left out, not zeroed).
        weight: (N,) unused (the median is unweighted).
        federation: unused.

    Returns:
        (D,) med_{c : m_c = 1} Delta_{c,i} for every coordinate i (NaN without participants).
    """
    return jnp.nanmedian(jnp.where(mask[:, None] > 0, delta, jnp.nan), axis=0)


def trimmed_mean(delta: Array, mask: Array, weight: Array, federation: object) -> Array:
    """Coordinate-wise beta-trimmed mean of the participants' updates (Yin et al. 2018).

    With k participants and t = floor(beta k), every coordinate drops its t largest
    and t smallest values and averages the k - 2t in between (``scipy.stats.trim_mean``).

    Args:
        delta: (N, D) updates.
        mask: (N,) participation mask.
        weight: (N,) unused (the trimmed mean is unweighted).
        federation: its ``trim_fraction`` is beta in [0, 1/2).

    Returns:
        (D,) the trimmed mean (0 without participants).
    """
    k = jnp.sum(mask > 0)
    t = jnp.floor(federation.trim_fraction * k)
    ranked = jnp.sort(jnp.where(mask[:, None] > 0, delta, jnp.inf), axis=0)  # participants first
    rank = jnp.arange(delta.shape[0])[:, None]
    keep = (rank >= t) & (rank < k - t)
    return jnp.sum(jnp.where(keep, ranked, 0.0), axis=0) / jnp.maximum(k - 2 * t, 1)


def norm_bounded_mean(delta: Array, mask: Array, weight: Array, federation: object) -> Array:
    """FedAvg of the updates scaled to norm at most M (Sun et al. 2019).

    Args:
        delta: (N, D) updates.
        mask: (N,) participation mask.
        weight: (N,) FedAvg weights.
        federation: its ``norm_bound`` is M.

    Returns:
        (D,) sum m w Delta min(1, M / |Delta|) / sum m w.
    """
    norm = jnp.linalg.norm(delta, axis=-1, keepdims=True)
    bounded = delta * jnp.minimum(1.0, federation.norm_bound / jnp.maximum(norm, 1e-12))
    return fedavg(bounded, mask, weight)


_YIN = "Yin, Chen, Kannan, Bartlett (2018), Byzantine-Robust Distributed Learning, ICML"
AGGREGATORS: dict[str, Aggregator] = {}


def register_aggregator(aggregator: Aggregator) -> Aggregator:
    """Add ``aggregator`` to the rules ``federation.aggregator`` may name.

    Args:
        aggregator: the rule; its id must be new.

    Returns:
        The aggregator (so a plugin can keep a name for it).

    Raises:
        ValueError: the id is taken or is not an identifier.
    """
    check_new_id("aggregator", aggregator.id, AGGREGATORS)
    AGGREGATORS[aggregator.id] = aggregator
    return aggregator


for _rule in (
    Aggregator(
        "fedavg", "weighted mean of the updates from secure sums (FedAvg)", True, fedavg, "McMahan et al. (2017)"
    ),
    Aggregator("median", "coordinate-wise median of the updates (reads every update)", False, coordinate_median, _YIN),
    Aggregator(
        "trimmed_mean",
        "coordinate-wise mean after trimming the trim_fraction largest and smallest (reads every update)",
        False,
        trimmed_mean,
        _YIN,
    ),
    Aggregator(
        "norm_bounded",
        "FedAvg of the updates scaled to norm <= norm_bound (reads every update's norm)",
        False,
        norm_bounded_mean,
        "Sun, Kairouz, Suresh, McMahan (2019), Can You Really Backdoor Federated Learning?",
    ),
):
    register_aggregator(_rule)


def aggregator(name: str) -> Aggregator:
    """The registered rule ``name``.

    Args:
        name: an id of :data:`AGGREGATORS`.

    Returns:
        The aggregator.

    Raises:
        KeyError: naming the unknown rule and the registered ones.
    """
    try:
        return AGGREGATORS[name]
    except KeyError:
        raise KeyError(f"unknown aggregator {name!r}; registered: {', '.join(AGGREGATORS)}") from None
