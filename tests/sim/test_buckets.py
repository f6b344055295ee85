"""Shape buckets (sim/buckets.py): nearby round counts share one compiled program, and
bucketing changes no number."""

from __future__ import annotations

import pytest
import xarray as xr

from silentfail.sim import engine
from silentfail.sim import run as run_module
from silentfail.sim.buckets import compiled_scenario, rounds_bucket
from silentfail.sim.run import run
from silentfail.sim.scenario import preset


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
    monkeypatch.setattr(run_module, "compiled_scenario", lambda s: s)
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
