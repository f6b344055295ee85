"""The speed-and-scale benchmark harness (``silentfail bench``, ``benchmarks/bench_scale.py``).

It measures, on the default scenario (population mode, d = 16, K = 5, 10% report slots)
and on the default phase sweep:

* client-rounds and local steps per second, compile time apart from run time (best of
  ``repeats`` runs of the compiled program), and the peak RSS of a process that does
  only that measurement (each runs in its own subprocess);
* the work of one round from XLA's cost analysis of the compiled round (floating-point
  operations, transcendental evaluations, bytes accessed by the fused kernels) and the
  compulsory memory traffic (every per-client array the round reads, once); the
  achieved GFLOP/s and GB/s follow;
* the machine's peaks, measured here: a large float32 matmul (GFLOP/s), a
  stream-triad ``a = b + s c`` on 2^25 floats (GB/s, three arrays' bytes moved) and
  float32 ``exp`` and ``erfc`` evaluations per second (the normal CDFs of the
  calibration error and the OOD panel are one ``exp`` each, ``metrics.phi_fast``). The
  roofline time of a round is max(compute, memory): compute = flops / matmul peak +
  transcendentals / exp rate, memory = compulsory bytes / triad bandwidth; the
  fraction of the roofline achieved is that time over the measured one;
* the cost exponents in clients, rounds and grid cells (least-squares slope of
  log time on log size);
* the peers on the same work: the plain NumPy loop over clients
  (``silentfail.sim.reference``) and, when their own virtual environments exist,
  three frameworks running FedAvg on the same clients (:data:`PEERS`: Flower's
  simulation engine, pfl-research with PyTorch, FedJAX; ``benchmarks/peers/``), each
  checked to reach the same global model.

Results go to ``benchmarks/results/bench.json`` with the machine description.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PEERS_DIR = ROOT / "benchmarks" / "peers"


class Peer(NamedTuple):
    """A simulation framework measured on the same FedAvg workload, in its own venv."""

    title: str
    venv: Path
    script: str  # under benchmarks/peers/
    build: str  # the script that builds its venv
    version: str  # the key of its version in the peer's JSON (and the row's)


#: the frameworks ``silentfail bench`` runs the FedAvg workload in (``framework_peer``)
PEERS = {
    "flower": Peer("Flower", PEERS_DIR / ".flower-venv", "flower_fedavg.py", "build_venv.sh flower", "flwr"),
    "pfl": Peer("pfl-research", PEERS_DIR / ".pfl-venv", "pfl_fedavg.py", "build_venv.sh pfl", "pfl"),
    "fedjax": Peer("FedJAX", PEERS_DIR / ".fedjax-venv", "fedjax_fedavg.py", "build_venv.sh fedjax", "fedjax"),
}


def default_output() -> Path:
    """Where the full benchmark is recorded: ``benchmarks/results/bench.json`` on CPU,
    ``bench_<device kind>.json`` on an accelerator (e.g. ``bench_nvidia_h200.json``), so
    the numbers of every machine kind are kept with its name.

    Returns:
        The JSON file.
    """
    import re

    import jax

    if jax.default_backend() == "cpu":
        return RESULTS / "bench.json"
    kind = re.sub(r"[^a-z0-9]+", "_", jax.devices()[0].device_kind.lower()).strip("_")
    return RESULTS / f"bench_{kind or jax.default_backend()}.json"


class BenchError(RuntimeError):
    """The benchmark cannot run here (the message says why)."""


def require_checkout() -> Path:
    """The repository checkout the benchmark needs (its ``benchmarks/`` folder: the NumPy
    and Flower peers and the recorded results), or a clear error: an installed package
    does not ship it.

    Returns:
        The checkout's root folder.

    Raises:
        BenchError: run from an installed package (no ``benchmarks/`` beside it).
    """
    if not (ROOT / "benchmarks" / "README.md").is_file():
        raise BenchError(
            f"silentfail bench needs the source checkout's benchmarks/ folder, which the installed package does not "
            f"ship (looked in {str(ROOT)!r}); run it from a clone of the repository (pip install -e .)"
        )
    return ROOT


#: (clients, rounds) of the run benchmark, and the rounds of the rounds-scaling fit at 1e4 clients.
FULL = dict(
    run=[(1_000, 100), (10_000, 50), (100_000, 20), (1_000_000, 4)],
    rounds=[25, 50, 100],
    grid_runs=[32, 64, 128],
    repeats=3,
    peers=(100, 3),
    numpy_clients=2_000,
    cost_clients=10_000,
)
#: on an accelerator (``silentfail bench`` finds one): 1e4 .. 1e7 clients, the full engine
ACCELERATOR = dict(FULL, run=[(10_000, 50), (100_000, 20), (1_000_000, 8), (10_000_000, 4)])
SMOKE = dict(
    run=[(64, 2), (128, 2)],
    rounds=[2, 3],
    grid_runs=[32, 64],
    repeats=1,
    peers=(8, 2),
    numpy_clients=20,
    cost_clients=64,
)


def machine() -> dict:
    """CPU model, cores, memory, Python, JAX and its devices.

    Returns:
        ``{cpu, cores, memory_gib, python, jax, backend, device_kind, accelerator,
        devices, platform}``.
    """
    import jax

    cpu = "unknown"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else float("nan")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "accelerator": jax.default_backend() != "cpu",
        "devices": [str(d) for d in jax.devices()],
        "platform": platform.platform(),
    }


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    """Best wall time of ``repeats`` calls of ``fn`` (blocked on its result), and all of them.

    Args:
        fn: the call to time.
        repeats: how many times.

    Returns:
        (best seconds, every time).
    """
    import jax

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times), times


def peaks(repeats: int = 5, matmul: int = 2048, stream: int = 2**25) -> dict:
    """Measured peaks of this machine: float32 matmul GFLOP/s, stream-triad GB/s, exp/s and erfc/s.

    Args:
        repeats: timings per kernel (the best counts).
        matmul: the matmul's size n (n x n).
        stream: the triad's length.

    Returns:
        ``{matmul_gflops, triad_gbs, exp_per_s, erfc_per_s, method, ...}``.
    """
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (matmul, matmul))
    mm = jax.jit(lambda x: x @ x)
    jax.block_until_ready(mm(a))
    t_mm, _ = best_time(lambda: mm(a), repeats)
    b, c = jnp.ones(stream), jnp.full(stream, 2.0)
    triad = jax.jit(lambda b, c: b + 3.0 * c)
    jax.block_until_ready(triad(b, c))
    t_tr, _ = best_time(lambda: triad(b, c), repeats)
    z = jnp.linspace(-6.0, 6.0, stream // 4)
    # each function's rate: the better of a streaming kernel (array in, array out: may be
    # bound by memory) and a fused one (4096 x 2048 evaluations summed, inputs in cache)
    zc, wc = jnp.linspace(-6.0, 6.0, 4096), jnp.linspace(0.5, 1.5, 2048)
    rates = {}
    for name, fn in (("exp", jnp.exp), ("erfc", jax.lax.erfc)):
        stream_fn = jax.jit(fn)
        fused_fn = jax.jit(lambda z, w, fn=fn: fn(z[:, None] * w[None, :]).sum(0))
        jax.block_until_ready((stream_fn(z), fused_fn(zc, wc)))
        rates[name] = max(
            z.size / best_time(lambda s=stream_fn: s(z), repeats)[0],
            zc.size * wc.size / best_time(lambda f=fused_fn: f(zc, wc), repeats)[0],
        )
    return {
        "matmul_gflops": 2 * matmul**3 / t_mm / 1e9,
        "matmul_size": matmul,
        "triad_gbs": 3 * 4 * stream / t_tr / 1e9,
        "triad_floats": stream,
        "exp_per_s": rates["exp"],
        "erfc_per_s": rates["erfc"],
        "method": f"best of {repeats}: jnp matmul (2 n^3 flops), b + 3c on 2^25 float32 (12 bytes/element), jnp.exp and "
        "lax.erfc (the better of a streaming and a fused-sum kernel)",
    }


def scenario(clients: int, rounds: int):
    """The default scenario at a size (10% report slots).

    Args:
        clients: N.
        rounds: T.

    Returns:
        The Scenario.
    """
    from .sim.scenario import preset

    sc = preset("default")
    return sc.replace(
        **{
            "population.num_clients": clients,
            "federation.clients_per_round": max(1, clients // 10),
            "federation.rounds": rounds,
            "population.ood_subset": min(sc.population.ood_subset, clients),
        }
    )


def round_cost(clients: int) -> dict:
    """XLA's cost analysis of one round (the scan body is counted once) and the
    compulsory bytes a round reads (every per-client array of the population, once).

    Args:
        clients: N.

    Returns:
        ``{flops, transcendentals, bytes_accessed, compulsory_bytes}`` of one round.
    """
    import jax

    from .sim.config import Config
    from .sim.federate import scan
    from .sim.population import build_population

    sc = scenario(clients, 1)
    ctx, pop = build_population(sc, jax.random.key(0))
    cost = scan.lower(Config(sc), ctx, pop, jax.random.key(1)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    used = pop._replace(
        M=None, m=None, M_train=None, m_train=None, n=None, base=None, ood_panel=None
    )  # not read by a static round
    compulsory = sum(int(a.nbytes) for a in jax.tree.leaves(used))
    return {
        "flops": float(cost["flops"]),
        "transcendentals": float(cost.get("transcendentals", 0.0)),
        "bytes_accessed": float(cost["bytes accessed"]),
        "compulsory_bytes": float(compulsory),
    }


def measure_run(
    clients: int, rounds: int, repeats: int, chunk: int | str | None = "auto", devices: int | None = None, sc=None
) -> dict:
    """Compile and run the default scenario (or ``sc``) once per repeat; times, rates and peak RSS.

    Args:
        clients: N.
        rounds: T.
        repeats: timed runs (the best counts).
        chunk: clients per block (``sim.run.run``'s).
        devices: the device count.
        sc: a scenario instead of the default one at this size.

    Returns:
        ``{clients, rounds, chunk, devices, population_s, compile_s, run_s, run_s_all,
        client_rounds_per_s, local_steps_per_s, peak_rss_mb}``.
    """
    import jax

    from .sim import scale
    from .sim.config import Config
    from .sim.federate import check_supported, scan
    from .sim.population import build_population

    sc = scenario(clients, rounds) if sc is None else sc
    check_supported(sc)
    mesh, block = scale.plan(clients, chunk, devices)  # the same checks and layout as sim.run.run
    t0 = time.perf_counter()
    ctx, pop = build_population(sc, jax.random.key(0))
    ctx, pop = scale.place(ctx, mesh, -1), scale.place(pop, mesh, clients)
    jax.block_until_ready(pop)
    t_pop = time.perf_counter() - t0
    cfg = Config(sc)
    t0 = time.perf_counter()
    compiled = scan.lower(
        cfg, ctx, pop, jax.random.key(1), chunk=block, devices=mesh.size if mesh is not None else 1
    ).compile()
    t_compile = time.perf_counter() - t0
    jax.block_until_ready(compiled(cfg, ctx, pop, jax.random.key(1)))  # warm
    keys = iter(range(2, 2 + repeats))
    best, times = best_time(lambda: compiled(cfg, ctx, pop, jax.random.key(next(keys))), repeats)
    return {
        "clients": clients,
        "rounds": rounds,
        "chunk": block,
        "devices": devices or 1,
        "population_s": t_pop,
        "compile_s": t_compile,
        "run_s": best,
        "run_s_all": times,
        "client_rounds_per_s": clients * rounds / best,
        "local_steps_per_s": clients * rounds * sc.personalization.K / best,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_sweep(runs: int | None, smoke: bool) -> dict:
    """The default phase sweep's device program (CALL runs a call): trace and compile
    (the first call's time less a cached call's) apart from run time; with ``runs``
    only that many runs of the grid, else the whole default sweep (8 x 8 grid, 8 seeds,
    80 null runs per lambda) end to end.

    Args:
        runs: runs to time (None: the default sweep's).
        smoke: tiny sizes.

    Returns:
        The sweep row: compile and run times and runs per second.
    """
    import jax

    from .sim import batch
    from .sim.detectors import deployed, layout
    from .sim.scenario import preset
    from .sim.sweep import sweep
    from .sim.theory import THEORY_DRAWS

    sc = preset("phase")
    lam = [float(f"{v:.6g}") for v in np.geomspace(0.01, 10, 8)]
    strength = [float(v) for v in np.linspace(0, 1, 8)]
    seeds = 8
    if smoke:
        sc = sc.replace(
            **{
                "population.num_clients": 40,
                "federation.clients_per_round": 40,
                "federation.rounds": 4,
                "monitor.alpha": 0.2,
                "monitor.calibration_seeds": 16,
            }
        )
        lam, strength, seeds = lam[:2], strength[-2:], 2
    dets = deployed(sc)
    K = len(layout(dets).channel)
    paths = ("personalization.lam", "shifts.strength")
    statics = dict(paths=paths, detectors=tuple(dets), devices=None)  # the key run_batch uses
    fn = functools.partial(batch.program, batch.batch_config(sc), **statics)
    args = (
        np.ones((batch.CALL, 2), np.float32),
        np.arange(batch.CALL, dtype=np.uint32),
        np.full((batch.CALL, K), np.inf, np.float32),
    )
    t0 = time.perf_counter()
    batch.program.lower(batch.batch_config(sc), *args, **statics)
    t_trace = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))  # trace (cached) + compile + one call; fills the cache the sweep uses
    t_first = time.perf_counter() - t0
    t_call, _ = best_time(lambda: fn(*args), 1)
    t_compile = t_first - t_call
    per_run = sc.population.num_clients * sc.federation.rounds
    out = {
        "clients": sc.population.num_clients,
        "rounds": sc.federation.rounds,
        "trace_s": t_trace,
        "compile_s": t_compile,
        "runs_per_call": batch.CALL,
    }
    if runs is not None:  # grid-cell scaling: `runs` runs of the compiled program
        values = np.tile(np.array([[lam[0], strength[-1]]], np.float32), (runs, 1))
        thr = np.full((runs, K), np.inf, np.float32)
        batch.run_batch(sc, paths, dets, values[: batch.CALL], np.arange(batch.CALL), thr[: batch.CALL])  # warm
        t0 = time.perf_counter()
        batch.run_batch(sc, paths, dets, values, np.arange(runs), thr)
        t = time.perf_counter() - t0
        return {**out, "runs": runs, "run_s": t, "client_rounds_per_s": runs * per_run / t}
    t0 = time.perf_counter()
    sweep(sc, {"personalization.lam": lam, "shifts.strength": strength}, seeds=seeds, chunk=256)
    t = time.perf_counter() - t0
    theory = len(lam) * len(strength) * min(seeds, THEORY_DRAWS)  # the population-limit runs
    runs = len(lam) * len(strength) * seeds + len(lam) * sc.monitor.calibration_seeds + theory
    return {
        **out,
        "runs": runs,
        "sweep_s": t,
        "runs_per_s": runs / t,
        "client_rounds_per_s": runs * per_run / t,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def numpy_peer(clients: int) -> dict:
    """One round of the plain NumPy loop over clients (the floor).

    Args:
        clients: N.

    Returns:
        ``{clients, rounds, run_s, client_rounds_per_s}`` of the NumPy reference.
    """
    import jax

    from .sim.population import build_population
    from .sim.reference import arrays_from, round_numpy

    sc = scenario(clients, 1)
    ctx, pop = build_population(sc, jax.random.key(0))
    arrays = arrays_from(ctx, pop)
    t0 = time.perf_counter()
    round_numpy(np.asarray(ctx.theta0, np.float64), arrays)
    t = time.perf_counter() - t0
    return {"clients": clients, "rounds": 1, "run_s": t, "client_rounds_per_s": clients / t}


def fedavg_scenario(clients: int, rounds: int):
    """The default scenario as plain FedAvg: every client reports every round, no DP,
    no clipping, no Byzantine clients, server SGD with rate 1 (the peers' workload).

    Args:
        clients: N.
        rounds: T.

    Returns:
        The Scenario.
    """
    return scenario(clients, rounds).replace(
        **{
            "federation.participation": 1.0,
            "federation.clients_per_round": clients,
            "federation.dropout": 0.0,
            "federation.server_optimizer": "sgd",
            "federation.server_lr": 1.0,
            "federation.dp": "none",
            "federation.clip": None,
            "federation.byzantine_fraction": 0.0,
            "federation.secagg_min": 1,
        }
    )


def peer_clients(sc, path: Path) -> np.ndarray:
    """Write the local problems (H_c, r_c, n_c, Pi, eta, lam, K, theta_0) of ``sc``'s
    clients (seed 0) for a peer; returns silentfail's own final global model.

    Args:
        sc: the FedAvg scenario.
        path: the .npz file written for the peer.

    Returns:
        (D,) silentfail's final global model.
    """
    import jax

    from .sim.config import Config
    from .sim.federate import check_supported, scan
    from .sim.personalize import local_problem
    from .sim.population import build_population

    kpop, krun = jax.random.split(jax.random.key(0))
    ctx, pop = build_population(sc, kpop)
    prob = jax.vmap(local_problem, in_axes=(0, 0, None, None))(pop.M_train, pop.m_train, ctx.teacher, sc)
    p = sc.personalization
    np.savez(
        path,
        H=np.asarray(prob.H, np.float64),
        r=np.asarray(prob.r, np.float64),
        n=np.asarray(pop.n, np.float64),
        Pi=np.asarray(ctx.Pi, np.float64),
        eta=p.eta,
        lam=p.lam,
        K=p.K,
        theta0=np.asarray(ctx.theta0, np.float64),
        rounds=sc.federation.rounds,
    )
    check_supported(sc)
    return np.asarray(scan(Config(sc), ctx, pop, krun).theta_final, np.float64)


def framework_peer(name: str, clients: int, rounds: int, venv: Path | None = None) -> dict:
    """FedAvg in a framework's simulator (``PEERS[name]``, its own venv) against silentfail
    on the same clients: wall times, speed ratio and the largest difference of the final
    global model. The row's keys are prefixed with the peer's name (``flower_rounds_s``).

    Args:
        name: a key of :data:`PEERS`.
        clients: N.
        rounds: T.
        venv: the framework's virtual environment (default the peer's).

    Returns:
        The peer row (or the reason it was skipped).
    """
    peer = PEERS[name]
    python = (venv or peer.venv) / "bin" / "python"
    if not python.exists():
        return {
            "skipped": f"no {peer.title} venv at {venv or peer.venv}; build it with: bash benchmarks/peers/{peer.build}"
        }
    sc = fedavg_scenario(clients, rounds)
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "clients.npz", Path(tmp) / f"{name}.json"
        theta_sf = peer_clients(sc, data)
        proc = subprocess.run(
            [str(python), str(PEERS_DIR / peer.script), str(data), str(out)],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if proc.returncode != 0:
            return {"error": proc.stderr[-2000:]}
        fl = json.loads(out.read_text())
    m = measure_run(clients, rounds, 5, chunk=None, sc=sc)  # the full engine (every metric) on the same workload
    row = {
        "clients": clients,
        "rounds": rounds,
        peer.version: fl[peer.version],
        f"{name}_rounds_s": fl["rounds_s"],
        f"{name}_client_rounds_per_s": clients * rounds / fl["rounds_s"],
        "silentfail_run_s": m["run_s"],
        "silentfail_client_rounds_per_s": m["client_rounds_per_s"],
        "speed_ratio": fl["rounds_s"] / m["run_s"],
        "max_abs_diff_global_model": float(np.abs(np.asarray(fl["theta"]) - theta_sf).max()),
    }
    if "total_s" in fl:
        row[f"{name}_total_s"] = fl["total_s"]
    return row


def exponent(sizes: list[float], times: list[float]) -> float:
    """Least-squares slope of log(time) on log(size): cost ~ size^exponent.

    Args:
        sizes: the problem sizes.
        times: their times.

    Returns:
        The slope.
    """
    if len(set(sizes)) < 2:
        return float("nan")
    return float(np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(times, float)), 1)[0])


def roofline(row: dict, cost: dict, pk: dict) -> dict:
    """Achieved rates of a run and its fraction of the roofline (module docstring).

    Args:
        row: a run row (:func:`measure_run`).
        cost: one round's cost (:func:`round_cost`).
        pk: the machine's peaks (:func:`peaks`).

    Returns:
        ``{gflops, transcendentals_per_s, compulsory_gbs, xla_bytes_gbs, roofline_round_s,
        round_s, fraction_of_roofline, binds}``.
    """
    per_round = row["run_s"] / row["rounds"]
    scale = row["clients"] / cost["clients"]  # cost measured at one size, linear in clients
    flops, trans = cost["flops"] * scale, cost["transcendentals"] * scale
    comp_bytes, xla_bytes = cost["compulsory_bytes"] * scale, cost["bytes_accessed"] * scale
    t_compute = flops / (pk["matmul_gflops"] * 1e9) + trans / pk["exp_per_s"]
    t_memory = comp_bytes / (pk["triad_gbs"] * 1e9)
    bound = "compute (flops + transcendentals)" if t_compute >= t_memory else "memory bandwidth"
    return {
        "gflops": flops / per_round / 1e9,
        "transcendentals_per_s": trans / per_round,
        "compulsory_gbs": comp_bytes / per_round / 1e9,
        "xla_bytes_gbs": xla_bytes / per_round / 1e9,
        "roofline_round_s": max(t_compute, t_memory),
        "round_s": per_round,
        "fraction_of_roofline": max(t_compute, t_memory) / per_round,
        "binds": bound,
    }


#: the end-to-end commands timed cold and warm (``silentfail ...`` in a fresh process)
END_TO_END = {
    "simulate": ["simulate", "--preset", "default"],
    "phase": ["phase", "-o", "{tmp}/phase"],
}
#: the same, at smoke sizes
END_TO_END_SMOKE = {
    "simulate": [
        "simulate",
        "--set",
        "population.num_clients=20",
        "--set",
        "federation.clients_per_round=20",
        "--set",
        "federation.rounds=3",
    ],
}
#: a nearby configuration of each end-to-end command (two other floats): timed after the
#: warm calls, it shares their compiled programs (``sim/buckets.py``) and computes its
#: own numbers (its calibration is not cached). A new round count shares the run's
#: program within its bucket but not the calibration's batch program (whose failure
#: rounds read the horizon), so it is not part of this measurement.
NEARBY = {"simulate": ["--set", "personalization.lam=0.15", "--set", "shifts.strength=0.9"]}
#: the work timed in 1 and 2 local processes (``silentfail launch``)
MULTIPROCESS = {
    "simulate 200k clients": [
        "simulate",
        "--no-verdict",
        "--set",
        "population.num_clients=200000",
        "--set",
        "federation.clients_per_round=20000",
        "--set",
        "federation.rounds=20",
    ],
    "phase (default sweep)": ["phase", "-o", "{tmp}/phase"],
}
MULTIPROCESS_SMOKE = {"simulate": END_TO_END_SMOKE["simulate"] + ["--no-verdict"]}


def _timed_cli(argv: list[str], env: dict, tmp: str) -> float:
    """Wall time of ``silentfail ARGV`` in a fresh process (raises on failure)."""
    argv = [a.replace("{tmp}", tmp) for a in argv]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "silentfail", *argv], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"silentfail {' '.join(argv)} failed: {last}")
    return wall


def _cli_env(cache: str, results: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") and k != "SILENTFAIL_RESULT_CACHE"}
    env.update(SILENTFAIL_CACHE_DIR=f"{cache}/jax", SILENTFAIL_RESULT_CACHE=f"{cache}/results" if results else "")
    return env


def end_to_end(commands: dict[str, list[str]], nearby: dict[str, list[str]] | None = None) -> dict:
    """Wall time of each command from a fresh process: cold (empty compile and result
    caches), warm with the compile cache only (the programs load from disk, every
    number is computed), warm (the result cache also holds the batches of runs a
    first call computed, e.g. the detector calibration), and a nearby scenario for the
    commands in ``nearby`` (:data:`NEARBY`: the warm calls' programs, its own
    calibration computed).

    Args:
        commands: name -> the command's words after ``silentfail``.
        nearby: name -> the words that make a nearby scenario of that command.

    Returns:
        ``{name: {command, cold_s, warm_compile_cache_s, warm_s[, nearby_command, nearby_s]}}``.
    """
    out = {}
    for name, argv in commands.items():
        with tempfile.TemporaryDirectory() as tmp:
            row = {"command": "silentfail " + " ".join(argv)}
            row["cold_s"] = _timed_cli(argv, _cli_env(tmp, True), tmp)
            shutil.rmtree(f"{tmp}/phase", ignore_errors=True)  # a new sweep each time, not a resume
            row["warm_compile_cache_s"] = _timed_cli(argv, _cli_env(tmp, False), tmp)  # result cache off
            shutil.rmtree(f"{tmp}/phase", ignore_errors=True)
            row["warm_s"] = _timed_cli(argv, _cli_env(tmp, True), tmp)
            if name in (nearby or {}):
                row["nearby_command"] = "silentfail " + " ".join(argv + nearby[name])
                row["nearby_s"] = _timed_cli(argv + nearby[name], _cli_env(tmp, True), tmp)
        out[name] = row
    return out


def multiprocess(commands: dict[str, list[str]], processes: int = 2) -> dict:
    """Wall time of each command in one process and in ``processes`` local processes
    (``silentfail launch``), each after a warm-up call that fills its compile cache (the
    result cache off: every run is computed); the speed-up is the ratio.

    Args:
        commands: name -> the command's words after ``silentfail``.
        processes: the number of processes.

    Returns:
        ``{name: {command, processes, one_process_s, n_process_s, speed_up}}``.
    """
    out = {}
    for name, argv in commands.items():
        with tempfile.TemporaryDirectory() as tmp:
            env = _cli_env(tmp, False)
            launched = ["launch", "--processes", str(processes), "--", *argv]
            for warm in (argv, launched):  # fill the compile caches
                _timed_cli(warm, env, tmp)
                shutil.rmtree(f"{tmp}/phase", ignore_errors=True)
            one = _timed_cli(argv, env, tmp)
            shutil.rmtree(f"{tmp}/phase", ignore_errors=True)
            many = _timed_cli(launched, env, tmp)
        out[name] = {
            "command": "silentfail " + " ".join(argv),
            "processes": processes,
            "one_process_s": one,
            "n_process_s": many,
            "speed_up": one / many,
        }
    return out


def _child(spec: dict) -> dict:
    kind = spec.pop("kind")
    if kind == "run":
        return measure_run(**spec)
    if kind == "sweep":
        return measure_sweep(**spec)
    if kind == "numpy":
        return numpy_peer(**spec)
    if kind == "peaks":
        return peaks()
    if kind == "cost":
        return {"clients": spec["clients"], **round_cost(**spec)}
    if kind == "peer":
        return framework_peer(**spec)
    if kind == "machine":
        return machine()
    raise ValueError(f"unknown benchmark kind {kind!r}")


def spawn(spec: dict, env: dict | None = None) -> dict:
    """One measurement in a fresh process (its own peak RSS and compile caches).

    Args:
        spec: what to measure (``{"kind": ..., **arguments}``).
        env: extra environment variables (e.g. the XLA device count).

    Returns:
        The child's result row.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "silentfail.bench", json.dumps(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "SILENTFAIL_COMPILE": "full", **(env or {})},  # XLA's optimized programs
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(
    smoke: bool = False, output: Path | None = None, flower: bool = True, log: Callable[[str], None] = print
) -> dict:
    """Run every measurement (module docstring); write JSON to ``output`` unless None.
    The smoke mode runs every measurement at tiny sizes in this process (no subprocess,
    so its peak RSS is the process's) and makes no claim about its numbers.

    Args:
        smoke: tiny sizes, in this process.
        output: the JSON file (None: not written).
        flower: run the framework peers (:data:`PEERS`: Flower, pfl-research, FedJAX).
        log: a progress printer.

    Returns:
        Every measurement, with the machine description.
    """
    require_checkout()
    spawn_ = (lambda spec: _child(dict(spec))) if smoke else spawn
    where = spawn_({"kind": "machine"})
    cfg = SMOKE if smoke else ACCELERATOR if where["accelerator"] else FULL
    log(f"device: {where['backend']} ({where['device_kind']}, {len(where['devices'])} device(s))")
    pk = spawn_({"kind": "peaks"})
    log(
        f"peaks: matmul {pk['matmul_gflops']:.1f} GFLOP/s, triad {pk['triad_gbs']:.1f} GB/s, "
        f"exp {pk['exp_per_s'] / 1e9:.2f} G/s, erfc {pk['erfc_per_s'] / 1e9:.2f} G/s"
    )
    cost_n = cfg["cost_clients"]
    cost = spawn_({"kind": "cost", "clients": cost_n})
    log(
        f"one round at {cost_n} clients: {cost['flops'] / cost_n:.0f} flops, {cost['transcendentals'] / cost_n:.0f} "
        f"transcendentals, {cost['compulsory_bytes'] / cost_n:.0f} compulsory bytes per client"
    )
    runs = []
    for n, r in cfg["run"]:
        row = spawn_({"kind": "run", "clients": n, "rounds": r, "repeats": cfg["repeats"]})
        row["roofline"] = roofline(row, cost, pk)
        runs.append(row)
        log(
            f"run    {n:>9,} clients x {r:>3} rounds: {row['client_rounds_per_s']:>12,.0f} client-rounds/s "
            f"({row['local_steps_per_s']:,.0f} local steps/s), compile {row['compile_s']:.1f} s, run {row['run_s']:.3f} s, "
            f"peak {row['peak_rss_mb']:,.0f} MB, {row['roofline']['fraction_of_roofline']:.0%} of roofline ({row['roofline']['binds']})"
        )
    n_r = cfg["run"][1][0] if len(cfg["run"]) > 1 else cfg["run"][0][0]
    by_rounds = [spawn_({"kind": "run", "clients": n_r, "rounds": r, "repeats": cfg["repeats"]}) for r in cfg["rounds"]]
    big = [row for row in runs if row["clients"] >= runs[1]["clients"]] if len(runs) > 1 else runs
    exps = {
        "clients": exponent([r["clients"] for r in big], [r["run_s"] / r["rounds"] for r in big]),
        "rounds": exponent([r["rounds"] for r in by_rounds], [r["run_s"] for r in by_rounds]),
    }
    sweep_full = spawn_({"kind": "sweep", "runs": None, "smoke": smoke})
    log(
        f"sweep  {sweep_full['runs']} runs: trace {sweep_full['trace_s']:.1f} s + compile {sweep_full['compile_s']:.1f} s, "
        f"run {sweep_full['sweep_s']:.1f} s ({sweep_full['client_rounds_per_s']:,.0f} client-rounds/s)"
    )
    by_grid = [spawn_({"kind": "sweep", "runs": g, "smoke": smoke}) for g in cfg["grid_runs"]]
    exps["grid_cells"] = exponent([g["runs"] for g in by_grid], [g["run_s"] for g in by_grid])
    log("cost exponents: " + ", ".join(f"{k}^{v:.2f}" for k, v in exps.items()))
    floor = spawn_({"kind": "numpy", "clients": cfg["numpy_clients"]})
    log(f"numpy loop {floor['clients']} clients: {floor['client_rounds_per_s']:,.0f} client-rounds/s")
    peers = {}
    n, r = cfg["peers"]  # every peer runs the same workload
    for name in PEERS:
        row = (
            spawn_({"kind": "peer", "name": name, "clients": n, "rounds": r}) if flower else {"skipped": "--no-flower"}
        )
        peers[name] = row
        if "speed_ratio" in row:
            log(
                f"{name} {n} clients x {r} rounds: {row[f'{name}_client_rounds_per_s']:,.0f} client-rounds/s; "
                f"silentfail {row['silentfail_client_rounds_per_s']:,.0f}: {row['speed_ratio']:,.0f}x; "
                f"same global model to {row['max_abs_diff_global_model']:.1e}"
            )
        else:
            log(f"{name}: {row.get('skipped') or row.get('error')}")
    e2e = end_to_end(END_TO_END_SMOKE) if smoke else end_to_end(END_TO_END, NEARBY)
    for name, row in e2e.items():
        log(
            f"end to end {name}: cold {row['cold_s']:.1f} s, warm (compile cache) {row['warm_compile_cache_s']:.1f} s, "
            f"warm (compile and result caches) {row['warm_s']:.1f} s"
            + (f", a nearby scenario {row['nearby_s']:.1f} s" if "nearby_s" in row else "")
        )
    if where["accelerator"] and len(where["devices"]) < 2:
        mp = {"skipped": "one accelerator: local processes would share it"}
    else:
        mp = multiprocess(MULTIPROCESS_SMOKE if smoke else MULTIPROCESS)
    for name, row in (mp if "skipped" not in mp else {}).items():
        log(
            f"processes {name}: 1 process {row['one_process_s']:.1f} s, {row['processes']} processes "
            f"{row['n_process_s']:.1f} s: speed-up {row['speed_up']:.2f}x on {os.cpu_count()} cores"
        )
    result = {
        "benchmark": "silentfail bench: default scenario (population mode, d=16, K=5, 10% slots) and the default phase sweep",
        "command": "silentfail bench" + (" --smoke" if smoke else ""),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "peaks": pk,
        "round_cost": cost,
        "run": runs,
        "rounds_scaling": by_rounds,
        "sweep": sweep_full,
        "grid_scaling": by_grid,
        "exponents": exps,
        "numpy_loop": floor,
        **peers,
        "end_to_end": e2e,
        "multiprocess": mp,
        "targets": {
            "client_rounds_per_s_at_1e5": 5e6,
            "fraction_of_roofline": 0.3,
            "flower_ratio": 1000,
            "sweep_compile_s": 10,
            "clients_exponent": 1.05,
            "warm_simulate_default_s": 5,
        },
    }
    if output is not None:
        write_record(result, output)
        log(f"wrote {output}")
    return result


def write_record(result: dict, output: Path) -> None:
    """Write a benchmark's record as JSON atomically (a temporary file renamed over
    ``output``), so that an interrupted run leaves the previous record whole.

    Args:
        result: the record.
        output: the JSON file.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(output)


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))

#: BibTeX of the tools the paper's related work compares with.
RELATED_BIBTEX = r"""
@article{beutel2020flower,
  title = {Flower: A Friendly Federated Learning Research Framework},
  author = {Beutel, Daniel J. and Topal, Taner and Mathur, Akhil and Qiu, Xinchi and Fernandez-Marques, Javier and Gao, Yan and Sani, Lorenzo and Li, Kwing Hei and Parcollet, Titouan and de Gusm{\~a}o, Pedro Porto Buarque and Lane, Nicholas D.},
  journal = {arXiv preprint arXiv:2007.14390},
  year = {2020}
}

@article{granqvist2024pfl,
  title = {pfl-research: simulation framework for accelerating research in Private Federated Learning},
  author = {Granqvist, Filip and Song, Congzheng and Cahill, {\'A}ine and van Dalen, Rogier and Pelikan, Martin and Chan, Yi Sheng and Feng, Xiaojun and Krishnaswami, Natarajan and Jina, Vojta and Chitnis, Mona},
  journal = {arXiv preprint arXiv:2404.06430},
  year = {2024}
}

@article{ro2021fedjax,
  title = {{FedJAX}: Federated learning simulation with {JAX}},
  author = {Ro, Jae Hun and Suresh, Ananda Theertha and Wu, Ke},
  journal = {arXiv preprint arXiv:2108.02117},
  year = {2021}
}

@article{weerts2023fairlearn,
  title = {Fairlearn: Assessing and Improving Fairness of {AI} Systems},
  author = {Weerts, Hilde and Dud{\'\i}k, Miroslav and Edgar, Richard and Jalali, Adrin and Lutz, Roman and Madaio, Michael},
  journal = {Journal of Machine Learning Research},
  volume = {24},
  number = {257},
  pages = {1--8},
  year = {2023}
}

@misc{dpaccounting,
  title = {dp-accounting: differential privacy accounting},
  author = {{Google Differential Privacy Team}},
  howpublished = {\url{https://github.com/google/differential-privacy/tree/main/python}},
  year = {2024}
}
"""
