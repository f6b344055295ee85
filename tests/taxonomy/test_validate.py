"""Validation finds each kind of violation in a deliberately broken extension file."""

from __future__ import annotations

import json
from pathlib import Path

from silentfail.taxonomy import builtin_taxonomy, extend, load_extension, silent_modes, validate
from silentfail.taxonomy.schema import FailureMode

DATA = Path(__file__).resolve().parents[1] / "data"


def test_broken_extension_reports_every_kind_of_violation():
    _, violations = load_extension(builtin_taxonomy(), DATA / "broken_extension.toml")
    codes = [v.code for v in violations]
    for code in (
        "invalid-node",
        "duplicate-node",
        "dangling-edge",
        "mistyped-edge",
        "invalid-edge",
        "duplicate-edge",
        "unreachable-mode",
        "undetected-mode",
        "bad-annotation",
        "access-mismatch",
        "blind-detector",
    ):
        assert code in codes, f"{code} not found in {codes}"
    text = "\n".join(map(str, violations))
    assert "field 'layer'" in text
    assert "unknown kind 'gadget'" in text
    assert "duplicate node id 'label_shift'" in text
    assert "target 'no_such_mode' is not a node" in text
    assert "'label_shift' (shift) -> 'memorization' (failure_mode) is not allowed" in text
    assert "unknown edge kind 'triggers'" in text
    assert "needs 'strength'" in text
    assert "'orphan_mode' is not reachable from any personalization" in text
    assert "'orphan_mode' has no detector" in text
    assert "quantum_dp" in text
    assert "detector 'blind' observes nothing" in text
    assert "'sloppy' observes 'individual_updates', which requires ['per_client_values']" in text
    # the valid part of the file is still applied: memorization is reachable and detected
    assert not any("'memorization'" in str(v) for v in violations if v.code in ("unreachable-mode", "undetected-mode"))


def test_good_extension_adds_a_seventh_mode_without_editing_the_engine():
    tax, violations = load_extension(builtin_taxonomy(), DATA / "good_extension.json")
    assert violations == []
    assert "memorization" in tax.ids("failure_mode")
    assert "memorization" in [s.mode for s in silent_modes(tax, ["no_personal_model_access"])]
    assert "memorization" not in builtin_taxonomy()  # the built-in graph is untouched


def test_correct_annotation_is_accepted_and_a_false_one_is_flagged():
    base = builtin_taxonomy()
    node = dict(
        id="hidden_mode",
        kind="failure_mode",
        name="Hidden",
        definition="d",
        index=7,
        layer="model",
        metric="m",
        worse="higher",
        no_detector_under=[["secure_aggregation"]],
    )
    edges = [
        {"kind": "causes", "source": "personal_overfitting", "target": "hidden_mode"},
        {"kind": "masks", "source": "secure_aggregation", "target": "hidden_mode"},
    ]
    _, violations = extend(base, {"nodes": [node], "edges": edges})
    assert violations == []  # no detector at all: silent under every set, annotation holds
    edges.append({"kind": "detects", "source": "federated_evaluation", "target": "hidden_mode", "scope": "deployed"})
    _, violations = extend(base, {"nodes": [node], "edges": edges})
    assert [v.code for v in violations] == ["bad-annotation"]
    assert "a detector survives there" in str(violations[0])


def test_parse_errors_are_reported(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _, violations = load_extension(builtin_taxonomy(), bad)
    assert [v.code for v in violations] == ["parse-error"] and "not valid JSON" in str(violations[0])
    other = tmp_path / "ext.yaml"
    other.write_text("nodes: []")
    _, violations = load_extension(builtin_taxonomy(), other)
    assert "expected a .json or .toml file" in str(violations[0])
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"nodes": [], "edgez": []}))
    _, violations = load_extension(builtin_taxonomy(), keys)
    assert "unknown top-level keys ['edgez']" in str(violations[0])
    _, violations = load_extension(builtin_taxonomy(), tmp_path / "missing.toml")
    assert "does not exist" in str(violations[0])


def test_validate_flags_a_mode_unreachable_from_a_shift():
    tax = builtin_taxonomy()
    tax.add_node(
        FailureMode(id="no_shift_mode", name="n", definition="d", index=7, layer="model", metric="m", worse="higher")
    )
    tax.add_edge("personal_overfitting", "no_shift_mode", "causes")  # overfitting has no shift cause...
    tax.add_edge("central_audit", "no_shift_mode", "detects", scope="deployed")
    found = [str(v) for v in validate(tax)]
    # ... except through label_shift's 'amplifies' edge, so only constraint reachability fails
    assert found == [
        "[unreachable-mode] failure mode 'no_shift_mode' is not reachable from any constraint "
        "along causes/enables/amplifies/masks edges"
    ]
