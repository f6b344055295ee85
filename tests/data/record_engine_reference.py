"""Record the engine's outputs on every preset (seed 0) into ``engine_reference.npz``.

Run once from the checkout, on the engine whose numbers later refactors must keep
(``tests/sim/test_engine_equivalence.py`` compares against the file):

    python tests/data/record_engine_reference.py

The engine runs under the test suite's XLA flags (``tests/conftest.py``), so the
comparison is to float round-off of one and the same compilation pipeline. Every
per-round data variable of the trace is stored, with the per-client ones cut to
the first 8 clients (enough to pin the per-client metrics, small enough to commit).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false")

import numpy as np  # noqa: E402

import silentfail as sf  # noqa: E402
from silentfail.sim.scenario import preset_names  # noqa: E402

OUT = Path(__file__).with_name("engine_reference.npz")
CLIENTS = 8


def reference_arrays(name: str) -> dict[str, np.ndarray]:
    """The trace of preset ``name`` at seed 0, as ``{"name/var": array}``."""
    tr = sf.run(sf.preset(name), seed=0)
    out = {}
    for var, da in tr.data_vars.items():
        if "client" in da.dims:
            da = da.isel(client=slice(0, CLIENTS))
        if da.dtype.kind in "fiub":
            out[f"{name}/{var}"] = np.asarray(da.values)
    return out


def main() -> None:
    arrays = {}
    for name in preset_names():
        arrays.update(reference_arrays(name))
    np.savez_compressed(OUT, **arrays)
    print(f"{OUT}: {len(arrays)} arrays, {OUT.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
