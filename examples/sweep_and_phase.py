"""A sweep over two axes and its phase diagram.

Every grid point is a scenario of its own; the float axes are traced, so one compiled
program serves the grid. The detectors are calibrated on null runs of each point, and
each cell gets P(fail), P(silent), P(early warning) and the delays. The figure colours
each cell by its majority regime: no failure, failure detected, silent failure.

    python examples/sweep_and_phase.py --points 3 --seeds 4 -o phase-example
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from silentfail.figures import phase_figure
from silentfail.sim.scenario import preset
from silentfail.sim.sweep import sweep


def main(args: argparse.Namespace) -> Path:
    sc = preset("phase").replace(
        **{
            "population.num_clients": args.clients,
            "federation.clients_per_round": args.clients,
            "federation.rounds": args.rounds,
            "population.ood_subset": min(16, args.clients // 4),
        }
    )
    axes = {
        "personalization.lam": list(np.geomspace(0.01, 10, args.points)),
        "shifts.strength": list(np.linspace(0, 1, args.points)),
    }
    ds = sweep(sc, axes, seeds=args.seeds, store=Path(args.output) / "store")
    for m in ds["mode"].values:
        print(
            f"{m:28s} mean P(fail) {float(ds['p_fail'].sel(mode=m).mean()):.2f}  "
            f"mean P(silent) {float(ds['p_silent'].sel(mode=m).mean()):.2f}"
        )
    paths = phase_figure(ds, Path(args.output) / "phase")
    print("wrote", ", ".join(map(str, paths)))
    return paths[0]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=300)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--points", type=int, default=8)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("-o", "--output", default="phase-example")
    main(p.parse_args())
