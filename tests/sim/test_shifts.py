"""Each shift family preserves its invariant and changes what it claims to change."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from silentfail.sim import shifts as sh
from silentfail.sim.scenario import Scenario
from silentfail.sim.world import base_client, make_world

WORLD = make_world(Scenario(world={"spurious_r": 0.3}))
BASE = base_client(WORLD)
N = 64


def draw(fn):
    base = jax.tree.map(lambda a: jnp.broadcast_to(a, (N,) + a.shape), BASE)
    return jax.vmap(fn)(base, jax.random.split(jax.random.key(3), N))


def cond_y_given_a(pi):
    return pi / pi.sum(-2, keepdims=True)


def cond_a_given_y(pi):
    return pi / pi.sum(-1, keepdims=True)


def close(a, b, tol=1e-6):
    return np.allclose(np.asarray(a), np.broadcast_to(np.asarray(b), np.shape(a)), atol=tol)


def test_label_shift_changes_p_y_keeps_p_x_given_ya_and_p_a_given_y():
    c = draw(sh.label_shift(WORLD, alpha=1.0))
    assert close(c.mu, BASE.mu) and close(c.scale, 1.0)
    assert close(cond_a_given_y(c.pi), cond_a_given_y(BASE.pi), 1e-5)
    assert np.std(np.asarray(c.pi.sum(-1))[:, 1]) > 0.1
    assert close(c.pi.sum((-1, -2)), 1.0, 1e-5)


def test_attribute_imbalance_changes_p_a_keeps_p_y_given_a():
    c = draw(sh.attribute_imbalance(WORLD, alpha=1.0))
    assert close(c.mu, BASE.mu)
    assert close(cond_y_given_a(c.pi), cond_y_given_a(BASE.pi), 1e-5)
    assert np.std(np.asarray(c.pi.sum(-2))[:, 1]) > 0.1


def test_spurious_correlation_changes_p_y_given_a_keeps_p_a():
    c = draw(sh.spurious_correlation(WORLD, mean=0.8, spread=0.1))
    assert close(c.mu, BASE.mu)
    assert close(c.pi.sum(-2), BASE.pi.sum(-2), 1e-6)
    y_given_a = np.asarray(cond_y_given_a(c.pi))[:, 1]  # P(y=+1 | a)
    r = y_given_a[:, 0] - y_given_a[:, 1]  # (1 + r)/2 - (1 - r)/2
    assert abs(r.mean() - 0.8) < 0.05 and (r <= 1 + 1e-6).all()


def test_covariate_shift_changes_means_keeps_p_ya():
    c = draw(sh.covariate_shift(WORLD, scale=0.5, var_spread=0.3))
    assert close(c.pi, BASE.pi)
    delta = np.asarray(c.mu - BASE.mu)
    # one offset per client, shared by all cells
    assert np.allclose(delta, delta[:, :1, :1, :], atol=1e-6)
    assert abs(delta[:, 0, 0].std() - 0.5) < 0.1
    assert np.std(np.log(np.asarray(c.scale))) > 0.15


def test_concept_shift_rotates_core_toward_alignment_keeps_p_ya():
    c = draw(sh.concept_shift(WORLD, angle=0.5))
    assert close(c.pi, BASE.pi)
    core = np.asarray(c.mu[:, 1, 0] - c.mu[:, 0, 0]) / 2  # y=+1 minus y=-1 cell of group 0
    assert np.allclose(np.linalg.norm(core, axis=1), 1.0, atol=1e-5)  # a rotation keeps |mu_core|
    assert np.allclose(core[:, 4:], 0, atol=1e-6) and np.allclose(core[:, 1:3], 0, atol=1e-6)
    assert np.asarray(core[:, 3]).std() > 0.2  # loads on the alignment direction
    # spurious and offset parts untouched
    assert close(c.mu[:, :, :, 1], BASE.mu[:, :, 1])


def test_composition_and_interpolation():
    f = sh.compose(sh.label_shift(WORLD, alpha=1.0), sh.covariate_shift(WORLD, scale=0.5, var_spread=0.0))
    c = draw(f)
    assert close(c.pi.sum((-1, -2)), 1.0, 1e-5)
    base = jax.tree.map(lambda a: jnp.broadcast_to(a, (N,) + a.shape), BASE)
    half = sh.interpolate(base, c, 0.5)
    assert close(half.pi.sum((-1, -2)), 1.0, 1e-5)
    assert close(sh.interpolate(base, c, 0.0).mu, base.mu) and close(sh.interpolate(base, c, 1.0).mu, c.mu, 1e-5)


@pytest.mark.parametrize(
    "kind, expect", [("linear", [0.0, 0.5, 1.0, 1.0]), ("step", [0.0, 0.0, 1.0, 1.0]), ("none", [1.0] * 4)]
)
def test_drift_strength(kind, expect):
    sc = Scenario(shifts={"temporal": {"kind": kind, "ramp_rounds": 4}})
    assert np.allclose(np.asarray(sh.drift_strength(sc, jnp.array([0, 2, 4, 8]))), expect)


FAMILY_DRAWS = {
    "label_shift": lambda: sh.label_shift(WORLD, alpha=1.0),
    "attribute_imbalance": lambda: sh.attribute_imbalance(WORLD, alpha=1.0),
    "spurious_correlation": lambda: sh.spurious_correlation(WORLD, mean=0.8, spread=0.1),
    "covariate_shift": lambda: sh.covariate_shift(WORLD, scale=0.5, var_spread=0.3),
    "concept_shift": lambda: sh.concept_shift(WORLD, angle=0.5),
}


def _violation(family: str, fn) -> float:
    base = jax.tree.map(lambda a: jnp.broadcast_to(a, (N,) + a.shape), BASE)
    return float(jnp.max(jax.vmap(sh.SHIFT_FAMILIES[family].invariant)(base, draw(fn))))


@pytest.mark.parametrize("family", sorted(FAMILY_DRAWS))
def test_registered_invariant_holds_for_its_family_and_not_for_the_others(family):
    assert list(sh.SHIFT_FAMILIES)[:5] == list(FAMILY_DRAWS)  # the application order fixes the numbers
    assert _violation(family, FAMILY_DRAWS[family]()) < 1e-5
    broken = [other for other, make in FAMILY_DRAWS.items() if _violation(family, make()) > 1e-3]
    assert broken, f"no other family violates {family}'s invariant: it says nothing"


def test_plugin_shift_family_is_applied_with_its_scenario_parameters():
    from silentfail import plugins
    from silentfail.sim.scenario import ScenarioError, preset

    def prior_tilt(world, sc):
        params = sc.shifts.by_family.get("prior_tilt")
        if params is None:
            return None

        def f(client, key):  # P(y = +1) up by delta, P(a | y) kept
            py = client.pi.sum(axis=1)
            new = jnp.array([py[0] - params["delta"], py[1] + params["delta"]])
            return client._replace(pi=new[:, None] * client.pi / py[:, None])

        return f

    with plugins.isolated():
        plugins.register_shift_family(
            sh.ShiftFamily(
                "prior_tilt", prior_tilt, "P(y)", "P(x | y, a) and P(a | y)", sh.SHIFT_FAMILIES["label_shift"].invariant
            )
        )
        sc = Scenario(shifts={"by_family": {"prior_tilt": {"delta": 0.1}}})
        c = draw(sh.from_scenario(WORLD, sc))
        np.testing.assert_allclose(np.asarray(c.pi.sum(-1))[:, 1], float(BASE.pi.sum(-1)[1]) + 0.1, atol=1e-6)
        assert _violation("prior_tilt", sh.from_scenario(WORLD, sc)) < 1e-5
        assert sh.from_scenario(WORLD, Scenario()) is sh.identity  # off unless named
    with pytest.raises(ScenarioError, match="shifts.by_family: \\['prior_tilt'\\] are not plugin shift families"):
        preset("default").replace(**{"shifts.by_family": {"prior_tilt": {"delta": 0.1}}})


def test_per_client_shift_strengths_are_beta_with_mean_f_and_each_client_sits_at_its_own():
    import jax
    import numpy as np

    from silentfail.sim.population import build_population, client_strengths
    from silentfail.sim.scenario import ScenarioError, preset

    key = jax.random.key(5)
    kshift = jax.random.split(key, 7)[1]
    size = {"population.num_clients": 4000, "federation.clients_per_round": 100, "shifts.label_alpha": 1.0}
    full = preset("default").replace(**size)
    sc = full.replace(
        **{"shifts.strength": 0.3, "shifts.strength_spread": "beta", "shifts.strength_concentration": 3.0}
    )
    s = np.asarray(client_strengths(sc, jax.random.fold_in(kshift, 1)), np.float64)
    n = s.size
    assert abs(s.mean() - 0.3) < 4 * s.std() / np.sqrt(n)
    var, var_se = s.var(), np.sqrt(np.mean((s - s.mean()) ** 4) / n)
    assert abs(var - 0.3 * 0.7 / 4.0) < 4 * var_se
    _, pop_full = build_population(full, key)
    _, pop = build_population(sc, key)
    pi0 = np.asarray(pop_full.base.pi)
    want = (1 - s)[:, None, None] * pi0 + s[:, None, None] * np.asarray(pop_full.shifted.pi)
    np.testing.assert_allclose(np.asarray(pop.shifted.pi), want, atol=1e-6)
    # the null runs (f = 0): every client at P0
    _, pop0 = build_population(sc.replace(**{"shifts.strength": 0.0}), key)
    np.testing.assert_array_equal(np.asarray(pop0.shifted.pi), pi0)
    with pytest.raises(ScenarioError, match="shifts.strength_concentration applies only"):
        full.replace(**{"shifts.strength_concentration": 2.0})
