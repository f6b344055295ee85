"""Plugins: new failure modes, detectors, aggregation rules, client models, shift
families and taxonomy nodes, without editing the engine.

A plugin is a Python file the user names explicitly (``--plugin FILE.py`` on the
commands that run the engine, or :func:`load_plugin`); at import it calls the
``register_*`` functions below. Data files (scenarios, taxonomy extensions, traces)
are never executed. Registering anything drops every compiled program
(``silentfail.sim.clear_caches``), since the round function iterates over the registries.

Example (``examples/plugins/memorization.py`` is a complete one)::

    import jax.numpy as jnp
    from silentfail import plugins

    def gap(view):  # the clients' mean train-test gap this round
        return jnp.average(view.client["train_test_gap"], weights=view.pop.weight)

    plugins.register_mode(plugins.Mode("memorization", "Memorization", "mean train-test gap", 0.01, metric=gap))
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from .sim.aggregators import Aggregator
from .sim.detectors import Channel, Detector
from .sim.models import ClientModel, GlobalMetrics, LinearModel
from .sim.registry import DETECTOR_NAMES, MODE_REGISTRY, Mode, RoundView, add_mode
from .sim.shifts import ShiftFamily

__all__ = [
    "Aggregator",
    "Channel",
    "ClientModel",
    "Detector",
    "GlobalMetrics",
    "LinearModel",
    "Mode",
    "PluginError",
    "RoundView",
    "isolated",
    "load_plugin",
    "register_aggregator",
    "register_client_model",
    "register_detector",
    "register_mode",
    "register_shift_family",
    "ShiftFamily",
    "register_taxonomy_extension",
]

#: plugin files loaded in this process (resolved path -> module)
_LOADED: dict[Path, ModuleType] = {}


class PluginError(ValueError):
    """A plugin file that cannot be loaded, or a record it registers that is invalid."""


def _changed() -> None:
    from .sim import clear_caches, result_cache

    clear_caches()
    result_cache.plugins_loaded()  # the plugin's code is not in the results' keys


def _register(add, record):
    """``add(record)`` with its ValueError as a PluginError, then drop the compiled programs."""
    try:
        add(record)
    except ValueError as exc:
        raise PluginError(str(exc)) from None
    _changed()
    return record


def register_mode(mode: Mode) -> Mode:
    """Register a failure mode: the engine computes its round metric every round, the
    trace, verdicts, sweeps, phase figures and reports carry it, and the central audit
    watches it.

    Args:
        mode: a :class:`~silentfail.sim.registry.Mode` with a new id and a round metric
            ``RoundView -> ()`` (traceable by JAX; higher is worse).

    Returns:
        The mode.

    Raises:
        PluginError: naming what is wrong with the record.
    """
    from .sim.detectors import refresh_audit

    try:
        add_mode(mode)
    except ValueError as exc:
        raise PluginError(str(exc)) from None
    refresh_audit()
    _changed()
    return mode


def register_detector(detector: Detector) -> Detector:
    """Register a detector: calibrated on the scenario's null runs like the built-in
    ones, deployed wherever its access survives the constraints.

    Args:
        detector: a :class:`~silentfail.sim.detectors.Detector` with a new name.

    Returns:
        The detector.

    Raises:
        PluginError: naming what is wrong with the record.
    """
    from .sim.detectors import register_detector as add

    return _register(add, detector)


def register_aggregator(aggregator: Aggregator) -> Aggregator:
    """Register a server aggregation rule that ``federation.aggregator`` may name.

    Args:
        aggregator: a :class:`~silentfail.sim.aggregators.Aggregator` with a new id.

    Returns:
        The aggregator.

    Raises:
        PluginError: naming what is wrong with the record.
    """
    from .sim.aggregators import register_aggregator as add

    return _register(add, aggregator)


def register_client_model(model: ClientModel) -> ClientModel:
    """Register a client model that ``model.kind`` may name: the engine personalizes,
    deploys and measures every client through it (``sim/models.py``).

    Args:
        model: an object with the :class:`~silentfail.sim.models.ClientModel` attributes
            (``id``, ``description``, ``exact``) and methods (``personalize``,
            ``client_metrics``, ``global_metrics``), all traceable by JAX; subclassing
            :class:`~silentfail.sim.models.LinearModel` keeps what it does not override.

    Returns:
        The model.

    Raises:
        PluginError: naming what is wrong with the record.
    """
    from .sim.models import register_client_model as add

    return _register(add, model)


def register_shift_family(family: ShiftFamily) -> ShiftFamily:
    """Register a shift family: :func:`~silentfail.sim.shifts.from_scenario` applies it
    after the built-in ones whenever a scenario names it in ``shifts.by_family`` (its
    parameters).

    Args:
        family: a :class:`~silentfail.sim.shifts.ShiftFamily` with a new id, whose
            ``build(world, scenario)`` reads ``scenario.shifts.by_family[id]`` and returns
            None when the scenario does not name it.

    Returns:
        The family.

    Raises:
        PluginError: naming what is wrong with the record.
    """
    from .sim.shifts import register_shift_family as add

    return _register(add, family)


def register_taxonomy_extension(data: dict) -> None:
    """Add nodes and edges to the taxonomy every query and export sees
    (``silentfail.taxonomy.builtin_taxonomy``), in the extension-file format.

    Args:
        data: ``{"schema_version": ..., "nodes": [...], "edges": [...]}`` as in a
            taxonomy extension file.

    Raises:
        PluginError: listing every violation the extension would cause.
    """
    from .taxonomy.builtin import PLUGIN_EXTENSIONS, builtin_taxonomy
    from .taxonomy.validate import extend

    data = copy.deepcopy(data)  # what was validated is what is kept (a later change to the caller's dict is not)
    _, violations = extend(builtin_taxonomy(), data)
    if violations:
        raise PluginError("taxonomy extension rejected: " + "; ".join(str(v) for v in violations))
    PLUGIN_EXTENSIONS.append(data)


def load_plugin(path: str | Path) -> ModuleType:
    """Run the plugin file ``path`` (once per process; loading it again returns the
    same module).

    Args:
        path: a ``.py`` file.

    Returns:
        The plugin's module.

    Raises:
        PluginError: the file is missing, is not a .py file, or fails while it runs
            (the message names the file and the error).
    """
    p = Path(path).expanduser().resolve()
    if p in _LOADED:
        return _LOADED[p]
    if not p.is_file():
        raise PluginError(f"plugin {str(path)!r}: no such file")
    if p.suffix != ".py":
        raise PluginError(f"plugin {str(path)!r}: a plugin is a Python file (.py)")
    name = f"silentfail_plugin_{p.stem}_{len(_LOADED)}"
    spec = importlib.util.spec_from_file_location(name, p)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except PluginError as exc:
        del sys.modules[name]
        raise PluginError(f"plugin {str(path)!r}: {exc}") from None
    except Exception as exc:
        del sys.modules[name]
        raise PluginError(f"plugin {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
    _LOADED[p] = module
    return module


@contextlib.contextmanager
def isolated() -> Iterator[None]:
    """Undo every registration made inside the block (for tests and notebooks that try
    a plugin and go back to the built-in registries).

    Yields:
        None; on exit the modes, detectors, aggregators, client models, shift families, taxonomy
        extensions and loaded plugins are what they were on entry, and the compiled
        programs are dropped.
    """
    from .sim import aggregators, detectors, models, shifts
    from .taxonomy import builtin

    targets = (
        MODE_REGISTRY,
        DETECTOR_NAMES,
        detectors.REGISTRY,
        aggregators.AGGREGATORS,
        models.CLIENT_MODELS,
        shifts.SHIFT_FAMILIES,
        builtin.PLUGIN_EXTENSIONS,
        _LOADED,
    )
    saved = tuple(t.copy() for t in targets)
    try:
        yield
    finally:
        for target, value in zip(targets, saved):
            target.clear()
            target.update(value) if isinstance(target, dict) else target.extend(value)
        _changed()
