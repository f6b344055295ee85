"""The on-disk result cache (sim/result_cache.py): a batch of runs is read back only
for the same inputs and code, equal to what computing it gives; the Python API computes
unless a caller opts in; a plugin switches it off; the CLI reads a scenario's
calibration back on its second simulate."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from silentfail.sim import batch, result_cache
from silentfail.sim.batch import run_batch
from silentfail.sim.detectors import deployed, layout
from silentfail.sim.scenario import preset

SC = preset("label-shift").replace(
    **{"population.num_clients": 20, "federation.clients_per_round": 10, "federation.rounds": 3}
)


DETECTORS = tuple(deployed(SC))


@pytest.fixture(autouse=True)
def no_plugin_loaded(monkeypatch):
    """Each test starts as a process that has loaded no plugin: a plugin test that ran
    earlier in the same pytest worker switched the cache off for that process."""
    monkeypatch.setitem(result_cache._STATE, "plugins", False)


def outcome(seeds):
    seeds = np.asarray(seeds)
    t = np.full((len(seeds), len(layout(DETECTORS).channel)), np.inf)
    return run_batch(SC, ("shifts.strength",), DETECTORS, np.full((len(seeds), 1), 0.5), seeds, t)


def test_a_cached_batch_is_the_computed_batch_and_is_read_back(tmp_path, monkeypatch):
    fresh = outcome([0, 1, 2])
    with result_cache.enabled(tmp_path):
        first = outcome([0, 1, 2])
        files = sorted(tmp_path.iterdir())
        assert len(files) == 1
        calls = []
        real = batch.program
        monkeypatch.setattr(batch, "program", lambda *a, **k: calls.append(1) or real(*a, **k))
        again = outcome([0, 1, 2])
        assert not calls  # read from disk
        other = outcome([0, 1, 3])  # another input: computed and stored under another key
        assert calls and len(list(tmp_path.iterdir())) == 2
        shorter = outcome([0, 1])  # a prefix of the same padded call is another key too
        assert len(list(tmp_path.iterdir())) == 3 and shorter.failure_round.shape[0] == 2
    for a, b, c in zip(fresh, first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert not np.array_equal(other.final_value, fresh.final_value)


def test_the_api_computes_unless_asked_and_a_plugin_switches_the_cache_off(tmp_path, monkeypatch):
    assert result_cache.directory() is None
    with result_cache.enabled(tmp_path):
        assert result_cache.directory() == tmp_path
        monkeypatch.setitem(result_cache._STATE, "plugins", True)
        assert result_cache.directory() is None
        outcome([5])
    assert not list(tmp_path.iterdir())
    assert result_cache.directory() is None


def test_an_unreadable_file_is_computed_again(tmp_path):
    with result_cache.enabled(tmp_path):
        ref = outcome([7])
        (path,) = tmp_path.iterdir()
        path.write_bytes(b"not an npz")
        again = outcome([7])
    np.testing.assert_array_equal(ref.final_value, again.final_value)
    assert np.load(path)["final_value"].shape == ref.final_value.shape  # rewritten


def test_the_key_covers_the_code_and_every_part():
    k = result_cache.key("batch", "a", b"\x00")
    assert k != result_cache.key("batch", "a", b"\x01")
    assert k != result_cache.key("batch", "a\x00")  # parts are length-prefixed
    assert len(result_cache.code_digest()) == 64


@pytest.mark.parametrize("verbose", [False, True])
def test_cli_logs_are_quiet_unless_verbose(monkeypatch, verbose):
    from silentfail.cli import _quiet_logs

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    _quiet_logs((["--verbose"] if verbose else []) + ["simulate", "--seed", "1"])
    assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") == (None if verbose else "3")


def test_a_second_simulate_reads_its_calibration_from_the_result_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SILENTFAIL_RESULT_CACHE"}
    env["SILENTFAIL_RESULT_CACHE"] = str(tmp_path / "results")
    args = [sys.executable, "-m", "silentfail", "simulate", "--set", "population.num_clients=30"]
    args += ["--set", "federation.clients_per_round=30", "--set", "federation.rounds=3"]
    first = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    stored = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results").iterdir()}
    assert stored, "the calibration's null runs were not stored"
    again = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == first.stdout  # the same verdict
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results").iterdir()} == stored  # read, not written


def test_a_whole_dataset_is_computed_once_per_inputs_and_read_back_equal(tmp_path):
    import xarray as xr

    calls = []

    def compute():
        calls.append(1)
        return xr.Dataset({"p": (("x",), np.arange(3.0) / 7)}, attrs={"scenario": "{}", "seeds": 4})

    assert result_cache.cached_dataset("t", ("a",), compute) is not None and len(calls) == 1  # no cache: computed
    with result_cache.enabled(tmp_path):
        first = result_cache.cached_dataset("t", ("a",), compute)
        again = result_cache.cached_dataset("t", ("a",), compute)
        other = result_cache.cached_dataset("t", ("b",), compute)
    assert len(calls) == 3  # "a" once, "b" once, the second "a" read back
    xr.testing.assert_identical(first, again)
    xr.testing.assert_identical(first, other)
    assert len(list(tmp_path.glob("t-*.nc"))) == 2
