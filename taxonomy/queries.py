"""Queries on the taxonomy: which modes are silent under a constraint set, what causes
a mode, which detectors survive, the causal paths, the coverage matrix, and the
benchmark landscape of Oh & Bui (KDD '26) with its structural divide.

*Structural* silence is what the graph can decide: a mode is silent under a
constraint set when every detector of it (of the requested scope) requires some
access that a constraint in the set blocks. A ``detects`` edge has a scope: the
failure of the deployed (personalized) models, or of the global model. The default
scope of the silence queries is ``any`` (a detector of either scope): an alarm of a
global-model detector in the failure's window still detects it, which is what the
simulation counts (a test checks graph and simulation against each other over every
preset and constraint subset). Constraints that only *mask* an
observable (DP noise, partial participation) degrade a detector's power without
removing it; that quantitative silence is the simulation's and the proofs' job.
All outputs are in a deterministic order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import networkx as nx

from .builtin import FEDERATED_CONSTRAINTS, MODE_COLUMNS
from .graph import Taxonomy
from .schema import CAUSAL_EDGES, EdgeKind, NodeKind, SchemaError

Scope = str  # "deployed" | "global" | "any"
SCOPES = ("deployed", "global", "any")


@dataclass(frozen=True)
class Block:
    """Detector ``detector`` needs ``access``, which ``constraint`` blocks."""

    detector: str
    access: str
    constraint: str

    def __str__(self) -> str:
        return f"{self.detector} -requires-> {self.access} <-blocks- {self.constraint}"


@dataclass(frozen=True)
class SilentMode:
    """A mode that no available detector can see, with the blocking paths as the reason."""

    mode: str
    blocks: tuple[Block, ...]
    undeployed: tuple[str, ...] = ()

    def explanation(self) -> str:
        """Why the mode is silent: each blocking path, and the detectors not deployed.

        Returns:
            One line per blocking path, then the undeployed detectors.
        """
        parts = [str(b) for b in self.blocks]
        if self.undeployed:
            parts.append("not deployed: " + ", ".join(self.undeployed))
        return "; ".join(parts) if parts else "no detector of this scope exists"


@dataclass(frozen=True)
class DetectorStatus:
    """A detector of a mode under a constraint set: blocked, degraded (an observable is
    masked) or clear."""

    detector: str
    blocked_by: tuple[Block, ...] = ()
    degraded_by: tuple[tuple[str, str], ...] = ()  # (observable, constraint)

    @property
    def survives(self) -> bool:
        """Whether no constraint blocks an access the detector requires."""
        return not self.blocked_by


def _check_ids(tax: Taxonomy, ids: Iterable[str], kind: NodeKind, what: str) -> tuple[str, ...]:
    out = []
    for i in ids:
        if i not in tax:
            raise SchemaError(f"unknown {what} {i!r}; known: {', '.join(tax.ids(kind))}")
        if tax.kind_of(i) is not kind:
            raise SchemaError(f"{i!r} is a {tax.kind_of(i).value}, not a {kind.value}")
        out.append(i)
    return tuple(sorted(set(out)))


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise SchemaError(f"scope must be 'deployed', 'global' or 'any', got {scope!r}")


def blocked_access(tax: Taxonomy, constraints: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Access id -> the constraints of the set that block it.

    Args:
        tax: the taxonomy.
        constraints: the constraint ids in force.

    Returns:
        ``{access id: (blocking constraint ids)}`` for every blocked access.
    """
    cons = _check_ids(tax, constraints, NodeKind.CONSTRAINT, "constraint")
    out: dict[str, list[str]] = {}
    for c in cons:
        for acc in tax.successors(c, EdgeKind.BLOCKS):
            out.setdefault(acc, []).append(c)
    return {a: tuple(sorted(cs)) for a, cs in sorted(out.items())}


def detector_status(tax: Taxonomy, detector: str, constraints: Iterable[str]) -> DetectorStatus:
    """Whether a detector survives a constraint set, and why not.

    Args:
        tax: the taxonomy.
        detector: a detector id.
        constraints: the constraint ids in force.

    Returns:
        DetectorStatus: the blocking paths (access and the constraints that block it)
        and the (observable, constraint) pairs that only degrade it; ``survives`` when
        nothing blocks it.
    """
    (det,) = _check_ids(tax, [detector], NodeKind.DETECTOR, "detector")
    cons = _check_ids(tax, constraints, NodeKind.CONSTRAINT, "constraint")
    blocked = blocked_access(tax, cons)
    blocks = tuple(Block(det, acc, c) for acc in tax.successors(det, EdgeKind.REQUIRES) for c in blocked.get(acc, ()))
    degraded = tuple(
        (obs, c)
        for obs in tax.successors(det, EdgeKind.OBSERVES)
        for c in tax.predecessors(obs, EdgeKind.MASKS)
        if c in cons
    )
    return DetectorStatus(det, blocks, degraded)


def mode_detectors(tax: Taxonomy, mode: str, scope: Scope = "deployed") -> list[str]:
    """All detectors with a ``detects`` edge of this scope (``any``: either) to the mode.

    Args:
        tax: the taxonomy.
        mode: a failure mode id.
        scope: ``any``, ``deployed`` or ``global``.

    Returns:
        The detector ids.
    """
    _check_scope(scope)
    (m,) = _check_ids(tax, [mode], NodeKind.FAILURE_MODE, "failure mode")
    return list(dict.fromkeys(e.source for e in tax.in_edges(m, EdgeKind.DETECTS) if scope in ("any", e.scope)))


def detectors_for(
    tax: Taxonomy,
    mode: str,
    constraints: Iterable[str] = (),
    *,
    scope: Scope = "any",
    detectors: Iterable[str] | None = None,
) -> list[str]:
    """The detectors of ``mode`` (of ``scope``, among ``detectors`` if given) that survive
    the constraint set.

    Args:
        tax: the taxonomy.
        mode: a failure mode id.
        constraints: the constraint ids in force.
        scope: ``any``, ``deployed`` or ``global`` (see :func:`silent_modes`).
        detectors: the detectors deployed (default: all).

    Returns:
        The surviving detector ids.
    """
    pool = set(_check_ids(tax, detectors, NodeKind.DETECTOR, "detector")) if detectors is not None else None
    cons = tuple(constraints)
    return [
        d
        for d in mode_detectors(tax, mode, scope)
        if (pool is None or d in pool) and detector_status(tax, d, cons).survives
    ]


def _modes(tax: Taxonomy) -> list[str]:
    return tax.ids(NodeKind.FAILURE_MODE)


def silent_modes(
    tax: Taxonomy,
    constraints: Iterable[str],
    detectors: Iterable[str] | None = None,
    *,
    scope: Scope = "any",
) -> list[SilentMode]:
    """The modes that no available detector can see once the constraints block the access
    it requires, each with the blocking paths (and undeployed detectors) as explanation.

    Args:
        tax: the taxonomy.
        constraints: constraint ids in force.
        detectors: the detectors deployed (default: all in the taxonomy).
        scope: ``any`` (default: a detector of either scope), ``deployed`` (only detectors
            of the personalized models' failures) or ``global`` (of the global model's).

    Returns:
        One SilentMode(mode, blocks, undeployed) per structurally silent mode.
    """
    cons = _check_ids(tax, constraints, NodeKind.CONSTRAINT, "constraint")
    pool = (
        set(_check_ids(tax, detectors, NodeKind.DETECTOR, "detector"))
        if detectors is not None
        else set(tax.ids(NodeKind.DETECTOR))
    )
    out = []
    for mode in _modes(tax):
        blocks: list[Block] = []
        undeployed: list[str] = []
        visible = False
        for det in mode_detectors(tax, mode, scope):
            status = detector_status(tax, det, cons)
            if not status.survives:
                blocks.extend(status.blocked_by)
            elif det in pool:
                visible = True
                break
            else:
                undeployed.append(det)
        if not visible:
            out.append(SilentMode(mode, tuple(blocks), tuple(undeployed)))
    return out


def causal_graph(tax: Taxonomy, *, influences: bool = False) -> nx.DiGraph:
    """The subgraph of causal edges (causes, enables, amplifies, masks) as a DiGraph;
    with ``influences`` also the mode-to-mode influence edges.

    Args:
        tax: the taxonomy.
        influences: include the influence edges.

    Returns:
        A networkx DiGraph over the node ids.
    """
    kinds = CAUSAL_EDGES | {EdgeKind.INFLUENCES} if influences else CAUSAL_EDGES
    g = nx.DiGraph()
    g.add_nodes_from(n.id for n in tax.nodes())
    g.add_edges_from((e.source, e.target) for e in tax.edges() if e.kind in kinds)
    return g


def causes_of(tax: Taxonomy, mode: str) -> dict[str, list[str]]:
    """Every node with a causal path to ``mode``, grouped by kind (kind order, then id).

    Args:
        tax: the taxonomy.
        mode: a failure mode id.

    Returns:
        ``{kind: [node ids]}``.
    """
    (m,) = _check_ids(tax, [mode], NodeKind.FAILURE_MODE, "failure mode")
    anc = nx.ancestors(causal_graph(tax), m)
    out: dict[str, list[str]] = {}
    for node in tax.nodes():
        if node.id in anc:
            out.setdefault(node.kind.value, []).append(node.id)
    return out


def paths(tax: Taxonomy, cause: str, mode: str, *, cutoff: int = 6, influences: bool = False) -> list[list[str]]:
    """All simple causal paths from ``cause`` to ``mode`` (sorted by length, then ids);
    with ``influences`` they may continue along mode-to-mode influence edges (a cause of
    amplified bias reaching fairness collapse through the influence between them).

    Args:
        tax: the taxonomy.
        cause: a shift, personalization, threat or constraint id.
        mode: a failure mode id.
        cutoff: the longest path (edges).
        influences: follow influence edges between modes too.

    Returns:
        Each path as the list of node ids from ``cause`` to ``mode``.
    """
    for i in (cause, mode):
        if i not in tax:
            raise SchemaError(f"unknown node {i!r}")
    _check_ids(tax, [mode], NodeKind.FAILURE_MODE, "failure mode")
    found = nx.all_simple_paths(causal_graph(tax, influences=influences), cause, mode, cutoff=cutoff)
    return sorted((list(p) for p in found), key=lambda p: (len(p), p))


def default_constraint_sets(tax: Taxonomy) -> dict[str, tuple[str, ...]]:
    """Named constraint sets for the coverage matrix: none, each constraint alone, the
    standard federated set, with central DP, and all constraints.

    Args:
        tax: the taxonomy.

    Returns:
        ``{set name: constraint ids}``.
    """
    cons = tax.ids(NodeKind.CONSTRAINT)
    sets: dict[str, tuple[str, ...]] = {"none": ()}
    sets.update({c: (c,) for c in cons})
    fed = tuple(c for c in FEDERATED_CONSTRAINTS if c in cons)
    sets["federated"] = fed
    if "central_dp" in cons:
        sets["federated+central_dp"] = tuple(sorted({*fed, "central_dp"}))
    sets["all"] = tuple(cons)
    return sets


@dataclass(frozen=True)
class CoverageMatrix:
    """mode x constraint set -> surviving detectors (and which of them are degraded)."""

    modes: tuple[str, ...]
    constraint_sets: dict[str, tuple[str, ...]]
    scope: Scope
    cells: dict[tuple[str, str], tuple[DetectorStatus, ...]] = field(repr=False)

    def surviving(self, mode: str, set_name: str) -> tuple[str, ...]:
        """The detectors of ``mode`` that survive the constraint set ``set_name``.

        Args:
            mode: a failure mode id.
            set_name: a constraint set of the matrix.

        Returns:
            The surviving detector ids.
        """
        return tuple(s.detector for s in self.cells[(mode, set_name)] if s.survives)

    def silent(self, mode: str, set_name: str) -> bool:
        """Whether no detector of ``mode`` survives ``set_name``.

        Args:
            mode: a failure mode id.
            set_name: a constraint set of the matrix.

        Returns:
            True when the mode is structurally silent under the set.
        """
        return not self.surviving(mode, set_name)

    def rows(self) -> list[list[str]]:
        """Table rows: mode, then per set the surviving detectors ('*' = degraded).

        Returns:
            One row per mode.
        """
        out = []
        for m in self.modes:
            row = [m]
            for s in self.constraint_sets:
                alive = [st.detector + ("*" if st.degraded_by else "") for st in self.cells[(m, s)] if st.survives]
                row.append(", ".join(alive) if alive else "SILENT")
            out.append(row)
        return out


def coverage_matrix(
    tax: Taxonomy,
    constraint_sets: dict[str, Sequence[str]] | None = None,
    *,
    scope: Scope = "deployed",
) -> CoverageMatrix:
    """Which detectors survive for each mode under each constraint set.

    Args:
        tax: the taxonomy.
        constraint_sets: ``{name: constraint ids}`` (default: :func:`default_constraint_sets`).
        scope: ``any``, ``deployed`` or ``global``.

    Returns:
        CoverageMatrix over (mode, set).
    """
    _check_scope(scope)
    sets = {k: tuple(v) for k, v in (constraint_sets or default_constraint_sets(tax)).items()}
    modes = tuple(_modes(tax))
    cells = {
        (m, name): tuple(detector_status(tax, d, cons) for d in mode_detectors(tax, m, scope))
        for m in modes
        for name, cons in sets.items()
    }
    return CoverageMatrix(modes, sets, scope, cells)


def minimal_silencing_sets(
    tax: Taxonomy, mode: str, *, scope: Scope = "any", max_size: int = 3
) -> list[tuple[str, ...]]:
    """The inclusion-minimal constraint sets (up to ``max_size``) that make ``mode``
    structurally silent with every detector deployed.

    Args:
        tax: the taxonomy.
        mode: a failure mode id.
        scope: ``any``, ``deployed`` or ``global``.
        max_size: the largest set searched.

    Returns:
        The minimal constraint sets, smallest first.
    """
    cons = tax.ids(NodeKind.CONSTRAINT)
    found: list[tuple[str, ...]] = []
    for k in range(0, max_size + 1):
        for combo in combinations(cons, k):
            if any(set(f) <= set(combo) for f in found):
                continue
            if any(s.mode == mode for s in silent_modes(tax, combo, scope=scope)):
                found.append(combo)
    return found


# ----------------------------------------------------------------- benchmarks


def benchmark_table(tax: Taxonomy) -> list[dict[str, str]]:
    """The paper's benchmark table (Oh & Bui, Table 1) regenerated from the graph:
    one row per benchmark in the paper's order, each mode rated direct|proxy|none.

    Args:
        tax: the taxonomy.

    Returns:
        One ``{benchmark, category, mode: level}`` dict per benchmark.
    """
    rows = []
    for b in tax.nodes(NodeKind.BENCHMARK):
        levels = {e.target: e.level for e in tax.out_edges(b.id, EdgeKind.COVERS)}
        row = {"category": b.category, "benchmark": b.name, "primary_focus": b.primary_focus}  # type: ignore[attr-defined]
        row.update({m: levels.get(m, "none") for m in MODE_COLUMNS})
        rows.append(row)
    return rows


@dataclass(frozen=True)
class DivideRow:
    """For one mode: benchmarks that cover it directly, and those of them whose access
    survives the constraint set."""

    mode: str
    direct: tuple[str, ...]
    direct_usable: tuple[str, ...]
    proxy_usable: tuple[str, ...]


def structural_divide(tax: Taxonomy, constraints: Iterable[str] = FEDERATED_CONSTRAINTS) -> list[DivideRow]:
    """The paper's central finding, from the graph: under the federated constraints no
    benchmark both covers a mode directly and works with the access they leave.

    Args:
        tax: the taxonomy.
        constraints: the federated constraint set.

    Returns:
        One DivideRow per mode: the benchmarks that cover it directly, those of them whose
        access survives the constraints, and the usable proxies.
    """
    blocked = blocked_access(tax, constraints)
    usable = {
        b.id
        for b in tax.nodes(NodeKind.BENCHMARK)
        if not any(a in blocked for a in tax.successors(b.id, EdgeKind.REQUIRES))
    }
    out = []
    for mode in _modes(tax):
        cov = tax.in_edges(mode, EdgeKind.COVERS)
        direct = tuple(e.source for e in cov if e.level == "direct")
        proxy = tuple(e.source for e in cov if e.level == "proxy")
        out.append(
            DivideRow(mode, direct, tuple(b for b in direct if b in usable), tuple(b for b in proxy if b in usable))
        )
    return out
