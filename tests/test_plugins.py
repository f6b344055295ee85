"""Plugins: a seventh mode end to end (simulate, phase with seven panels, report, the
taxonomy queries), a plugin detector calibrated and used in verdicts, a plugin
aggregator, and bad plugins refused with the problem named. Every test restores the
built-in registries (``plugins.isolated``), so nothing leaks into other tests."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import silentfail as sf
from silentfail import plugins
from silentfail.cli import app
from silentfail.sim.registry import BUILTIN_MODES, MODES
from silentfail.taxonomy import builtin_taxonomy
from silentfail.taxonomy.queries import detectors_for, silent_modes

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "memorization.py"
#: a small finite-sample world the plugin mode fails in (20 samples per client)
SMALL = {
    "population.mode": "finite",
    "population.samples_per_client": 20,
    "population.num_clients": 60,
    "population.trace_clients": 60,
    "federation.rounds": 8,
    "federation.clients_per_round": 60,
    "monitor.alpha": 0.2,
    "monitor.calibration_seeds": 16,
}
SETS = [arg for k, v in SMALL.items() for arg in ("--set", f"{k}={v}")]


@pytest.fixture
def registry():
    """The built-in registries, restored after the test."""
    with plugins.isolated():
        yield


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_memorization_mode_end_to_end(registry, tmp_path):
    out = _cli("simulate", "--plugin", str(PLUGIN), *SETS, "-o", str(tmp_path / "t.nc"))
    assert "memorization" in out
    tr = xr.open_dataset(tmp_path / "t.nc")
    assert list(tr["mode"].values) == [*BUILTIN_MODES, "memorization"]
    assert bool(tr["failed"].sel(mode="memorization"))  # 20 samples per client: the gap grows
    report = tmp_path / "r.md"
    _cli("report", str(tmp_path / "t.nc"), "--plugin", str(PLUGIN), "-o", str(report))
    assert "| memorization |" in report.read_text()
    _cli(
        "phase",
        "--plugin",
        str(PLUGIN),
        "--preset",
        "default",
        "--x",
        "personalization.lam=0.01,1",
        "--y",
        "population.samples_per_client=10,400",
        "--seeds",
        "1",
        *SETS,
        "-o",
        str(tmp_path / "ph"),
    )
    ds = xr.open_dataset(tmp_path / "ph" / "store" / "sweep.nc")
    assert "memorization" in ds["mode"].values
    pf = ds["p_fail"].sel(mode="memorization")
    # memorization falls with the sample size: it fails with 10 samples, not with 400
    assert pf.sel({"population.samples_per_client": 10}).min() == 1
    assert pf.sel({"population.samples_per_client": 400}).max() == 0
    assert (tmp_path / "ph" / "phase.png").exists()


def test_seven_panels():
    from silentfail.figures import bottom_panels, mode_panels

    fig, panels = mode_panels(7)
    assert panels.shape == (3, 3)
    assert sum(ax.get_visible() for ax in panels.flat) == 7
    assert [id(a) for a in bottom_panels(panels, 7)] == [id(panels[2, 0]), id(panels[1, 1]), id(panels[1, 2])]
    _, six = mode_panels(6)
    assert six.shape == (2, 3)


def test_taxonomy_queries_pick_up_the_plugin(registry):
    assert "memorization" not in builtin_taxonomy()
    plugins.load_plugin(PLUGIN)
    tax = builtin_taxonomy()
    assert tax.node("memorization").index == 7
    assert detectors_for(tax, "memorization", []) == ["central_audit"]
    silent = [s.mode for s in silent_modes(tax, ["secure_aggregation", "no_personal_model_access"])]
    assert "memorization" in silent
    out = _cli("taxonomy", "query", "causes", "memorization")  # the root --plugin is not needed: loaded above
    assert "personal_overfitting" in out


def test_isolated_restores_the_registries():
    before = tuple(MODES)
    with plugins.isolated():
        plugins.load_plugin(PLUGIN)
        assert tuple(MODES) == before + ("memorization",)
        assert plugins.load_plugin(PLUGIN) is plugins.load_plugin(PLUGIN)  # once per process
    assert tuple(MODES) == before
    assert "memorization" not in builtin_taxonomy()


def test_memorization_metric_is_the_closed_form(registry):
    """The plugin's round metric equals the pooled train-test gap growth computed from
    the trace's per-client gaps and the population's statistics in NumPy; 0 in
    population mode (no sample)."""
    plugins.load_plugin(PLUGIN)
    import jax

    from silentfail.sim.population import build_population

    sc = sf.preset("default").replace(**SMALL)
    tr = sf.run(sc, seed=3)
    kpop, _ = jax.random.split(jax.random.key(3))
    ctx, pop = build_population(sc, kpop)
    M, Mt, m, mt = (np.asarray(a, np.float64) for a in (pop.M, pop.M_train, pop.m, pop.m_train))
    th0, w = np.asarray(ctx.theta0, np.float64), np.asarray(pop.weight, np.float64)
    gap0 = 0.5 * np.einsum("i,nij,j->n", th0, M - Mt, th0) - (m - mt) @ th0
    want = (w * (tr["client_train_test_gap"].values - gap0)).sum(1) / w.sum()
    np.testing.assert_allclose(tr["mode_metric"].sel(mode="memorization").values, want, rtol=1e-4, atol=1e-6)
    pop_mode = sf.run(sf.preset("default").replace(**{**SMALL, "population.mode": "population"}), seed=3)
    assert np.all(pop_mode["mode_metric"].sel(mode="memorization").values == 0)


def _gap_statistic(obs, pub, sc):
    """The global model's probe-alignment drop below the FM's (one channel)."""
    from silentfail.sim.detectors import ffill

    return ffill(pub.fm_alignment - obs["obs_global"][:, :1])


def test_plugin_detector_is_calibrated_and_judges(registry):
    plugins.register_detector(
        plugins.Detector(
            "probe_gap", ("global_probe_scores",), (plugins.Channel("drop", ("alignment_erosion",)),), _gap_statistic
        )
    )
    sc = sf.preset("default").replace(
        **{
            "population.num_clients": 100,
            "federation.rounds": 12,
            "monitor.alpha": 0.2,
            "monitor.calibration_seeds": 40,
        }
    )
    cal = sf.calibrate(sc)
    k = list(cal.layout.detectors).index("probe_gap")
    assert cal.calibration.calibrated[k]
    achieved, se = cal.calibration.achieved[k], cal.calibration.achieved_se[k]
    assert achieved <= sc.monitor.alpha + 3 * se + 1e-9  # the split-conformal guarantee, measured on held-out runs
    tr = sf.run(sc, seed=0)
    v = sf.verdict(tr, cal)
    assert "probe_gap" in v["detector"].values
    assert bool(v["watches"].sel(mode="alignment_erosion", detector="probe_gap"))
    # the same statistic as server_probe_eval's alignment channel: it catches the erosion that one catches
    if int(v["detection_round"].sel(mode="alignment_erosion", detector="server_probe_eval")) >= 0:
        assert int(v["detection_round"].sel(mode="alignment_erosion", detector="probe_gap")) >= 0


def test_plugin_aggregator(registry):
    def mean_of_signs(delta, mask, weight, federation):
        return 0.01 * jnp.sign(jnp.sum(mask[:, None] * delta, axis=0))

    plugins.register_aggregator(plugins.Aggregator("signsgd", "majority sign, step 0.01", False, mean_of_signs))
    sc = sf.preset("default").replace(
        **{
            "population.num_clients": 50,
            "federation.clients_per_round": 50,
            "federation.rounds": 3,
            "federation.secure_aggregation": False,
            "federation.aggregator": "signsgd",
        }
    )
    th = sf.run(sc, seed=0)["theta_global"].values
    steps = np.abs(np.diff(th, axis=0))
    np.testing.assert_allclose(steps[steps > 0], 0.01, rtol=1e-4)


class _Frozen(plugins.LinearModel):
    """Deploys the global model unchanged (no personalization)."""

    id = "frozen"
    description = "the global model, deployed as it is"

    def personalize(self, sc, ctx, pop, theta_g, t):
        return jnp.broadcast_to(theta_g, (pop.n.shape[0], theta_g.shape[0])), pop.shifted


def test_plugin_client_model_runs_the_engine(registry):
    """A client model that deploys the global model: every client's deployed model is the
    FM, so no update moves the global model, each client's accuracy is the FM's closed
    form on its own distribution, and no within-round misalignment exists; the built-in
    linear model on the same scenario personalizes (its deployed models differ)."""
    from silentfail.sim.metrics import accuracy
    from silentfail.sim.population import build_population

    plugins.register_client_model(_Frozen())
    small = {
        "population.num_clients": 40,
        "population.trace_clients": 40,
        "federation.clients_per_round": 20,
        "federation.rounds": 4,
    }
    sc = sf.preset("label-shift").replace(**small, **{"model.kind": "frozen"})
    tr = sf.run(sc, seed=0)
    th = tr["theta_global"].values
    np.testing.assert_array_equal(th, np.broadcast_to(th[0], th.shape))
    import jax

    ctx, pop = build_population(sc, jax.random.split(jax.random.key(0))[0])
    fm_acc = np.asarray(jax.vmap(accuracy, in_axes=(None, 0, None))(ctx.theta0, pop.shifted, ctx.world))
    for t in range(4):
        np.testing.assert_allclose(tr["client_acc"].isel(round=t).values, fm_acc, atol=1e-6)
    assert float(np.abs(tr["client_misalignment"].values).max()) < 1e-6
    linear = sf.run(sc.replace(**{"model.kind": "linear"}), seed=0)
    assert float(np.abs(linear["client_acc"].isel(round=0).values - fm_acc).max()) > 1e-3
    with pytest.raises(
        sf.ScenarioError, match="model.kind: unknown client model 'cnn'; registered: linear, mlp, lora, frozen"
    ):
        sc.replace(**{"model.kind": "cnn"})
    with pytest.raises(plugins.PluginError, match="client model 'frozen' is already registered"):
        plugins.register_client_model(_Frozen())
    with pytest.raises(plugins.PluginError, match="a client model needs client_metrics, global_metrics"):
        plugins.register_client_model(
            type("Half", (), {"id": "half", "description": "", "exact": True, "personalize": None})()
        )


@pytest.mark.parametrize(
    "source, message",
    [
        ("raise RuntimeError('boom')", "failed: RuntimeError: boom"),
        ("def (", "failed: SyntaxError"),
        (
            "from silentfail import plugins\nplugins.register_mode(plugins.Mode('amplified_bias', 'x', 'x', 0.1, metric=len))",
            "mode 'amplified_bias' is already registered",
        ),
        (
            "from silentfail import plugins\nplugins.register_mode(plugins.Mode('m2', 'x', 'x', -1.0, metric=len))",
            "threshold must be a positive number",
        ),
        (
            "from silentfail import plugins\nplugins.register_taxonomy_extension({'edges': [{'kind': 'causes', 'source': 'nope', 'target': 'fairness_collapse'}]})",
            "taxonomy extension rejected",
        ),
    ],
)
def test_bad_plugin_is_refused_with_the_problem_named(registry, tmp_path, source, message):
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(plugins.PluginError, match=message.replace("(", r"\(")):
        plugins.load_plugin(path)
    assert tuple(MODES) == BUILTIN_MODES


def test_missing_or_non_python_plugin(registry, tmp_path):
    with pytest.raises(plugins.PluginError, match="no such file"):
        plugins.load_plugin(tmp_path / "nope.py")
    data = tmp_path / "scenario.toml"
    data.write_text("[world]\n")
    with pytest.raises(plugins.PluginError, match="a plugin is a Python file"):
        plugins.load_plugin(data)


def test_plugin_thresholds_are_scenario_fields(registry):
    plugins.load_plugin(PLUGIN)
    sc = sf.preset("default").replace(**{"thresholds.by_mode": {"memorization": 0.5}})
    assert sc.thresholds.threshold("memorization") == 0.5
    assert sf.preset("default").thresholds.threshold("memorization") == 0.01
    with pytest.raises(sf.ScenarioError, match="thresholds.by_mode: unknown mode"):
        sf.preset("default").replace(**{"thresholds.by_mode": {"memorisation": 0.5}})
    with pytest.raises(sf.ScenarioError, match="built-in modes"):
        sf.preset("default").replace(**{"thresholds.by_mode": {"fairness_collapse": 0.5}})


def test_verdict_refuses_a_trace_of_other_modes(registry):
    sc = sf.preset("default").replace(
        **{"population.num_clients": 40, "federation.clients_per_round": 40, "federation.rounds": 3}
    )
    tr = sf.run(sc, seed=0)
    plugins.load_plugin(PLUGIN)
    with pytest.raises(ValueError, match="load the plugins it was simulated with"):
        sf.verdict(tr)


def test_the_plugin_example_runs(registry, capsys):
    spec = importlib.util.spec_from_file_location("example_memorization", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argparse.Namespace(samples=20, clients=40, rounds=6, null_runs=76))
    printed = capsys.readouterr().out
    assert "memorization" in printed  # prints the seventh mode's verdict


def test_the_plugin_taxonomy_follows_each_registration():
    """The taxonomy every query sees is that of the extensions registered now: one
    registered again after a change (a new registration, the same dict object) is seen
    as it is now, and the caller changing its dict afterwards changes nothing."""
    ext = {
        "schema_version": "1.0",
        "nodes": [
            {
                "id": "plug_ref_a",
                "kind": "reference",
                "name": "a plugin's reference",
                "definition": "a plugin's reference",
                "bibtex": "@misc{plug_ref_a, title = {T}}",
            }
        ],
        "edges": [{"kind": "cites", "source": "fairness_collapse", "target": "plug_ref_a"}],
    }
    with plugins.isolated():
        plugins.register_taxonomy_extension(ext)
        assert "plug_ref_a" in builtin_taxonomy()
    ext["nodes"][0]["id"] = ext["edges"][0]["target"] = "plug_ref_b"
    ext["nodes"][0]["bibtex"] = "@misc{plug_ref_b, title = {T}}"
    with plugins.isolated():
        plugins.register_taxonomy_extension(ext)
        tax = builtin_taxonomy()
        assert "plug_ref_b" in tax and "plug_ref_a" not in tax
        ext["nodes"][0]["id"] = "plug_ref_c"  # after registration: not seen
        assert "plug_ref_b" in builtin_taxonomy()
