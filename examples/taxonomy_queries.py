"""The taxonomy from Python: what is silent, why, and what causes a mode.

The graph decides *structural* silence: a mode no surviving detector can see once the
constraints block the access it needs. Quantitative silence (a detector too weak under
DP noise) is the simulation's job.

    python examples/taxonomy_queries.py
"""

from __future__ import annotations

import argparse

from silentfail.taxonomy import builtin_taxonomy, causes_of, detectors_for, minimal_silencing_sets, paths, silent_modes


def main(args: argparse.Namespace) -> list[str]:
    tax = builtin_taxonomy()
    cons = [c.strip() for c in args.constraints.split(",") if c.strip()]
    silent = silent_modes(tax, cons)
    print(f"under {', '.join(cons)}: {len(silent)} structurally silent mode(s)")
    for s in silent:
        print(f"  {s.mode}: {s.explanation()}")
    print("detectors of fairness_collapse that survive:", detectors_for(tax, "fairness_collapse", cons) or "none")
    print("causes of alignment_erosion:", {k: len(v) for k, v in causes_of(tax, "alignment_erosion").items()})
    print("smallest constraint sets that silence fairness_collapse:", minimal_silencing_sets(tax, "fairness_collapse"))
    print(
        "label_shift -> confidence_miscalibration:",
        [" -> ".join(p) for p in paths(tax, "label_shift", "confidence_miscalibration")],
    )
    return [s.mode for s in silent]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--constraints", default="secure_aggregation,no_personal_model_access,no_raw_data_access,no_attribute_use"
    )
    main(p.parse_args())
