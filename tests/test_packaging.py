"""The package works as an installed wheel, outside the checkout: the wheel carries the
presets and the taxonomy's data, a preset runs and the taxonomy answers from a folder
that is not the repository, and the checkout-only tools (bench, paper) say so."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel installed (no editable finder), its dependencies
    borrowed from this venv's site-packages by a path entry."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next((tmp / "dist").glob("silentfail-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --target installs into the new venv only (it implies --ignore-installed: this venv's
    # editable install is left alone)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    outside = tmp / "elsewhere"
    outside.mkdir()
    return wheel, py, [py, "-m", "silentfail"], outside


def _run(cmd, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=env)


def test_the_wheel_carries_every_data_file_the_package_reads(installed):
    import zipfile

    names = set(zipfile.ZipFile(installed[0]).namelist())
    presets = {p.name for p in (ROOT / "sim" / "presets").glob("*.toml")}
    assert presets and {f"silentfail/sim/presets/{p}" for p in presets} <= names
    assert "silentfail/taxonomy/benchmark_matrix.csv" in names and "silentfail/py.typed" in names


def test_a_preset_runs_and_the_taxonomy_answers_outside_the_checkout(installed):
    _, py, cli, outside = installed
    where = _run([py, "-c", "import silentfail; print(silentfail.__file__)"], outside)
    assert where.returncode == 0 and str(ROOT) not in where.stdout, where.stdout + where.stderr
    small = [
        "--set",
        "population.num_clients=40",
        "--set",
        "federation.clients_per_round=10",
        "--set",
        "federation.rounds=3",
        "--set",
        "population.ood_subset=4",
    ]
    sim = _run([*cli, "simulate", "--preset", "label-shift", *small, "--no-verdict"], outside)
    assert sim.returncode == 0, sim.stderr
    assert "confidence_miscalibration" in sim.stdout
    presets = _run([*cli, "simulate", "--list-presets"], outside)
    assert presets.returncode == 0 and "participation-disparity" in presets.stdout
    q = _run(
        [*cli, "taxonomy", "query", "silent", "-c", "secure_aggregation,no_attribute_use,no_personal_model_access"],
        outside,
    )
    assert q.returncode == 0 and "fairness_collapse" in q.stdout, q.stderr


def test_checkout_only_tools_say_so_from_an_installed_package(installed):
    _, _, cli, outside = installed
    bench = _run([*cli, "bench", "--smoke"], outside)
    assert bench.returncode == 2 and "needs the source checkout" in bench.stderr, bench.stderr
    assert len(bench.stderr.strip().splitlines()) == 1
    paper = _run([*cli, "paper", "--quick", "-o", outside / "paper"], outside)
    assert paper.returncode == 2 and "repository checkout" in paper.stderr, paper.stderr
