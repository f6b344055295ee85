"""Trace: named dims, scenario and seed in attrs, NetCDF round trip, summaries."""

from __future__ import annotations

import numpy as np

from silentfail.sim.run import run
from silentfail.sim.scenario import MODES, Scenario
from silentfail.sim.trace import failure_rounds, load_trace, save_trace, scenario_of, summary

SC = Scenario.model_validate(
    {
        "population": {
            "num_clients": 40,
            "trace_clients": 5,
            "ood_subset": 3,
            "mode": "finite",
            "samples_per_client": 30,
        },
        "federation": {"rounds": 4, "clients_per_round": 8, "participation": 0.5},
    }
)


def test_trace_dims_attrs_and_netcdf_round_trip(tmp_path):
    tr = run(SC, 5)
    assert dict(tr.sizes) == {
        "round": 4,
        "mode": 6,
        "group": 2,
        "client": 5,
        "param": 17,
        "ece_bin": 15,
        "report_stat": 1,
        "group_stat": 4,
        "probe_score": 2,
        "fedeval_stat": 4,  # the observables secure aggregation allows
    }
    assert list(tr["mode"].values) == list(MODES)
    assert scenario_of(tr) == SC and tr.attrs["seed"] == 5
    path = save_trace(tr, tmp_path / "t.nc")
    back = load_trace(path)
    assert back.identical(tr) or all(np.array_equal(back[v].values, tr[v].values, equal_nan=True) for v in tr.data_vars)
    assert back["failed"].dtype == bool
    assert back.attrs == tr.attrs
    g = tr["group_acc"].values
    np.testing.assert_allclose(tr["acc_parity_gap"].values, g.max(1) - g.min(1), atol=1e-6)
    assert np.isfinite(tr.attrs["fm_spurious_weight"])
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_finite_sample_mode_has_a_train_test_gap():
    tr = run(SC, 0)
    # personal models fit their 30 samples: population risk exceeds training risk on average
    assert float(tr["train_test_gap_mean"].mean()) > 0
    assert tr["client_train_test_gap"].shape == (4, 5)


def test_summary_and_failure_rounds():
    m = np.array([[0.0, 0.2], [0.3, 0.1], [0.1, 0.0]])
    assert list(failure_rounds(m, np.array([0.25, 0.5])).round) == [1, -1]
    cond = np.array([[True, True], [False, True], [True, True]])
    assert list(failure_rounds(m, np.array([0.25, 0.15]), cond).round) == [-1, 0]
    rows = summary(run(SC, 1))
    assert [r["mode"] for r in rows] == list(MODES)
    for r in rows:
        assert r["failed"] == (r["failure_round"] >= 0)
        assert r["failed"] == (r["worst_value"] > r["threshold"]) or r["mode"] == "fairness_collapse"
