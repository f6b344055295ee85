"""Shared test helpers."""

from __future__ import annotations

import contextlib
import fcntl
import os

import pytest

from silentfail.taxonomy import builtin_taxonomy
from silentfail.taxonomy.schema import NodeKind, node_from_dict

#: XLA flags of the test run: the CPU backend's LLVM optimizations and its fusion
#: emitters off, which makes compiling (most of the suite's time) about three times
#: faster and running somewhat slower. The numbers agree with the default pipeline's to
#: float round-off, which is all any test asserts. A user's own XLA_FLAGS are kept, and
#: ``SILENTFAIL_TEST_XLA_FLAGS=""`` tests the default pipeline.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"


def pytest_configure(config):
    """Set up the run's environment, which both xdist workers and every subprocess the
    tests start inherit: the XLA flags above, and one JAX persistent compilation cache
    for the whole run, so that a program that several test modules, or the CLI in a
    subprocess, compile again is loaded from disk (keyed by the program and the
    compiler, so it never changes a number; a cache the user set is kept)."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller did this
        return
    if "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = os.environ.get("SILENTFAIL_TEST_XLA_FLAGS", TEST_XLA_FLAGS)
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        import tempfile

        config._silentfail_jax_cache = tempfile.mkdtemp(prefix="silentfail-jax-cache-")
        os.environ["JAX_COMPILATION_CACHE_DIR"] = config._silentfail_jax_cache
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    if "SILENTFAIL_RESULT_CACHE" not in os.environ:  # the CLI's result cache: one per run, not the user's
        import tempfile

        os.environ["SILENTFAIL_RESULT_CACHE"] = tempfile.mkdtemp(prefix="silentfail-results-")


def pytest_pyfunc_call(pyfuncitem):
    """A test marked ``default_compiler`` is run-bound (long MCMC chains, slow under the
    test run's unoptimized code): under the test XLA flags it runs in a pytest child
    process with the default pipeline, and its outcome is the child's. The first such
    test of a module starts one child for all the module's selected ``default_compiler``
    tests (one interpreter start, not one per test) and every one reads its own outcome."""
    if pyfuncitem.get_closest_marker("default_compiler") is None or os.environ.get("XLA_FLAGS") != TEST_XLA_FLAGS:
        return None
    module = str(pyfuncitem.path)
    if module not in _CHILD_OUTCOMES:
        ids = [
            it.nodeid
            for it in pyfuncitem.session.items
            if str(it.path) == module and it.get_closest_marker("default_compiler") is not None
        ]
        _CHILD_OUTCOMES[module] = _run_in_child(pyfuncitem.config, ids)
    outcome = _CHILD_OUTCOMES[module].get(pyfuncitem.name)
    if outcome is None:
        pytest.fail(f"{pyfuncitem.nodeid}: the default-pipeline child reported no outcome", pytrace=False)
    kind, text = outcome
    if kind == "skipped":
        pytest.skip(text)
    if kind != "passed":
        pytest.fail(f"{pyfuncitem.nodeid} failed under the default XLA pipeline:\n{text[-6000:]}", pytrace=False)
    return True


#: module path -> {test name: (passed | failed | skipped, message)} of its child run.
_CHILD_OUTCOMES: dict[str, dict[str, tuple[str, str]]] = {}


def _run_in_child(config, nodeids: list[str]) -> dict[str, tuple[str, str]]:
    """Run ``nodeids`` in one pytest child with the default XLA pipeline; their outcomes
    by test name, read from the child's JUnit XML."""
    import subprocess
    import sys
    import tempfile
    import xml.etree.ElementTree as ET

    env = {**os.environ, "XLA_FLAGS": ""}
    with tempfile.TemporaryDirectory(prefix="silentfail-child-") as tmp:
        report = os.path.join(tmp, "report.xml")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:xdist",
                "-p",
                "no:cacheprovider",
                "-o",
                "addopts=",
                f"--junitxml={report}",
                *nodeids,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=config.rootpath,
        )
        if not os.path.exists(report):
            return {nodeid.split("::")[-1]: ("failed", proc.stdout[-4000:] + proc.stderr[-2000:]) for nodeid in nodeids}
        outcomes = {}
        for case in ET.parse(report).getroot().iter("testcase"):
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            skip = case.find("skipped")
            if bad is not None:
                outcomes[case.get("name")] = ("failed", f"{bad.get('message', '')}\n{bad.text or ''}")
            elif skip is not None:
                outcomes[case.get("name")] = ("skipped", skip.get("message", ""))
            else:
                outcomes[case.get("name")] = ("passed", "")
        return outcomes


def pytest_unconfigure(config):
    folder = getattr(config, "_silentfail_jax_cache", None)
    if folder:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


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
