"""The typed schema of the silent-failure taxonomy: node kinds, edge kinds, and the
(source kind, target kind) pairs each edge kind allows.

The taxonomy connects *causes* (personalization rules, dataset shifts, federated
constraints, threats) through *mechanisms* to the six *failure modes* of Oh & Bui
(KDD '26), and the modes to the *detectors* that could reveal them, each detector
requiring some *access* that a constraint may *block* (paper/main.tex, The taxonomy).

Every node is a frozen pydantic model with an ``id``, a ``name``, a ``definition``
(``formal`` where a formal definition exists), and an ``implementation``: the dotted
path of the object in ``silentfail.sim`` that implements it (empty until the
simulation provides one). References are not stored on the node: they are ``cites``
edges to ``Reference`` nodes, so the graph is the only source of truth.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

SCHEMA_VERSION = "1.0"

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
DOTTED_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


class SchemaError(ValueError):
    """A node or edge that does not fit the taxonomy's schema."""


class DanglingEdgeError(SchemaError):
    """An edge whose source or target is not a node of the taxonomy."""


class MistypedEdgeError(SchemaError):
    """An edge whose (source kind, target kind) pair its edge kind does not allow."""


class DuplicateError(SchemaError):
    """A second node with an existing id, or a second edge of a kind between two nodes."""


class NodeKind(StrEnum):
    """The kinds of node of the taxonomy graph."""

    PERSONALIZATION = "personalization"
    SHIFT = "shift"
    CONSTRAINT = "constraint"
    THREAT = "threat"
    MECHANISM = "mechanism"
    FAILURE_MODE = "failure_mode"
    OBSERVABLE = "observable"
    ACCESS = "access"
    DETECTOR = "detector"
    MITIGATION = "mitigation"
    BENCHMARK = "benchmark"
    REFERENCE = "reference"


class EdgeKind(StrEnum):
    """The kinds of edge of the taxonomy graph (schema.ALLOWED says which node kinds each connects)."""

    CAUSES = "causes"
    ENABLES = "enables"
    AMPLIFIES = "amplifies"
    MASKS = "masks"
    BLOCKS = "blocks"
    REQUIRES = "requires"
    OBSERVES = "observes"
    DETECTS = "detects"
    MITIGATES = "mitigates"
    CITES = "cites"
    INFLUENCES = "influences"
    COVERS = "covers"


K = NodeKind
_CAUSE_KINDS = (K.PERSONALIZATION, K.SHIFT, K.CONSTRAINT, K.THREAT)

#: The (source kind, target kind) pairs each edge kind allows.
ALLOWED: dict[EdgeKind, frozenset[tuple[NodeKind, NodeKind]]] = {
    EdgeKind.CAUSES: frozenset(
        {(s, K.MECHANISM) for s in (K.PERSONALIZATION, K.SHIFT, K.THREAT, K.MECHANISM)}
        | {(K.MECHANISM, K.FAILURE_MODE), (K.THREAT, K.FAILURE_MODE)}
    ),
    EdgeKind.ENABLES: frozenset({(s, t) for s in (K.CONSTRAINT, K.PERSONALIZATION) for t in (K.MECHANISM, K.THREAT)}),
    EdgeKind.AMPLIFIES: frozenset({(s, K.MECHANISM) for s in (*_CAUSE_KINDS, K.MECHANISM)}),
    EdgeKind.MASKS: frozenset({(s, t) for s in (K.CONSTRAINT, K.MECHANISM) for t in (K.FAILURE_MODE, K.OBSERVABLE)}),
    EdgeKind.BLOCKS: frozenset({(K.CONSTRAINT, K.ACCESS)}),
    EdgeKind.REQUIRES: frozenset({(s, K.ACCESS) for s in (K.DETECTOR, K.OBSERVABLE, K.BENCHMARK, K.MITIGATION)}),
    EdgeKind.OBSERVES: frozenset({(K.DETECTOR, K.OBSERVABLE)}),
    EdgeKind.DETECTS: frozenset({(K.DETECTOR, K.FAILURE_MODE)}),
    EdgeKind.MITIGATES: frozenset(
        {(K.MITIGATION, t) for t in (K.MECHANISM, K.FAILURE_MODE, K.THREAT)} | {(K.CONSTRAINT, K.THREAT)}
    ),
    EdgeKind.CITES: frozenset({(s, K.REFERENCE) for s in NodeKind if s is not K.REFERENCE}),
    EdgeKind.INFLUENCES: frozenset({(K.FAILURE_MODE, K.FAILURE_MODE)}),
    EdgeKind.COVERS: frozenset({(K.BENCHMARK, K.FAILURE_MODE)}),
}

#: Edge kinds along which a cause reaches a failure mode.
CAUSAL_EDGES = frozenset({EdgeKind.CAUSES, EdgeKind.ENABLES, EdgeKind.AMPLIFIES, EdgeKind.MASKS})


def allowed_pairs_text(kind: EdgeKind) -> str:
    """The allowed (source, target) kind pairs of an edge kind, sorted, as text.

    Args:
        kind: the edge kind.

    Returns:
        "source -> target" pairs, comma-separated.
    """
    return ", ".join(f"{s.value}->{t.value}" for s, t in sorted(ALLOWED[kind]))


# --------------------------------------------------------------------------- nodes


class NodeBase(BaseModel):
    """Fields every node has."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=ID_PATTERN, description="stable snake_case identifier")]
    name: Annotated[str, Field(min_length=1, description="human-readable name")]
    definition: Annotated[str, Field(min_length=1, description="one-paragraph definition")]
    formal: str = Field("", description="formal definition (LaTeX-style maths) where one exists")
    aliases: tuple[str, ...] = Field((), description="other names the literature uses")
    implementation: str = Field("", description="dotted path of the object in silentfail.sim implementing this node")

    @field_validator("implementation")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if value and not DOTTED_PATH.match(value):
            raise ValueError(f"implementation must be a dotted Python path, got {value!r}")
        return value


class Personalization(NodeBase):
    """A local personalization rule (paper/main.tex, The taxonomy)."""

    kind: Literal[NodeKind.PERSONALIZATION] = NodeKind.PERSONALIZATION


class Shift(NodeBase):
    """A client dataset-shift family (Moreno-Torres et al. 2012): what it changes and
    what it keeps invariant, in terms of P(x), P(y), P(y|x), P(x|y), P(a)."""

    kind: Literal[NodeKind.SHIFT] = NodeKind.SHIFT
    changes: tuple[str, ...] = Field(..., min_length=1, description="distributions that change")
    invariant: tuple[str, ...] = Field((), description="distributions kept fixed")


class Constraint(NodeBase):
    """A federated privacy or system constraint under which the server operates."""

    kind: Literal[NodeKind.CONSTRAINT] = NodeKind.CONSTRAINT


class Threat(NodeBase):
    """An adversarial or leakage threat named by the FM-FL literature."""

    kind: Literal[NodeKind.THREAT] = NodeKind.THREAT


class Mechanism(NodeBase):
    """A causal mechanism that links causes to failure modes."""

    kind: Literal[NodeKind.MECHANISM] = NodeKind.MECHANISM


class FailureMode(NodeBase):
    """One of the silent failure modes (paper/main.tex, The taxonomy).

    ``worse`` says which direction of the ground-truth metric is a failure;
    ``no_detector_under`` is the explicit annotation a mode without any ``detects``
    edge must carry: the constraint sets under which it has no detector.
    """

    kind: Literal[NodeKind.FAILURE_MODE] = NodeKind.FAILURE_MODE
    index: int = Field(..., ge=1, description="position in the taxonomy (1-6 for the paper's modes)")
    layer: Literal["data", "model", "system"]
    gist: str = Field("", description="the source paper's gist of the mode")
    metric: str = Field(..., min_length=1, description="the ground-truth metric that defines failure")
    worse: Literal["higher", "lower"]
    no_detector_under: tuple[tuple[str, ...], ...] = ()


class Observable(NodeBase):
    """Something the server may see (paper/main.tex, The taxonomy)."""

    kind: Literal[NodeKind.OBSERVABLE] = NodeKind.OBSERVABLE


class Access(NodeBase):
    """A kind of access that a detector, observable, benchmark or mitigation needs."""

    kind: Literal[NodeKind.ACCESS] = NodeKind.ACCESS


class Detector(NodeBase):
    """A function of an observable trace to an alarm round (paper/main.tex, The taxonomy)."""

    kind: Literal[NodeKind.DETECTOR] = NodeKind.DETECTOR


class Mitigation(NodeBase):
    """A remedy for a mechanism, mode or threat."""

    kind: Literal[NodeKind.MITIGATION] = NodeKind.MITIGATION


class Benchmark(NodeBase):
    """An evaluation benchmark rated against the modes (Oh & Bui, Table 1)."""

    kind: Literal[NodeKind.BENCHMARK] = NodeKind.BENCHMARK
    category: Literal["Federated", "Centralized"]
    primary_focus: str
    order: int = Field(..., ge=0, description="row position in the paper's table")


class Reference(NodeBase):
    """A citable work; ``bibtex`` holds one complete BibTeX entry whose key is the id."""

    kind: Literal[NodeKind.REFERENCE] = NodeKind.REFERENCE
    bibtex: str

    @model_validator(mode="after")
    def _key_matches(self) -> Reference:
        m = re.match(r"\s*@\w+\s*\{\s*([^,\s]+)\s*,", self.bibtex)
        if not m:
            raise ValueError("bibtex must be one entry of the form @type{key, ...}")
        if m.group(1) != self.id:
            raise ValueError(f"bibtex key {m.group(1)!r} must equal the node id {self.id!r}")
        return self


Node = Annotated[
    Union[
        Personalization,
        Shift,
        Constraint,
        Threat,
        Mechanism,
        FailureMode,
        Observable,
        Access,
        Detector,
        Mitigation,
        Benchmark,
        Reference,
    ],
    Field(discriminator="kind"),
]
NODE_ADAPTER: TypeAdapter[Node] = TypeAdapter(Node)


def node_from_dict(data: dict) -> Node:
    """Build a typed node from a plain mapping (``kind`` selects the class).

    Args:
        data: the node's fields.

    Returns:
        The typed node.

    Raises:
        SchemaError: an unknown kind; pydantic.ValidationError: a bad field.
    """
    if not isinstance(data, dict):
        raise SchemaError(f"a node must be a table/object, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in {k.value for k in NodeKind}:
        raise SchemaError(
            f"node {data.get('id', '?')!r}: unknown kind {kind!r}; known kinds: {', '.join(k.value for k in NodeKind)}"
        )
    return NODE_ADAPTER.validate_python(data)


# --------------------------------------------------------------------------- edges


class Edge(BaseModel):
    """A typed edge. ``influences`` carries a ``strength``, ``covers`` a ``level`` and
    ``detects`` a ``scope``; other kinds carry none of these."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    target: str
    kind: EdgeKind
    strength: Literal["primary", "feedback"] | None = Field(
        None, description="influences only: primary or feedback (dashed) influence"
    )
    level: Literal["direct", "proxy"] | None = Field(
        None, description="covers only: the benchmark measures the mode directly or by proxy"
    )
    scope: Literal["deployed", "global"] | None = Field(
        None,
        description="detects only: the detector sees the deployed (personalized) models' "
        "behaviour, or only the global model's",
    )
    note: str = ""

    @model_validator(mode="after")
    def _attributes_fit_kind(self) -> Edge:
        needs = {EdgeKind.INFLUENCES: "strength", EdgeKind.COVERS: "level", EdgeKind.DETECTS: "scope"}
        for kind, attr in needs.items():
            value = getattr(self, attr)
            if self.kind is kind and value is None:
                raise ValueError(f"a {kind.value} edge needs '{attr}'")
            if self.kind is not kind and value is not None:
                raise ValueError(f"'{attr}' is only for {kind.value} edges, not {self.kind.value}")
        return self

    @property
    def key(self) -> tuple[str, str, str]:
        """(source, target, kind): an edge's identity."""
        return (self.source, self.target, self.kind.value)


def edge_from_dict(data: dict) -> Edge:
    """Build an edge from a plain mapping, naming the unknown kind if there is one.

    Args:
        data: the edge's fields.

    Returns:
        The edge.

    Raises:
        SchemaError: an unknown kind; pydantic.ValidationError: a bad field.
    """
    if not isinstance(data, dict):
        raise SchemaError(f"an edge must be a table/object, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in {k.value for k in EdgeKind}:
        raise SchemaError(
            f"edge {data.get('source', '?')}->{data.get('target', '?')}: unknown edge kind "
            f"{kind!r}; known kinds: {', '.join(k.value for k in EdgeKind)}"
        )
    return Edge.model_validate(data)


def check_edge_kinds(edge: Edge, source_kind: NodeKind, target_kind: NodeKind) -> None:
    """Raise SchemaError naming both ends and the allowed pairs if the edge is mistyped.

    Args:
        edge: the edge.
        source_kind: its source's kind.
        target_kind: its target's kind.

    Raises:
        MistypedEdgeError: the pair is not allowed for the edge kind.
    """
    if (source_kind, target_kind) not in ALLOWED[edge.kind]:
        raise MistypedEdgeError(
            f"{edge.kind.value} edge {edge.source!r} ({source_kind.value}) -> "
            f"{edge.target!r} ({target_kind.value}) is not allowed; "
            f"{edge.kind.value} allows: {allowed_pairs_text(edge.kind)}"
        )


def describe_validation_error(exc: Exception, what: str) -> str:
    """One line per problem of a pydantic ValidationError, each naming the field.

    Args:
        exc: the ValidationError.
        what: the label of the object validated.

    Returns:
        The message.
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"{what}: {exc}"
    parts = []
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int))
        # the discriminated union prefixes the kind: drop it from the field path
        loc = loc.split(".", 1)[1] if "." in loc and loc.split(".")[0] in {k.value for k in NodeKind} else loc
        parts.append(f"{what}: field '{loc or '?'}': {err.get('msg', '')}")
    return "; ".join(parts)
