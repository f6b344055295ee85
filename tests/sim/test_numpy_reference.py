"""The engine's round metrics (XLA-shaped kernels) equal their readable definitions, an
independent NumPy loop over clients in float64 (``sim/reference.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from silentfail.sim.population import build_population
from silentfail.sim.reference import arrays_from, round_numpy
from silentfail.sim.run import run
from silentfail.sim.scenario import preset

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_first_round_metrics_match_the_numpy_loop():
    sc = preset("label-shift").replace(
        **{
            "population.num_clients": 40,
            "population.trace_clients": 40,
            "population.ood_subset": 6,
            "federation.clients_per_round": 8,
            "federation.rounds": 1,
        }
    )
    tr = run(sc, 0)
    kpop, _ = jax.random.split(jax.random.key(0))
    ctx, pop = build_population(sc, kpop)
    arrays = arrays_from(ctx, pop)
    ref = round_numpy(np.asarray(ctx.theta0, np.float64), arrays, bins=sc.thresholds.ece_bins)
    got = tr.isel(round=0)
    for name in ("acc", "ece_classwise", "ece_top_label", "bias_amp", "alignment"):
        np.testing.assert_allclose(got[f"client_{name}"].values, ref[name], atol=2e-4, err_msg=name)
    ood = np.maximum(ref["ood_other"], tr.attrs["fm_p0_acc"] - got["client_p0_acc"].values)
    np.testing.assert_allclose(got["client_ood"].values, ood, atol=2e-4)


def test_bench_harness_smoke(tmp_path):
    """``silentfail bench --smoke`` runs every measurement at tiny sizes and writes the
    JSON it documents (no timing is asserted: this is not a benchmark)."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "silentfail", "bench", "--smoke", "--no-flower", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    res = json.loads(out.read_text())
    assert {
        "machine",
        "peaks",
        "round_cost",
        "run",
        "rounds_scaling",
        "sweep",
        "grid_scaling",
        "exponents",
        "numpy_loop",
        "flower",
    } <= set(res)
    assert (
        res["peaks"]["matmul_gflops"] > 0
        and res["peaks"]["triad_gbs"] > 0
        and res["peaks"]["exp_per_s"] > 0
        and res["peaks"]["erfc_per_s"] > 0
    )
    for row in res["run"]:
        assert row["client_rounds_per_s"] > 0 and row["compile_s"] > 0 and row["peak_rss_mb"] > 0
        assert row["local_steps_per_s"] == pytest.approx(5 * row["client_rounds_per_s"])
        assert 0 < row["roofline"]["fraction_of_roofline"] and row["roofline"]["binds"]
    # the cost analysis counts real work: > 1,000 flops and > 100 transcendentals (exp, erfc) per client-round
    assert res["round_cost"]["flops"] / res["round_cost"]["clients"] > 1e3
    assert res["round_cost"]["transcendentals"] / res["round_cost"]["clients"] > 100
    assert np.isfinite(res["exponents"]["rounds"]) and np.isfinite(res["exponents"]["grid_cells"])
    assert res["sweep"]["compile_s"] > 0 and res["sweep"]["runs"] > 0
    for peer in ("flower", "pfl", "fedjax"):  # the framework peers (their venvs are not in CI)
        assert res[peer] == {"skipped": "--no-flower"}
    assert res["machine"]["backend"] == "cpu" and res["machine"]["accelerator"] is False
    for row in res["end_to_end"].values():
        assert row["cold_s"] > 0 and row["warm_compile_cache_s"] > 0 and row["warm_s"] > 0
    for row in res["multiprocess"].values():
        assert row["processes"] == 2 and row["speed_up"] == pytest.approx(row["one_process_s"] / row["n_process_s"])


def test_block_benchmark_harness_smoke():
    """The interleaved block-size benchmark runs every case and fits the exponent over
    the cases that use chunk="auto"'s block (no timing is asserted)."""
    out = subprocess.run(
        [sys.executable, str(BENCH / "bench_blocks.py"), "--smoke"], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("ns a client-round") == 3 and "(auto)" in out.stdout
    assert "clients exponent over 64, 128 (auto blocks)" in out.stdout
    bad = subprocess.run(
        [sys.executable, str(BENCH / "bench_blocks.py"), "--repeats", "0"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--repeats must be at least 1, got 0" in bad.stderr


def test_estimate_benchmark_harness_smoke():
    out = subprocess.run(
        [sys.executable, str(BENCH / "bench_estimate.py"), "--smoke"], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"exact_cached_s"' in out.stdout and '"first_fit_s"' in out.stdout


def test_peer_workload_is_silentfails_fedavg(tmp_path):
    """The peers' workload (``benchmarks/peers/fedavg_numpy.py``, which the Flower peer's
    clients run) reaches silentfail's final global model on the FedAvg scenario: the
    same clients, local steps and weights (float64 loop vs the float32 engine)."""
    sys.path.insert(0, str(BENCH / "peers"))
    from fedavg_numpy import fedavg

    from silentfail.bench import fedavg_scenario, peer_clients

    sc = fedavg_scenario(30, 4)
    theta = peer_clients(sc, tmp_path / "clients.npz")
    with np.load(tmp_path / "clients.npz") as z:
        ref = fedavg({k: z[k] for k in z.files})
    np.testing.assert_allclose(theta, ref, atol=1e-5)
    assert (
        np.abs(ref - np.load(tmp_path / "clients.npz")["theta0"]).max() > 1e-2
    )  # the model moved: not a vacuous check
