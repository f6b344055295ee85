"""Client shift families (paper/main.tex, The stylized model; Moreno-Torres et al. 2012; Yang et al.
2023). Each is a factory ``family(world, **strength) -> f`` returning a pure function
``f(client: ClientWorld, key) -> ClientWorld`` that vmaps over clients and composes
with the others (jax-md style). Each docstring states the family's invariant, and
``tests/sim/test_shifts.py`` checks it on the moments.

References:
    Moreno-Torres, Raeder, Alaiz-Rodriguez, Chawla, Herrera (2012), A unifying view on
    dataset shift in classification, Pattern Recognition 45(1).
    Yang, Zhang, Katabi, Ghassemi (2023), Change is Hard: A Closer Look at
    Subpopulation Shift, ICML.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array

from .scenario import Scenario
from .world import ClientWorld, World, Y

ShiftFn = Callable[[ClientWorld, Array], ClientWorld]


def identity(client: ClientWorld, key: Array) -> ClientWorld:
    """No shift: the client as it is."""
    return client


def label_shift(world: World, *, alpha: float) -> ShiftFn:
    """Label (prior) shift: pi_c(y) ~ Dirichlet(alpha pi0(y)), pi_c(y, a) = pi_c(y) P0(a | y).

    Changes P(y) (hence P(y|x), P(x)); keeps P(x | y, a) and P(a | y).
    """

    def f(client: ClientWorld, key: Array) -> ClientWorld:
        py = client.pi.sum(axis=1)
        a_given_y = client.pi / py[:, None]
        new_py = jax.random.dirichlet(key, alpha * py)
        return client._replace(pi=new_py[:, None] * a_given_y)

    return f


def attribute_imbalance(world: World, *, alpha: float) -> ShiftFn:
    """Attribute imbalance: pi_c(a) ~ Dirichlet(alpha pi0(a)), pi_c(y, a) = pi_c(a) P0(y | a).

    Changes P(a) (hence P(x), P(y)); keeps P(x | y, a) and P(y | a).
    """

    def f(client: ClientWorld, key: Array) -> ClientWorld:
        pa = client.pi.sum(axis=0)
        y_given_a = client.pi / pa[None, :]
        new_pa = jax.random.dirichlet(key, alpha * pa)
        return client._replace(pi=y_given_a * new_pa[None, :])

    return f


def spurious_correlation(world: World, *, mean: float, spread: float) -> ShiftFn:
    """Spurious correlation: r_c = clip(mean + spread z, -1, 1), P_c(y | a) = (1 + y r_c s_a)/2.

    Changes P(y | a) (hence P(y | x)); keeps P(a) and P(x | y, a).
    """

    def f(client: ClientWorld, key: Array) -> ClientWorld:
        r = jnp.clip(mean + spread * jax.random.normal(key), -1.0, 1.0)
        pa = client.pi.sum(axis=0)
        return client._replace(pi=pa[None, :] * (1.0 + Y[:, None] * r * world.signs[None, :]) / 2.0)

    return f


def covariate_shift(world: World, *, scale: float, var_spread: float) -> ShiftFn:
    """Covariate / domain shift: mu_{y,a} + delta_c with delta_c ~ N(0, scale^2 I), and the
    covariance scaled by s_c = exp(var_spread z).

    Changes P(x) and P(x | y, a); keeps P(y, a).
    """

    def f(client: ClientWorld, key: Array) -> ClientWorld:
        k1, k2 = jax.random.split(key)
        delta = scale * jax.random.normal(k1, client.mu.shape[-1:])
        s = client.scale * jnp.exp(var_spread * jax.random.normal(k2))
        return client._replace(mu=client.mu + delta, scale=s)

    return f


def concept_shift(world: World, *, angle: float) -> ShiftFn:
    """Concept shift: each group's causal direction mu_core,a is rotated by phi_c ~ N(0,
    angle^2) in the plane of (e_core, e_align), i.e. toward the alignment direction, so
    the client's task loads on the direction the FM uses to refuse the probe.

    Changes P(y | x) and P(x | y); keeps P(y, a).
    """

    def f(client: ClientWorld, key: Array) -> ClientWorld:
        phi = angle * jax.random.normal(key)
        core = (client.mu[1] - client.mu[0]) / 2.0  # (G, d): y mu_core,a, the rest cancels
        along = core @ world.e_core  # (G,) component to rotate
        new = core + along[:, None] * ((jnp.cos(phi) - 1.0) * world.e_core + jnp.sin(phi) * world.e_align)
        return client._replace(mu=client.mu + Y[:, None, None] * (new - core)[None])

    return f


def compose(*fns: ShiftFn) -> ShiftFn:
    """Apply shift functions in order, each with its own key."""

    def f(client: ClientWorld, key: Array) -> ClientWorld:
        keys = jax.random.split(key, max(len(fns), 1))
        for fn, k in zip(fns, keys):
            client = fn(client, k)
        return client

    return f


def from_scenario(world: World, sc: Scenario) -> ShiftFn:
    """The composition of the scenario's active shift families, in the fixed order
    label -> attribute -> spurious -> covariate -> concept."""
    s = sc.shifts
    fns: list[ShiftFn] = []
    if s.label_alpha is not None:
        fns.append(label_shift(world, alpha=s.label_alpha))
    if s.attribute_alpha is not None:
        fns.append(attribute_imbalance(world, alpha=s.attribute_alpha))
    if s.spurious_mean is not None:
        fns.append(spurious_correlation(world, mean=s.spurious_mean, spread=s.spurious_spread))
    if s.covariate_scale > 0 or s.covariate_var_spread > 0:
        fns.append(covariate_shift(world, scale=s.covariate_scale, var_spread=s.covariate_var_spread))
    if s.concept_angle > 0:
        fns.append(concept_shift(world, angle=s.concept_angle))
    return compose(*fns) if fns else identity


def interpolate(base: ClientWorld, shifted: ClientWorld, f: Array) -> ClientWorld:
    """Temporal drift: the client at strength f in [0, 1] between its base and fully
    shifted distribution (priors mix linearly, so they stay distributions; means
    linearly; the covariance scale log-linearly)."""
    return ClientWorld(
        pi=(1 - f) * base.pi + f * shifted.pi,
        mu=(1 - f) * base.mu + f * shifted.mu,
        scale=jnp.exp((1 - f) * jnp.log(base.scale) + f * jnp.log(shifted.scale)),
    )


def drift_strength(sc: Scenario, t: Array) -> Array:
    """f(t) of the temporal drift: 1 (no drift: shifts in force from round 0), a linear
    ramp min(1, t / ramp), or a step at ``ramp_rounds``."""
    tm = sc.shifts.temporal
    t = jnp.asarray(t, jnp.float32)
    if tm.kind == "linear":
        return jnp.minimum(1.0, t / tm.ramp_rounds)
    if tm.kind == "step":
        return (t >= tm.ramp_rounds).astype(jnp.float32)
    return jnp.ones_like(t)
