"""Scenario validation: every class of bad value gives a message naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from silentfail.sim.scenario import Scenario, ScenarioError, load_scenario, preset, preset_names, scenario_from_dict

REQUIRED_PRESETS = {
    "default",
    "label-shift",
    "spurious-correlation",
    "covariate-shift",
    "concept-shift",
    "participation-disparity",
    "dp-heavy",
    "teacher-bias",
    "poisoned-clients",
}


def test_required_presets_ship_and_validate():
    assert REQUIRED_PRESETS <= set(preset_names())
    for name in preset_names():
        sc = preset(name)
        assert sc.name == name and sc.description


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"world": {"noise_std": -1.0}}, "world.noise_std"),
        ({"world": {"d": 2}}, "world.d: Input should be greater than or equal to 4"),
        ({"federation": {"participation": 1.5}}, "federation.participation: Input should be less than or equal to 1"),
        ({"fm": {"r0": -2}}, "fm.r0: Input should be greater than or equal to -1"),
        (
            {"personalization": {"rule": "subspace", "rank": 40}},
            "personalization.rank must be in [1, d+1] = [1, 17], got 40",
        ),
        (
            {"personalization": {"rule": "lora"}},
            "personalization.rule: Input should be 'full', 'proximal', 'subspace', 'head_only' or 'teacher'",
        ),
        ({"shifts": {"label_alpha": 0}}, "shifts.label_alpha: Input should be greater than 0"),
        (
            {"population": {"num_clients": 50}, "federation": {"clients_per_round": 100}},
            "federation.clients_per_round (100) must be <= population.num_clients (50)",
        ),
        ({"personalization": {"eta": -0.1}}, "personalization.eta: Input should be greater than 0 (got -0.1)"),
        ({"federation": {"dp": "central", "noise_multiplier": 1.0}}, "federation.clip must be set"),
        ({"federation": {"dp": "gaussian"}}, "federation.dp: Input should be 'none', 'central' or 'local'"),
        ({"personalization": {"rule": "full", "lam": 0.5}}, "personalization.lam must be 0 for rule 'full'"),
        ({"world": {"group_shares": [0.5, 0.6]}}, "world.group_shares must sum to 1"),
        ({"shifts": {"wobble": 1.0}}, "shifts.wobble: Extra inputs are not permitted"),
        (
            {"personalization": {"rule": "head_only", "trainable": [0, 99]}},
            "personalization.trainable indices must be in [0, d]",
        ),
        (
            {"federation": {"public_schedule": "adaptive", "public_probe": False}},
            "federation.public_schedule = 'adaptive' needs public data",
        ),
        (
            {"federation": {"public_schedule": "sometimes"}},
            "federation.public_schedule: Input should be 'never', 'alternate' or 'adaptive'",
        ),
    ],
)
def test_bad_values_name_the_field_and_range(data, needle):
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(data)
    assert needle in str(info.value)


def test_scenario_is_immutable_and_replace_validates():
    sc = Scenario()
    with pytest.raises(ValidationError, match="frozen"):
        sc.world.d = 8  # type: ignore[misc]
    assert sc.replace(**{"federation.rounds": 7}).federation.rounds == 7
    with pytest.raises(ScenarioError, match="federation.rounds: Input should be greater than or equal to 1"):
        sc.replace(**{"federation.rounds": 0})
    with pytest.raises(ScenarioError, match="unknown scenario field 'federation.roundz'"):
        sc.replace(**{"federation.roundz": 3})


def test_toml_loading_with_preset_base(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('preset = "label-shift"\nname = "mine"\n[federation]\nrounds = 3\n')
    sc = load_scenario(f)
    assert sc.name == "mine" and sc.federation.rounds == 3
    assert sc.shifts.label_alpha == preset("label-shift").shifts.label_alpha
    bad = tmp_path / "b.toml"
    bad.write_text("[federation\nrounds=3")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="unknown preset 'nope'"):
        preset("nope")


def test_diverging_learning_rate_is_rejected():
    from silentfail.sim.run import run

    sc = preset("default").replace(
        **{
            "personalization.eta": 3.0,
            "population.num_clients": 120,
            "federation.clients_per_round": 10,
            "federation.rounds": 2,
        }
    )
    with pytest.raises(
        ScenarioError, match=r"personalization.eta = 3 makes local gradient descent diverge: .* choose eta < "
    ):
        run(sc, 0)


def test_every_scenario_field_is_listed_with_type_range_default_and_description():
    """`silentfail fields`: every leaf field of a scenario, its bounds and its default as
    the model declares them."""
    from silentfail.sim.scenario import Scenario, ScenarioError, scenario_fields

    fields = {f.path: f for f in scenario_fields()}
    leaves = set(Scenario().to_dict()) - {"name", "description"}

    def walk(d, prefix):
        for k, v in d.items():
            if isinstance(v, dict) and k not in ("persist_by_mode", "by_mode", "by_family"):
                yield from walk(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"

    expected = set(walk({k: Scenario().to_dict()[k] for k in leaves}, ""))
    assert set(fields) == expected
    assert all(f.description for f in fields.values()), [p for p, f in fields.items() if not f.description]
    assert fields["thresholds.persist"].range == ">= 1, <= 1000" and fields["thresholds.persist"].default == "3"
    assert fields["federation.dropout"].range == ">= 0.0, < 1.0"
    assert fields["shifts.label_alpha"].type == "float | None" and fields["shifts.label_alpha"].range == "> 0.0"
    assert [f.path for f in scenario_fields("monitor")] == [p for p in fields if p.startswith("monitor.")]
    with pytest.raises(ScenarioError, match="unknown section 'nosuch'"):
        scenario_fields("nosuch")
