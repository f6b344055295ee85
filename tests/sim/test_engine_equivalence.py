"""The engine keeps its numbers: every preset's trace at seed 0 equals the one recorded
from main before the engine was split into its seams (``tests/data/engine_reference.npz``,
recorded by ``tests/data/record_engine_reference.py``), to 1e-6 relative to each
array's scale (float32 round-off: the order in which XLA fuses a program may move a
difference of two O(1) accuracies by an ulp)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import silentfail as sf
from silentfail.sim.scenario import preset_names

REFERENCE = Path(__file__).parents[1] / "data" / "engine_reference.npz"
CLIENTS = 8  # the recorded per-client variables keep the first 8 clients


@pytest.fixture(scope="module")
def reference() -> dict[str, dict[str, np.ndarray]]:
    with np.load(REFERENCE) as z:
        out: dict[str, dict[str, np.ndarray]] = {}
        for key in z.files:
            name, var = key.split("/", 1)
            out.setdefault(name, {})[var] = z[key]
    return out


def test_reference_covers_every_preset(reference):
    assert set(reference) == set(preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_trace_equals_recorded(name, reference):
    tr = sf.run(sf.preset(name), seed=0)
    recorded = reference[name]
    # a variable may be added to the trace, never lost
    assert set(recorded) <= set(tr.data_vars), sorted(set(recorded) - set(tr.data_vars))
    for var, want in recorded.items():
        da = tr[var]
        if "client" in da.dims:
            da = da.isel(client=slice(0, CLIENTS))
        got = np.asarray(da.values)
        assert got.shape == want.shape, var
        # float32 round-off: relative to the array's scale, at least that of the O(1)
        # probabilities its differences (gaps, drops) are computed from
        scale = max(float(np.nanmax(np.abs(want))), 1.0) if np.isfinite(want).any() else 1.0
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * scale, err_msg=f"{name}: {var}")
