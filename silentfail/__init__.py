"""silentfail: taxonomy, theory and simulation of silent failures in federated
personalization of foundation models (Oh & Bui, KDD '26).

The front door: re-exports the public API of the subpackages
``silentfail.taxonomy``, ``silentfail.sim`` and ``silentfail.proofs``::

    import silentfail as sf
    sc = sf.preset("default")
    tr = sf.run(sc, seed=0)
    v = sf.verdict(tr, sf.calibrate(sc))
    ds = sf.sweep(sc, {"personalization.lam": [0.01, 0.1, 1.0]}, seeds=8)
    est, fits = sf.estimate(two_axis_sweep)

The simulation entries are imported on first use (``import silentfail`` does not load JAX).
"""

from importlib.metadata import PackageNotFoundError, version

from .citation import citation, scenario_nodes
from .taxonomy import (
    SchemaError,
    Taxonomy,
    builtin_taxonomy,
    causes_of,
    coverage_matrix,
    detectors_for,
    paths,
    silent_modes,
    structural_divide,
)

try:
    __version__ = version("silentfail")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

#: front-door name -> (module, attribute), imported on first use
_LAZY = {
    "preset": ("silentfail.sim.scenario", "preset"),
    "preset_names": ("silentfail.sim.scenario", "preset_names"),
    "load_scenario": ("silentfail.sim.scenario", "load_scenario"),
    "Scenario": ("silentfail.sim.scenario", "Scenario"),
    "ScenarioError": ("silentfail.sim.scenario", "ScenarioError"),
    "ClientWorld": ("silentfail.sim.world", "ClientWorld"),
    "run": ("silentfail.sim.run", "run"),
    "calibrate": ("silentfail.sim.verdict", "calibrate"),
    "verdict": ("silentfail.sim.verdict", "verdict"),
    "sweep": ("silentfail.sim.sweep", "sweep"),
    "estimate": ("silentfail.sim.estimate", "estimate"),
    "check": ("silentfail.hypothesis", "check"),
    "influences": ("silentfail.sim.influence", "influences"),
    "agreement": ("silentfail.sim.theory", "agreement"),
    "predicted_regime": ("silentfail.sim.theory", "predicted_regime"),
    "frontier": ("silentfail.frontier", "frontier"),
    "scenario_fields": ("silentfail.sim.scenario", "scenario_fields"),
}


def __getattr__(name: str):
    """The simulation's front-door names (:data:`_LAZY`), imported on first use."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'silentfail' has no attribute {name!r}")


__all__ = [
    *_LAZY,
    "SchemaError",
    "Taxonomy",
    "builtin_taxonomy",
    "causes_of",
    "citation",
    "coverage_matrix",
    "scenario_nodes",
    "detectors_for",
    "paths",
    "silent_modes",
    "structural_divide",
    "__version__",
]
