"""Shared test helpers."""

from __future__ import annotations

import contextlib
import fcntl
import os

import pytest

from silentfail.taxonomy import builtin_taxonomy
from silentfail.taxonomy.schema import NodeKind, node_from_dict

_EXTRA = {
    NodeKind.SHIFT: {"changes": ["P(y)"]},
    NodeKind.FAILURE_MODE: {"index": 7, "layer": "model", "metric": "a metric", "worse": "higher"},
    NodeKind.BENCHMARK: {"category": "Federated", "primary_focus": "x", "order": 99},
}


def make_node(kind: NodeKind, node_id: str):
    """A minimal valid node of any kind."""
    data = {"id": node_id, "kind": kind.value, "name": node_id.replace("_", " "), "definition": "test node"}
    data.update(_EXTRA.get(kind, {}))
    if kind is NodeKind.REFERENCE:
        data["bibtex"] = f"@misc{{{node_id}, title = {{T}}}}"
    return node_from_dict(data)


@pytest.fixture(scope="module", autouse=True)
def _free_compiled_programs():
    """Each test module compiles its own scenarios; free them afterwards so that the
    whole suite never accumulates thousands of compiled programs in one process."""
    yield
    from silentfail.sim import clear_caches

    clear_caches()


@pytest.fixture(scope="session")
def tax():
    return builtin_taxonomy()


@contextlib.contextmanager
def _locked(path, blocking: bool = True):
    """An exclusive lock on ``path`` (fcntl), yielding whether it was taken."""
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def claim_results(tmp_path_factory):
    """Every literature claim run once per test run (shared by the literature tests and
    the paper build). Under pytest-xdist the workers share one folder of claim results:
    each claim is computed by whichever worker takes its lock first (so two workers
    split the claims) and loaded from its file by the others (``run_claims`` reuses a
    saved claim with the same scenario, arms and seeds)."""
    from silentfail.sim.literature import CLAIM_KEYS, run_claims

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, shared by the workers
    folder = root / "claims"
    folder.mkdir(exist_ok=True)
    out, waiting = {}, []
    for key in CLAIM_KEYS:
        with _locked(folder / f"{key}.lock", blocking=False) as mine:
            if mine:
                out.update(run_claims((key,), folder=folder))
            else:
                waiting.append(key)
    for key in waiting:  # another worker is computing these: wait, then load
        with _locked(folder / f"{key}.lock"):
            out.update(run_claims((key,), folder=folder))
    return {key: out[key] for key in CLAIM_KEYS}
