"""A/B of the engine's speed against an earlier commit: the default scenario at 1e4
clients x 50 rounds (``silentfail bench``'s run row), compile and run timed apart,
alternating A and B processes so that machine drift hits both alike.

    python benchmarks/ab_engine.py --base c6fccad --pairs 4

The base commit is built as a wheel and installed into a scratch folder (``pip install
--target``); each measurement is one process running ``silentfail.bench.measure_run``
from the tree it is given on ``PYTHONPATH``. Writes ``results/ab_engine.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = (
    "import json, sys; from silentfail import bench; "
    "r = bench.measure_run(10_000, 50, 5); print(json.dumps({k: r[k] for k in ('compile_s', 'run_s', 'client_rounds_per_s')}))"
)


def install(rev: str, into: Path) -> Path:
    """Build commit ``rev`` of this repository as a wheel and install it into ``into``."""
    src = into / "src"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(src), rev], check=True, capture_output=True
    )
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(into / "site"), str(src)],
            check=True,
        )
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(src)], check=True)
    return into / "site"


def measure(pythonpath: Path | None) -> dict:
    """One measurement in a fresh process (the installed tree first on the path, if given)."""
    env = None
    if pythonpath is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    out = subprocess.run([sys.executable, "-c", CHILD], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(args: argparse.Namespace) -> dict:
    """Alternate base and head measurements; report medians and the head/base ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        base_site = install(args.base, Path(tmp))
        rows = {"base": [], "head": []}
        for _ in range(args.pairs):
            rows["base"].append(measure(base_site))
            rows["head"].append(measure(None))
    med = {k: {q: statistics.median(r[q] for r in v) for q in v[0]} for k, v in rows.items()}
    head_rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    result = {
        "base": args.base,
        "head": head_rev.stdout.strip() + ("+dirty" if args.dirty else ""),
        "pairs": args.pairs,
        "median": med,
        "rate_ratio_head_over_base": med["head"]["client_rounds_per_s"] / med["base"]["client_rounds_per_s"],
        "runs": rows,
    }
    (ROOT / "benchmarks" / "results" / "ab_engine.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("base", "head", "median", "rate_ratio_head_over_base")}, indent=1))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="c6fccad", help="the commit to compare against")
    parser.add_argument("--pairs", type=int, default=4, help="A/B pairs (each one process per side)")
    parser.add_argument("--dirty", action="store_true", help="mark the head as having uncommitted changes")
    main(parser.parse_args())
