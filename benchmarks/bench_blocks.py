"""Block sizes of a round's per-client work, and the clients cost exponent, measured
the strict way: every (clients, block) program of the default scenario compiled in one
process with XLA's full pipeline, then their runs interleaved (repeat r of every
program before repeat r + 1 of any), so that the drift of a shared machine falls on all
of them alike; the time is the best of ``--repeats`` runs, compile excluded. The
exponent is the least-squares slope of log(time per round) on log(clients) over the
first cases of each size that use ``chunk="auto"``'s block (``silentfail.bench.exponent``).

Usage:
    python benchmarks/bench_blocks.py            # writes benchmarks/results/blocks.json (~4 min, 11 GB)
    python benchmarks/bench_blocks.py --smoke    # tiny sizes (the test suite's smoke run)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("SILENTFAIL_COMPILE", "full")

import jax  # noqa: E402

from silentfail.bench import exponent, machine, scenario, write_record  # noqa: E402
from silentfail.sim import scale  # noqa: E402
from silentfail.sim.config import Config  # noqa: E402
from silentfail.sim.federate import scan  # noqa: E402
from silentfail.sim.population import build_population  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "blocks.json"
#: (clients, rounds, block or None for one block)
FULL = [
    (10_000, 50, None),
    (10_000, 50, 5_000),
    (40_000, 20, None),
    (40_000, 20, 4_000),
    (100_000, 20, None),
    (100_000, 20, 4_000),
    (100_000, 20, 8_000),
    (1_000_000, 4, 4_000),
    (1_000_000, 4, 8_000),
]
SMOKE = [(64, 2, None), (128, 2, None), (128, 2, 32)]


def measure(cases: list[tuple[int, int, int | None]], repeats: int) -> list[dict]:
    """Compile every case, then time their runs interleaved.

    Args:
        cases: (clients, rounds, block) triples.
        repeats: timed runs of each.

    Returns:
        One row per case: clients, rounds, block, whether it is ``"auto"``'s block,
        compile seconds, every run's ns a client-round and the best.
    """
    pops, progs = {}, []
    for n, t, block in cases:
        sc = scenario(n, t)
        if n not in pops:
            pops[n] = build_population(sc, jax.random.key(0))
        ctx, pop = pops[n]
        cfg = Config(sc)
        t0 = time.perf_counter()
        compiled = scan.lower(cfg, ctx, pop, jax.random.key(1), chunk=block).compile()
        row = {
            "clients": n,
            "rounds": t,
            "block": block,
            "auto": block == scale.resolve_chunk("auto", n),
            "compile_s": time.perf_counter() - t0,
            "ns_per_client_round": [],
        }
        jax.block_until_ready(compiled(cfg, ctx, pop, jax.random.key(1)))  # warm
        progs.append((row, compiled, cfg, ctx, pop))
    for r in range(repeats):
        for row, compiled, cfg, ctx, pop in progs:
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(cfg, ctx, pop, jax.random.key(2 + r)))
            row["ns_per_client_round"].append(1e9 * (time.perf_counter() - t0) / (row["clients"] * row["rounds"]))
    for row, *_ in progs:
        row["best_ns"] = min(row["ns_per_client_round"])
    return [row for row, *_ in progs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, nothing written")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    rows = measure(SMOKE if args.smoke else FULL, 1 if args.smoke else args.repeats)
    for row in rows:
        block = "one" if row["block"] is None else f"{row['block']:,}"
        print(
            f"{row['clients']:>9,} clients, block {block:>6}{' (auto)' if row['auto'] else '':7}: "
            f"best {row['best_ns']:6.0f} ns a client-round, all {[round(v) for v in row['ns_per_client_round']]}"
        )
    auto = {}
    for row in rows:
        if row["auto"]:
            auto.setdefault(row["clients"], row)
    sizes = sorted(auto)
    exp = exponent(sizes, [auto[n]["best_ns"] * n for n in sizes])
    print(f"clients exponent over {', '.join(f'{n:,}' for n in sizes)} (auto blocks): {exp:.3f}")
    if not args.smoke:
        result = {
            "benchmark": "block sizes and the clients exponent, interleaved runs in one process",
            "command": "python benchmarks/bench_blocks.py",
            "date": time.strftime("%Y-%m-%d"),
            "machine": machine(),
            "rows": rows,
            "clients_exponent": exp,
        }
        write_record(result, args.output)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
