"""Multi-process runs (sim/distributed.py, silentfail launch): 2 and 4 local processes
joined by jax.distributed (CPU collectives over gloo) give the trace and the sweep of one
process up to float round-off, a multi-process sweep resumes, and bad settings are
refused in one line naming the option."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from silentfail.cli import main
from silentfail.launch import check_command
from silentfail.sim import distributed
from silentfail.sim.scenario import preset
from silentfail.sim.sweep import sweep

SMALL = [
    "--set",
    "population.num_clients=40",
    "--set",
    "federation.clients_per_round=20",
    "--set",
    "federation.rounds=5",
    "--set",
    "population.trace_clients=40",
]
PHASE = [
    "--x",
    "personalization.lam=0.01,1",
    "--y",
    "shifts.strength=0,1",
    "--seeds",
    "2",
    "--set",
    "population.num_clients=40",
    "--set",
    "federation.clients_per_round=40",
    "--set",
    "federation.rounds=4",
    "--set",
    "monitor.calibration_seeds=16",
    "--set",
    "monitor.alpha=0.2",
]


def relative(a: xr.Dataset, b: xr.Dataset) -> dict[str, float]:
    """max |x - y| / (1 + |x|) per variable; labels must be equal (inf otherwise)."""
    out = {}
    for v in a.data_vars:
        x, y = a[v].values, b[v].values
        if x.dtype.kind in "USO" or x.dtype == bool:
            out[v] = 0.0 if np.array_equal(x, y) else float("inf")
        elif x.size:
            x, y = np.asarray(x, float), np.asarray(y, float)
            out[v] = float(np.nanmax(np.abs(x - y) / (1 + np.abs(x)), initial=0.0))
            if not np.array_equal(np.isnan(x), np.isnan(y)):
                out[v] = float("inf")
    return out


def silentfail(*args: str, cwd, timeout: int = 900) -> subprocess.CompletedProcess:
    own = (distributed.ENV_COORDINATOR, distributed.ENV_NUM_PROCESSES, distributed.ENV_PROCESS_ID)
    env = {k: v for k, v in os.environ.items() if k not in own}
    proc = subprocess.run(
        [sys.executable, "-m", "silentfail", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )
    return proc


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    """The same simulate (with its verdict) in 1, 2 and 4 processes, and in 2 again with
    the compilation cache the first 2-process run filled (``"2 warm"``)."""
    root = tmp_path_factory.mktemp("mp-simulate")
    out = {}
    for key, n in ((1, 1), (2, 2), (4, 4), ("2 warm", 2)):
        args = ["simulate", *SMALL, "-o", f"trace{key}.nc"]
        proc = silentfail(*(args if n == 1 else ["launch", "--processes", str(n), "--", *args]), cwd=root)
        assert proc.returncode == 0, f"{key} processes: " + proc.stderr[-3000:]
        out[key] = (xr.load_dataset(root / f"trace{key}.nc"), proc.stdout, proc.stderr)
    return out


def test_two_and_four_processes_give_the_one_process_trace(traces):
    ref = traces[1][0]
    for n in (2, 4, "2 warm"):
        diffs = relative(ref, traces[n][0])
        worst = max(diffs, key=diffs.get)
        assert diffs[worst] < 1e-5, (n, worst, diffs[worst])
        assert traces[n][0].attrs["dp_epsilon"] == ref.attrs["dp_epsilon"]


def test_a_launched_run_prints_once_and_without_the_runtime_noise(traces):
    one, two = traces[1][1], traces[2][1]
    assert two.count("FM alignment") == 1  # process 0 prints, the others are silent
    assert one.splitlines()[-3:] == two.splitlines()[-3:]  # the same verdict table's last lines
    assert "[Gloo]" not in traces[2][2]


@pytest.fixture(scope="module")
def phases(tmp_path_factory):
    """The phase command's sweep in 2 processes, and resumed in 2 after losing chunks."""
    root = tmp_path_factory.mktemp("mp-phase")
    proc = silentfail("launch", "-n", "2", "--", "phase", *PHASE, "-o", "two", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = xr.load_dataset(root / "two" / "store" / "sweep.nc")
    store = root / "two" / "store"
    manifest = json.loads((store / "manifest.json").read_text())
    lost = sorted(k for k in manifest["chunks"] if not k.startswith("null"))
    for name in lost:  # the grid's and the theory's chunks are lost; the null runs are kept
        (store / "chunks" / f"{name}.nc").unlink()
        del manifest["chunks"][name]
    (store / "manifest.json").write_text(json.dumps(manifest))
    kept = {p.name: p.stat().st_mtime_ns for p in (store / "chunks").iterdir()}
    again = silentfail("launch", "-n", "2", "--", "phase", *PHASE, "-o", "two", "--resume", cwd=root)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = xr.load_dataset(store / "sweep.nc")
    return two, resumed, lost, kept, {p.name: p.stat().st_mtime_ns for p in (store / "chunks").iterdir()}


def _phase_scenario():
    """The scenario the phase command above sweeps: the phase preset with its --set values."""
    sets = [PHASE[i + 1] for i, w in enumerate(PHASE) if w == "--set"]
    return preset("phase").replace(**{k: json.loads(v) for k, v in (s.split("=") for s in sets)})


def test_a_two_process_sweep_equals_the_one_process_sweep(phases):
    ref = sweep(_phase_scenario(), {"personalization.lam": [0.01, 1.0], "shifts.strength": [0.0, 1.0]}, seeds=2)
    diffs = relative(ref, phases[0])
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] < 1e-5, (worst, diffs[worst])


def test_a_multi_process_sweep_resumes_from_its_store(phases):
    two, resumed, lost, kept, after = phases
    assert lost and any(k.startswith("theory") for k in lost)
    assert all(after[name] == t for name, t in kept.items())  # the null chunks were reused, not rewritten
    assert set(after) >= {f"{k}.nc" for k in lost}  # the lost ones were computed again
    diffs = relative(two, resumed)
    assert max(diffs.values()) == 0.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--coordinator", "nohost"), "--coordinator expects HOST:PORT"),
        (("--coordinator", "localhost:99999"), "--coordinator expects HOST:PORT"),
        (("--coordinator", "localhost:1234"), "needs --num-processes"),
        (("--coordinator", "localhost:1234", "--num-processes", "2"), "needs --process-id"),
        (
            ("--coordinator", "localhost:1234", "--num-processes", "0", "--process-id", "0"),
            "--num-processes must be >= 1",
        ),
        (
            ("--coordinator", "localhost:1234", "--num-processes", "2", "--process-id", "2"),
            "--process-id must be in 0..1",
        ),
        (("--num-processes", "2"), "need --coordinator"),
        (("--coordinator", "auto", "--num-processes", "2"), "--coordinator auto takes"),
    ],
)
def test_bad_process_settings_are_one_line_errors(capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_settings_from_the_environment_are_checked(monkeypatch):
    monkeypatch.setenv(distributed.ENV_COORDINATOR, "127.0.0.1:5000")
    monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "two")
    with pytest.raises(ValueError, match="SILENTFAIL_NUM_PROCESSES must be an integer"):
        distributed.cluster_from_env()
    monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "2")
    monkeypatch.setenv(distributed.ENV_PROCESS_ID, "1")
    assert distributed.cluster_from_env() == distributed.Cluster("127.0.0.1:5000", 2, 1)
    for name in (distributed.ENV_COORDINATOR, distributed.ENV_NUM_PROCESSES, distributed.ENV_PROCESS_ID):
        monkeypatch.delenv(name)
    assert distributed.cluster_from_env() is None


def test_launch_refuses_what_it_cannot_run(capsys):
    for command, message in (
        ([], "launch needs a command after --"),
        (["report", "x"], "launch runs simulate, phase"),
        (["simulate", "--process-id", "1"], "launch sets the process options itself"),
    ):
        with pytest.raises(ValueError, match=message):
            check_command(command)
    with pytest.raises(SystemExit) as exc:
        main(["launch", "--processes", "2", "--", "taxonomy", "show"])
    assert exc.value.code == 2 and "launch runs simulate, phase" in capsys.readouterr().err
