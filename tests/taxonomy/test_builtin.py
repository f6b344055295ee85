"""The built-in graph: the content the taxonomy must hold (docs/theory.md, section 1) and issue #2."""

from __future__ import annotations

import csv
import importlib
import io
from pathlib import Path

import pytest

from silentfail.taxonomy import INFLUENCES, EdgeKind, NodeKind, benchmark_table, validate
from silentfail.taxonomy.builtin import benchmark_matrix_csv

SHARED_CSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "benchmark_matrix.csv"


def test_builtin_graph_is_valid(tax):
    assert validate(tax) == []


def test_six_modes_in_the_papers_order_and_layers(tax):
    modes = tax.nodes(NodeKind.FAILURE_MODE)
    assert [m.id for m in modes] == [
        "amplified_bias",
        "confidence_miscalibration",
        "fairness_collapse",
        "adaptation_misalignment",
        "out_of_domain_degradation",
        "alignment_erosion",
    ]
    assert [m.layer for m in modes] == ["data", "data", "model", "model", "system", "system"]
    for m in modes:
        assert "this package's formalization" in m.metric
        assert "oh2026silent" in [r.id for r in tax.references_of(m.id)]


@pytest.mark.parametrize(
    "kind, ids",
    [
        (NodeKind.PERSONALIZATION, {"full_finetuning", "proximal", "subspace", "head_only", "teacher_mixing"}),
        (
            NodeKind.SHIFT,
            {
                "label_shift",
                "attribute_imbalance",
                "spurious_correlation",
                "covariate_shift",
                "concept_shift",
                "temporal_drift",
            },
        ),
        (
            NodeKind.CONSTRAINT,
            {
                "secure_aggregation",
                "central_dp",
                "local_dp",
                "partial_participation",
                "participation_disparity",
                "client_dropout",
                "no_raw_data_access",
                "no_personal_model_access",
                "byzantine_clients",
            },
        ),
        (
            NodeKind.DETECTOR,
            {
                "aggregate_monitor",
                "group_stratified_monitor",
                "server_probe_eval",
                "federated_evaluation",
                "update_direction_monitor",
                "cusum_detector",
                "bayesian_changepoint",
            },
        ),
        (
            NodeKind.ACCESS,
            {
                "per_client_values",
                "group_labels",
                "personalized_models",
                "raw_client_data",
                "global_model",
                "public_probe_set",
            },
        ),
    ],
)
def test_required_nodes_exist(tax, kind, ids):
    assert ids <= set(tax.ids(kind))


def test_shifts_state_what_changes_and_what_is_invariant(tax):
    shifts = {s.id: s for s in tax.nodes(NodeKind.SHIFT)}
    assert "P(x|y,a)" in shifts["label_shift"].invariant and "P(y)" in shifts["label_shift"].changes
    assert set(shifts["attribute_imbalance"].invariant) == {"P(x|y,a)", "P(y|a)"}
    assert "P(y|a)" in shifts["spurious_correlation"].changes
    assert shifts["covariate_shift"].invariant == ("P(y,a)",)
    assert "P(y|x)" in shifts["concept_shift"].changes
    for s in shifts.values():
        assert s.formal, s.id
        # nothing is both changed and invariant
        assert not set(s.changes) & set(s.invariant)


@pytest.mark.parametrize(
    "name",
    [
        "one-access external poisoning",
        "universal evasion",
        "top-down unauthorized disclosure",
        "bottom-up confidentiality propagation",
        "participation resource disparity",
        "underrepresented demographic attributes",
        "gradient inversion",
        "client drift under non-IID data",
        "Byzantine faults",
    ],
)
def test_literature_threats_are_placed(tax, name):
    node = tax.find(name)
    assert node.kind in (NodeKind.THREAT, NodeKind.CONSTRAINT, NodeKind.MECHANISM)
    assert tax.references_of(node.id), f"{name} cites nothing"


def test_influences_are_the_papers(tax):
    got = {(e.source, e.target, e.strength) for e in tax.edges(EdgeKind.INFLUENCES)}
    assert got == set(INFLUENCES)
    assert sum(1 for *_, s in INFLUENCES if s == "primary") == 6
    assert sum(1 for *_, s in INFLUENCES if s == "feedback") == 3


def test_shipped_benchmark_matrix_equals_the_shared_data():
    if not SHARED_CSV.exists():
        pytest.skip("shared/data is not beside this checkout")
    assert benchmark_matrix_csv() == SHARED_CSV.read_text()


def test_benchmark_table_reproduces_the_papers_table(tax):
    expected = list(csv.DictReader(io.StringIO(benchmark_matrix_csv())))
    assert benchmark_table(tax) == expected
    assert len(expected) == 12


def test_every_reference_is_cited_and_every_cited_key_is_a_reference(tax):
    refs = set(tax.ids(NodeKind.REFERENCE))
    cited = {e.target for e in tax.edges(EdgeKind.CITES)}
    assert cited == refs


def test_causal_nodes_cite_sources(tax):
    for kind in (
        NodeKind.PERSONALIZATION,
        NodeKind.SHIFT,
        NodeKind.CONSTRAINT,
        NodeKind.THREAT,
        NodeKind.MECHANISM,
        NodeKind.DETECTOR,
        NodeKind.MITIGATION,
        NodeKind.BENCHMARK,
    ):
        for n in tax.nodes(kind):
            assert tax.references_of(n.id), n.id


def resolve(path: str):
    """Import the object a dotted path names."""
    module, _, attr = path.rpartition(".")
    obj = importlib.import_module(module)
    return getattr(obj, attr)


def test_every_implementation_path_resolves(tax):
    for n in tax.nodes():
        if n.implementation:
            assert callable(resolve(n.implementation)), n.id


def test_every_shift_personalization_constraint_and_mode_is_implemented(tax):
    for kind in (NodeKind.SHIFT, NodeKind.PERSONALIZATION, NodeKind.CONSTRAINT, NodeKind.FAILURE_MODE):
        for n in tax.nodes(kind):
            assert n.implementation.startswith("silentfail.sim."), n.id


def test_resolver_rejects_a_bad_path():
    with pytest.raises((ImportError, AttributeError)):
        resolve("silentfail.sim.no_such_thing")
