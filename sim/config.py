"""A scenario through ``jax.jit``: a hashable static part and a PyTree of traced floats.

Every compiled program of the engine takes a :class:`Config` as an ordinary argument.
Its static part is the scenario, hashed and compared by its canonical JSON (computed
once), which JAX keeps in the PyTree's treedef; its leaves are the values of the
fields a sweep varies inside one program (dotted paths such as
``"personalization.lam"``). So the engine's compiled programs live in one cache, JAX's
own: a call with an equal scenario and the same traced paths reuses the program, and
``jax.clear_caches()`` frees them all.

Inside the program, :meth:`Config.scenario` is a real :class:`~silentfail.sim.scenario.Scenario`
whose traced fields hold the traced values (substituted with ``model_copy``, which
does not validate): the engine reads ``sc.personalization.lam`` and never knows the
difference, so ``vmap`` over a grid of values is the same program as a single run. A
field that sets a shape, a loop length or a Python branch cannot be traced, and
:func:`silentfail.sim.batch.traceable` finds out by tracing (``jax.eval_shape``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from pydantic import BaseModel

from .scenario import Scenario, ScenarioError

#: what tracing a field that sets a shape or a Python branch raises
TRACER_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.TracerArrayConversionError,
)


class Static:
    """The static part of a :class:`Config`: a scenario, hashed and compared by its
    canonical JSON (``Scenario.to_json``, computed once)."""

    __slots__ = ("scenario", "key", "_hash")

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.key = scenario.to_json()
        self._hash = hash(self.key)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Static) and other.key == self.key

    def __repr__(self) -> str:
        return f"Static({self.scenario.name!r}, {self._hash:#x})"


def substitute(model: BaseModel, values: dict[str, Any]) -> Any:
    """``model`` with the dotted fields in ``values`` replaced (``model_copy``: no
    validation, so a field can hold a JAX tracer).

    Args:
        model: a scenario or one of its sections.
        values: {dotted path: value}.

    Returns:
        The copy (``model`` itself when ``values`` is empty).
    """
    if not values:
        return model
    here: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        head, _, rest = path.partition(".")
        if head not in type(model).model_fields:
            raise ScenarioError(f"unknown scenario field {path!r}")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            here[head] = value
    for head, inner in nested.items():
        here[head] = substitute(getattr(model, head), inner)
    return model.model_copy(update=here)


@jax.tree_util.register_pytree_node_class
class Config:
    """A scenario as a jit argument: ``Static(scenario)`` and the traced ``paths`` in the
    treedef, their ``values`` as leaves.

    Args:
        scenario: the validated scenario (its traced fields' own values are ignored).
        paths: dotted float fields whose values are traced.
        values: one value per path (floats, arrays or tracers).
        static: fields replaced in the static part without validation (e.g. an engine
            setting such as ``population.trace_clients = 0`` for the batch programs).
    """

    __slots__ = ("static", "paths", "values")

    def __init__(
        self,
        scenario: Scenario | Static,
        paths: Sequence[str] = (),
        values: Sequence[Any] = (),
        *,
        static: dict[str, Any] | None = None,
    ) -> None:
        if len(paths) != len(values):
            raise ValueError(f"{len(paths)} traced paths but {len(values)} values")
        if static:
            base = scenario.scenario if isinstance(scenario, Static) else scenario
            scenario = substitute(base, static)
        self.static = scenario if isinstance(scenario, Static) else Static(scenario)
        self.paths = tuple(paths)
        self.values = tuple(values)

    def tree_flatten(self) -> tuple[tuple[Any, ...], tuple[Static, tuple[str, ...]]]:
        """The PyTree protocol: (leaves, treedef data).

        Returns:
            (the traced values, (Static, paths)).
        """
        return self.values, (self.static, self.paths)

    @classmethod
    def tree_unflatten(cls, aux: tuple[Static, tuple[str, ...]], values: Sequence[Any]) -> Config:
        """The PyTree protocol: rebuild from the treedef data and the leaves.

        Args:
            aux: (Static, paths).
            values: the leaves.

        Returns:
            The Config.
        """
        cfg = object.__new__(cls)
        cfg.static, cfg.paths, cfg.values = aux[0], aux[1], tuple(values)
        return cfg

    def with_values(self, paths: Sequence[str], values: Sequence[Any]) -> Config:
        """The same static part with ``paths`` traced at ``values``, added to the paths
        this Config already traces (a path in both takes the new value).

        Args:
            paths: dotted float fields.
            values: their values.

        Returns:
            A new Config.
        """
        merged = dict(zip(self.paths, self.values))
        merged.update(zip(paths, values))
        return Config(self.static, tuple(merged), tuple(merged.values()))

    @property
    def scenario(self) -> Scenario:
        """The scenario the engine reads: the static one with the traced values in place."""
        return substitute(self.static.scenario, dict(zip(self.paths, self.values)))

    def __repr__(self) -> str:
        return f"Config({self.static!r}, traced={list(self.paths)})"
