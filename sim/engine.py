"""One simulation path: a run is ``simulate(cfg, seed)``, the population built from the
first half of the seed's key and the rounds scanned with the second half; every
consumer reduces its output.

* :func:`silentfail.sim.run.run` compiles :func:`simulate` for one scenario and seed
  (:data:`program`, with the client axis in blocks and over devices) and reduces it on
  the host to the :class:`~silentfail.sim.trace.Trace`;
* :func:`silentfail.sim.batch.run_batch` maps it over runs inside one compiled program
  and reduces each to an :class:`~silentfail.sim.batch.Outcome` (failure rounds,
  detector channels), which sweeps, calibrations and phase diagrams use;
* :func:`silentfail.sim.literature.measure` reduces each to the claim quantities.

The failure rounds of every reducer come from one function,
:func:`silentfail.sim.trace.mode_failures`, over the registered modes. A run is a pure
function of (scenario, seed): the same key splits, the same population, the same scan.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
from jax import Array

from . import scale
from .config import Config
from .effort import effort_jit
from .federate import RunOutput, _make_run
from .population import Context, Population, _build
from .scenario import Scenario
from .world import ClientWorld


class Simulation(NamedTuple):
    """What :func:`simulate` hands to a reducer."""

    scenario: Scenario  # the scenario the engine read (traced fields hold traced values)
    ctx: Context  # the shared world and FM
    pop: Population  # the clients
    lam_max: Array  # (N,) largest local curvature (stability of local gradient descent)
    out: RunOutput  # the final global model and the per-round outputs


def simulate(
    cfg: Config,
    seed: Array | int,
    *,
    clients: ClientWorld | None = None,
    chunk: int | None = None,
    devices: int | None = None,
    barrier: bool = False,
    expected: bool = False,
) -> Simulation:
    """Build the population and scan the rounds of ``cfg.scenario`` (traceable: call it
    inside a compiled program).

    Args:
        cfg: the scenario (its traced fields' values as leaves).
        seed: the run's seed; ``jax.random.key(seed)`` splits into the population's key
            and the rounds' key.
        clients: the user's clients in place of the shift families (validated by
            ``population.check_clients``).
        chunk: clients per block of the per-client work, or None (one block).
        devices: shard the client axis over this many devices (``sim.scale``), or None.
        barrier: materialize the population before the rounds
            (``jax.lax.optimization_barrier``: XLA fuses nothing of the build into the
            round scan), as a separately compiled build does; :data:`program` sets it so
            that a single run's numbers are bit for bit those of a build and a scan
            compiled apart.
        expected: the population-limit run (``federate._make_run``): the same
            population, every draw of the rounds replaced by its mean.

    Returns:
        The Simulation.
    """
    sc = cfg.scenario
    kpop, krun = jax.random.split(jax.random.key(seed))
    ctx, pop, lam_max = _build(sc, kpop, clients)
    if barrier:
        ctx, pop, lam_max = jax.lax.optimization_barrier((ctx, pop, lam_max))
    mesh = scale.client_mesh(devices)
    if mesh is not None:
        n = sc.population.num_clients
        ctx = jax.lax.with_sharding_constraint(ctx, scale.leading_sharding(ctx, mesh, -1))
        pop = jax.lax.with_sharding_constraint(pop, scale.leading_sharding(pop, mesh, n))
    return Simulation(
        sc, ctx, pop, lam_max, _make_run(sc, chunk, expected, mesh.size if mesh is not None else 1)(ctx, pop, krun)
    )


@effort_jit(static_argnames=("chunk", "devices"))
def program(
    cfg: Config,
    seed: Array | int,
    *,
    clients: ClientWorld | None = None,
    chunk: int | None = None,
    devices: int | None = None,
) -> tuple[Context, Population, Array, RunOutput]:
    """:func:`simulate` as one compiled program (one per scenario, block size and device
    count), for a single run.

    Args:
        cfg: the scenario.
        seed: the run's seed.
        clients: the user's clients, or None.
        chunk: clients per block, or None.
        devices: the device count, or None.

    Returns:
        (ctx, pop, lam_max, RunOutput): the Simulation without its scenario.
    """
    return tuple(simulate(cfg, seed, clients=clients, chunk=chunk, devices=devices, barrier=True))[1:]
