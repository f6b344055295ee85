"""Bad inputs are refused, each with a message naming what is wrong (never a silent
acceptance, never a traceback): seeds, strict scenario types, non-finite numbers,
unreadable or empty files, taxonomy extensions with loops, cycles or a future schema."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from silentfail.sim.scenario import ScenarioError, load_scenario, preset, scenario_from_dict
from silentfail.sim.seeds import MAX_SEED, check_seed, check_seed_count
from silentfail.taxonomy import builtin_taxonomy
from silentfail.taxonomy.validate import load_extension

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("seed", [-1, 2**30, 2**32, 2**64, 1.0, True, "3", None])
def test_seeds_out_of_range_or_of_the_wrong_type_are_refused(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*30 - 1\]"):
        check_seed(seed)


def test_seeds_at_the_edges_are_kept_and_runs_never_alias():
    assert check_seed(0) == 0 and check_seed(MAX_SEED) == MAX_SEED
    with pytest.raises(ValueError, match="seeds must be an integer in"):
        check_seed_count(2**30 + 1)
    with pytest.raises(ValueError, match="seeds must be an integer in"):
        check_seed_count(0)
    from silentfail.sim.run import run

    with pytest.raises(ValueError, match="seed must be an integer"):
        run(preset("default"), seed=2**32)  # used to be the run of seed 0


@pytest.mark.parametrize(
    "update, field",
    [
        ({"federation": {"rounds": True}}, "federation.rounds"),
        ({"federation": {"rounds": "30"}}, "federation.rounds"),
        ({"federation": {"rounds": 30.0}}, "federation.rounds"),
        ({"federation": {"secure_aggregation": 1}}, "federation.secure_aggregation"),
        ({"personalization": {"eta": "0.1"}}, "personalization.eta"),
        ({"personalization": {"eta": True}}, "personalization.eta"),
        ({"world": {"group_offset": float("nan")}}, "world.group_offset"),
        ({"world": {"core_strength": float("inf")}}, "world.core_strength"),
        ({"shifts": {"strength": float("-inf")}}, "shifts.strength"),
        ({"name": 3}, "name"),
        ({"world": {"group_offset": -1e300}}, "world.group_offset"),
        ({"world": {"core_strength": 1e30}}, "world.core_strength"),
    ],
)
def test_scenario_types_are_strict_and_numbers_finite(update, field):
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        scenario_from_dict(update)


def test_strict_types_still_read_presets_arrays_and_integral_axis_values():
    sc = scenario_from_dict({"world": {"group_shares": [0.7, 0.3]}, "personalization": {"eta": 1}})
    assert sc.world.group_shares == (0.7, 0.3) and sc.personalization.eta == 1.0
    assert scenario_from_dict(json.loads(sc.to_json())) == sc  # JSON lists come back as the tuples
    from silentfail.sim.params import axis_value

    assert axis_value(sc, "federation.rounds", 12.0) == 12 and isinstance(
        axis_value(sc, "federation.rounds", 12.0), int
    )
    with pytest.raises(ScenarioError, match="federation.rounds takes integers, got 12.5"):
        axis_value(sc, "federation.rounds", 12.5)
    assert axis_value(sc, "personalization.lam", 2.0) == 2.0


def test_unreadable_and_empty_scenario_files_say_what_they_are(tmp_path):
    cases = {
        "empty.toml": ("", "sets nothing (empty or only comments)"),
        "comments.toml": ("# nothing here\n\n", "sets nothing (empty or only comments)"),
        "utf16.toml": ("x".encode("utf-16"), "is not UTF-8 text"),
        "binary.toml": (bytes(range(256)), "is not UTF-8 text"),
        "bad.toml": ("[federation\nrounds = 3", "is not valid TOML"),
    }
    for name, (content, message) in cases.items():
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(ScenarioError, match=re.escape(message)):
            load_scenario(p)
    with pytest.raises(ScenarioError, match="is not a regular file"):
        load_scenario(tmp_path)
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario(tmp_path / "missing.toml")
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ScenarioError, match="is not a regular file"):
        load_scenario(fifo)
    with pytest.raises(ScenarioError, match="is not a regular file"):
        load_scenario("/dev/null")


def _extension(tmp_path, edges, version="1.0"):
    data = json.loads((DATA / "good_extension.json").read_text())
    data["edges"] += edges
    data["schema_version"] = version
    p = tmp_path / "ext.json"
    p.write_text(json.dumps(data))
    return p


def test_extensions_with_self_loops_cycles_or_a_future_schema_are_violations(tmp_path):
    base = builtin_taxonomy()
    _, ok = load_extension(base, _extension(tmp_path, []))
    assert ok == []
    _, out = load_extension(
        base,
        _extension(tmp_path, [{"kind": "causes", "source": "personal_overfitting", "target": "personal_overfitting"}]),
    )
    assert any(
        v.code in ("self-loop", "mistyped-edge", "invalid-edge") and "personal_overfitting" in v.message for v in out
    ), out
    # memorization -> personal_overfitting closes a cycle with the file's own causes edge
    _, out = load_extension(
        base, _extension(tmp_path, [{"kind": "causes", "source": "memorization", "target": "personal_overfitting"}])
    )
    assert any(v.code in ("causal-cycle", "mistyped-edge") for v in out), out
    for version, code in (("2.0", "parse-error"), ("1.7", "parse-error"), ("one", "parse-error")):
        _, out = load_extension(base, _extension(tmp_path, [], version))
        assert [v.code for v in out] == [code] and "schema_version" in out[0].message, out
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe{")
    _, out = load_extension(base, tmp_path / "bin.json")
    assert out[0].code == "parse-error" and "not UTF-8" in out[0].message
