"""Speed and scale of silentfail (the harness of ``silentfail bench``; see
``silentfail/bench.py`` for what is measured and how the peaks are obtained).

Usage:
    python benchmarks/bench_scale.py                # full, writes benchmarks/results/bench.json (CPU)
    python benchmarks/bench_scale.py --smoke        # tiny sizes, prints only (CI smoke mode)
    python benchmarks/bench_scale.py --no-flower    # skip the Flower peer
"""

from __future__ import annotations

import argparse
from pathlib import Path

from silentfail.bench import bench, default_output

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--no-flower", action="store_true")
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args()
    bench(
        smoke=args.smoke,
        output=args.output or (None if args.smoke else default_output()),
        flower=not args.no_flower,
    )
