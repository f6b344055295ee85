"""Every example runs, with small settings, and prints what its docstring promises."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMALL = {
    "custom_scenario": dict(clients=60, rounds=6, calibration_seeds=76, seed=0),
    "sweep_and_phase": dict(clients=40, rounds=6, points=2, seeds=2),
    "fit_boundary": dict(chains=2, samples=200, seed=0),
    "hypothesis_check": dict(hypothesis=None, seeds=2, points=2, small=True),
    "taxonomy_queries": dict(
        constraints="secure_aggregation,no_personal_model_access,no_raw_data_access,no_attribute_use"
    ),
}


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested_and_documented():
    found = {p.stem for p in EXAMPLES.glob("*.py")}
    assert found == set(SMALL)
    for name in found:
        module = _load(name)
        assert module.__doc__ and "python examples/" in module.__doc__ and callable(module.main), name


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_example_runs(name, tmp_path, capsys):
    module = _load(name)
    args = dict(SMALL[name])
    if name == "sweep_and_phase":
        args["output"] = str(tmp_path)
    if name == "hypothesis_check":
        args["hypothesis"] = module.HYPOTHESIS
    out = module.main(argparse.Namespace(**args))
    printed = capsys.readouterr().out
    assert printed.strip()
    if name == "sweep_and_phase":
        assert Path(out).exists()
    if name == "taxonomy_queries":
        assert out == ["fairness_collapse"]
    if name == "fit_boundary":
        assert "R-hat" in printed
    if name == "custom_scenario":
        assert set(out.values()) <= {"ok", "silent", "detected"}
