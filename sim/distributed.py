"""Runs over several processes on JAX's own distributed runtime (``jax.distributed``).

Every process runs the same program (multi-controller SPMD): after :func:`initialize`,
``jax.devices()`` lists the devices of every process, the client and grid meshes of
``sim.scale`` span them, and XLA's SPMD partitioner gives each process its own shards
of the population (a single run) or of the runs (a sweep); every reduction over
clients becomes a cross-process all-reduce (gloo on CPU, NCCL on GPU). The numbers are
those of one process up to float round-off: the same keys, the same population, the
same scan, only the order of the sums over clients changes.

What comes back to the host is gathered on every process (:func:`to_host`), so every
process holds the same trace or outcomes; only process 0 writes files
(:func:`is_writer`).

References:
    JAX documentation, "Multi-process / multi-host environments"
    (``jax.distributed.initialize``, ``jax.experimental.multihost_utils``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import jax
import numpy as np

#: Environment variables that carry the settings to a process (``silentfail launch``
#: sets them for the processes it starts; the CLI's options read them).
ENV_COORDINATOR = "SILENTFAIL_COORDINATOR"
ENV_NUM_PROCESSES = "SILENTFAIL_NUM_PROCESSES"
ENV_PROCESS_ID = "SILENTFAIL_PROCESS_ID"

_ADDRESS = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")
_STATE: dict = {"initialized": False}


@dataclass(frozen=True)
class Cluster:
    """Validated settings of a multi-process run.

    ``coordinator`` is ``"HOST:PORT"`` (process 0 listens there) or ``"auto"``: the
    cluster's scheduler (SLURM, Open MPI, Kubernetes, ...) tells JAX the coordinator,
    the process count and this process' id (``jax.distributed.initialize()``'s own
    detection), and ``num_processes`` / ``process_id`` stay None.
    """

    coordinator: str
    num_processes: int | None
    process_id: int | None


def check_cluster(coordinator: str | None, num_processes: int | None, process_id: int | None) -> Cluster | None:
    """Validate the three settings together (before anything starts).

    Args:
        coordinator: ``"HOST:PORT"``, ``"auto"`` or None (one process).
        num_processes: the number of processes N >= 1.
        process_id: this process' id in [0, N - 1].

    Returns:
        The Cluster, or None for a one-process run (no settings given).

    Raises:
        ValueError: a bad or missing setting, naming the option.
    """
    if coordinator is None:
        if num_processes is not None or process_id is not None:
            raise ValueError("--num-processes and --process-id need --coordinator HOST:PORT (or --coordinator auto)")
        return None
    coordinator = coordinator.strip()
    if coordinator == "auto":
        if num_processes is not None or process_id is not None:
            raise ValueError(
                "--coordinator auto takes the process count and id from the cluster scheduler: "
                "give no --num-processes or --process-id"
            )
        return Cluster("auto", None, None)
    m = _ADDRESS.match(coordinator)
    if m is None or not 1 <= int(m["port"]) <= 65535:
        raise ValueError(f"--coordinator expects HOST:PORT with a port in 1..65535 (or 'auto'), got {coordinator!r}")
    for name, value in (("--num-processes", num_processes), ("--process-id", process_id)):
        if value is None:
            raise ValueError(f"--coordinator {coordinator} needs {name} as well")
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if num_processes < 1:
        raise ValueError(f"--num-processes must be >= 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"--process-id must be in 0..{num_processes - 1} (--num-processes {num_processes}), got {process_id}"
        )
    return Cluster(coordinator, int(num_processes), int(process_id))


def cluster_from_env() -> Cluster | None:
    """The settings ``silentfail launch`` (or the user) put in the environment
    (:data:`ENV_COORDINATOR`, :data:`ENV_NUM_PROCESSES`, :data:`ENV_PROCESS_ID`).

    Returns:
        The validated Cluster, or None when the variables are unset.

    Raises:
        ValueError: a variable that is not a number, or an inconsistent set.
    """

    def number(name: str) -> int | None:
        text = os.environ.get(name)
        if text is None or text == "":
            return None
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {text!r}") from None

    return check_cluster(os.environ.get(ENV_COORDINATOR) or None, number(ENV_NUM_PROCESSES), number(ENV_PROCESS_ID))


def initialize(cluster: Cluster | None, timeout_s: int = 120) -> None:
    """Join the cluster (``jax.distributed.initialize``), with CPU collectives over gloo;
    a no-op for None or a one-process cluster, and when already joined. Call it before
    JAX computes anything.

    Args:
        cluster: the settings (:func:`check_cluster`).
        timeout_s: how long to wait for every process to connect.

    Raises:
        RuntimeError: JAX has computed already (its backends are started), or the
            processes did not connect within ``timeout_s``.
    """
    if cluster is None or cluster.num_processes == 1 or _STATE["initialized"]:
        return
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        raise RuntimeError("jax.distributed must be initialized before JAX computes anything")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = (
        {}
        if cluster.coordinator == "auto"
        else dict(
            coordinator_address=cluster.coordinator,
            num_processes=cluster.num_processes,
            process_id=cluster.process_id,
        )
    )
    try:
        jax.distributed.initialize(initialization_timeout=timeout_s, **kwargs)
    except Exception as exc:  # noqa: BLE001 - JAX raises several kinds; one line names the setting
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RuntimeError(f"could not join the cluster at --coordinator {cluster.coordinator}: {first}") from None
    _STATE["initialized"] = True


def process_count() -> int:
    """The number of processes (1 without :func:`initialize`).

    Returns:
        ``jax.process_count()``.
    """
    return jax.process_count()


def is_writer() -> bool:
    """Whether this process writes files: process 0 (the only one in a one-process run).

    Returns:
        True on process 0.
    """
    return jax.process_index() == 0


def default_devices(devices: int | None) -> int | None:
    """The device count a run uses: the one asked for, else every device of every
    process in a multi-process run (so that each process holds its shard), else None.

    Args:
        devices: the device count asked for, or None.

    Returns:
        The device count, or None.
    """
    if devices is None and jax.process_count() > 1:
        return jax.device_count()
    return devices


def to_host(tree):
    """NumPy copies of a PyTree of arrays, gathered from every process where a leaf
    is spread over several (``multihost_utils.process_allgather``); the same values on
    every process.

    Args:
        tree: a PyTree of arrays.

    Returns:
        The PyTree of NumPy arrays.
    """
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    def one(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)

    return jax.tree.map(one, tree)


def sync(name: str) -> None:
    """Wait until every process reaches the barrier ``name`` (a no-op in one process).

    Args:
        name: the barrier's name (the same on every process).
    """
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def agree(flag: bool) -> bool:
    """Whether ``flag`` holds on every process (a collective: every process calls it).

    Args:
        flag: this process' value.

    Returns:
        The AND over processes.
    """
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.array([int(flag)], np.int32))))
