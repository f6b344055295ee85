"""Validation of a taxonomy, and loading of users' extension files with every
violation collected (not just the first).

An extension file (JSON or TOML) adds nodes and edges to the built-in graph::

    [[nodes]]
    id = "memorization"
    kind = "failure_mode"
    ...

    [[edges]]
    kind = "causes"
    source = "personal_overfitting"
    target = "memorization"

Violation codes: ``parse-error``, ``invalid-node``, ``duplicate-node``,
``invalid-edge``, ``dangling-edge``, ``mistyped-edge``, ``duplicate-edge``,
``unreachable-mode``, ``undetected-mode``, ``bad-annotation``, ``access-mismatch``,
``blind-detector``, ``self-loop``, ``causal-cycle``, ``schema-version``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
from pydantic import ValidationError

from .graph import Taxonomy
from .schema import (
    SCHEMA_VERSION,
    DanglingEdgeError,
    DuplicateError,
    EdgeKind,
    MistypedEdgeError,
    NodeKind,
    SchemaError,
    describe_validation_error,
    edge_from_dict,
    node_from_dict,
)


@dataclass(frozen=True, order=True)
class Violation:
    """One problem found in a taxonomy or an extension file."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


def validate(tax: Taxonomy) -> list[Violation]:
    """Structural checks of a built taxonomy (schema checks happen on insertion):

    - every failure mode is reachable along causal edges from at least one
      personalization, one shift and one constraint;
    - every mode has a detector, or carries an explicit ``no_detector_under``
      annotation, whose constraint sets exist and indeed leave it silent;
    - every detector observes something and requires at least the access its
      observables require.

    Args:
        tax: the taxonomy.

    Returns:
        Every violation, sorted (empty when the taxonomy is sound).
    """
    from .queries import causal_graph, silent_modes  # local: queries imports builtin

    out: list[Violation] = []
    for e in tax.edges():
        if e.source == e.target:
            out.append(Violation("self-loop", f"{e.kind.value} edge from {e.source!r} to itself"))
    causes = nx.DiGraph(
        [(e.source, e.target) for e in tax.edges() if e.kind is EdgeKind.CAUSES and e.source != e.target]
    )
    for cycle in sorted(nx.simple_cycles(causes), key=lambda c: (len(c), c))[:10]:
        out.append(Violation("causal-cycle", "causes edges form a cycle: " + " -> ".join(cycle + cycle[:1])))
    g = causal_graph(tax)
    for mode in tax.nodes(NodeKind.FAILURE_MODE):
        anc = nx.ancestors(g, mode.id)
        for kind in (NodeKind.PERSONALIZATION, NodeKind.SHIFT, NodeKind.CONSTRAINT):
            if not any(tax.kind_of(a) is kind for a in anc):
                out.append(
                    Violation(
                        "unreachable-mode",
                        f"failure mode {mode.id!r} is not reachable from any {kind.value} "
                        "along causes/enables/amplifies/masks edges",
                    )
                )
        detectors = tax.predecessors(mode.id, EdgeKind.DETECTS)
        annotation = mode.no_detector_under  # type: ignore[attr-defined]
        if not detectors and not annotation:
            out.append(
                Violation(
                    "undetected-mode",
                    f"failure mode {mode.id!r} has no detector and no 'no_detector_under' annotation",
                )
            )
        for cset in annotation:
            unknown = [c for c in cset if c not in tax or tax.kind_of(c) is not NodeKind.CONSTRAINT]
            if unknown:
                out.append(
                    Violation(
                        "bad-annotation",
                        f"failure mode {mode.id!r}: no_detector_under names unknown constraints {unknown}",
                    )
                )
                continue
            # "no detector" means no detector of either scope survives
            silent = {s.mode for s in silent_modes(tax, cset)} & {
                s.mode for s in silent_modes(tax, cset, scope="global")
            }
            if mode.id not in silent:
                out.append(
                    Violation(
                        "bad-annotation",
                        f"failure mode {mode.id!r}: annotated as having no detector under {list(cset)}, "
                        "but a detector survives there",
                    )
                )
    for det in tax.nodes(NodeKind.DETECTOR):
        observed = tax.successors(det.id, EdgeKind.OBSERVES)
        if not observed:
            out.append(Violation("blind-detector", f"detector {det.id!r} observes nothing"))
        needs = set(tax.successors(det.id, EdgeKind.REQUIRES))
        for obs in observed:
            missing = sorted(set(tax.successors(obs, EdgeKind.REQUIRES)) - needs)
            if missing:
                out.append(
                    Violation(
                        "access-mismatch",
                        f"detector {det.id!r} observes {obs!r}, which requires {missing}, "
                        "but the detector does not declare it",
                    )
                )
    return sorted(out)


def read_extension(path: str | Path) -> dict:
    """Parse a JSON or TOML extension file into ``{"nodes": [...], "edges": [...],
    "annotations": [...]}`` (annotations: notes on existing edges, ``{source, target,
    kind, note}``, e.g. what ``silentfail influences --annotate`` measured).

    Args:
        path: a .json or .toml file.

    Returns:
        The parsed mapping.

    Raises:
        SchemaError: a missing or unreadable file, another suffix than .json/.toml, a
            parse error or a top level that is not an object, naming the file.
    """
    p = Path(path)
    if not p.exists():
        raise SchemaError(f"extension file {str(p)!r} does not exist")
    if not p.is_file():
        raise SchemaError(f"extension file {str(p)!r} is not a regular file (a directory, a FIFO or a device)")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise SchemaError(
            f"extension file {str(p)!r} is not UTF-8 text (binary, or another encoding such as UTF-16)"
        ) from None
    try:
        if p.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise SchemaError(f"extension file {p.name!r}: expected a .json or .toml file")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SchemaError(f"extension file {p.name!r} is not valid {p.suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise SchemaError(f"extension file {p.name!r}: top level must be an object with 'nodes' and 'edges'")
    unknown = sorted(set(data) - {"nodes", "edges", "annotations", "schema_version"})
    if unknown:
        raise SchemaError(
            f"extension file {p.name!r}: unknown top-level keys {unknown}; expected 'nodes', 'edges', 'annotations'"
        )
    if "schema_version" in data:
        check_schema_version(data["schema_version"], f"extension file {p.name!r}")
    return data


def check_schema_version(version, where: str) -> None:
    """A schema version this package reads: the same major version, a minor version no
    newer than :data:`SCHEMA_VERSION` (a newer file may use what this package lacks).

    Args:
        version: the file's ``schema_version``.
        where: the file, for the message.

    Raises:
        SchemaError: a missing, malformed or unsupported version.
    """
    try:
        major, minor = (int(x) for x in str(version).split("."))
    except ValueError:
        raise SchemaError(f"{where}: schema_version {version!r} is not MAJOR.MINOR") from None
    cur_major, cur_minor = (int(x) for x in SCHEMA_VERSION.split("."))
    if major != cur_major or minor > cur_minor:
        raise SchemaError(
            f"{where}: schema_version {version!r} is not readable by this package (it reads {SCHEMA_VERSION!r} and older minor versions)"
        )


def extend(base: Taxonomy, data: dict) -> tuple[Taxonomy, list[Violation]]:
    """Add an extension's nodes and edges to a copy of ``base`` and set its annotations'
    notes on existing edges, collecting every violation (schema ones while adding,
    structural ones after).

    Args:
        base: the taxonomy to extend (left unchanged).
        data: the extension mapping.

    Returns:
        (the extended copy, the violations).
    """
    tax = base.copy()
    out: list[Violation] = []
    for i, raw in enumerate(data.get("nodes", []) or []):
        label = f"node #{i + 1} ({raw.get('id', '?') if isinstance(raw, dict) else '?'})"
        try:
            tax.add_node(node_from_dict(raw))
        except DuplicateError as exc:
            out.append(Violation("duplicate-node", f"{label}: {exc}"))
        except ValidationError as exc:
            out.append(Violation("invalid-node", describe_validation_error(exc, label)))
        except SchemaError as exc:
            out.append(Violation("invalid-node", f"{label}: {exc}"))
    for i, raw in enumerate(data.get("edges", []) or []):
        label = f"edge #{i + 1}"
        try:
            tax.add(edge_from_dict(raw))
        except DanglingEdgeError as exc:
            out.append(Violation("dangling-edge", f"{label}: {exc}"))
        except MistypedEdgeError as exc:
            out.append(Violation("mistyped-edge", f"{label}: {exc}"))
        except DuplicateError as exc:
            out.append(Violation("duplicate-edge", f"{label}: {exc}"))
        except ValidationError as exc:
            out.append(Violation("invalid-edge", describe_validation_error(exc, label)))
        except SchemaError as exc:
            out.append(Violation("invalid-edge", f"{label}: {exc}"))
    for i, raw in enumerate(data.get("annotations", []) or []):
        label = f"annotation #{i + 1}"
        if not isinstance(raw, dict) or not {"source", "target", "kind", "note"} <= set(raw):
            out.append(Violation("invalid-annotation", f"{label}: needs source, target, kind and note"))
            continue
        try:
            tax.annotate(raw["source"], raw["target"], raw["kind"], str(raw["note"]))
        except (SchemaError, ValueError) as exc:
            out.append(Violation("invalid-annotation", f"{label}: {exc}"))
    return tax, sorted(out) + validate(tax)


def load_extension(base: Taxonomy, path: str | Path) -> tuple[Taxonomy, list[Violation]]:
    """Read an extension file and apply it to ``base`` (see :func:`extend`).

    Args:
        base: the taxonomy to extend.
        path: the extension file.

    Returns:
        (the extended copy, the violations; a parse error is one violation).
    """
    try:
        data = read_extension(path)
    except SchemaError as exc:
        return base.copy(), [Violation("parse-error", str(exc))]
    return extend(base, data)
