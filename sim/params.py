"""Sweep axes over scenario fields: reading a dotted field, whether it holds a real
number (only those can be traced, :class:`~silentfail.sim.config.Config`), and the
value an axis sets.

A field can be traced only if the engine uses it as a number; a field that sets a
shape, a loop length or a Python branch (``world.d``, ``federation.rounds``,
``federation.byzantine_fraction``, any name) cannot, and
:func:`silentfail.sim.batch.traceable` finds out by tracing (``jax.eval_shape``, no
compilation). The sweep compiles once per value of such a *static* axis and vmaps
over the traced ones.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .scenario import Scenario, ScenarioError


def numeric_field(sc: Scenario, path: str) -> Any:
    """The current value of a dotted field path (ScenarioError if unknown).

    Args:
        sc: the scenario.
        path: a dotted field path.

    Returns:
        The value.
    """
    node: Any = sc
    for part in path.split("."):
        if not isinstance(node, BaseModel) or part not in type(node).model_fields:
            raise ScenarioError(f"unknown scenario field {path!r}")
        node = getattr(node, part)
    return node


def is_float_field(sc: Scenario, path: str) -> bool:
    """Whether the field holds a real number (only those can be traced).

    Args:
        sc: the scenario.
        path: a dotted field path.

    Returns:
        bool.
    """
    node: Any = sc
    parts = path.split(".")
    for part in parts[:-1]:
        node = getattr(node, part)
    ann = type(node).model_fields[parts[-1]].annotation
    return "float" in str(ann) and "tuple" not in str(ann)


def axis_value(sc: Scenario, path: str, value: Any) -> Any:
    """A sweep axis value for the field ``path``: an integral float (an axis written
    lo:hi:n is floats) becomes the int an integer field takes; anything else is left
    for the scenario's strict validation to judge.

    Args:
        sc: the scenario.
        path: a dotted field path.
        value: the axis value.

    Returns:
        The value to set.
    """
    node: Any = sc
    parts = path.split(".")
    for part in parts[:-1]:
        node = getattr(node, part)
    ann = str(type(node).model_fields[parts[-1]].annotation)
    if (
        "int" in ann
        and "float" not in ann
        and "tuple" not in ann
        and isinstance(value, float)
        and not isinstance(value, bool)
    ):
        if not value.is_integer():
            raise ScenarioError(f"{path} takes integers, got {value!r}")
        return int(value)
    return value
