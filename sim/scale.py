"""Execution layout of the client axis: chunks (bounded memory) and device meshes.
Nothing here changes a number beyond float round-off: a run is a pure function of (scenario, seed) whatever the chunk size or the device count.

* **Chunks.** The per-client work of a round (the deployed model and every per-client
  metric) runs over blocks of ``chunk`` clients with ``jax.lax.map``, so its
  intermediates (the calibration integral's Gaussian CDFs: ~300 per client) live for
  one block at a time. The population is laid out in blocks once per run, and a block
  is contiguous within each device's shard: on D devices (below) each holding
  n = N / D consecutive clients, block j is rows j c .. (j + 1) c - 1 of every
  device's shard (c = chunk / D), so a block is processed where its data are, the loop
  over blocks moves nothing, and on one device a block is a contiguous slice (the
  layout and its inverse are reshapes; benchmarks/README.md has the measurements).
* **Devices.** ``client_mesh(n)`` is a 1-D ``jax.sharding.Mesh`` over the axis
  ``"clients"``; the population is placed with ``NamedSharding(mesh, P("clients"))`` on
  its leading axis (the shared context is replicated) and the compiled round is
  partitioned by XLA's SPMD partitioner: per-client work stays local, and every
  reduction over clients, the secure sum of the clipped updates first, becomes a
  cross-device all-reduce. For sweeps the runs are sharded the same way over a
  ``"grid"`` axis (``sim.batch``). Multi-host: call ``jax.distributed.initialize()``
  in every process before anything else; ``jax.devices()`` then lists every host's
  devices and the same meshes span them. Every process builds the same population (a
  pure function of the seed) and ``jax.device_put`` keeps only its own devices'
  shards, so host memory holds one population per process, device memory one shard.

References:
    Xu et al. (2021), GSPMD: General and Scalable Parallelization for ML Computation
    Graphs, arXiv:2105.04663.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

CLIENTS = "clients"
GRID = "grid"
#: ``chunk="auto"``: populations up to AUTO_MIN clients run in one block, larger ones in
#: blocks of about AUTO_CHUNK clients (benchmarks/README.md has the measurements).
AUTO_MIN = 25_000
AUTO_CHUNK = 4096
#: the same two on an accelerator (GPU, TPU): one block up to, and blocks of about, this
#: many clients. A block costs some 80 kernel launches there, so blocks sized for a CPU's
#: caches would leave a run launch-bound (1e7 clients in blocks of 4,096: ~8e5 launches in
#: 4 rounds); this size is bounded by memory instead (a block's fused intermediates, ~16 KB
#: a client by XLA's cost analysis: ~4 GB). Not yet measured on a GPU (benchmarks/gpu.sh).
AUTO_ACCELERATOR = 262_144


def auto_sizes() -> tuple[int, int]:
    """``chunk="auto"``'s (one-block limit, block size) on the default backend:
    (:data:`AUTO_MIN`, :data:`AUTO_CHUNK`) on the CPU, :data:`AUTO_ACCELERATOR` twice on
    an accelerator.

    Returns:
        (the most clients run in one block, the block size aimed at).
    """
    if jax.default_backend() == "cpu":
        return AUTO_MIN, AUTO_CHUNK
    return AUTO_ACCELERATOR, AUTO_ACCELERATOR


def resolve_chunk(chunk: int | str | None, num_clients: int, devices: int = 1) -> int | None:
    """The block size actually used: None (one block) for ``None`` or when the population
    fits in one block. ``"auto"`` keeps populations up to :data:`AUTO_MIN` clients in one
    block and splits larger ones by :func:`auto_block` (on an accelerator, the sizes of
    :func:`auto_sizes`). A block is rounded up to a multiple of the device count so that
    every device holds the same rows of it.

    Args:
        chunk: clients per block, ``"auto"``, or None.
        num_clients: N.
        devices: the device count.

    Returns:
        The block size, or None for one block.
    """
    if chunk is None:
        return None
    if chunk == "auto":
        one_block, target = auto_sizes()
        if num_clients <= one_block:
            return None
        chunk = auto_block(num_clients, devices, target)
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, 'auto' or None, got {chunk!r}")
    chunk = -(-int(chunk) // devices) * devices
    return None if chunk >= num_clients else chunk


def auto_block(num_clients: int, devices: int = 1, target: int = AUTO_CHUNK) -> int:
    """The ``"auto"`` block size of N clients: the divisor of N (a multiple of the device
    count) nearest ``target`` in ratio within a factor of 2, so that laying the
    population out in blocks is a reshape and copies nothing (a padded layout copies the
    whole population once per run: 15% of a 4-round run at 1e6 clients,
    benchmarks/README.md); without one, ceil(N / target) equal blocks (the least
    padding).

    Args:
        num_clients: N.
        devices: the device count.
        target: the block size aimed at (:data:`AUTO_CHUNK` on the CPU).

    Returns:
        The block size.
    """
    lo, hi = target // 2, 2 * target
    exact = [c for c in range(lo - lo % devices + devices, hi + 1, devices) if num_clients % c == 0]
    if exact:
        return min(exact, key=lambda c: (abs(np.log(c / target)), c))
    return -(-num_clients // -(-num_clients // target))


#: rows of the first level of :func:`client_sum`
SUM_BLOCK = 1024


def client_sum(x: jax.Array) -> jax.Array:
    """The sum over the client axis (axis 0) in two levels: over blocks of
    :data:`SUM_BLOCK` consecutive clients, then over the blocks' sums. A float32 sum of
    N terms accumulated one after another errs by up to N eps relative (eps = 2^-24;
    1.8e-4 measured for a secure sum of 20,000 reports in a 200,000-client round); in two
    levels the bound is (SUM_BLOCK + N / SUM_BLOCK) eps, and the rounding no longer
    depends on how the clients are split over devices or processes. Up to SUM_BLOCK
    clients it is the plain sum.

    Args:
        x: (N, ...) per-client values.

    Returns:
        (...) their sum.

    References:
        Higham, N. J. (1993), The accuracy of floating point summation, SIAM J. Sci.
        Comput. 14(4), 783-799.
    """
    n = x.shape[0]
    if n <= SUM_BLOCK:
        return x.sum(0)
    blocks = -(-n // SUM_BLOCK)
    if blocks * SUM_BLOCK != n:
        x = jnp.concatenate([x, jnp.zeros((blocks * SUM_BLOCK - n,) + x.shape[1:], x.dtype)])
    return x.reshape((blocks, SUM_BLOCK) + x.shape[1:]).sum(1).sum(0)


def materialized(x: jax.Array) -> jax.Array:
    """``x`` written once to its own buffer: ``x @ I`` (a dot is never fused into its
    consumers, and multiplying by the identity is exact: each entry is one product by 1
    plus products by 0). Without it XLA:CPU fuses a cheap elementwise producer such as
    ``P_c theta_g + b_c`` into every consumer, and each consumer fusion re-reads b_c at a
    stride of one client: in a block of 8,000 clients out of 2e5 the OOD panel's fusion
    alone took 223 ns a client-round instead of 35 (benchmarks/README.md, Linear in
    clients). A non-finite entry spreads NaN over its row (inf * 0), which the run's
    ``finite`` flag reports the same.

    Not used in a run of several processes: there, with JAX's persistent compilation
    cache warm, the cached program of a round with this dot made the processes' gloo
    collectives disagree ("Received data size doesn't match expected size. 8 vs 4") in 3
    of 4 launches of a 2-process ``simulate``, while a fresh compile ran; the same run
    without it is exact either way (``tests/test_distributed.py`` launches twice on one
    cache).

    Args:
        x: (..., D) values.

    Returns:
        The same values, materialized.
    """
    eye = jnp.eye(x.shape[-1], dtype=x.dtype)
    return jnp.matmul(x, eye, precision=jax.lax.Precision.HIGHEST)


def to_blocks(tree, chunk: int, devices: int = 1):
    """(N, ...) leaves -> (n_chunks, chunk, ...): with n = N / devices clients per device
    and c = chunk / devices rows of a block per device, client d n + j c + k sits at
    row d c + k of block j; each device's shard is padded at its end with copies of its
    last client (dropped by :func:`from_blocks`).

    Args:
        tree: a PyTree of (N, ...) arrays.
        chunk: the block size (a multiple of ``devices``).
        devices: the device count the client axis is sharded over.

    Returns:
        The PyTree of (n_chunks, chunk, ...) arrays.
    """
    c = chunk // devices

    def one(a):
        n = a.shape[0] // devices
        n_chunks = -(-n // c)
        a = a.reshape((devices, n) + a.shape[1:])
        pad = n_chunks * c - n
        if pad:
            a = jnp.concatenate([a, jnp.broadcast_to(a[:, -1:], (devices, pad) + a.shape[2:])], axis=1)
        a = jnp.swapaxes(a.reshape((devices, n_chunks, c) + a.shape[2:]), 0, 1)
        return a.reshape((n_chunks, chunk) + a.shape[3:])

    return jax.tree.map(one, tree)


def from_blocks(tree, n: int, devices: int = 1):
    """Inverse of :func:`to_blocks` for the (n_chunks, chunk, ...) outputs of a block map.

    Args:
        tree: a PyTree of (n_chunks, chunk, ...) arrays.
        n: the number of clients N.
        devices: the device count of :func:`to_blocks`.

    Returns:
        The PyTree of (N, ...) arrays in client order.
    """
    per = n // devices

    def one(a):
        n_chunks, chunk = a.shape[:2]
        a = jnp.swapaxes(a.reshape((n_chunks, devices, chunk // devices) + a.shape[2:]), 0, 1)
        return a.reshape((devices, -1) + a.shape[3:])[:, :per].reshape((n,) + a.shape[3:])

    return jax.tree.map(one, tree)


def client_mesh(devices: int | None) -> Mesh | None:
    """A 1-D mesh over the first ``devices`` devices (axis ``"clients"``); None for 1 device.

    Args:
        devices: the device count (None or 1: no mesh).

    Returns:
        The mesh, or None.
    """
    return _mesh(devices, CLIENTS)


def grid_mesh(devices: int | None) -> Mesh | None:
    """A 1-D mesh over the first ``devices`` devices (axis ``"grid"``); None for 1 device.

    Args:
        devices: the device count (None or 1: no mesh).

    Returns:
        The mesh, or None.
    """
    return _mesh(devices, GRID)


def _mesh(devices: int | None, axis: str) -> Mesh | None:
    if devices is None or devices == 1:
        return None
    available = jax.devices()
    if isinstance(devices, bool) or not isinstance(devices, (int, np.integer)) or devices < 1:
        raise ValueError(f"devices must be a positive integer, got {devices!r}")
    if devices > len(available):
        raise ValueError(
            f"devices = {devices} but only {len(available)} {jax.default_backend()} device(s) are visible; on CPU, "
            f"set XLA_FLAGS=--xla_force_host_platform_device_count={devices} before JAX starts"
        )
    return Mesh(np.array(available[:devices]), (axis,))


def check_divisible(n: int, mesh: Mesh | None, what: str) -> None:
    """The sharded axis must split evenly over the mesh's devices.

    Args:
        n: the axis length.
        mesh: the mesh (None: nothing to check).
        what: the axis' name, for the message.

    Raises:
        ValueError: n is not a multiple of the device count.
    """
    if mesh is not None and n % mesh.size:
        raise ValueError(f"{what} = {n} is not divisible by the {mesh.size} devices it is sharded over")


def plan(num_clients: int, chunk: int | str | None, devices: int | None) -> tuple[Mesh | None, int | None]:
    """The client mesh and the block size of a run of ``num_clients`` clients, checked
    before anything is built: the device count against the visible devices, the clients
    against the devices, then :func:`resolve_chunk`.

    Args:
        num_clients: N.
        chunk: clients per block, ``"auto"`` or None.
        devices: the device count, or None.

    Returns:
        (the mesh or None, the block size or None).
    """
    mesh = client_mesh(devices)
    check_divisible(num_clients, mesh, "population.num_clients")
    return mesh, resolve_chunk(chunk, num_clients, mesh.size if mesh is not None else 1)


def leading_sharding(tree, mesh: Mesh, n: int):
    """A sharding per leaf: split the leading axis over the mesh when it has length n
    (a per-client or per-run array), replicate the rest.

    Args:
        tree: a PyTree of arrays.
        mesh: the mesh.
        n: the length of the sharded leading axis.

    Returns:
        The PyTree of NamedShardings.
    """
    axis = mesh.axis_names[0]

    def one(a):
        shape = getattr(a, "shape", ())
        spec = PartitionSpec(axis) if len(shape) >= 1 and shape[0] == n else PartitionSpec()
        return NamedSharding(mesh, spec)

    return jax.tree.map(one, tree)


def place(tree, mesh: Mesh | None, n: int):
    """``jax.device_put`` with :func:`leading_sharding` (a no-op without a mesh).

    Args:
        tree: a PyTree of arrays.
        mesh: the mesh, or None.
        n: the length of the sharded leading axis.

    Returns:
        The placed PyTree.
    """
    if mesh is None:
        return tree
    return jax.device_put(tree, leading_sharding(tree, mesh, n))
