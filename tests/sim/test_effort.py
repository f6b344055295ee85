"""The compile effort: small calls compile fast, large ones with XLA's full pipeline, the
same numbers either way, and a bad setting named."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from silentfail.sim import effort
from silentfail.sim.config import Config
from silentfail.sim.scenario import preset


def _toy(cfg: Config, x: jax.Array) -> jax.Array:
    return jnp.cumsum(jnp.sin(x) * jnp.exp(-(x**2)), axis=0) / (1.0 + jnp.arange(x.shape[0]))


def test_a_small_call_compiles_fast_and_a_large_one_in_full(monkeypatch):
    monkeypatch.delenv("SILENTFAIL_COMPILE", raising=False)
    prog = effort.EffortJit(_toy, runs_arg=1)
    cfg = Config(preset("default"))
    sc = cfg.static.scenario
    x = jnp.linspace(-3, 3, 257, dtype=jnp.float32)
    per_run = sc.population.num_clients * sc.federation.rounds
    assert prog.work((cfg, x)) == 257 * per_run
    monkeypatch.setattr(effort, "FAST_WORK", 257 * per_run)  # this call is at the bound: fast
    small = prog(cfg, x)
    assert prog.fast._cache_size() == 1 and prog.full._cache_size() == 0
    monkeypatch.setattr(effort, "FAST_WORK", 257 * per_run - 1)  # and now above it: full
    large = prog(cfg, x)
    assert prog.full._cache_size() == 1
    np.testing.assert_allclose(np.asarray(small), np.asarray(large), rtol=1e-6, atol=1e-7)
    assert prog._cache_size() == 2
    # inside another trace the call is the outer program's (compiler options are top-level only)
    np.testing.assert_allclose(np.asarray(jax.jit(lambda c, v: prog(c, v))(cfg, x)), np.asarray(large), rtol=1e-6)
    assert jax.eval_shape(prog, cfg, x).shape == x.shape


def test_the_setting_overrides_the_work_and_a_bad_one_is_named(monkeypatch):
    monkeypatch.setenv("SILENTFAIL_COMPILE", "full")
    assert not effort.fast(1.0)
    monkeypatch.setenv("SILENTFAIL_COMPILE", "fast")
    assert effort.fast(1e12)
    monkeypatch.setenv("SILENTFAIL_COMPILE", "auto")
    assert effort.fast(effort.FAST_WORK) and not effort.fast(effort.FAST_WORK + 1)
    monkeypatch.setenv("SILENTFAIL_COMPILE", "quick")
    with pytest.raises(ValueError, match="SILENTFAIL_COMPILE = 'quick'"):
        effort.fast(1.0)


def test_the_engine_programs_choose_by_their_work():
    from silentfail.sim import engine, influence, literature

    for prog in (engine.program, influence.program, literature.program):
        assert isinstance(prog, effort.EffortJit)
