"""Shared test helpers."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def claim_results():
    """Every literature claim run once per test session (shared by the literature tests
    and the paper build, which would otherwise run them twice)."""
    from silentfail.sim.literature import run_claims

    return run_claims()
