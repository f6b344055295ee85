"""Exports: JSON round trip, GraphML, DOT, Mermaid, LaTeX, figures."""

from __future__ import annotations

import io
import json

import matplotlib.image as mpimg
import networkx as nx
import pytest

from silentfail.taxonomy import SCHEMA_VERSION, NodeKind, SchemaError
from silentfail.taxonomy import export as ex


def test_node_link_json_round_trip_is_equal(tax):
    text = ex.to_json(tax)
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION
    back = ex.from_json(text)
    assert back == tax
    assert ex.to_json(back) == text  # byte-identical second trip


def test_node_link_import_rejects_other_major_versions(tax):
    data = ex.to_node_link(tax)
    data["schema_version"] = "2.0"
    with pytest.raises(SchemaError, match="incompatible"):
        ex.from_node_link(data)
    del data["schema_version"]
    with pytest.raises(SchemaError, match="no 'schema_version'"):
        ex.from_node_link(data)


def test_node_link_import_enforces_the_schema(tax):
    data = ex.to_node_link(tax)
    data["links"].append({"source": "label_shift", "target": "central_audit", "kind": "causes"})
    with pytest.raises(SchemaError, match="not allowed"):
        ex.from_node_link(data)


def test_graphml_parses_back_with_the_same_structure(tax):
    g = nx.read_graphml(io.StringIO(ex.to_graphml(tax)), force_multigraph=True)
    assert g.number_of_nodes() == len(tax)
    assert g.number_of_edges() == len(tax.edges())
    assert g.nodes["alignment_erosion"]["kind"] == "failure_mode"
    assert json.loads(g.nodes["label_shift"]["invariant"]) == ["P(x|y,a)", "P(a|y)"]


def test_dot_and_mermaid_mention_every_non_reference_node(tax):
    dot, mer = ex.to_dot(tax), ex.to_mermaid(tax)
    assert dot.startswith("digraph silentfail {") and dot.rstrip().endswith("}")
    assert mer.startswith("flowchart LR")
    for n in tax.nodes():
        if n.kind is not NodeKind.REFERENCE:
            assert f"  {n.id} [" in dot
            assert f'{n.id}["' in mer
    assert "amplified_bias -> confidence_miscalibration" in dot
    assert dot.count("{") == dot.count("}")


def test_latex_table_is_booktabs_with_a_row_per_mode(tax):
    tex = ex.to_latex(tax)
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}"):
        assert cmd in tex
    rows = [
        line
        for line in tex.splitlines()
        if line.rstrip().endswith(r"\\") and line[:2] in {f"{i}." for i in range(1, 7)}
    ]
    assert len(rows) == 6
    assert "_" not in tex.replace(r"\_", "").replace(r"\texttt{silentfail taxonomy export --format latex}", "")


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_figures_are_written_at_paper_size(tax, tmp_path, fmt):
    out = tmp_path / f"taxonomy.{fmt}"
    ex.write(tax, fmt, out)
    assert out.stat().st_size > 10_000
    if fmt == "png":
        img = mpimg.imread(out)
        # 7 inches at 300 dpi: readable in a two-column paper's full width
        assert img.shape[1] == 2100 and img.shape[0] > 900
    else:
        text = out.read_text()
        assert text.lstrip().startswith("<?xml") and "Alignment erosion" in text


def test_unknown_format_and_missing_figure_path(tax):
    with pytest.raises(SchemaError, match="unknown export format 'xls'"):
        ex.write(tax, "xls")
    with pytest.raises(SchemaError, match="needs an output file"):
        ex.write(tax, "png")
