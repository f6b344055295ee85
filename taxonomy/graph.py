"""The taxonomy graph: a networkx MultiDiGraph with a small typed API on top.

Nodes are keyed by id and carry their typed model under the attribute ``node``;
edges are keyed by their kind, so at most one edge of each kind joins two nodes.
Every mutation goes through :meth:`Taxonomy.add_node` / :meth:`Taxonomy.add_edge`,
which enforce the schema (:mod:`silentfail.taxonomy.schema`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import networkx as nx

from .schema import (
    DanglingEdgeError,
    DuplicateError,
    Edge,
    EdgeKind,
    Node,
    NodeKind,
    Reference,
    SchemaError,
    check_edge_kinds,
)


class Taxonomy:
    """A typed, validated graph of causes, mechanisms, failure modes and detectors."""

    def __init__(self) -> None:
        self._g = nx.MultiDiGraph()

    # ------------------------------------------------------------------ building
    def add_node(self, node: Node) -> Node:
        """Add a typed node; a second node with the same id is an error.

        Args:
            node: a typed node (:mod:`silentfail.taxonomy.schema`).

        Returns:
            The node.

        Raises:
            DuplicateError: a node with this id exists.
        """
        if node.id in self._g:
            raise DuplicateError(f"duplicate node id {node.id!r}")
        self._g.add_node(node.id, node=node)
        return node

    def add_edge(self, source: str, target: str, kind: EdgeKind | str, **attrs) -> Edge:
        """Add a typed edge after checking both ends exist and the kinds fit.

        Raises:
            SchemaError: naming the missing end, or both ends with their kinds and the
                pairs the edge kind allows.

        Args:
            source: the source node id.
            target: the target node id.
            kind: the edge kind.
            **attrs: the edge's attributes (``scope`` of ``detects``, ``strength`` of ``influences``, ...).

        Returns:
            The edge.
        """
        edge = Edge(source=source, target=target, kind=EdgeKind(kind), **attrs)
        return self.add(edge)

    def add(self, edge: Edge) -> Edge:
        """Add an already-built :class:`Edge` (see :meth:`add_edge`).

        Args:
            edge: the edge.

        Returns:
            The edge.
        """
        for end, role in ((edge.source, "source"), (edge.target, "target")):
            if end not in self._g:
                raise DanglingEdgeError(
                    f"{edge.kind.value} edge {edge.source!r} -> {edge.target!r}: "
                    f"{role} {end!r} is not a node of the taxonomy"
                )
        check_edge_kinds(edge, self.kind_of(edge.source), self.kind_of(edge.target))
        if self._g.has_edge(edge.source, edge.target, key=edge.kind.value):
            raise DuplicateError(f"duplicate {edge.kind.value} edge {edge.source!r} -> {edge.target!r}")
        self._g.add_edge(edge.source, edge.target, key=edge.kind.value, edge=edge)
        return edge

    def annotate(self, source: str, target: str, kind: EdgeKind | str, note: str) -> Edge:
        """Set the note of an existing edge (e.g. a measured verdict of an influence).

        Args:
            source: the source node id.
            target: the target node id.
            kind: the edge kind.
            note: the new note.

        Returns:
            The annotated edge.

        Raises:
            SchemaError: no such edge.
        """
        key = EdgeKind(kind).value
        if not self._g.has_edge(source, target, key=key):
            raise SchemaError(f"no {key} edge {source!r} -> {target!r} to annotate")
        data = self._g.edges[source, target, key]
        data["edge"] = data["edge"].model_copy(update={"note": note})
        return data["edge"]

    def copy(self) -> Taxonomy:
        """An independent copy of the graph.

        Returns:
            A Taxonomy with the same nodes and edges.
        """
        other = Taxonomy()
        other._g = self._g.copy()
        return other

    # ------------------------------------------------------------------ reading
    @property
    def graph(self) -> nx.MultiDiGraph:
        """The underlying networkx graph (read it; mutate only through this class)."""
        return self._g

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._g

    def __len__(self) -> int:
        return self._g.number_of_nodes()

    def node(self, node_id: str) -> Node:
        """The typed node with this id; an unknown id is an error naming it.

        Args:
            node_id: the id.

        Returns:
            The node.
        """
        try:
            return self._g.nodes[node_id]["node"]
        except KeyError:
            raise SchemaError(f"unknown node {node_id!r}") from None

    def kind_of(self, node_id: str) -> NodeKind:
        """The kind of node ``node_id``.

        Args:
            node_id: the id.

        Returns:
            Its NodeKind.
        """
        return self.node(node_id).kind

    def nodes(self, kind: NodeKind | str | None = None) -> list[Node]:
        """Nodes (of one kind, if given) in a deterministic order.

        Args:
            kind: a node kind, or None for all.

        Returns:
            The nodes.
        """
        want = NodeKind(kind) if kind is not None else None
        out = [d["node"] for _, d in self._g.nodes(data=True)]
        if want is not None:
            out = [n for n in out if n.kind is want]
        return sorted(out, key=_node_order)

    def edges(self, kind: EdgeKind | str | None = None) -> list[Edge]:
        """Edges (of one kind, if given), sorted by (kind, source, target).

        Args:
            kind: an edge kind, or None for all.

        Returns:
            The edges.
        """
        want = EdgeKind(kind) if kind is not None else None
        out = [d["edge"] for _, _, d in self._g.edges(data=True)]
        if want is not None:
            out = [e for e in out if e.kind is want]
        return sorted(out, key=lambda e: (e.kind.value, e.source, e.target))

    def out_edges(self, node_id: str, kind: EdgeKind | str | None = None) -> list[Edge]:
        """The edges out of ``node_id`` (of ``kind``), sorted by kind and target.

        Args:
            node_id: the source id.
            kind: an edge kind, or None for all.

        Returns:
            The edges.
        """
        want = EdgeKind(kind) if kind is not None else None
        out = [d["edge"] for _, _, d in self._g.out_edges(node_id, data=True)]
        return sorted((e for e in out if want is None or e.kind is want), key=lambda e: (e.kind.value, e.target))

    def in_edges(self, node_id: str, kind: EdgeKind | str | None = None) -> list[Edge]:
        """The edges into ``node_id`` (of ``kind``), sorted by kind and source.

        Args:
            node_id: the target id.
            kind: an edge kind, or None for all.

        Returns:
            The edges.
        """
        want = EdgeKind(kind) if kind is not None else None
        out = [d["edge"] for _, _, d in self._g.in_edges(node_id, data=True)]
        return sorted((e for e in out if want is None or e.kind is want), key=lambda e: (e.kind.value, e.source))

    def successors(self, node_id: str, kind: EdgeKind | str) -> list[str]:
        """The targets of ``node_id``'s edges of ``kind``.

        Args:
            node_id: the source id.
            kind: the edge kind.

        Returns:
            The target ids.
        """
        return [e.target for e in self.out_edges(node_id, kind)]

    def predecessors(self, node_id: str, kind: EdgeKind | str) -> list[str]:
        """The sources of the edges of ``kind`` into ``node_id``.

        Args:
            node_id: the target id.
            kind: the edge kind.

        Returns:
            The source ids.
        """
        return [e.source for e in self.in_edges(node_id, kind)]

    def references_of(self, node_id: str) -> list[Reference]:
        """The references a node cites (its ``cites`` edges).

        Args:
            node_id: the citing node.

        Returns:
            The Reference nodes (with their BibTeX).
        """
        return [self.node(r) for r in self.successors(node_id, EdgeKind.CITES)]  # type: ignore[misc]

    def find(self, name: str) -> Node:
        """A node by id, name or alias (case-insensitive); unknown names are an error.

        Args:
            name: an id, a name or an alias.

        Returns:
            The node.
        """
        if name in self._g:
            return self.node(name)
        low = name.strip().lower()
        hits = [n for n in self.nodes() if n.name.lower() == low or low in (a.lower() for a in n.aliases)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise SchemaError(f"no node with id, name or alias {name!r}")
        raise SchemaError(f"{name!r} names several nodes: {', '.join(h.id for h in hits)}")

    def ids(self, kind: NodeKind | str) -> list[str]:
        """The ids of the nodes of ``kind``.

        Args:
            kind: the node kind.

        Returns:
            The ids, in node order.
        """
        return [n.id for n in self.nodes(kind)]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Taxonomy):
            return NotImplemented
        return self.nodes() == other.nodes() and self.edges() == other.edges()

    def extend(self, nodes: Iterable[Node] = (), edges: Iterable[Edge] = ()) -> Taxonomy:
        """Add nodes then edges; stops at the first error (see ``extension.load``
        for collecting every error of a user file).

        Args:
            nodes: nodes to add.
            edges: edges to add (their ends may be among ``nodes``).

        Returns:
            This taxonomy.
        """
        for n in nodes:
            self.add_node(n)
        for e in edges:
            self.add(e)
        return self


_KIND_ORDER = {k: i for i, k in enumerate(NodeKind)}


def _node_order(node: Node) -> tuple:
    return (_KIND_ORDER[node.kind], getattr(node, "index", 0), getattr(node, "order", 0), node.id)
