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
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from .registry import check_new_id
from .scenario import Scenario
from .world import ClientWorld, World, Y

ShiftFn = Callable[[ClientWorld, Array], ClientWorld]


def identity(client: ClientWorld, key: Array) -> ClientWorld:
    """No shift: the client as it is.

    Args:
        client: the client's distribution.
        key: unused.

    Returns:
        ``client``.
    """
    return client


def label_shift(world: World, *, alpha: float) -> ShiftFn:
    """Label (prior) shift: pi_c(y) ~ Dirichlet(alpha pi0(y)), pi_c(y, a) = pi_c(y) P0(a | y).

    Changes P(y) (hence P(y|x), P(x)); keeps P(x | y, a) and P(a | y).

    Args:
        world: the base world.
        alpha: the Dirichlet concentration (smaller = stronger).

    Returns:
        The shift function.
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

    Args:
        world: the base world.
        alpha: the Dirichlet concentration.

    Returns:
        The shift function.
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

    Args:
        world: the base world (its group signs s_a).
        mean: the mean client correlation.
        spread: its standard deviation across clients.

    Returns:
        The shift function.
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

    Args:
        world: the base world.
        scale: the std of the offset delta_c.
        var_spread: the log-std of the covariance scale.

    Returns:
        The shift function.
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

    Args:
        world: the base world (e_core, e_align).
        angle: the std of the rotation angle (radians).

    Returns:
        The shift function.
    """

    def f(client: ClientWorld, key: Array) -> ClientWorld:
        phi = angle * jax.random.normal(key)
        core = (client.mu[1] - client.mu[0]) / 2.0  # (G, d): y mu_core,a, the rest cancels
        along = core @ world.e_core  # (G,) component to rotate
        new = core + along[:, None] * ((jnp.cos(phi) - 1.0) * world.e_core + jnp.sin(phi) * world.e_align)
        return client._replace(mu=client.mu + Y[:, None, None] * (new - core)[None])

    return f


def compose(*fns: ShiftFn) -> ShiftFn:
    """Apply shift functions in order, each with its own key.

    Args:
        *fns: shift functions.

    Returns:
        Their composition (one key split per function).
    """

    def f(client: ClientWorld, key: Array) -> ClientWorld:
        keys = jax.random.split(key, max(len(fns), 1))
        for fn, k in zip(fns, keys):
            client = fn(client, k)
        return client

    return f


class ShiftFamily(NamedTuple):
    """A shift family in the registry :func:`from_scenario` composes.

    Attributes:
        id: the taxonomy node id (an identifier).
        build: ``(world, scenario) -> ShiftFn | None``: the family's shift function at the
            scenario's parameters, None when the scenario leaves it off.
        changes: what the family changes (one line).
        keeps: the invariant it keeps (one line).
        invariant: ``(base, shifted) -> ()`` the largest violation of the invariant by a
            shifted client (0 when it holds; ``tests/sim/test_shifts.py`` checks it on draws).
        reference: the family's citation.
        fields: the scenario fields that set it (default ``shifts.by_family.<id>``, a
            plugin family's parameters), for messages that name them.
    """

    id: str
    build: Callable[[World, Scenario], ShiftFn | None]
    changes: str
    keeps: str
    invariant: Callable[[ClientWorld, ClientWorld], Array]
    reference: str = ""
    fields: tuple[str, ...] = ()

    def field_names(self) -> tuple[str, ...]:
        """The scenario fields that set the family.

        Returns:
            ``fields``, or ``("shifts.by_family.<id>",)`` when it names none.
        """
        return self.fields or (f"shifts.by_family.{self.id}",)


def _a_given_y(pi: Array) -> Array:
    return pi / pi.sum(-1, keepdims=True)


def _y_given_a(pi: Array) -> Array:
    return pi / pi.sum(-2, keepdims=True)


def _gap(a: Array, b: Array) -> Array:
    return jnp.max(jnp.abs(a - b))


def _same_cells(base: ClientWorld, shifted: ClientWorld) -> Array:
    """Violation of P(x | y, a) unchanged: the cell means and the covariance scale."""
    return jnp.maximum(_gap(base.mu, shifted.mu), _gap(base.scale, shifted.scale))


_MT = "Moreno-Torres et al. (2012), A unifying view on dataset shift in classification"
_YANG = "Yang, Zhang, Katabi, Ghassemi (2023), Change is Hard: A Closer Look at Subpopulation Shift, ICML"

#: The shift families, in the order :func:`from_scenario` applies them (each with its own
#: key: ``compose`` splits one per active family, so the order fixes the numbers).
SHIFT_FAMILIES: dict[str, ShiftFamily] = {
    f.id: f
    for f in (
        ShiftFamily(
            "label_shift",
            lambda w, sc: None if sc.shifts.label_alpha is None else label_shift(w, alpha=sc.shifts.label_alpha),
            "P(y)",
            "P(x | y, a) and P(a | y)",
            lambda b, s: jnp.maximum(_same_cells(b, s), _gap(_a_given_y(b.pi), _a_given_y(s.pi))),
            _MT,
            ("shifts.label_alpha",),
        ),
        ShiftFamily(
            "attribute_imbalance",
            lambda w, sc: (
                None if sc.shifts.attribute_alpha is None else attribute_imbalance(w, alpha=sc.shifts.attribute_alpha)
            ),
            "P(a)",
            "P(x | y, a) and P(y | a)",
            lambda b, s: jnp.maximum(_same_cells(b, s), _gap(_y_given_a(b.pi), _y_given_a(s.pi))),
            _YANG,
            ("shifts.attribute_alpha",),
        ),
        ShiftFamily(
            "spurious_correlation",
            lambda w, sc: (
                None
                if sc.shifts.spurious_mean is None
                else spurious_correlation(w, mean=sc.shifts.spurious_mean, spread=sc.shifts.spurious_spread)
            ),
            "P(y | a)",
            "P(x | y, a) and P(a)",
            lambda b, s: jnp.maximum(_same_cells(b, s), _gap(b.pi.sum(-2), s.pi.sum(-2))),
            _YANG,
            ("shifts.spurious_mean", "shifts.spurious_spread"),
        ),
        ShiftFamily(
            "covariate_shift",
            lambda w, sc: (
                covariate_shift(w, scale=sc.shifts.covariate_scale, var_spread=sc.shifts.covariate_var_spread)
                if (sc.shifts.covariate_scale > 0 or sc.shifts.covariate_var_spread > 0)
                else None
            ),
            "P(x) and P(x | y, a)",
            "P(y, a)",
            lambda b, s: _gap(b.pi, s.pi),
            _MT,
            ("shifts.covariate_scale", "shifts.covariate_var_spread"),
        ),
        ShiftFamily(
            "concept_shift",
            lambda w, sc: concept_shift(w, angle=sc.shifts.concept_angle) if sc.shifts.concept_angle > 0 else None,
            "P(y | x) and P(x | y)",
            "P(y, a) and the norm of each group's causal direction",
            lambda b, s: jnp.maximum(
                _gap(b.pi, s.pi),
                _gap(jnp.linalg.norm(b.mu[1] - b.mu[0], axis=-1), jnp.linalg.norm(s.mu[1] - s.mu[0], axis=-1)),
            ),
            _MT,
            ("shifts.concept_angle",),
        ),
    )
}
#: The built-in families' ids (their parameters are fields of their own).
BUILTIN_FAMILIES: tuple[str, ...] = tuple(SHIFT_FAMILIES)


def register_shift_family(family: ShiftFamily) -> ShiftFamily:
    """Add ``family`` after the registered ones (``silentfail.plugins.register_shift_family``
    is the public way); its parameters are ``shifts.by_family.<id>`` of a scenario.

    Args:
        family: a family with a new identifier id.

    Returns:
        The family.

    Raises:
        ValueError: the id is taken or not an identifier.
    """
    check_new_id("shift family", family.id, SHIFT_FAMILIES)
    SHIFT_FAMILIES[family.id] = family
    return family


def from_scenario(world: World, sc: Scenario) -> ShiftFn:
    """The composition of the scenario's active shift families, in registry order
    (label -> attribute -> spurious -> covariate -> concept -> the plugins').

    Args:
        world: the base world.
        sc: the scenario (or a traced view of it).

    Returns:
        The composed shift function (``identity`` when no family is active).
    """
    fns = [fn for fam in SHIFT_FAMILIES.values() if (fn := fam.build(world, sc)) is not None]
    return compose(*fns) if fns else identity


def interpolate(base: ClientWorld, shifted: ClientWorld, f: Array) -> ClientWorld:
    """Temporal drift: the client at strength f in [0, 1] between its base and fully
    shifted distribution (priors mix linearly, so they stay distributions; means
    linearly; the covariance scale log-linearly).

    Args:
        base: the clients' base distributions.
        shifted: their fully shifted distributions.
        f: the strength in [0, 1].

    Returns:
        The distributions at strength f.
    """
    return ClientWorld(
        pi=(1 - f) * base.pi + f * shifted.pi,
        mu=(1 - f) * base.mu + f * shifted.mu,
        scale=jnp.exp((1 - f) * jnp.log(base.scale) + f * jnp.log(shifted.scale)),
    )


def drift_strength(sc: Scenario, t: Array) -> Array:
    """f(t) of the temporal drift: 1 (no drift: shifts in force from round 0), a linear
    ramp min(1, t / ramp), or a step at ``ramp_rounds``.

    Args:
        sc: the scenario (``shifts.temporal``).
        t: the round.

    Returns:
        f(t) in [0, 1], float32.
    """
    tm = sc.shifts.temporal
    t = jnp.asarray(t, jnp.float32)
    if tm.kind == "linear":
        return jnp.minimum(1.0, t / tm.ramp_rounds)
    if tm.kind == "step":
        return (t >= tm.ramp_rounds).astype(jnp.float32)
    return jnp.ones_like(t)
