"""silentfail.taxonomy: a typed graph from causes to silent failure modes to detectors.

Imports nothing from the rest of silentfail: implementations are named by dotted
path strings (``Node.implementation``), resolved by the tests.
"""

from .builtin import FEDERATED_CONSTRAINTS, INFLUENCES, MODE_COLUMNS, STANDARD_DETECTORS, builtin_taxonomy
from .graph import Taxonomy
from .queries import (
    CoverageMatrix,
    SilentMode,
    benchmark_table,
    causes_of,
    coverage_matrix,
    detector_status,
    detectors_for,
    minimal_silencing_sets,
    paths,
    silent_modes,
    structural_divide,
)
from .schema import ALLOWED, SCHEMA_VERSION, Edge, EdgeKind, NodeKind, SchemaError
from .validate import Violation, extend, load_extension, validate

__all__ = [
    "ALLOWED",
    "FEDERATED_CONSTRAINTS",
    "INFLUENCES",
    "MODE_COLUMNS",
    "SCHEMA_VERSION",
    "STANDARD_DETECTORS",
    "CoverageMatrix",
    "Edge",
    "EdgeKind",
    "NodeKind",
    "SchemaError",
    "SilentMode",
    "Taxonomy",
    "Violation",
    "benchmark_table",
    "builtin_taxonomy",
    "causes_of",
    "coverage_matrix",
    "detector_status",
    "detectors_for",
    "extend",
    "load_extension",
    "minimal_silencing_sets",
    "paths",
    "silent_modes",
    "structural_divide",
    "validate",
]
