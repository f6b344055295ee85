"""``run(scenario, seed) -> Trace``: a pure function of (scenario, seed)."""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from . import distributed, scale
from .buckets import first_rounds, run_config
from .config import TRACER_ERRORS, Config
from .engine import program
from .federate import DIVERGENCE_FACTOR, check_supported
from .models import client_model
from .personalize import check_stable
from .population import check_clients, fm_fairness
from .privacy import account
from .scenario import Scenario
from .seeds import check_seed
from .trace import Trace, build_trace
from .world import ClientWorld


@jax.jit
def _fm_summary(cfg: Config, ctx, pop) -> dict:
    """The foundation model's reference values (one compiled program)."""
    sc = cfg.scenario
    fm = client_model(sc).global_metrics(ctx.theta0, ctx.world)
    return dict(
        alignment=fm.alignment,
        p0_acc=fm.p0_acc,
        acc_mean=pop.fm_acc.mean(),
        fairness=fm_fairness(sc, ctx, pop),
        spurious_weight=fm.spurious_weight,
    )


class SimulationError(RuntimeError):
    """A run that produced non-finite values (e.g. a diverging server learning rate)."""


def run(
    scenario: Scenario,
    seed: int = 0,
    *,
    on_nonfinite: str = "raise",
    chunk: int | str | None = "auto",
    devices: int | None = None,
    clients: ClientWorld | None = None,
) -> Trace:
    """Simulate ``scenario`` with ``seed``: build the population, scan the rounds, and
    return the Trace (ground truth of the registered modes, observables, DP epsilon).

    Args:
        scenario: the scenario (validated; ``sf.preset(name)`` or ``sf.load_scenario(path)``).
        seed: an integer in [0, 2**30 - 1]; the population and the rounds draw from
            ``jax.random.key(seed)`` split in two.
        on_nonfinite: ``"raise"`` (default) raises SimulationError naming the first
            non-finite round; ``"flag"`` returns the trace with ``attrs["nonfinite_round"]``.
        chunk: clients per block of the per-client work (bounds memory); ``"auto"``
            blocks populations larger than ``sim.scale.AUTO_MIN`` into equal blocks of
            about ``sim.scale.AUTO_CHUNK``; None: one block.
        devices: shard the client axis over this many devices (``sim.scale``);
            ``population.num_clients`` must be divisible by it. In a multi-process
            run (``sim.distributed``) None means every device of every process.
        clients: your own clients, ``ClientWorld(pi (N, 2, G), mu (N, 2, G, d), scale
            (N,))``, in place of the scenario's shift families (which must be off;
            ``shifts.strength`` still moves each from P0 to it): the run is then a pure
            function of (scenario, seed, clients), and the trace's ``clients`` attribute
            holds their SHA-256. The null runs the detectors are calibrated on are the
            scenario's (every client at P0), so ``verdict(trace, calibrate(scenario))``
            judges it as any other run.

    The numbers do not depend on ``chunk`` or ``devices`` beyond float round-off.

    Returns:
        The Trace, an ``xarray.Dataset`` over (round, mode, client, group, param, ...):
        each mode's metric, threshold, failure round and transients, the pooled ground
        truth, the observables the constraints allow, the per-client metrics of the first
        ``population.trace_clients`` clients, and the scenario, seed and privacy
        accounting in its attrs.

    Raises:
        SimulationError: a non-finite or diverging run with ``on_nonfinite="raise"``.
    """
    seed = check_seed(seed)
    if on_nonfinite not in ("raise", "flag"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'flag', got {on_nonfinite!r}")
    N = scenario.population.num_clients
    mesh, block = scale.plan(N, chunk, distributed.default_devices(devices))
    check_supported(scenario)
    if clients is not None:
        clients = check_clients(scenario, clients)

    def compute(cfg: Config):
        ctx, pop, lam_max, out = program(
            cfg, np.uint32(seed), clients=clients, chunk=block, devices=None if mesh is None else mesh.size
        )
        if distributed.process_count() > 1:  # the shards of every process, gathered on each
            ctx, pop, lam_max = distributed.to_host((ctx, pop, lam_max))
        return ctx, pop, lam_max, out, {k: float(v) for k, v in _fm_summary(cfg, ctx, pop).items()}

    try:  # the round count's bucket and the floats traced: one program for nearby scenarios (sim/buckets.py)
        ctx, pop, lam_max, out, fm = compute(run_config(scenario))
    except TRACER_ERRORS:  # a float this scenario's program reads as a branch or a shape: every field static
        ctx, pop, lam_max, out, fm = compute(run_config(scenario, trace=False))
    check_stable(lam_max, scenario)
    rounds = first_rounds(distributed.to_host(out.rounds), scenario.federation.rounds)
    trace = build_trace(
        scenario, seed, rounds, fm=fm, accounting=account(scenario, float(jnp.max(pop.q))), weights=pop.weight
    )
    bad = np.flatnonzero(~rounds["finite"])
    trace.attrs["nonfinite_round"] = int(bad[0]) if bad.size else -1
    if clients is not None:
        digest = hashlib.sha256(b"".join(np.asarray(a, np.float32).tobytes() for a in clients))
        trace.attrs["clients"] = f"supplied (sha256 {digest.hexdigest()})"
    if bad.size and on_nonfinite == "raise":
        raise SimulationError(
            f"the run diverged at round {int(bad[0])}: parameters non-finite or the global model's norm above "
            f"{DIVERGENCE_FACTOR:g} (1 + |theta_0|); lower federation.server_lr or personalization.eta"
        )
    return trace
