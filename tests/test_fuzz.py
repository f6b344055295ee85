"""Fuzzing: the committed generator's 400-odd bad inputs (tests/fuzz_inputs.py) are all
refused by name, and property-based fuzzing (hypothesis) of scenario and extension
validation finds no input that crashes them or slips through."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_inputs  # noqa: E402

from silentfail.sim.scenario import Scenario, ScenarioError, scenario_from_dict  # noqa: E402
from silentfail.taxonomy import builtin_taxonomy  # noqa: E402
from silentfail.taxonomy.validate import extend  # noqa: E402


def test_every_generated_bad_input_is_refused_by_name():
    res = fuzz_inputs.run_all()
    bad = {k: v for k, v in res.items() if k != "refused" and v}
    assert len(res["refused"]) >= 300
    assert not bad, {k: v[:5] for k, v in bad.items()}


FIELDS = [
    (sec, name)
    for sec, f in Scenario.model_fields.items()
    if hasattr(f.annotation, "model_fields")
    for name in f.annotation.model_fields
]
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(FIELDS), JSONISH), min_size=1, max_size=4))
def test_scenario_validation_accepts_only_sound_values_and_never_crashes(updates):
    data: dict = {}
    for (sec, name), value in updates:
        data.setdefault(sec, {})[name] = value
    try:
        sc = scenario_from_dict(data)
    except ScenarioError as exc:
        assert str(exc).startswith("invalid scenario:")
        return
    # accepted: every given value is what the scenario holds, of the field's type, finite
    for (sec, name), value in updates:
        held = getattr(getattr(sc, sec), name)
        if isinstance(value, float):
            assert math.isfinite(value)
        assert not (isinstance(value, bool) and not isinstance(held, bool)), (sec, name, value, held)
        assert not (isinstance(value, str) and isinstance(held, (int, float)) and not isinstance(held, bool)), (
            sec,
            name,
            value,
        )
    assert scenario_from_dict(json.loads(sc.to_json())) == sc


NODE_KINDS = ["failure_mode", "mechanism", "shift", "detector", "constraint", "gadget"]
EDGE_KINDS = ["causes", "detects", "masks", "influences", "observes", "cites", "enables", "nope"]
IDS = ["personal_overfitting", "central_audit", "label_shift", "memo", "secure_aggregation", "x"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.fixed_dictionaries(
            {"id": st.sampled_from(IDS), "kind": st.sampled_from(NODE_KINDS)},
            optional={
                "name": st.text(max_size=5),
                "definition": st.text(max_size=5),
                "index": st.integers(-3, 9),
                "layer": JSONISH,
                "worse": JSONISH,
            },
        ),
        max_size=3,
    ),
    st.lists(
        st.fixed_dictionaries(
            {"kind": st.sampled_from(EDGE_KINDS), "source": st.sampled_from(IDS), "target": st.sampled_from(IDS)},
            optional={"scope": JSONISH, "strength": JSONISH},
        ),
        max_size=4,
    ),
)
def test_extension_validation_reports_violations_and_never_crashes(nodes, edges):
    tax, violations = extend(builtin_taxonomy(), {"nodes": nodes, "edges": edges})
    for e in tax.edges():
        assert e.source != e.target or any(v.code == "self-loop" for v in violations)
    assert all(v.code and v.message for v in violations)
