"""Aggregation rules: each against a NumPy reference, the robust ones resisting the
shipped Byzantine attack where theory says they should, and bad configurations
rejected with the field named."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import silentfail as sf
from silentfail.sim.aggregators import AGGREGATORS, aggregator
from silentfail.sim.scenario import ScenarioError


class _Fed:
    trim_fraction = 0.2
    norm_bound = 0.7


def _case(seed: int, N: int = 37, D: int = 5):
    rng = np.random.default_rng(seed)
    delta = rng.standard_normal((N, D)) * rng.uniform(0.1, 3.0, (N, 1))
    mask = (rng.uniform(size=N) < 0.6).astype(np.float32)
    mask[:3] = 1.0  # at least three participants
    weight = rng.uniform(0.5, 2.0, N)
    return delta.astype(np.float32), mask, weight.astype(np.float32)


def _numpy(name: str, delta, mask, weight) -> np.ndarray:
    on = mask > 0
    d, w = delta[on].astype(np.float64), weight[on].astype(np.float64)
    if name == "fedavg":
        return (w[:, None] * d).sum(0) / w.sum()
    if name == "median":
        return np.median(d, axis=0)
    if name == "trimmed_mean":
        return stats.trim_mean(d, _Fed.trim_fraction, axis=0)
    if name == "norm_bounded":
        norm = np.linalg.norm(d, axis=1, keepdims=True)
        b = d * np.minimum(1.0, _Fed.norm_bound / norm)
        return (w[:, None] * b).sum(0) / w.sum()
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["fedavg", "median", "trimmed_mean", "norm_bounded"])
@pytest.mark.parametrize("seed", range(4))
def test_rule_equals_numpy_reference(name, seed):
    delta, mask, weight = _case(seed, N=37 + seed)  # odd and even participant counts
    got = np.asarray(aggregator(name).combine(jnp.asarray(delta), jnp.asarray(mask), jnp.asarray(weight), _Fed))
    np.testing.assert_allclose(got, _numpy(name, delta, mask, weight), rtol=2e-5, atol=2e-6)


def test_robust_rules_ignore_non_participants():
    delta, mask, weight = _case(9)
    poisoned = np.where(mask[:, None] > 0, delta, 1e6).astype(np.float32)  # absentees' rows are junk
    for name in ("median", "trimmed_mean", "norm_bounded"):
        rule = aggregator(name)
        a = rule.combine(jnp.asarray(delta), jnp.asarray(mask), jnp.asarray(weight), _Fed)
        b = rule.combine(jnp.asarray(poisoned), jnp.asarray(mask), jnp.asarray(weight), _Fed)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, err_msg=name)


def _attacked(rule: str, fraction: float):
    """A fifth of the clients push the global model along the alignment direction with
    updates ten times the honest ones' scale; the server reads every update."""
    sc = sf.preset("poisoned-clients").replace(
        **{
            "population.num_clients": 200,
            "federation.rounds": 20,
            "federation.clients_per_round": 200,
            "federation.participation": 0.5,
            "federation.secure_aggregation": False,
            "federation.byzantine_fraction": fraction,
            "federation.byzantine_scale": 5.0,
            "federation.clip": None,
            "federation.aggregator": rule,
            "federation.trim_fraction": 0.3,
            "federation.norm_bound": 0.05,
        }
    )
    return sf.run(sc, seed=1)


def test_robust_rules_resist_the_alignment_attack():
    """FedAvg moves by about fraction * scale per round along the attack; the median and
    the trimmed mean (trim 0.3 > fraction 0.2) stay within the honest updates' spread
    (Yin et al. 2018), and norm bounding caps the attackers' pull to M per update."""
    drift, erosion = {}, {}
    for rule in ("fedavg", "median", "trimmed_mean", "norm_bounded"):
        honest = _attacked(rule, 0.0)["theta_global"].values[-1]
        attacked = _attacked(rule, 0.2)
        drift[rule] = float(np.linalg.norm(attacked["theta_global"].values[-1] - honest))
        erosion[rule] = float(attacked["mode_metric"].sel(mode="alignment_erosion").max())
    assert drift["fedavg"] > 1.0, drift
    for rule in ("median", "trimmed_mean", "norm_bounded"):
        assert drift[rule] < 0.05 * drift["fedavg"], drift
        assert erosion[rule] < erosion["fedavg"], erosion


def test_registry_lists_the_rules():
    assert {"fedavg", "median", "trimmed_mean", "norm_bounded"} <= set(AGGREGATORS)
    with pytest.raises(KeyError, match="unknown aggregator 'mean'"):
        aggregator("mean")


@pytest.mark.parametrize(
    "over, field",
    [
        ({"federation.aggregator": "krum"}, "federation.aggregator: unknown rule 'krum'"),
        ({"federation.aggregator": "median"}, "set federation.secure_aggregation = false"),
        (
            {
                "federation.aggregator": "median",
                "federation.secure_aggregation": False,
                "federation.dp": "central",
                "federation.clip": 1.0,
                "federation.noise_multiplier": 1.0,
                "federation.clients_per_round": 1000,
            },
            "central DP",
        ),
        (
            {"federation.aggregator": "norm_bounded", "federation.secure_aggregation": False},
            "federation.norm_bound must be set",
        ),
        ({"federation.trim_fraction": 0.5}, "trim_fraction"),
    ],
)
def test_bad_aggregator_config_names_the_field(over, field):
    with pytest.raises(ScenarioError, match=field):
        sf.preset("default").replace(**over)
