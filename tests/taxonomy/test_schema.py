"""Schema enforcement: typed nodes, typed edges, allowed pairs (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from silentfail.taxonomy import ALLOWED, EdgeKind, NodeKind, SchemaError, Taxonomy
from silentfail.taxonomy.schema import (
    DanglingEdgeError,
    DuplicateError,
    MistypedEdgeError,
    describe_validation_error,
    edge_from_dict,
    node_from_dict,
)
from tests.conftest import make_node

_ATTRS = {
    EdgeKind.INFLUENCES: {"strength": "primary"},
    EdgeKind.COVERS: {"level": "direct"},
    EdgeKind.DETECTS: {"scope": "deployed"},
}


def _pair_graph(sk: NodeKind, tk: NodeKind) -> Taxonomy:
    tax = Taxonomy()
    tax.add_node(make_node(sk, "src_node"))
    tax.add_node(make_node(tk, "tgt_node"))
    return tax


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(list(NodeKind)), st.sampled_from(list(NodeKind)), st.sampled_from(list(EdgeKind)))
def test_every_edge_is_accepted_iff_its_kind_pair_is_allowed(sk, tk, ek):
    tax = _pair_graph(sk, tk)
    if (sk, tk) in ALLOWED[ek]:
        tax.add_edge("src_node", "tgt_node", ek, **_ATTRS.get(ek, {}))
        assert [e.kind for e in tax.edges()] == [ek]
    else:
        with pytest.raises(MistypedEdgeError) as info:
            tax.add_edge("src_node", "tgt_node", ek, **_ATTRS.get(ek, {}))
        msg = str(info.value)
        # the message names both ends with their kinds, and the allowed pairs
        assert "'src_node'" in msg and "'tgt_node'" in msg
        assert f"({sk.value})" in msg and f"({tk.value})" in msg
        assert f"{ek.value} allows:" in msg
        assert tax.edges() == []


def test_mistyped_edge_example_message():
    tax = _pair_graph(NodeKind.DETECTOR, NodeKind.SHIFT)
    with pytest.raises(
        SchemaError,
        match=r"causes edge 'src_node' \(detector\) -> 'tgt_node' \(shift\) is not allowed; causes allows: .*mechanism->failure_mode",
    ):
        tax.add_edge("src_node", "tgt_node", "causes")


def test_dangling_and_duplicate_edges_are_rejected():
    tax = _pair_graph(NodeKind.MECHANISM, NodeKind.FAILURE_MODE)
    with pytest.raises(DanglingEdgeError, match="target 'nowhere' is not a node"):
        tax.add_edge("src_node", "nowhere", "causes")
    tax.add_edge("src_node", "tgt_node", "causes")
    with pytest.raises(DuplicateError, match="duplicate causes edge"):
        tax.add_edge("src_node", "tgt_node", "causes")
    with pytest.raises(DuplicateError, match="duplicate node id 'src_node'"):
        tax.add_node(make_node(NodeKind.MECHANISM, "src_node"))


@pytest.mark.parametrize(
    "kind, attrs, needle",
    [
        ("influences", {}, "needs 'strength'"),
        ("covers", {}, "needs 'level'"),
        ("detects", {}, "needs 'scope'"),
        ("causes", {"scope": "global"}, "'scope' is only for detects"),
        ("influences", {"strength": "strong"}, "strength"),
    ],
)
def test_edge_attributes_must_fit_the_kind(kind, attrs, needle):
    with pytest.raises(ValidationError, match=needle):
        edge_from_dict({"source": "a", "target": "b", "kind": kind, **attrs})


def test_unknown_edge_kind_names_the_known_ones():
    with pytest.raises(SchemaError, match="unknown edge kind 'triggers'; known kinds: causes"):
        edge_from_dict({"source": "a", "target": "b", "kind": "triggers"})


def test_unknown_node_kind_is_rejected_with_known_kinds():
    with pytest.raises(SchemaError, match="unknown kind 'gadget'; known kinds: personalization"):
        node_from_dict({"id": "x", "kind": "gadget", "name": "x", "definition": "x"})


@pytest.mark.parametrize(
    "data, field",
    [
        ({"id": "Bad-Id", "kind": "mechanism", "name": "x", "definition": "d"}, "id"),
        ({"id": "m", "kind": "mechanism", "name": "", "definition": "d"}, "name"),
        (
            {
                "id": "m",
                "kind": "failure_mode",
                "name": "m",
                "definition": "d",
                "index": 0,
                "layer": "data",
                "metric": "x",
                "worse": "higher",
            },
            "index",
        ),
        (
            {
                "id": "m",
                "kind": "failure_mode",
                "name": "m",
                "definition": "d",
                "index": 7,
                "layer": "cosmic",
                "metric": "x",
                "worse": "higher",
            },
            "layer",
        ),
        ({"id": "m", "kind": "shift", "name": "m", "definition": "d", "changes": []}, "changes"),
        (
            {"id": "m", "kind": "mechanism", "name": "m", "definition": "d", "implementation": "not a path"},
            "implementation",
        ),
        ({"id": "m", "kind": "mechanism", "name": "m", "definition": "d", "colour": "red"}, "colour"),
    ],
)
def test_bad_node_fields_are_named(data, field):
    with pytest.raises(ValidationError) as info:
        node_from_dict(data)
    assert f"field '{field}'" in describe_validation_error(info.value, "node")


def test_reference_key_must_match_its_id():
    with pytest.raises(ValidationError, match="bibtex key 'other' must equal the node id 'mine'"):
        node_from_dict(
            {"id": "mine", "kind": "reference", "name": "r", "definition": "r", "bibtex": "@article{other, title={T}}"}
        )


def test_nodes_are_immutable():
    node = make_node(NodeKind.MECHANISM, "m")
    with pytest.raises(ValidationError):
        node.name = "changed"  # type: ignore[misc]
