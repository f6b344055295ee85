"""Every query on the built-in graph against hand-checked expectations."""

from __future__ import annotations

import pytest

from silentfail.taxonomy import (
    FEDERATED_CONSTRAINTS,
    MODE_COLUMNS,
    STANDARD_DETECTORS,
    SchemaError,
    causes_of,
    coverage_matrix,
    detector_status,
    detectors_for,
    minimal_silencing_sets,
    paths,
    silent_modes,
    structural_divide,
)

SA_NPM = ["secure_aggregation", "no_personal_model_access"]


def _silent(tax, constraints, detectors=None, scope="deployed"):
    return [s.mode for s in silent_modes(tax, constraints, detectors, scope=scope)]


def test_alignment_erosion_is_silent_under_secagg_and_no_personal_access_unless_federated_evaluation(tax):
    without_fe = [d for d in tax.ids("detector") if d != "federated_evaluation"]
    result = {s.mode: s for s in silent_modes(tax, SA_NPM, without_fe, scope="deployed")}
    assert "alignment_erosion" in result
    why = result["alignment_erosion"]
    assert {(b.detector, b.access, b.constraint) for b in why.blocks} == {
        ("central_audit", "personalized_models", "no_personal_model_access"),
        ("update_inspection", "per_client_values", "secure_aggregation"),
    }
    assert why.undeployed == ("federated_evaluation",)
    assert "alignment_erosion" not in _silent(tax, SA_NPM)
    # of either scope (the default), the global model's probe still sees the erosion
    assert "alignment_erosion" not in [s.mode for s in silent_modes(tax, SA_NPM, without_fe)]


def test_nothing_is_silent_without_constraints(tax):
    assert _silent(tax, []) == []


def test_standard_pipeline_leaves_every_deployed_mode_silent(tax):
    # the paper's thesis: system-level federated metrics do not surface the six modes
    assert _silent(tax, FEDERATED_CONSTRAINTS, STANDARD_DETECTORS) == list(MODE_COLUMNS)
    # ... while the global model's erosion and drift are visible to them
    assert _silent(tax, FEDERATED_CONSTRAINTS, STANDARD_DETECTORS, scope="global") == [
        "confidence_miscalibration",
        "fairness_collapse",
        "adaptation_misalignment",
    ]


def test_forbidding_attributes_silences_the_group_modes(tax):
    assert _silent(tax, [*FEDERATED_CONSTRAINTS, "no_attribute_use"]) == ["amplified_bias", "fairness_collapse"]
    # of either scope, the aggregate update still shows the spurious direction: amplified
    # bias is not structurally silent (the simulation catches it there), fairness collapse is
    assert _silent(tax, [*FEDERATED_CONSTRAINTS, "no_attribute_use"], scope="any") == ["fairness_collapse"]
    assert detectors_for(tax, "amplified_bias", [*FEDERATED_CONSTRAINTS, "no_attribute_use"]) == [
        "update_direction_monitor"
    ]


def test_dp_only_degrades_it_does_not_block(tax):
    assert _silent(tax, ["central_dp"]) == []
    status = detector_status(tax, "federated_evaluation", ["central_dp"])
    assert status.survives and ("federated_eval_reports", "central_dp") in status.degraded_by


def test_causes_of_confidence_miscalibration(tax):
    assert causes_of(tax, "confidence_miscalibration") == {
        "personalization": ["full_finetuning", "proximal"],
        "shift": ["label_shift", "temporal_drift"],
        "constraint": ["no_attribute_use", "no_personal_model_access", "no_raw_data_access", "secure_aggregation"],
        "mechanism": ["aggregate_masking", "personal_overfitting", "prior_mismatch"],
    }


def test_paths_from_label_shift_to_miscalibration(tax):
    assert paths(tax, "label_shift", "confidence_miscalibration") == [
        ["label_shift", "personal_overfitting", "confidence_miscalibration"],
        ["label_shift", "prior_mismatch", "confidence_miscalibration"],
    ]
    assert paths(tax, "gradient_inversion", "fairness_collapse") == []


def test_detectors_for(tax):
    assert detectors_for(tax, "fairness_collapse", ["no_attribute_use"]) == ["central_audit"]
    assert detectors_for(tax, "fairness_collapse", FEDERATED_CONSTRAINTS) == ["group_stratified_monitor"]
    assert detectors_for(tax, "alignment_erosion", FEDERATED_CONSTRAINTS, scope="global") == [
        "bayesian_changepoint",
        "cusum_detector",
        "server_probe_eval",
        "update_direction_monitor",
    ]


def test_minimal_silencing_sets(tax):
    assert minimal_silencing_sets(tax, "fairness_collapse", scope="deployed") == [
        ("no_attribute_use", "no_personal_model_access"),
        ("no_attribute_use", "no_raw_data_access"),
    ]
    # alignment erosion is watched through the public probe set (server probe, federated
    # evaluation) and the update direction: only taking the public data away as well silences it
    assert minimal_silencing_sets(tax, "alignment_erosion", scope="deployed") == [
        ("no_personal_model_access", "no_public_probe", "secure_aggregation"),
        ("no_public_probe", "no_raw_data_access", "secure_aggregation"),
    ]


def test_coverage_matrix_agrees_with_silent_modes(tax):
    cm = coverage_matrix(tax)
    assert set(cm.constraint_sets) >= {"none", "federated", "federated+central_dp", "all"}
    for name, cons in cm.constraint_sets.items():
        silent = set(_silent(tax, cons))
        assert {m for m in cm.modes if cm.silent(m, name)} == silent, name
    assert cm.surviving("fairness_collapse", "federated") == ("group_stratified_monitor",)
    row = dict(zip(["mode", *cm.constraint_sets], cm.rows()[cm.modes.index("alignment_erosion")]))
    assert row["federated+central_dp"] == "federated_evaluation*"


def test_structural_divide(tax):
    rows = {r.mode: r for r in structural_divide(tax)}
    assert all(not r.direct_usable for r in rows.values())
    assert rows["fairness_collapse"].direct == ("bench_leaf",)
    assert rows["alignment_erosion"].direct == (
        "bench_decodingtrust",
        "bench_harmbench",
        "bench_jailbreakbench",
        "bench_trustllm",
    )
    open_rows = structural_divide(tax, [])
    assert all(r.direct_usable == r.direct for r in open_rows)


def test_outputs_are_deterministic_and_order_free(tax):
    a = silent_modes(tax, ["secure_aggregation", "no_personal_model_access", "no_attribute_use"])
    b = silent_modes(tax, ["no_attribute_use", "no_personal_model_access", "secure_aggregation"])
    assert a == b
    assert causes_of(tax, "alignment_erosion") == causes_of(tax, "alignment_erosion")


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda t: silent_modes(t, ["secure_aggregaton"]), "unknown constraint 'secure_aggregaton'"),
        (lambda t: silent_modes(t, ["label_shift"]), "'label_shift' is a shift, not a constraint"),
        (lambda t: silent_modes(t, [], ["nope"]), "unknown detector 'nope'"),
        (lambda t: causes_of(t, "proximal"), "'proximal' is a personalization, not a failure_mode"),
        (lambda t: silent_modes(t, [], scope="personal"), "scope must be 'deployed', 'global' or 'any'"),
        (lambda t: paths(t, "nowhere", "alignment_erosion"), "unknown node 'nowhere'"),
    ],
)
def test_bad_query_arguments_are_named(tax, call, needle):
    with pytest.raises(SchemaError, match=needle):
        call(tax)


def test_paths_follow_influence_edges_only_when_asked(tax):
    from silentfail.taxonomy.queries import paths

    plain = paths(tax, "spurious_correlation", "fairness_collapse")
    via = paths(tax, "spurious_correlation", "fairness_collapse", influences=True)
    step = ("amplified_bias", "fairness_collapse")  # the paper's primary influence
    has_step = lambda p: any((a, b) == step for a, b in zip(p, p[1:]))  # noqa: E731
    assert not any(has_step(p) for p in plain)
    assert any(has_step(p) for p in via)
    assert all(p in via for p in plain)
