"""The participation draw's slots (``sim.mechanism.participation_draw``): the mask of the
k = N / 10 highest priorities by ``lax.top_k`` (what the engine does) against an exact
selection of the same mask (the k-th largest priority by ``metrics.kth_smallest``, ties
broken by index as ``top_k`` does), at 1e4, 1e5 and 1e6 clients. Both masks are checked
equal (uniform priorities, heavy ties, fewer volunteers than slots) before timing; the
time is the best of 5 calls of the compiled function, compile excluded.

Usage:
    python benchmarks/bench_slots.py            # writes benchmarks/results/slots.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from silentfail.sim.metrics import kth_smallest

OUT = Path(__file__).resolve().parent / "results" / "slots.json"


def by_top_k(prio: jax.Array, k: int) -> jax.Array:
    """The engine's mask: the k highest priorities (negative: not a volunteer)."""
    top, idx = jax.lax.top_k(prio, k)
    return jnp.zeros(prio.shape[0]).at[idx].set((top >= 0).astype(jnp.float32))


def by_selection(prio: jax.Array, k: int) -> jax.Array:
    """The same mask by exact selection of the k-th largest priority."""
    thr = kth_smallest(prio, prio.shape[0] - k)
    above, tied = prio > thr, prio == thr
    chosen = above | (tied & (jnp.cumsum(tied) <= k - above.sum()))
    return (chosen & (prio >= 0)).astype(jnp.float32)


def best(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rows = []
    old, new = jax.jit(by_top_k, static_argnums=1), jax.jit(by_selection, static_argnums=1)
    for n in (10**4, 10**5, 10**6):
        k = n // 10
        u = jax.random.uniform(jax.random.key(0), (n,))
        join = jax.random.uniform(jax.random.key(1), (n,))
        cases = [jnp.where(join < share, u, -1.0) for share in (0.05, 0.1, 0.5)]
        cases.append(jnp.where(join < 0.1, jnp.round(u * 50) / 50, -1.0))  # heavy ties
        for prio in cases:
            if not bool((old(prio, k) == new(prio, k)).all()):
                raise AssertionError(f"the two masks differ at {n} clients")
        t_old, t_new = best(old, cases[1], k), best(new, cases[1], k)
        rows.append(
            {
                "clients": n,
                "slots": k,
                "top_k_ns_per_client": t_old / n * 1e9,
                "selection_ns_per_client": t_new / n * 1e9,
            }
        )
        print(
            f"{n:>9,} clients: top_k {rows[-1]['top_k_ns_per_client']:.1f} ns, selection {rows[-1]['selection_ns_per_client']:.1f} ns a client",
            flush=True,
        )
    OUT.write_text(
        json.dumps({"benchmark": __doc__.splitlines()[0], "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2)
        + "\n"
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
