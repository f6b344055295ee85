"""silentfail: taxonomy, theory and simulation of silent failures in federated
personalization of foundation models (Oh & Bui, KDD '26).

The front door: re-exports the public API of the subpackages
``silentfail.taxonomy``, ``silentfail.sim`` and ``silentfail.proofs``.
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

__all__ = [
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
