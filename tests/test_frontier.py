"""The privacy-silence frontier: its closed forms against result 4 and the mu-GDP
ceiling written out by hand, the minimal detectable strength and the largest silent
epsilon on a dataset whose answers are known, and the command end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from silentfail.frontier import (
    STRENGTH,
    Z,
    ceiling_power,
    delta_min,
    epsilons,
    gdp_mu,
    largest_silent_epsilon,
    minimal_detectable_strength,
)
from silentfail.sim.scenario import MODES, preset


@pytest.mark.parametrize("s2, M, z, C, alpha, beta", [(0.0, 100, 0.5, 1.0, 0.05, 0.5), (0.02, 37, 3.0, 2.6, 0.01, 0.2)])
def test_delta_min_is_result_4s_closed_form(s2, M, z, C, alpha, beta):
    """delta_min = sqrt(s2/M + z^2 C^2 / M^2) (z_(1-alpha) + z_(1-beta)), written here
    with scipy's normal quantiles (dp_power's derivation is what the frontier evaluates)."""
    hand = math.sqrt(s2 / M + z**2 * C**2 / M**2) * (stats.norm.ppf(1 - alpha) + stats.norm.ppf(1 - beta))
    assert delta_min(s2, M, z, C, alpha, beta) == pytest.approx(hand, rel=1e-9)


def test_gdp_ceiling_and_mu():
    sc = preset("phase")
    assert ceiling_power(1.0, 0.05) == pytest.approx(stats.norm.cdf(1.0 - stats.norm.ppf(0.95)), rel=1e-9)
    from silentfail.sim.privacy import effective_multiplier, noise_multipliers

    z = effective_multiplier(noise_multipliers(sc))
    T = sc.federation.rounds
    assert gdp_mu(sc, 0.3) == pytest.approx(0.3 * math.sqrt(T * math.expm1(1 / z**2)), rel=1e-12)
    assert gdp_mu(sc.replace(**{"federation.dp": "none"}), 0.3) == math.inf
    eps = epsilons(sc, np.array([0.5, 2.0, 8.0]))
    assert np.all(np.diff(eps) < 0)  # more noise, less epsilon


def _frontier_toy(stat, p_fail, p_silent, zs=(1.0, 4.0), fs=(0.0, 0.5, 1.0)):
    sc = preset("phase")
    ch = ["federated_evaluation/alignment_drop", "server_probe_eval/alignment_drop"]
    dims = (Z, STRENGTH)
    M = len(MODES)
    ds = xr.Dataset(
        {
            "theory_stat_max": (dims + ("channel",), np.asarray(stat, float)),
            "p_fail": (dims + ("mode",), np.broadcast_to(np.asarray(p_fail, float)[..., None], (2, 3, M)).copy()),
            "p_silent": (dims + ("mode",), np.broadcast_to(np.asarray(p_silent, float)[..., None], (2, 3, M)).copy()),
        },
        coords={Z: list(zs), STRENGTH: list(fs), "channel": ch, "mode": list(MODES)},
    )
    ds.attrs["scenario"] = sc.to_json()
    return ds.assign_coords(epsilon=(Z, [50.0, 5.0])), sc


def test_minimal_detectable_strength_inverts_the_channels_shift():
    """The noise-free statistic of the federated alignment drop rises linearly with the
    strength (0 -> 0.2 at f = 1): f_min is where that shift reaches delta_min, at each z;
    the exact probe channel (no DP noise on its mean) does not enter."""
    sc = preset("phase")
    f = sc.federation
    M = f.participation * sc.population.num_clients * (1 - f.dropout)
    from silentfail.sim.mechanism import REPORT_SENSITIVITY

    rise = np.array([0.0, 0.1, 0.2])
    stat = np.zeros((2, 3, 2))
    stat[:, :, 0] = rise
    stat[:, :, 1] = 10 * rise  # would be detectable at any strength if it were counted
    ds, _ = _frontier_toy(stat, np.ones((2, 3)), np.zeros((2, 3)))
    got, channel = minimal_detectable_strength(ds, "alignment_erosion")
    assert channel == "federated_evaluation/alignment_drop"
    for i, z in enumerate((1.0, 4.0)):
        dmin = delta_min(0.0, M, z, REPORT_SENSITIVITY["fedeval"], sc.monitor.alpha / f.rounds)
        want = dmin / 0.2 if dmin <= 0.2 else np.nan
        np.testing.assert_allclose(got[i], want, rtol=1e-9)
    none, ch = minimal_detectable_strength(ds, "fairness_collapse")  # no channel of the toy watches it
    assert ch is None and np.isnan(none).all()


def test_largest_silent_epsilon_reads_failing_and_silent_cells():
    pf = np.array([[0, 1, 1], [0, 1, 1]])
    ps = np.array([[0, 0.6, 0.2], [0, 0.1, 0.0]])  # silent and failing only at epsilon = 50, f = 0.5
    ds, _ = _frontier_toy(np.zeros((2, 3, 2)), pf, ps)
    assert all(v == 50.0 for v in largest_silent_epsilon(ds).values())
    ds2, _ = _frontier_toy(np.zeros((2, 3, 2)), pf, np.zeros((2, 3)))
    assert all(np.isnan(v) for v in largest_silent_epsilon(ds2).values())


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    from silentfail.cli import main

    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_frontier_command_writes_the_figure_with_its_overlays(tmp_path, capsys):
    out = tmp_path / "fr"
    code, _, err = _run(
        capsys,
        *["frontier", "--quick", "-o", str(out)]
        + sum(
            (
                ["--set", f"{k}={v}"]
                for k, v in {
                    "population.num_clients": 40,
                    "federation.clients_per_round": 40,
                    "federation.rounds": 6,
                    "monitor.calibration_seeds": 24,
                    "monitor.alpha": 0.2,
                }.items()
            ),
            [],
        ),
    )
    assert code == 0, err
    for name in ("frontier.pdf", "frontier.png", "frontier.overlay.json", "report.md", "frontier.nc"):
        assert (out / name).exists(), name
    side = json.loads((out / "frontier.overlay.json").read_text())
    assert set(side) == set(MODES) and all({"failure", "silence", "f_min"} <= set(v) for v in side.values())
    ds = xr.open_dataset(out / "frontier.nc")
    assert np.all(np.diff(ds["epsilon"].values) < 0)  # noise multipliers ascend, epsilon descends
    assert "largest epsilon at which a failing shift stays silent" in (out / "report.md").read_text()
    code, _, err = _run(capsys, "frontier", "--quick", "-o", str(tmp_path / "x"), "--set", "federation.dp=none")
    assert code == 2 and "federation.dp = 'none'" in err and len(err.strip().splitlines()) == 1
