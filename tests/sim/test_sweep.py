"""Sweeps: a grid point equals a single run, results do not depend on the chunk size,
a killed sweep resumes to the same store without recomputing finished chunks, static
axes compile once per value, and bad grids are rejected naming the field."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from silentfail.sim import batch
from silentfail.sim.run import run
from silentfail.sim.scenario import MODES, ScenarioError, preset
from silentfail.sim.sweep import Plan, sweep
from silentfail.sim.verdict import verdict

TINY = preset("phase").replace(
    **{
        "population.num_clients": 40,
        "federation.clients_per_round": 40,
        "federation.participation": 0.5,
        "federation.rounds": 8,
        "monitor.calibration_seeds": 80,
    }
)
AXES = {"personalization.lam": [0.01, 1.0], "shifts.strength": [0.0, 1.0]}


@pytest.fixture(scope="module")
def reference():
    return sweep(TINY, AXES, seeds=3, chunk=8)


def test_a_grid_point_equals_the_single_run_and_its_verdict(reference):
    point = {"personalization.lam": 0.01, "shifts.strength": 1.0}
    sc = TINY.replace(**point)
    for seed in range(3):
        tr = run(sc, seed)
        cell = reference.sel(**point, seed=seed)
        assert list(cell["failure_round"].values) == list(tr["failure_round"].values)
        np.testing.assert_allclose(cell["final_value"].values, tr["mode_metric"].values[-1], atol=2e-5)
        np.testing.assert_allclose(cell["worst_value"].values, tr["worst_value"].values, atol=2e-5)
        v = verdict(tr)  # calibrated on the same null runs as the sweep's cell
        np.testing.assert_allclose(v["channel_threshold"].values, cell["threshold"].values, rtol=1e-5, atol=1e-6)
        assert list(v["silent"].values) == list(cell["silent"].values)
        assert (v["detection_round"].values == cell["detection_round"].values).all()


def test_results_are_bitwise_independent_of_chunk_size(reference):
    for chunk in (64, 96):  # chunks of 64 or 96 runs instead of 32: other chunk boundaries
        other = sweep(TINY, AXES, seeds=3, chunk=chunk)
        for v in reference.data_vars:
            np.testing.assert_array_equal(other[v].values, reference[v].values, err_msg=v)


def test_a_killed_sweep_resumes_to_the_same_store(tmp_path, reference, monkeypatch):
    store = tmp_path / "store"

    class Killed(Exception):
        pass

    def kill_after(n):
        seen = []

        def progress(done, total):
            seen.append(done)
            if len(seen) == n:
                raise Killed

        return progress

    with pytest.raises(Killed):
        sweep(TINY, AXES, seeds=3, chunk=8, store=store, progress=kill_after(5))
    finished = sorted(p.name for p in (store / "chunks").glob("*.nc"))
    assert len(finished) == 5 and not (store / "sweep.nc").exists()
    assert not list(store.rglob("*.tmp"))
    with pytest.raises(FileExistsError, match="resume"):
        sweep(TINY, AXES, seeds=3, chunk=8, store=store)
    calls = []
    real = batch.run_batch

    def counting(*args, **kwargs):
        calls.append(len(args[4]))
        return real(*args, **kwargs)

    monkeypatch.setattr("silentfail.sim.sweep.run_batch", counting)
    resumed = sweep(TINY, AXES, seeds=3, chunk=8, store=store, resume=True)
    total_chunks = len(list((store / "chunks").glob("*.nc")))
    assert len(calls) == total_chunks - 5  # finished chunks are never recomputed
    for v in reference.data_vars:
        np.testing.assert_array_equal(resumed[v].values, reference[v].values, err_msg=v)
    on_disk = xr.load_dataset(store / "sweep.nc", engine="h5netcdf")
    np.testing.assert_array_equal(on_disk["p_silent"].values, reference["p_silent"].values)
    with pytest.raises(ScenarioError, match="seeds"):
        sweep(TINY, AXES, seeds=4, chunk=8, store=store, resume=True)


def test_summaries_follow_from_the_per_seed_verdicts(reference):
    ds = reference
    failed = ds["failure_round"] >= 0
    np.testing.assert_allclose(ds["p_fail"].values, failed.mean("seed").values)
    np.testing.assert_allclose(ds["p_silent"].values, ds["silent"].mean("seed").values)
    assert bool((ds["silent"] <= failed).all()) and bool((ds["detected"] <= failed).all())
    assert not bool((ds["silent"] & ds["detected"]).any())
    assert ds.attrs["kind"] == "silentfail.sweep" and "scenario" in ds.attrs


def test_static_axes_compile_once_per_value_and_agree_with_runs():
    plan = Plan(TINY, {"federation.rounds": [4, 6], "shifts.strength": [1.0]}, seeds=1)
    assert plan.static == ["federation.rounds"] and plan.traced == ["shifts.strength"]
    ds = sweep(TINY, {"federation.rounds": [4, 6], "shifts.strength": [1.0]}, seeds=1, chunk=8)
    tr = run(TINY.replace(**{"federation.rounds": 6}), 0)
    got = ds.sel({"federation.rounds": 6, "shifts.strength": 1.0, "seed": 0})
    assert list(got["failure_round"].values) == list(tr["failure_round"].values)
    np.testing.assert_allclose(got["final_value"].values, tr["mode_metric"].values[-1], atol=2e-5)


def test_bad_grids_are_rejected_naming_the_field():
    with pytest.raises(ScenarioError, match="no_such"):
        sweep(TINY, {"personalization.no_such": [1.0]}, seeds=1)
    with pytest.raises(ScenarioError, match="personalization.lam"):
        sweep(TINY, {"personalization.lam": [0.1, -1.0]}, seeds=1)
    with pytest.raises(ScenarioError, match="repeats"):
        sweep(TINY, {"personalization.lam": [0.1, 0.1]}, seeds=1)
    with pytest.raises(ValueError, match="seeds"):
        sweep(TINY, {}, seeds=0)


def test_a_diverging_point_is_flagged_not_averaged():
    ds = sweep(TINY, {"personalization.eta": [0.1, 2.5]}, seeds=2, chunk=8)
    assert bool(ds["valid"].sel({"personalization.eta": 0.1}))
    assert not bool(ds["valid"].sel({"personalization.eta": 2.5}))
    assert np.isnan(ds["p_fail"].sel({"personalization.eta": 2.5})).all()
    assert set(ds["mode"].values) == set(MODES)


def test_a_swapped_or_corrupted_chunk_is_refused_on_resume_by_name(tmp_path):
    """The manifest keeps the SHA-256 of every finished chunk: a chunk from another sweep
    (valid NetCDF, other numbers) or a damaged one is refused, naming the file and the fix."""
    import json

    tiny = TINY.replace(**{"monitor.calibration_seeds": 8, "monitor.alpha": 0.5})
    a, b = tmp_path / "a", tmp_path / "b"
    sweep(tiny, {"shifts.strength": [0.0, 1.0]}, seeds=2, chunk=8, store=a)
    sweep(tiny.replace(**{"personalization.lam": 5.0}), {"shifts.strength": [0.0, 1.0]}, seeds=2, chunk=8, store=b)
    manifest = json.loads((a / "manifest.json").read_text())
    chunks = sorted((a / "chunks").glob("*.nc"))
    assert chunks and set(manifest["chunks"]) == {c.stem for c in chunks} and len(manifest["spec_sha256"]) == 64
    (a / "sweep.nc").unlink()
    again = sweep(tiny, {"shifts.strength": [0.0, 1.0]}, seeds=2, chunk=8, store=a, resume=True)  # intact: reused
    assert bool(again["valid"].all())
    main = [c for c in chunks if c.stem.startswith("main")][0]
    main.write_bytes((b / "chunks" / main.name).read_bytes())  # a valid chunk of the other sweep
    (a / "sweep.nc").unlink()
    with pytest.raises(ScenarioError, match=f"chunk file '{main}' does not match its checksum.*delete it and resume"):
        sweep(tiny, {"shifts.strength": [0.0, 1.0]}, seeds=2, chunk=8, store=a, resume=True)
    main.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # damaged
    with pytest.raises(ScenarioError, match="does not match its checksum"):
        sweep(tiny, {"shifts.strength": [0.0, 1.0]}, seeds=2, chunk=8, store=a, resume=True)
    main.unlink()  # deleted: recomputed, same numbers as the first time
    redone = sweep(tiny, {"shifts.strength": [0.0, 1.0]}, seeds=2, chunk=8, store=a, resume=True)
    for v in again.data_vars:
        np.testing.assert_array_equal(redone[v].values, again[v].values, err_msg=v)


def test_a_diverging_cell_is_marked_invalid():
    """server_lr = 1e12 explodes the global model: the cell is invalid (NaN), not a result."""
    tiny = TINY.replace(**{"monitor.calibration_seeds": 8, "monitor.alpha": 0.5})
    ds = sweep(tiny, {"federation.server_lr": [1.0, 1e12]}, seeds=2)
    assert list(ds["valid"].values) == [True, False]
    assert np.isnan(ds["p_fail"].values[1]).all() and np.isfinite(ds["p_fail"].values[0]).all()
