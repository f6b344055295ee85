"""Shape buckets (sim/buckets.py): nearby round counts share one compiled program, and
bucketing changes no number."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import xarray as xr

from silentfail.sim import batch, buckets, engine
from silentfail.sim.batch import traceable
from silentfail.sim.buckets import compiled_scenario, rounds_bucket
from silentfail.sim.run import run
from silentfail.sim.scenario import preset, preset_names
from silentfail.sim.verdict import deployed, layout


def _small(rounds: int):
    return preset("default").replace(
        **{"population.num_clients": 60, "federation.clients_per_round": 12, "federation.rounds": rounds}
    )


def test_rounds_bucket_is_within_a_quarter_and_idempotent():
    """T <= bucket(T) < 1.25 T, buckets are their own bucket, small counts are exact,
    and the buckets are monotone (a bucket never skips a round count)."""
    buckets = [rounds_bucket(t) for t in range(1, 5001)]
    for t, b in zip(range(1, 5001), buckets):
        assert t <= b < 1.25 * t or t == b, (t, b)
        assert rounds_bucket(b) == b
    assert buckets[:8] == list(range(1, 9))
    assert [rounds_bucket(t) for t in (9, 10, 11, 17, 33, 50, 64, 100)] == [10, 10, 12, 20, 40, 56, 64, 112]
    assert all(a <= b for a, b in zip(buckets, buckets[1:]))
    assert len(set(buckets)) < len(buckets) / 5  # they do share: 5000 round counts, few programs


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "8"])
def test_rounds_bucket_rejects_non_counts(bad):
    with pytest.raises(ValueError, match="rounds must be a positive integer"):
        rounds_bucket(bad)


def test_bucketed_run_equals_the_exact_scan_bit_for_bit(monkeypatch):
    """The first T rounds of the bucket's scan are the T-round scan's outputs, exactly:
    run() on T = 9 (compiled for 10 rounds) against run() compiled for 9 rounds, every
    variable and attribute of the trace identical."""
    sc = _small(9)
    assert compiled_scenario(sc).federation.rounds == 10
    bucketed = run(sc, seed=3)
    monkeypatch.setattr(buckets, "compiled_scenario", lambda s: s)
    size = engine.program._cache_size()
    exact = run(sc, seed=3)
    assert engine.program._cache_size() == size + 1  # a program of its own: 9 rounds
    assert bucketed.sizes["round"] == exact.sizes["round"] == 9
    xr.testing.assert_identical(bucketed, exact)


def test_nearby_round_counts_share_one_compiled_program():
    """T = 11 and T = 12 are one program (bucket 12): the second run compiles nothing."""
    runs = [_small(11), _small(12)]
    run(runs[0], seed=0)
    size = engine.program._cache_size()
    trace = run(runs[1], seed=0)
    assert engine.program._cache_size() == size
    assert trace.sizes["round"] == 12
    run(_small(13), seed=0)  # bucket 14: a new program
    assert engine.program._cache_size() == size + 1


def test_floats_are_traced_one_program_and_each_run_reads_its_own_values():
    """Two learning rates, shift strengths and thresholds: one program, and each run's
    numbers are those of the run compiled with every field static (float round-off),
    not the program key's canonical values."""
    a = _small(6)
    b = a.replace(**{"personalization.lam": 0.35, "shifts.strength": 0.6, "thresholds.amplified_bias": 0.02})
    ta = run(a, seed=1)
    size = engine.program._cache_size()
    tb = run(b, seed=1)
    assert engine.program._cache_size() == size
    assert not np.allclose(ta["theta_global"].values, tb["theta_global"].values)
    for sc, got in ((a, ta), (b, tb)):
        cfg = buckets.run_config(sc, trace=False)
        _, _, _, out = engine.program(cfg, np.uint32(1))
        np.testing.assert_allclose(
            got["theta_global"].values, np.asarray(out.rounds["theta_global"]), rtol=2e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            got["acc_mean"].values, np.asarray(out.rounds["acc_mean"], np.float64), rtol=2e-5, atol=1e-6
        )
    assert tb.attrs["scenario"] == b.to_json()  # the run's own scenario, not the program key's


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_traces_its_floats_and_static_floats_are_static(name):
    """Every float of every preset outside STATIC_FLOATS traces in the single-run
    program (eval_shape, no compile), so no preset falls back to a static program."""
    sc = preset(name)
    cfg = buckets.run_config(sc)
    assert cfg.paths and not set(cfg.paths) & buckets.STATIC_FLOATS
    jax.eval_shape(lambda c: engine.program(c, np.uint32(0)), cfg)


def test_static_floats_cannot_be_traced():
    """Each STATIC_FLOATS field really is read as a branch or a shape in some preset
    (else it belongs in the traced set); covariate_var_spread only where a preset's
    covariate family reads it."""
    scenarios = [preset("default"), preset("label-shift")]
    assert all(any(not traceable(sc, p) for sc in scenarios) for p in buckets.STATIC_FLOATS)


def test_a_float_that_cannot_trace_falls_back_to_a_static_program(monkeypatch):
    """With STATIC_FLOATS emptied, federation.byzantine_fraction (a Python branch) is
    traced and tracing fails; run() compiles the static program and returns its numbers."""
    sc = _small(5).replace(**{"federation.byzantine_fraction": 0.1})
    want = run(sc, seed=2)
    monkeypatch.setattr(buckets, "STATIC_FLOATS", frozenset())
    assert "federation.byzantine_fraction" in buckets.traced_floats(sc)
    got = run(sc, seed=2)
    xr.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


def _outcomes(sc, paths=(), values=None, seeds=4):
    values = np.zeros((seeds, len(paths)), np.float32) if values is None else values
    dets = deployed(sc)
    return batch.run_batch(
        sc, paths, dets, values, np.arange(seeds), np.full((seeds, len(layout(dets).channel)), np.inf)
    )


def test_batches_of_nearby_scenarios_share_one_program(monkeypatch):
    """run_batch traces the scenario's floats besides the sweep's axes: two learning
    rates are one batch program, each batch has the numbers of its static program, and
    a sweep axis (excluded from the scalars) takes the axis' values."""
    a = _small(6)
    b = a.replace(**{"personalization.lam": 0.35, "shifts.strength": 0.6})
    got_a = _outcomes(a)
    size = batch.program._cache_size()
    got_b = _outcomes(b)
    assert batch.program._cache_size() == size
    assert not np.allclose(got_a.final_value, got_b.final_value)
    axis = _outcomes(a, ("personalization.lam", "shifts.strength"), np.tile(np.float32([0.35, 0.6]), (4, 1)))
    np.testing.assert_allclose(axis.final_value, got_b.final_value, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(axis.failure_round, got_b.failure_round)
    monkeypatch.setattr(batch, "shared_config", lambda sc, exclude, static: batch.batch_config(sc))
    for sc, got in ((a, got_a), (b, got_b)):
        want = _outcomes(sc)  # the static program (every float compiled in)
        np.testing.assert_allclose(got.final_value, want.final_value, rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(got.worst_value, want.worst_value, rtol=2e-5, atol=1e-6)
        np.testing.assert_array_equal(got.failure_round, want.failure_round)
