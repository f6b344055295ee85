"""Checking a hypothesis a theorist states.

``check`` parses the sentence, sweeps the region it names, and gives the posterior
probability that it holds in every cell (exact Beta posteriors of the binomial counts),
with the cells where it fails.

    python examples/hypothesis_check.py --seeds 4 --points 2
"""

from __future__ import annotations

import argparse

from silentfail.hypothesis import check
from silentfail.sim.scenario import preset

HYPOTHESIS = (
    "for all lambda >= 1 and shift >= 0.8, P(silent fairness collapse) >= 0.5 under secure aggregation + central DP"
)


def main(args: argparse.Namespace):
    sc = preset("phase")
    if args.small:
        sc = sc.replace(
            **{
                "population.num_clients": 60,
                "federation.clients_per_round": 60,
                "federation.rounds": 10,
                "population.ood_subset": 4,
            }
        )
    res = check(args.hypothesis, sc, seeds=args.seeds, points=args.points)
    print(args.hypothesis)
    print(res.summary())
    return res


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("hypothesis", nargs="?", default=HYPOTHESIS)
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--points", type=int, default=5)
    p.add_argument("--small", action="store_true", help="a 60-client, 10-round world (seconds, not minutes)")
    main(p.parse_args())
