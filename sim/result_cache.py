"""Results kept on disk, keyed by everything that made them.

A batch of runs (:func:`silentfail.sim.batch.run_batch`) is a pure function of its
inputs (the scenario, the traced fields and their values, the seeds, the thresholds,
the detectors) and of the code that computes it. Inside :func:`enabled` (the CLI
wraps every command in it, with ``~/.cache/silentfail/results`` or
``$SILENTFAIL_RESULT_CACHE``; the Python API computes everything unless a caller opts
in), its outcomes are stored under the SHA-256 of those inputs, of the package's own source
files and of the JAX version, so a later call with the same inputs reads them instead
of computing them: the detector calibration of a scenario that ``silentfail simulate``
ran before, the null runs of a sweep already drawn. Any change to the code, to JAX or to
an input is another key; a plugin (code outside the package) switches the cache off for
the rest of the process. Files are written atomically; one that cannot be read is
computed again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

_STATE: dict = {"plugins": False, "folder": None}


@contextlib.contextmanager
def enabled(folder: str | Path | None) -> Iterator[None]:
    """Use ``folder`` as the cache inside the block (None: no cache).

    Args:
        folder: the cache folder.

    Yields:
        Nothing; the previous setting is restored after the block.
    """
    before = _STATE["folder"]
    _STATE["folder"] = None if folder is None else Path(folder)
    try:
        yield
    finally:
        _STATE["folder"] = before


def plugins_loaded() -> None:
    """Switch the cache off for this process: a plugin's code is not in the key."""
    _STATE["plugins"] = True


def directory() -> Path | None:
    """The cache folder, or None outside :func:`enabled`, after a plugin is loaded, or
    when the run spans several processes (each must compute what the others compute:
    a collective).

    Returns:
        The folder, or None.
    """
    from . import distributed

    if _STATE["folder"] is None or _STATE["plugins"] or distributed.process_count() > 1:
        return None
    return _STATE["folder"]


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 of the package's Python sources and the JAX version (computed once).

    Returns:
        The hex digest.
    """
    import importlib.util

    import jax
    import jaxlib

    h = hashlib.sha256(f"jax {jax.__version__} jaxlib {jaxlib.__version__}".encode())
    top = __package__.rsplit(".", 1)[0]  # "silentfail"; its folders are found, not imported
    for name in (top, f"{top}.taxonomy", __package__):
        spec = importlib.util.find_spec(name)
        folder = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(folder.glob("*.py")):
            h.update(f"{name}/{path.name}".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def key(*parts: str | bytes) -> str:
    """The key of a result: SHA-256 of the code digest and ``parts``.

    Args:
        parts: the inputs, as text or bytes.

    Returns:
        The hex digest.
    """
    h = hashlib.sha256(code_digest().encode())
    for p in parts:
        b = p if isinstance(p, bytes) else p.encode()
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _through_file(kind: str, parts: tuple[str | bytes, ...], suffix: str, load, save, compute):
    """``compute()``, read from the cache file of ``parts`` (``load(path)``) when it holds
    one, else computed and written there (``save(value, path)``, atomic); outside
    :func:`enabled`, just computed. An unreadable file is computed again; a write that
    fails (read-only or full disk) still returns the result."""
    folder = directory()
    if folder is None:
        return compute()
    path = folder / f"{kind}-{key(kind, *parts)}{suffix}"
    if path.exists():
        try:
            return load(path)
        except Exception:  # noqa: BLE001 - an unreadable file is computed again
            pass
    out = compute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        save(out, path)
    except OSError:
        pass
    return out


def cached(kind: str, parts: tuple[str | bytes, ...], compute: Callable[[], dict[str, np.ndarray]]) -> dict:
    """``compute()`` (a dict of arrays), read from the cache when it holds the result of
    the same ``parts``, else computed and stored.

    Args:
        kind: a name for the file (e.g. ``"batch"``).
        parts: the inputs that determine the result.
        compute: computes the result.

    Returns:
        The dict of NumPy arrays.
    """

    def load(path: Path) -> dict:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def save(out: dict, path: Path) -> None:
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **{k: np.asarray(v) for k, v in out.items()})
        tmp.replace(path)

    return _through_file(kind, parts, ".npz", load, save, compute)


def cached_dataset(kind: str, parts: tuple[str | bytes, ...], compute: Callable[[], xr.Dataset]) -> xr.Dataset:
    """:func:`cached` for a whole result Dataset (a sweep, a posterior, the influence
    tests), stored as NetCDF (:func:`~silentfail.sim.trace.save_netcdf`, atomic) under
    the key of ``parts``; read back when present, so what a command already computed
    for the same inputs and code is reused (the paper build: ``silentfail paper``).

    Args:
        kind: a name for the file (e.g. ``"paper-sweep"``).
        parts: the inputs that determine the result.
        compute: computes the result.

    Returns:
        The Dataset (loaded into memory).
    """
    import xarray as xr

    from .trace import save_netcdf

    return _through_file(
        kind, parts, ".nc", lambda path: xr.load_dataset(path, engine="h5netcdf"), save_netcdf, compute
    )
