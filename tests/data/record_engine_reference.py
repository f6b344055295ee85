"""Record the engine's outputs on every preset (seed 0) into ``engine_reference.npz``.

Run once from the checkout, on the engine whose numbers later refactors must keep
(``tests/sim/test_engine_equivalence.py`` compares against the file):

    python tests/data/record_engine_reference.py

Every per-round data variable of the trace is stored, with the per-client ones cut to
the first 8 clients (enough to pin the per-client metrics, small enough to commit).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import silentfail as sf
from silentfail.sim.scenario import preset_names

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
