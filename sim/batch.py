"""Many runs in one compiled program: the outcome of each (parameter point, seed),
vmapped in fixed-width batches (``jax.lax.map(batch_size=...)``) so that memory is
bounded and a run's numbers do not depend on how many runs share the call.

A run's outcome is what the verdicts and phase diagrams need: the failure round of
each mode, the final and worst mode metric, the horizon maximum of every detector
channel (for calibration on null runs) and the first alarm round of every channel
given its threshold, and for a Monte Carlo client model whether each verdict is undecided
(open within 2 SE) and the SE of the worst round's metric. The full Trace of one run is :func:`silentfail.sim.run.run`; the
two agree (a test checks it).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from . import distributed, result_cache
from .buckets import shared_config
from .config import TRACER_ERRORS, Config, Static
from .detectors import Public, first_over, statistics
from .engine import simulate
from .federate import check_supported
from .models import client_model
from .population import fm_fairness
from .scale import GRID, grid_mesh
from .scenario import MODES, Scenario
from .trace import mode_failures, undecided_modes

#: Runs vmapped together (``jax.lax.map(batch_size=LANES)``) and runs per device call
#: (a multiple of LANES). Every call has the same shape, so a scenario compiles once
#: whatever the number of runs; run i always sits at position i mod CALL of a call, so
#: its numbers do not depend on how many runs a chunk holds (chunks are multiples of CALL).
LANES = 8
CALL = 32
#: Shift strength of the null scenario (no shift: every client at its base distribution).
NULL_STRENGTH = 0.0


class Outcome(NamedTuple):
    """Per run (leading axis): see the module docstring."""

    failure_round: np.ndarray  # (B, modes) int, -1 = never
    transients: np.ndarray  # (B, modes) int: crossings shorter than thresholds.persist
    final_value: np.ndarray  # (B, modes)
    worst_value: np.ndarray  # (B, modes)
    stat_max: np.ndarray  # (B, K) horizon maximum of each channel
    alarm_round: np.ndarray  # (B, K) int, -1 = never
    finite: np.ndarray  # (B,) bool
    lam_max: np.ndarray  # (B,) largest local curvature (stability of local GD)
    undecided: np.ndarray  # (B, modes) bool: a Monte Carlo verdict open within 2 SE (False for exact models)
    worst_se: np.ndarray  # (B, modes) the SE of the worst round's metric (0 for exact models)


def run_failures(view, ctx, pop, rounds):
    """The mode metrics relative to the FM and the failures of a traced run
    (:func:`~silentfail.sim.trace.mode_failures` with the population's FM references):
    what every reducer of the scan's outputs shares.

    Args:
        view: the (traced) scenario.
        ctx: the shared world and FM.
        pop: the clients.
        rounds: the scan's per-round outputs.

    Returns:
        (metric (T, modes), Failures).
    """
    return mode_failures(
        rounds["mode_metric"],
        rounds["acc_mean"],
        fm_fairness(view, ctx, pop),
        pop.fm_acc.mean(),
        view.thresholds,
        xp=jnp,
    )


def _one(cfg: Config, paths: tuple[str, ...], detectors: tuple[str, ...], values, seed, thresholds, expected=False):
    view, ctx, pop, lam_max, out = simulate(cfg.with_values(paths, values), seed, expected=expected)
    rounds = out.rounds
    fm = client_model(view).global_metrics(ctx.theta0, ctx.world)
    pub = Public(fm.alignment, fm.p0_acc)
    metric, (t_f, transients) = run_failures(view, ctx, pop, rounds)
    stats = statistics(rounds, pub, view, detectors)
    uncertainty = {}
    if "mode_metric_se" in rounds:  # a Monte Carlo client model: the verdicts' uncertainty
        se = rounds["mode_metric_se"]
        refs = {"fairness": fm_fairness(view, ctx, pop), "acc_mean": pop.fm_acc.mean()}
        uncertainty = dict(
            undecided=undecided_modes(rounds, se, refs, view.thresholds, xp=jnp),
            worst_se=jnp.take_along_axis(se, jnp.argmax(metric, axis=0)[None], axis=0)[0],
        )
    # an exact model's program has no such outputs (its fusions, hence its round-off, stay
    # the recorded ones); run_batch fills them on the host
    return dict(
        **uncertainty,
        failure_round=t_f,
        transients=transients,
        final_value=metric[-1],
        worst_value=metric.max(0),
        stat_max=jnp.max(jnp.where(jnp.isnan(stats), -jnp.inf, stats), axis=0),
        alarm_round=first_over(stats, thresholds),
        finite=jnp.all(rounds["finite"]),
        lam_max=jnp.max(lam_max),
    )


#: the engine settings of every batch program (outcomes need no per-client trace outputs)
BATCH_STATIC = {"population.trace_clients": 0}


def batch_config(sc: Scenario) -> Config:
    """The static part of a batch program's scenario: ``sc`` without per-client trace
    outputs (``population.trace_clients = 0``; outcomes need none).

    Args:
        sc: the scenario.

    Returns:
        The Config (no traced paths).
    """
    return Config(sc, static=BATCH_STATIC)


@functools.partial(jax.jit, static_argnames=("paths", "detectors", "devices", "expected"))
def program(
    cfg: Config,
    values: jax.Array,
    seeds: jax.Array,
    thresholds: jax.Array,
    *,
    paths: tuple[str, ...],
    detectors: tuple[str, ...],
    devices: int | None,
    expected: bool = False,
) -> dict:
    """One device call of CALL runs, vmapped LANES at a time; with ``devices`` the runs
    are split over a ``"grid"`` mesh: the call is laid out as (devices, CALL / devices)
    runs with the first axis sharded, and XLA's SPMD partitioner gives each device its
    own runs to map over (nothing is communicated).

    Args:
        cfg: the scenario's static part (:func:`batch_config`).
        values: (CALL, len(paths)) the traced fields' values.
        seeds: (CALL,) the runs' seeds.
        thresholds: (CALL, K) the channels' alarm thresholds.
        paths: the traced fields.
        detectors: the detectors whose channels are computed.
        devices: the device count, or None (no mesh).
        expected: population-limit runs (:func:`~silentfail.sim.engine.simulate`).

    Returns:
        ``{Outcome field: (CALL, ...)}`` (an exact model's without ``undecided`` and ``worst_se``).
    """
    one = functools.partial(_one, cfg, paths, detectors, expected=expected)

    def many(values, seeds, thresholds):
        return jax.lax.map(lambda a: one(*a), (values, seeds, thresholds), batch_size=LANES)

    mesh = grid_mesh(devices)
    if mesh is None:
        return many(values, seeds, thresholds)
    D = mesh.size
    split = NamedSharding(mesh, PartitionSpec(GRID))
    args = jax.tree.map(
        lambda a: jax.lax.with_sharding_constraint(a.reshape((D, -1) + a.shape[1:]), split),
        (values, seeds, thresholds),
    )
    out = jax.vmap(many)(*args)
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), out)


def run_batch(
    sc: Scenario,
    paths: tuple[str, ...],
    detectors: tuple[str, ...],
    values: np.ndarray,
    seeds: np.ndarray,
    thresholds: np.ndarray,
    *,
    devices: int | None = None,
    expected: bool = False,
) -> Outcome:
    """Outcomes of B runs: ``values`` (B, len(paths)) of the traced fields ``paths``,
    ``seeds`` (B,), ``thresholds`` (B, K) (+inf: no alarms, e.g. for null runs).

    Every path must be a float field the engine uses only as a number (see
    :func:`traceable`); the scenario's other floats are traced as scalars (one program
    for scenarios that differ only in them, ``sim.buckets.shared_config``) and the rest
    is compiled in. ``devices`` shards the runs of each call over that many devices
    (CALL must be divisible by it).

    Args:
        sc: the scenario.
        paths: the traced fields.
        detectors: the detectors whose channels are computed.
        values: (B, len(paths)).
        seeds: (B,).
        thresholds: (B, K).
        devices: the device count, or None.
        expected: population-limit runs, every draw of the rounds replaced by its mean
            (the theory's prediction, ``sim/theory.py``); the seed draws the population.

    Returns:
        Outcome of B runs.
    """
    check_supported(sc)
    if devices not in (None, 1):
        grid_mesh(devices)  # validates the count against the visible devices
        if CALL % devices:
            raise ValueError(f"devices = {devices} must divide the {CALL} runs of a device call")
    B = len(seeds)
    pad = (-B) % CALL
    values = np.asarray(values, np.float32).reshape(B, len(paths))
    thresholds = np.asarray(thresholds, np.float32).reshape(B, -1)
    seeds = np.asarray(seeds, np.uint32)
    if pad:
        values, seeds, thresholds = (
            np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for a in (values, seeds, thresholds)
        )
    cfg = batch_config(sc)

    def call(config: Config) -> list:
        fn = functools.partial(
            program,
            config,
            paths=tuple(paths),
            detectors=tuple(detectors),
            devices=None if devices == 1 else devices,
            expected=expected,
        )
        return [
            fn(values[i : i + CALL], seeds[i : i + CALL], thresholds[i : i + CALL]) for i in range(0, B + pad, CALL)
        ]

    def compute() -> dict:
        try:  # the scenario's other floats traced too: one program for nearby scenarios (sim/buckets.py)
            parts = call(shared_config(sc, exclude=tuple(paths), static=BATCH_STATIC))
        except TRACER_ERRORS:  # a float this scenario's program reads as a branch or a shape
            parts = call(cfg)
        parts = distributed.to_host(parts)  # a multi-process call's runs, gathered on every process
        out = {k: np.concatenate([p[k] for p in parts])[:B] for k in parts[0]}
        modes = out["failure_round"].shape[1]
        out.setdefault("undecided", np.zeros((B, modes), bool))  # an exact model: nothing undecided
        out.setdefault("worst_se", np.zeros((B, modes), np.float32))
        return out

    inputs = (
        cfg.static.key,
        repr((B, tuple(paths), tuple(detectors), tuple(MODES), expected)),
        values,
        seeds,
        thresholds,
    )
    out = result_cache.cached("batch", tuple(a if isinstance(a, str) else a.tobytes() for a in inputs), compute)
    return Outcome(**{k: out[k] for k in Outcome._fields})


@functools.lru_cache(maxsize=256)
def _traceable(static: Static, path: str) -> bool:
    fn = functools.partial(_one, batch_config(static.scenario), (path,), ())
    try:
        jax.eval_shape(fn, jnp.zeros(1, jnp.float32), jnp.uint32(0), jnp.zeros(0, jnp.float32))
    except TRACER_ERRORS:
        return False
    return True


def traceable(sc: Scenario, path: str) -> bool:
    """Whether ``path`` can vary inside one compiled program (a float field used only as
    a number); found by tracing the run with that field as a JAX value.

    Args:
        sc: the scenario.
        path: a dotted field path.

    Returns:
        True when the field can be traced.
    """
    from .params import is_float_field, numeric_field

    value = numeric_field(sc, path)
    if not is_float_field(sc, path) or value is None:
        return False
    return _traceable(Static(sc), path)
