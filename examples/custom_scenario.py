"""A scenario of your own and its verdict.

Start from a preset, change what your hypothesis is about (here: stronger label shift
and weaker proximal anchoring), run it with a seed, and judge it: which modes fail,
when, and whether any detector the constraints allow catches them in the detection
window. A run is a pure function of (scenario, seed).

    python examples/custom_scenario.py --clients 200 --rounds 20
"""

from __future__ import annotations

import argparse

from silentfail.sim.run import run
from silentfail.sim.scenario import MODES, preset
from silentfail.sim.verdict import verdict


def main(args: argparse.Namespace) -> dict:
    sc = preset("label-shift").replace(
        **{
            "shifts.label_alpha": 0.3,
            "personalization.lam": 0.01,
            "population.num_clients": args.clients,
            "federation.clients_per_round": max(args.clients // 10, 2),
            "federation.rounds": args.rounds,
            "population.ood_subset": min(16, args.clients // 4),
            "monitor.calibration_seeds": args.calibration_seeds,
        }
    )
    trace = run(sc, seed=args.seed)
    v = verdict(trace)
    out = {}
    for m in MODES:
        t_f = int(v["failure_round"].sel(mode=m))
        state = "silent" if bool(v["silent"].sel(mode=m)) else "detected" if bool(v["detected"].sel(mode=m)) else "ok"
        out[m] = state
        print(f"{m:28s} failure round {t_f if t_f >= 0 else '-':>3}  {state}")
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--calibration-seeds", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    main(p.parse_args())
