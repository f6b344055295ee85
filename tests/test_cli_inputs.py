"""CLI answers to bad requests: one line naming the problem, before any work."""

from __future__ import annotations

import time

import numpy as np
import pytest
import xarray as xr

from tests.test_cli import run


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["simulate", "--seed", "x"], "error: silentfail simulate: Invalid value for '--seed'"),
        (["simulate", "--seed", str(2**32)], "error: silentfail simulate: Invalid value for '--seed'"),
        (["simulate", "--bogus"], "error: silentfail simulate: No such option: --bogus"),
        (["taxonomy", "query", "paths", "label_shift"], "error: silentfail taxonomy query paths: Missing argument"),
        (["simulate", "--preset", ""], "error: unknown preset ''"),
        (["simulate", "--list-presets", "--preset", "nope"], "error: --list-presets lists the presets"),
        (["simulate", "--set", "federation.rounds=true", "--no-verdict"], "error: invalid scenario: federation.rounds"),
        (
            ["simulate", "--set", "world.group_offset=NaN", "--no-verdict"],
            "error: invalid scenario: world.group_offset",
        ),
        (["phase", "--x", "personalization.lam=0.1,inf"], "error: invalid scenario: personalization.lam"),
        (["phase", "--x", "federation.rounds=1:10:3"], "error: federation.rounds takes integers, got 5.5"),
    ],
)
def test_bad_requests_are_one_line_before_any_work(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith(needle) and one_line(err), err


def test_user_text_is_echoed_literally(capsys, tmp_path):
    code, _, err = run(capsys, "simulate", str(tmp_path / "no:smile:such.toml"))
    assert code == 2 and "no:smile:such.toml" in err and "\U0001f604" not in err
    code, _, err = run(capsys, "phase", "--x", "personalization.lam=a:b:c")
    assert code == 2 and "cannot read 'a:b:c'" in err


def test_a_million_value_axis_is_refused_at_once(capsys):
    t0 = time.perf_counter()
    code, _, err = run(capsys, "phase", "--x", "personalization.lam=0.01:1:1000000", "--y", "shifts.strength=0:1:2")
    assert code == 2 and "runs" in err and "above the limit" in err and "--allow-large" in err and one_line(err)
    assert time.perf_counter() - t0 < 20  # refused from the sizes, never by building a million scenarios


def test_output_paths_are_checked_before_the_work(capsys, tmp_path):
    code, _, err = run(capsys, "simulate", "--no-verdict", "-o", str(tmp_path))
    assert code == 2 and "is a directory" in err
    code, _, err = run(capsys, "taxonomy", "export", "--format", "png", "-o", str(tmp_path))
    assert code == 2 and "is a directory" in err and not (tmp_path.parent / (tmp_path.name + ".png")).exists()
    code, _, err = run(capsys, "taxonomy", "export", "--format", "png", "-o", str(tmp_path / "fig.pdf"))
    assert code == 2 and "must end in .png" in err
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "phase", "-o", str(tmp_path / "file"))
    assert code == 2 and "exists and is not a directory" in err


def test_netcdf_inputs_say_what_they_are(capsys, tmp_path):
    cases = {
        "text.nc": (b"hello", "is not a NetCDF file"),
        "trunc.nc": (b"\x89HDF\r\n\x1a\n" + b"\0" * 100, "cannot be read (truncated or corrupted?)"),
    }
    for name, (content, needle) in cases.items():
        (tmp_path / name).write_bytes(content)
        code, _, err = run(capsys, "report", str(tmp_path / name))
        assert code == 2 and needle in err and name in err and one_line(err), err
    xr.Dataset({"x": ("t", np.arange(3.0))}).to_netcdf(tmp_path / "other.nc", engine="h5netcdf")
    code, _, err = run(capsys, "report", str(tmp_path / "other.nc"))
    assert code == 2 and "without silentfail's attributes" in err
    code, _, err = run(capsys, "estimate", str(tmp_path / "other.nc"))
    assert code == 2 and "expected a silentfail sweep" in err
    code, _, err = run(capsys, "report", str(tmp_path / "missing.nc"))
    assert code == 2 and "does not exist" in err


def test_a_trace_saved_after_divergence_is_flagged_by_report(capsys, tmp_path):
    from silentfail.sim.run import run as simulate
    from silentfail.sim.scenario import preset
    from silentfail.sim.trace import save_trace

    sc = preset("default").replace(
        **{
            "population.num_clients": 40,
            "federation.clients_per_round": 10,
            "federation.rounds": 6,
            "population.ood_subset": 4,
            "federation.server_lr": 50.0,
            "monitor.calibration_seeds": 8,
            "monitor.alpha": 0.5,
        }
    )
    tr = simulate(sc, 0, on_nonfinite="flag")
    assert tr.attrs["nonfinite_round"] >= 0
    save_trace(tr, tmp_path / "t.nc")
    code, _, err = run(capsys, "report", str(tmp_path / "t.nc"), "-o", str(tmp_path / "r.md"))
    assert "warning:" in err and "diverged at round" in err
    assert "This run diverged at round" in (tmp_path / "r.md").read_text()
    code, _, err = run(capsys, "estimate", str(tmp_path / "t.nc"))
    assert code == 2 and "is a silentfail trace, but a silentfail sweep is expected" in err
