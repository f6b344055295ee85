"""Chunked and sharded execution (sim/scale.py) give the same numbers as the plain
program: a run is a pure function of (scenario, seed) whatever the block size or the
device count (docs/theory.md, section 4; paper/main.tex, Reproducing this paper)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from silentfail.sim import scale
from silentfail.sim.personalize import lambda_max_psd
from silentfail.sim.run import run
from silentfail.sim.scenario import preset

ROOT = Path(__file__).resolve().parents[2]


def assert_same_trace(a, b, rtol=2e-5, atol=2e-5):
    for v in a.data_vars:
        x, y = np.asarray(a[v].values, float), np.asarray(b[v].values, float)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, equal_nan=True, err_msg=v)


def test_blocks_round_trip_with_padding():
    tree = {"a": jnp.arange(10.0), "b": jnp.arange(30.0).reshape(10, 3)}
    blocks = scale.to_blocks(tree, 4)  # 3 blocks of 4, 2 padded rows
    assert blocks["a"].shape == (3, 4) and blocks["b"].shape == (3, 4, 3)
    # contiguous on one device: block j holds clients 4j .. 4j + 3, the last padded with client 9
    np.testing.assert_array_equal(blocks["a"][1], [4.0, 5.0, 6.0, 7.0])
    np.testing.assert_array_equal(blocks["a"][2], [8.0, 9.0, 9.0, 9.0])
    back = scale.from_blocks(blocks, 10)
    for k in tree:
        np.testing.assert_array_equal(back[k], tree[k])
    mapped = scale.from_blocks(jax.lax.map(lambda t: jax.tree.map(lambda x: 2 * x, t), blocks), 10)
    np.testing.assert_array_equal(mapped["b"], 2 * tree["b"])
    # on 2 devices (clients 0-4 and 5-9): each block takes 2 consecutive clients of each shard
    two = scale.to_blocks(tree, 4, devices=2)
    np.testing.assert_array_equal(two["a"], [[0, 1, 5, 6], [2, 3, 7, 8], [4, 4, 9, 9]])
    back = scale.from_blocks(two, 10, devices=2)
    for k in tree:
        np.testing.assert_array_equal(back[k], tree[k])


def test_resolve_chunk_rules():
    assert scale.resolve_chunk(None, 10_000) is None
    assert scale.resolve_chunk("auto", 100) is None  # fits in one block
    assert scale.resolve_chunk("auto", scale.AUTO_MIN) is None
    k = scale.AUTO_MIN // scale.AUTO_CHUNK + 4  # a population above AUTO_MIN: k blocks of AUTO_CHUNK
    assert scale.resolve_chunk("auto", scale.AUTO_MIN + 1) is not None
    assert scale.resolve_chunk("auto", k * scale.AUTO_CHUNK) == scale.AUTO_CHUNK
    assert scale.resolve_chunk("auto", 1_000_000) == 4000  # the divisor nearest AUTO_CHUNK: no padding
    assert (
        scale.resolve_chunk("auto", 999_984, devices=8) % 8 == 0
        and 999_984 % scale.resolve_chunk("auto", 999_984, devices=8) == 0
    )
    assert scale.auto_sizes() == (scale.AUTO_MIN, scale.AUTO_CHUNK)  # the CPU's
    prime = 1_000_003  # no divisor: equal blocks, the least padding
    assert scale.resolve_chunk("auto", prime) == -(-prime // -(-prime // scale.AUTO_CHUNK))
    assert scale.resolve_chunk(100, 1000, devices=8) == 104  # a multiple of the device count
    for bad in (0, -3, 2.5, "big", True):
        with pytest.raises(ValueError, match="chunk must be a positive integer"):
            scale.resolve_chunk(bad, 1000)


def test_chunked_run_equals_the_one_block_run():
    sc = preset("label-shift").replace(
        **{
            "population.num_clients": 300,
            "federation.clients_per_round": 30,
            "federation.rounds": 6,
            "population.trace_clients": 300,
        }
    )
    ref = run(sc, 4, chunk=None)
    for chunk in (64, 299):  # padded blocks, and two blocks of which one is nearly empty
        assert_same_trace(ref, run(sc, 4, chunk=chunk))


def test_lambda_max_by_repeated_squaring_equals_eigvalsh():
    """Within float32 round-off of LAPACK in float64, near-tied top eigenvalues included."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for n in (2, 5, 17):
        for trial in range(60):
            X = rng.normal(size=(n, n + 3)) * rng.uniform(0.1, 10)
            A = X @ X.T
            if trial % 3 == 0:
                w, U = np.linalg.eigh(A)
                w[-2] = w[-1] * (1 - 10 ** rng.uniform(-8, -1))
                A = (U * w) @ U.T
            ref = np.linalg.eigvalsh(A)[-1]
            worst = max(worst, abs(float(lambda_max_psd(jnp.asarray(A, jnp.float32))) - ref) / ref)
    assert worst < 1e-6, worst
    np.testing.assert_allclose(lambda_max_psd(jnp.zeros((3, 3))), 0.0)


def test_device_errors_name_the_problem():
    sc = preset("default").replace(**{"population.num_clients": 100, "federation.clients_per_round": 10})
    n = len(jax.devices())
    with pytest.raises(ValueError, match="xla_force_host_platform_device_count"):
        run(sc, 0, devices=n + 1)


SHARDED = r"""
import json, sys
import jax, numpy as np
from silentfail.sim.run import run
from silentfail.sim.sweep import sweep
from silentfail.sim.scenario import preset
from silentfail.sim import scale
from silentfail.sim.config import Config
from silentfail.sim.federate import scan
from silentfail.sim.population import build_population

out = {"devices": len(jax.devices())}
sc = preset("label-shift").replace(**{"population.num_clients": 96, "federation.clients_per_round": 16,
                                      "federation.rounds": 5, "population.trace_clients": 96})
traces = {f"{d}-{c}": run(sc, 2, devices=d, chunk=c) for d, c in ((1, None), (2, None), (4, 32), (8, None), (8, 40))}
ref = traces.pop("1-None")
def rel(a, b):
    def one(x, y):
        if not x.size:
            return 0.0
        if x.dtype.kind in "USO":  # labels (e.g. null_cause): equal or not
            return 0.0 if np.array_equal(x, y) else float("inf")
        x, y = np.asarray(x, float), np.asarray(y, float)
        return float(np.nanmax(np.abs(x - y) / (1 + np.abs(x))))
    return {v: one(a[v].values, b[v].values) for v in a.data_vars}
out["run"] = {k: rel(ref, t) for k, t in traces.items()}
# the secure sum is a cross-device reduction in the sharded program
mesh = scale.client_mesh(4)
ctx, pop = build_population(sc, jax.random.key(0))
ctx, pop = scale.place(ctx, mesh, -1), scale.place(pop, mesh, 96)
out["hlo_all_reduce"] = "all-reduce" in scan.lower(Config(sc), ctx, pop, jax.random.key(1)).compile().as_text()
try:
    run(sc.replace(**{"population.num_clients": 90, "federation.clients_per_round": 9}), 0, devices=4)
except ValueError as e:
    out["indivisible"] = str(e)
ph = preset("phase").replace(**{"population.num_clients": 40, "federation.clients_per_round": 40, "federation.rounds": 4,
                                "monitor.alpha": 0.2, "monitor.calibration_seeds": 16})
axes = {"personalization.lam": [0.01, 1.0]}
ref = sweep(ph, axes, seeds=4, chunk=32)
out["sweep"] = {}
for d, c in ((2, 64), (4, 32), (8, 32)):
    s = sweep(ph, axes, seeds=4, chunk=c, devices=d)
    out["sweep"][f"{d}-{c}"] = rel(ref, s)
try:
    sweep(ph, axes, seeds=4, chunk=32, devices=3)
except ValueError as e:
    out["indivisible_sweep"] = str(e)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def sharded():
    env = {
        **os.environ,
        "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip(),
    }
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=1200, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sharded_runs_equal_the_unsharded_run_on_1_2_4_8_devices(sharded):
    assert sharded["devices"] == 8
    for key, diffs in sharded["run"].items():
        worst = max(diffs, key=diffs.get)
        assert diffs[worst] < 2e-5, (key, worst, diffs[worst])


def test_sharded_secure_sum_is_a_cross_device_reduction(sharded):
    assert sharded["hlo_all_reduce"]


def test_indivisible_client_count_is_rejected(sharded):
    assert "population.num_clients = 90 is not divisible by the 4 devices" in sharded["indivisible"]


def test_devices_that_do_not_divide_a_device_call_are_rejected(sharded):
    assert "devices = 3 must divide the 32 runs of a device call" in sharded["indivisible_sweep"]


def test_sharded_sweeps_equal_the_unsharded_sweep(sharded):
    for key, diffs in sharded["sweep"].items():
        worst = max(diffs, key=diffs.get)
        assert diffs[worst] < 2e-5, (key, worst, diffs[worst])


def test_clear_caches_clears_every_compiled_program_cache():
    """The engine's compiled programs are jitted functions of a Config (JAX's one
    cache: no lru_cache of compiled programs anywhere in silentfail.sim), and
    sim.clear_caches empties them, every cache of results and the NUTS samplers."""
    import functools
    import importlib
    import inspect
    import pkgutil

    import silentfail.sim as sim_pkg
    from silentfail.sim import estimate
    from silentfail.sim.run import run
    from silentfail.sim.scenario import preset
    from silentfail.sim.verdict import calibrate

    sc = preset("label-shift").replace(
        **{"population.num_clients": 16, "federation.clients_per_round": 8, "federation.rounds": 2}
    )
    run(sc, 0)
    calibrate(sc)
    caches, programs = [], []
    for info in pkgutil.iter_modules(sim_pkg.__path__):
        mod = importlib.import_module(f"silentfail.sim.{info.name}")
        for obj in vars(mod).values():
            if isinstance(obj, functools._lru_cache_wrapper) and obj.__module__ == mod.__name__:
                caches.append(obj)
            elif (
                hasattr(obj, "_cache_size")
                and not isinstance(obj, type)  # a program, not a class of them (effort.EffortJit)
                and getattr(obj, "__module__", None) == mod.__name__
            ):
                programs.append(obj)
    names = {f"{p.__module__.rsplit('.', 1)[-1]}.{p.__name__}" for p in programs}
    assert {
        "federate.scan",
        "batch.program",
        "literature.program",
        "influence.program",
        "engine.program",
        "population._compiled_build",
    } <= names, names
    assert any(p._cache_size() for p in programs)
    estimate._MCMC["probe"] = object()
    sim_pkg.clear_caches()
    assert all(c.cache_info().currsize == 0 for c in caches), [
        c.__qualname__ for c in caches if c.cache_info().currsize
    ]
    assert all(p._cache_size() == 0 for p in programs), [p.__name__ for p in programs if p._cache_size()]
    assert not estimate._MCMC
    src = inspect.getsource(sim_pkg.clear_caches)
    missing = [f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}" for c in caches]
    missing = [m for m in missing if m not in src]
    assert not missing, missing


def test_client_sum_is_accurate_where_a_running_float32_sum_is_not():
    """A secure sum of 200,000 reports: the two-level sum is within 1e-6 of the float64
    sum (the plain float32 reduction in the round program erred by 1.8e-4)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.4, (200_003, 3)).astype(np.float32)
    exact = x.astype(np.float64).sum(0)
    got = np.asarray(jax.jit(scale.client_sum)(jnp.asarray(x)), np.float64)
    assert np.max(np.abs(got - exact) / exact) < 1e-6
    running = np.cumsum(x, axis=0, dtype=np.float32)[-1]  # one accumulator, term after term
    assert np.max(np.abs(running - exact) / exact) > 1e-5
    small = x[:100]
    np.testing.assert_array_equal(
        np.asarray(scale.client_sum(jnp.asarray(small))), np.asarray(jnp.asarray(small).sum(0))
    )


def test_materialized_is_the_identity_to_the_bit():
    """The buffer that keeps XLA from re-computing P theta + b inside every consumer
    returns exactly its input (products by 1 and sums of zeros), whatever the magnitude,
    and a non-finite entry stays non-finite."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 17)) * 10.0 ** rng.integers(-30, 30, (64, 17))).astype(np.float32)
    x[0, :3] = [0.0, -0.0, np.finfo(np.float32).max]
    np.testing.assert_array_equal(np.asarray(jax.jit(scale.materialized)(x)), x)
    x[1, 4] = np.inf
    assert not np.isfinite(np.asarray(scale.materialized(jnp.asarray(x)))[1]).all()


def test_auto_blocks_on_an_accelerator_are_bounded_by_memory_not_cache(monkeypatch):
    """On a GPU the CPU's cache-sized blocks would make a run launch-bound: "auto" keeps
    far larger populations in one block and splits the rest near AUTO_ACCELERATOR."""
    monkeypatch.setattr(scale.jax, "default_backend", lambda: "gpu")
    assert scale.resolve_chunk("auto", 200_000) is None
    block = scale.resolve_chunk("auto", 10_000_000)
    assert 10_000_000 % block == 0 and scale.AUTO_ACCELERATOR / 2 <= block <= 2 * scale.AUTO_ACCELERATOR
    assert scale.resolve_chunk("auto", 10_000_000, devices=8) % 8 == 0
