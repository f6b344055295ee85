"""Exports of the taxonomy: node-link JSON (with a schema version, and import back),
GraphML, DOT, Mermaid, a booktabs LaTeX table of modes x causes x detectors, and a
layered figure (PNG/SVG) readable at paper size.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import networkx as nx

from .graph import Taxonomy
from .schema import CAUSAL_EDGES, SCHEMA_VERSION, EdgeKind, NodeKind, SchemaError, edge_from_dict, node_from_dict

FORMATS = ("json", "graphml", "dot", "mermaid", "latex", "png", "svg", "pdf")


# --------------------------------------------------------------- node-link JSON


def to_node_link(tax: Taxonomy) -> dict:
    """A JSON-ready node-link document: ``schema_version``, ``nodes``, ``links``.

    Args:
        tax: the taxonomy.

    Returns:
        The document.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "directed": True,
        "multigraph": True,
        "nodes": [n.model_dump(mode="json") for n in tax.nodes()],
        "links": [e.model_dump(mode="json", exclude_none=True) for e in tax.edges()],
    }


def from_node_link(data: dict) -> Taxonomy:
    """Rebuild a taxonomy from :func:`to_node_link` output (schema-checked).

    Args:
        data: a node-link document.

    Returns:
        The taxonomy.
    """
    version = data.get("schema_version")
    if version is None:
        raise SchemaError("node-link document has no 'schema_version'")
    if str(version).split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise SchemaError(f"node-link schema_version {version!r} is incompatible with {SCHEMA_VERSION!r}")
    tax = Taxonomy()
    for raw in data.get("nodes", []):
        tax.add_node(node_from_dict(raw))
    for raw in data.get("links", []):
        tax.add(edge_from_dict(raw))
    return tax


def to_json(tax: Taxonomy) -> str:
    """The taxonomy as node-link JSON.

    Args:
        tax: the taxonomy.

    Returns:
        The JSON text.
    """
    return json.dumps(to_node_link(tax), indent=1, ensure_ascii=False) + "\n"


def from_json(text: str) -> Taxonomy:
    """A taxonomy from node-link JSON (validated).

    Args:
        text: node-link JSON.

    Returns:
        The taxonomy.
    """
    return from_node_link(json.loads(text))


# --------------------------------------------------------------------- GraphML


def _flat(value) -> str | int | float | bool:
    if isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value)


def to_graphml(tax: Taxonomy) -> str:
    """GraphML with scalar attributes (tuples are JSON-encoded strings).

    Args:
        tax: the taxonomy.

    Returns:
        The GraphML text.
    """
    g = nx.MultiDiGraph()
    for n in tax.nodes():
        g.add_node(n.id, **{k: _flat(v) for k, v in n.model_dump(mode="json").items() if k != "id"})
    for e in tax.edges():
        attrs = e.model_dump(mode="json", exclude_none=True)
        g.add_edge(
            e.source,
            e.target,
            key=e.kind.value,
            **{k: _flat(v) for k, v in attrs.items() if k not in ("source", "target")},
        )
    buf = io.BytesIO()
    nx.write_graphml(g, buf)
    return buf.getvalue().decode()


# ------------------------------------------------------------------ DOT, Mermaid

_SHAPES = {
    NodeKind.PERSONALIZATION: "box",
    NodeKind.SHIFT: "box",
    NodeKind.CONSTRAINT: "hexagon",
    NodeKind.THREAT: "octagon",
    NodeKind.MECHANISM: "ellipse",
    NodeKind.FAILURE_MODE: "doubleoctagon",
    NodeKind.OBSERVABLE: "note",
    NodeKind.ACCESS: "cylinder",
    NodeKind.DETECTOR: "component",
    NodeKind.MITIGATION: "house",
    NodeKind.BENCHMARK: "tab",
    NodeKind.REFERENCE: "plaintext",
}
_EDGE_STYLE = {
    EdgeKind.CAUSES: "solid",
    EdgeKind.ENABLES: "dashed",
    EdgeKind.AMPLIFIES: "bold",
    EdgeKind.MASKS: "dotted",
    EdgeKind.BLOCKS: "bold",
    EdgeKind.REQUIRES: "dashed",
    EdgeKind.OBSERVES: "solid",
    EdgeKind.DETECTS: "solid",
    EdgeKind.MITIGATES: "dashed",
    EdgeKind.CITES: "dotted",
    EdgeKind.INFLUENCES: "solid",
    EdgeKind.COVERS: "dotted",
}


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _without_references(tax: Taxonomy, include_references: bool):
    nodes = [n for n in tax.nodes() if include_references or n.kind is not NodeKind.REFERENCE]
    keep = {n.id for n in nodes}
    edges = [e for e in tax.edges() if e.source in keep and e.target in keep]
    return nodes, edges


def to_dot(tax: Taxonomy, *, include_references: bool = False) -> str:
    """Graphviz DOT, one cluster per node kind.

    Args:
        tax: the taxonomy.
        include_references: keep the reference nodes and ``cites`` edges.

    Returns:
        The DOT text.
    """
    nodes, edges = _without_references(tax, include_references)
    lines = ["digraph silentfail {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for kind in NodeKind:
        members = [n for n in nodes if n.kind is kind]
        if not members:
            continue
        lines.append(f"  subgraph cluster_{kind.value} {{")
        lines.append(f"    label={_q(kind.value)};")
        for n in members:
            lines.append(f"    {n.id} [label={_q(n.name)}, shape={_SHAPES[kind]}];")
        lines.append("  }")
    for e in edges:
        extra = e.strength or e.level or e.scope
        label = e.kind.value + (f" ({extra})" if extra else "")
        style = "dashed" if e.strength == "feedback" else _EDGE_STYLE[e.kind]
        lines.append(f"  {e.source} -> {e.target} [label={_q(label)}, style={style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(tax: Taxonomy, *, include_references: bool = False) -> str:
    """A Mermaid flowchart (renders on GitHub).

    Args:
        tax: the taxonomy.
        include_references: keep the reference nodes and ``cites`` edges.

    Returns:
        The Mermaid text.
    """
    nodes, edges = _without_references(tax, include_references)
    lines = ["flowchart LR"]
    for kind in NodeKind:
        members = [n for n in nodes if n.kind is kind]
        if not members:
            continue
        lines.append(f"  subgraph {kind.value}")
        for n in members:
            lines.append(f'    {n.id}["{n.name.replace(chr(34), chr(39))}"]')
        lines.append("  end")
    for e in edges:
        arrow = (
            "-.->"
            if e.kind in (EdgeKind.ENABLES, EdgeKind.MASKS, EdgeKind.REQUIRES) or e.strength == "feedback"
            else "-->"
        )
        lines.append(f"  {e.source} {arrow}|{e.kind.value}| {e.target}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------- LaTeX


def _tex(text: str) -> str:
    out = text
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$")):
        out = out.replace(a, b)
    return out


def to_latex(tax: Taxonomy) -> str:
    """A booktabs table: for each mode, its layer, its causes (shifts, personalization
    rules, constraints, mechanisms) and its detectors (scope in brackets).

    Args:
        tax: the taxonomy.

    Returns:
        The LaTeX table.
    """
    from .queries import causes_of

    def names(ids):
        return ", ".join(_tex(tax.node(i).name) for i in ids) or "--"

    lines = [
        r"\begin{table*}[t]",
        r"\centering\small",
        r"\caption{The silent-failure taxonomy: each mode's causes and detectors (generated by \texttt{silentfail taxonomy export --format latex}).}",
        r"\label{tab:taxonomy}",
        r"\begin{tabular}{@{}l l p{3.1cm} p{3.1cm} p{3.6cm} p{3.6cm}@{}}",
        r"\toprule",
        r"Mode & Layer & Shifts \& personalization & Constraints & Mechanisms & Detectors (scope) \\",
        r"\midrule",
    ]
    for mode in tax.nodes(NodeKind.FAILURE_MODE):
        causes = causes_of(tax, mode.id)
        det = (
            ", ".join(
                f"{_tex(tax.node(e.source).name)} ({e.scope[0]})" for e in tax.in_edges(mode.id, EdgeKind.DETECTS)
            )
            or "--"
        )
        lines.append(
            f"{mode.index}. {_tex(mode.name)} & {mode.layer} & "  # type: ignore[attr-defined]
            f"{names(causes.get('shift', []) + causes.get('personalization', []))} & "
            f"{names(causes.get('constraint', []))} & {names(causes.get('mechanism', []))} & {det} \\\\"
        )
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table*}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------- figure

_FIG_COLUMNS = (
    (NodeKind.SHIFT, NodeKind.PERSONALIZATION, NodeKind.THREAT),
    (NodeKind.CONSTRAINT,),
    (NodeKind.MECHANISM,),
    (NodeKind.FAILURE_MODE,),
    (NodeKind.DETECTOR,),
)
# Okabe-Ito colour-blind-safe palette
_COLOURS = {
    NodeKind.SHIFT: "#E69F00",
    NodeKind.PERSONALIZATION: "#56B4E9",
    NodeKind.THREAT: "#CC79A7",
    NodeKind.CONSTRAINT: "#999999",
    NodeKind.MECHANISM: "#F0E442",
    NodeKind.FAILURE_MODE: "#D55E00",
    NodeKind.DETECTOR: "#009E73",
}


def figure(tax: Taxonomy, *, width: float = 7.0):
    """A layered figure: causes | constraints | mechanisms | modes | detectors.

    Causal edges are grey, ``detects`` edges green (dashed when they see only the
    global model); ``influences``, ``mitigates`` and access edges are omitted for
    legibility (they are in every other export).

    Args:
        tax: the taxonomy.
        width: the figure width in inches.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [[n for k in kinds for n in tax.nodes(k)] for kinds in _FIG_COLUMNS]
    height = max(len(c) for c in cols) * 0.24 + 0.8
    fig, ax = plt.subplots(figsize=(width, height))
    pos: dict[str, tuple[float, float]] = {}
    xs = [0.0, 1.0, 2.0, 3.0, 4.0]

    def place(i: int) -> None:
        for j, n in enumerate(cols[i]):
            pos[n.id] = (xs[i], 1 - (j + 0.5) / len(cols[i]))

    def neighbours_y(node_id: str) -> float:
        ys = [
            pos[e.target][1]
            for e in tax.out_edges(node_id)
            if e.target in pos and pos[e.target][0] != pos.get(node_id, (None,))[0]
        ]
        ys += [
            pos[e.source][1]
            for e in tax.in_edges(node_id)
            if e.source in pos and pos[e.source][0] != pos.get(node_id, (None,))[0]
        ]
        return -sum(ys) / len(ys) if ys else 0.0

    # barycentre ordering: modes fixed by index, then each column by its neighbours
    place(3)
    for i in (2, 0, 1, 4):
        cols[i] = sorted(cols[i], key=lambda n: (neighbours_y(n.id), n.id))
        place(i)
    shown = set(pos)
    for e in tax.edges():
        if e.source not in shown or e.target not in shown or not (e.kind in CAUSAL_EDGES or e.kind is EdgeKind.DETECTS):
            continue
        (x0, y0), (x1, y1) = pos[e.source], pos[e.target]
        if e.kind is EdgeKind.DETECTS:
            x0, x1, y0, y1 = x1, x0, y1, y0  # draw detector -> mode leftwards
            colour, style = "#009E73", ("--" if e.scope == "global" else "-")
        else:
            colour, style = "#7f7f7f", ":" if e.kind is EdgeKind.MASKS else "-"
        ax.plot([x0, x1], [y0, y1], color=colour, ls=style, lw=0.35, alpha=0.6, zorder=1)
    for _x, col in zip(xs, cols):
        for n in col:
            ax.text(
                *pos[n.id],
                n.name,
                ha="center",
                va="center",
                fontsize=4.6,
                zorder=3,
                bbox=dict(boxstyle="round,pad=0.25", fc=_COLOURS[n.kind], ec="black", lw=0.3, alpha=0.95),
            )
    titles = ["Shifts, personalization, threats", "Constraints", "Mechanisms", "Failure modes", "Detectors"]
    for x, t in zip(xs, titles):
        ax.text(x, 1.02, t, ha="center", va="bottom", fontsize=6.5, fontweight="bold")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color="#7f7f7f", lw=0.8, label="causes / enables / amplifies"),
        Line2D([], [], color="#7f7f7f", lw=0.8, ls=":", label="masks"),
        Line2D([], [], color="#009E73", lw=0.8, label="detects (deployed models)"),
        Line2D([], [], color="#009E73", lw=0.8, ls="--", label="detects (global model only)"),
    ]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.045), ncol=4, fontsize=5.5, frameon=False)
    ax.set_xlim(-0.55, 4.55)
    ax.set_ylim(-0.05, 1.06)
    ax.axis("off")
    fig.tight_layout(pad=0.2)
    return fig


def write(tax: Taxonomy, fmt: str, path: str | Path | None = None) -> str | None:
    """Render ``tax`` in ``fmt``; write to ``path`` if given, else return the text.

    Figures (png, svg, pdf) need a path.

    Args:
        tax: the taxonomy.
        fmt: json, graphml, dot, mermaid, latex, png, svg or pdf.
        path: the output file, or None to return the text.

    Returns:
        The text when ``path`` is None, else None.

    Raises:
        SchemaError: an unknown format, or a figure format without a path.
    """
    if fmt not in FORMATS:
        raise SchemaError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt in ("png", "svg", "pdf"):
        if path is None:
            raise SchemaError(f"a {fmt} figure needs an output file (-o FILE)")
        import matplotlib.pyplot as plt

        # text stays text in vector outputs, so it can be edited and searched
        with plt.rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
            fig = figure(tax)
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=300 if fmt == "png" else None)
            plt.close(fig)
        return None
    text = {"json": to_json, "graphml": to_graphml, "dot": to_dot, "mermaid": to_mermaid, "latex": to_latex}[fmt](tax)
    if path is None:
        return text
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    return None
