"""The transfer table (sim/transfer.py): claims and phase regimes under each client model."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from silentfail.sim.literature import run_claim
from silentfail.sim.scenario import MODES
from silentfail.sim.transfer import (
    _agree,
    cell_regimes,
    claim_on_model,
    regime_rows,
    transfer_claims,
    transfer_phase,
)

TINY = {
    "population.num_clients": 40,
    "federation.clients_per_round": 20,
    "federation.rounds": 4,
    "model.eval_samples": 16,
    "model.pretrain_steps": 50,
}


def test_claims_under_each_model_with_not_applicable_reasons():
    ds = transfer_claims(("byzantine", "teacher_bias"), ("linear", "lora"), seeds=2, size=TINY)
    assert ds["applies"].values.tolist() == [[True, True], [True, False]]
    assert "personalization.rule" in str(ds["reason"].sel(claim="teacher_bias", model="lora").values)
    assert np.isfinite(ds["effect"].sel(claim="byzantine").values).all()
    assert (ds["effect_se"].sel(claim="byzantine").values > 0).all()
    # the linear column is the literature's own experiment on finite samples
    lin, _ = claim_on_model("byzantine", "linear", TINY)
    ref = run_claim(lin, 2)
    assert float(ds["effect"].sel(claim="byzantine", model="linear")) == pytest.approx(ref.attrs["effect"], abs=1e-6)
    h = ds["holds"].sel(claim="byzantine").values
    assert float(ds["transfers"].sel(claim="byzantine")) == float(h[1] == h[0])
    assert np.isnan(float(ds["transfers"].sel(claim="teacher_bias")))  # nothing to compare with


def test_agreement_rule():
    assert _agree(np.array([1.0, 1.0, np.nan])) == 1.0
    assert _agree(np.array([1.0, 0.0, 1.0])) == 0.0
    assert np.isnan(_agree(np.array([np.nan, 1.0])))


def test_cell_regimes_are_the_majority_over_seeds_ties_to_the_more_severe():
    # one cell, 4 seeds, 2 modes: mode 0 fails in 3 (2 silent), mode 1 fails in 2 (1 silent) of 4
    fr = np.array([[[3, 5], [2, -1], [4, 1], [-1, -1]]])  # (cell, seed, mode)
    silent = np.array([[[1, 0], [1, 0], [0, 1], [0, 0]]], bool)
    ds = xr.Dataset(
        {
            "failure_round": (("x", "seed", "mode"), fr),
            "silent": (("x", "seed", "mode"), silent),
            "valid_run": (("x", "seed"), np.ones((1, 4), bool)),
        }
    )
    reg = cell_regimes(ds).values[0]
    # mode 0: none 1, detected 1, silent 2 -> silent; mode 1: none 2, detected 1, silent 1 -> none
    assert reg.tolist() == [2, 0]
    ds["valid_run"][0, 3] = False  # an invalid run is left out: mode 1 is none 1, detected 1, silent 1 -> silent
    assert cell_regimes(ds).values[0].tolist() == [2, 2]


def test_phase_regimes_under_two_models_resume_from_their_stores(tmp_path):
    # the real-data column: the phase preset's Gaussian cell shape is reset on the digits
    size = {**TINY, "federation.clients_per_round": 40}  # the phase world is under central DP: every client a slot
    axes = {"personalization.lam": [0.01, 1.0]}
    ph = transfer_phase(("linear", "digits"), seeds=2, size=size, axes=axes, folder=tmp_path)
    assert ph["regime"].dims == ("model", "personalization.lam", "mode")
    assert set(np.unique(ph["regime"].values)) <= {0, 1, 2}
    np.testing.assert_array_equal(ph["agreement"].sel(model="linear").values, 1.0)
    same = (ph["regime"].sel(model="digits") == ph["regime"].sel(model="linear")).mean("personalization.lam")
    np.testing.assert_allclose(ph["agreement"].sel(model="digits").values, same.values)
    assert list(ph["mode"].values) == list(MODES)
    assert (ph["p_silent"] <= ph["p_fail"]).all()
    assert np.isnan(ph["p_undecided"].sel(model="linear")).all()  # exact metrics
    und = ph["p_undecided"].sel(model="digits").values
    assert ((und >= 0) & (und <= 1)).all()
    header, rows = regime_rows(ph)
    assert header[-1] == "digits: undecided" and len(rows) == len(MODES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits", "linear"]
    again = transfer_phase(("linear", "digits"), seeds=2, size=size, axes=axes, folder=tmp_path)
    xr.testing.assert_identical(again, ph)


def test_an_interrupted_claims_table_resumes_from_its_saved_experiments(tmp_path, monkeypatch):
    from silentfail.sim import literature

    first = transfer_claims(("byzantine",), ("linear", "mlp"), seeds=2, size=TINY, folder=tmp_path)
    assert (tmp_path / "mlp" / "byzantine.nc").exists()
    (tmp_path / "linear" / "byzantine.nc").unlink()  # as if the run stopped after the mlp's experiment
    ran = []
    real = literature.run_claim
    monkeypatch.setattr(literature, "run_claim", lambda c, n: ran.append(c.key) or real(c, n))
    again = transfer_claims(("byzantine",), ("linear", "mlp"), seeds=2, size=TINY, folder=tmp_path)
    assert ran == ["byzantine"]  # only the missing linear experiment ran again
    xr.testing.assert_identical(again, first)
    # another run size is another experiment: it is run, never read from the old file
    other = transfer_claims(
        ("byzantine",), ("linear", "mlp"), seeds=2, size={**TINY, "federation.rounds": 5}, folder=tmp_path
    )
    assert ran == ["byzantine"] * 3
    assert float(other["effect"].sel(claim="byzantine", model="mlp")) != float(
        first["effect"].sel(claim="byzantine", model="mlp")
    )
