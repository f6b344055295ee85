"""The flax MLP client model (sim/mlp.py): its Monte Carlo metrics against the linear
readout's closed forms, its verdicts against the linear model's where it is one, the
standard errors and undecided verdicts it reports, and its configuration errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from silentfail.sim import metrics as mt
from silentfail.sim.ground_truth import client_block, round_panel
from silentfail.sim.models import client_model
from silentfail.sim.population import build_population
from silentfail.sim.run import run
from silentfail.sim.scenario import MODES, ScenarioError, preset
from silentfail.sim.world import alignment_score

BASE = {"population.num_clients": 60, "federation.rounds": 6, "federation.clients_per_round": 20}
#: the MLP that is a linear readout: identity hidden layer, frozen, identity activation
IDENTITY = {
    "model.kind": "mlp",
    "population.mode": "finite",
    "model.width": 16,
    "model.activation": "identity",
    "model.hidden": "frozen",
    "model.hidden_init": "identity",
}


def _as_mlp(model, theta_lin: np.ndarray) -> jnp.ndarray:
    """The identity-MLP parameter vector whose score is the linear readout theta_lin."""
    params = jax.tree.map(np.array, model._template)
    d = theta_lin.shape[0] - 1
    params["params"]["hidden"]["kernel"] = np.eye(d, model.sc.model.width, dtype=np.float32)
    params["params"]["head"]["kernel"] = np.asarray(theta_lin[:d, None], np.float32)
    params["params"]["head"]["bias"] = np.asarray(theta_lin[d:], np.float32)
    return jnp.asarray(np.concatenate([a.ravel() for a in jax.tree.leaves(params)]))


def test_monte_carlo_metrics_of_the_linear_readout_equal_its_closed_forms_within_4_se():
    sc = preset("default").replace(**BASE, **IDENTITY, **{"model.eval_samples": 512, "model.replicates": 8})
    ctx, pop = build_population(sc, jax.random.key(3))
    model = client_model(sc)
    world = ctx.world
    rng = np.random.default_rng(0)
    n = 12
    theta_lin = np.stack([np.r_[rng.normal(0, 0.4, 16), rng.normal(0, 0.2)] for _ in range(n)]).astype(np.float32)
    theta_mlp = jnp.stack([_as_mlp(model, t) for t in theta_lin])
    block = client_block(pop)
    block = jax.tree.map(lambda a: a[:n], block)
    panel = round_panel(sc, ctx, pop, jnp.asarray(0))
    cw = block.pop.shifted
    mc = model.client_metrics(sc, ctx, block, theta_mlp, cw, panel)
    R = sc.model.replicates
    # the closed forms of the same readouts (the identity MLP's FM confidence map is the one used by both)
    cm = mt.client_metrics_batch(jnp.asarray(theta_lin), cw, world)
    cal = mt.calibration_batch(cm.cells.mean, cm.cells.sd, cw.pi, ctx.confidence, bins=sc.thresholds.ece_bins)
    exact = {
        "acc": cm.acc,
        "group_acc": cm.group_acc,
        "tpr": cm.tpr,
        "fpr": cm.fpr,
        "ece_residual": cal.residual.T,
        "alignment": alignment_score(jnp.asarray(theta_lin), world),
        "p0_acc": mt.base_accuracy(jnp.asarray(theta_lin), world),
        "spurious_weight": mt.spurious_weight(jnp.asarray(theta_lin), world),
    }
    for name, value in exact.items():
        est = np.asarray(mc[name])  # (n, R, ...)
        mean, se = est.mean(1), est.std(1, ddof=1) / np.sqrt(R)
        z = np.abs(mean - np.asarray(value)) / np.maximum(se, 1e-4)
        assert (z < 4).mean() >= 0.97, (name, z.max())  # 4 SE, up to the 3% a heavy tail allows
        assert np.all(np.abs(mean - np.asarray(value)) < 8 * np.maximum(se, 2e-3)), name


def test_the_mlp_at_identity_weights_reproduces_the_linear_verdicts():
    # logistic mode: both models are personalized on the same materialized samples, so
    # what differs is the FM's pretraining sample and the Monte Carlo evaluation
    data = {"population.samples_per_client": 256, "population.max_samples": 256, "population.mode": "logistic"}
    lin = run(preset("default").replace(**BASE, **data), 0)
    mlp_sc = preset("default").replace(
        **BASE,
        **data,
        **{k: v for k, v in IDENTITY.items() if k != "population.mode"},
        **{"model.eval_samples": 1024, "model.pretrain_steps": 2000, "model.pretrain_samples": 32768},
    )
    mlp = run(mlp_sc, 0)
    decided = ~mlp["undecided"].values
    assert decided.sum() >= 4
    np.testing.assert_array_equal(mlp["failed"].values[decided], lin["failed"].values[decided])
    diff = np.abs(mlp["mode_metric"].values - lin["mode_metric"].values)
    assert np.all(diff <= 4 * mlp["mode_metric_se"].values + 0.005), diff.max(0)
    assert abs(mlp.attrs["fm_p0_acc"] - lin.attrs["fm_p0_acc"]) < 0.01
    assert abs(mlp.attrs["fm_alignment"] - lin.attrs["fm_alignment"]) < 0.01


def test_an_mlp_run_reports_standard_errors_and_undecided_modes():
    sc = preset("default").replace(
        **BASE, **{"model.kind": "mlp", "population.mode": "finite", "population.samples_per_client": 64}
    )
    tr = run(sc, 1)
    se = tr["mode_metric_se"].values
    assert np.all(np.isfinite(se)) and np.all(se >= 0) and se[:, :5].max() > 0
    assert "acc_mean_se" in tr and float(tr["acc_mean_se"].max()) > 0
    assert tr["undecided"].dtype == bool
    assert tr.sizes["param"] == client_model(sc).dim == 16 * 32 + 32 + 32 + 1
    # the same run again: a pure function of (scenario, seed)
    np.testing.assert_array_equal(run(sc, 1)["mode_metric"].values, tr["mode_metric"].values)


def test_undecided_is_a_verdict_that_flips_within_2_se():
    from silentfail.sim.trace import undecided_modes

    th = preset("default").thresholds
    thr = np.array([th.threshold(m) for m in MODES])
    T = 5
    metric = np.tile(thr, (T, 1)) + 0.5  # far over: decided failed
    metric[:, 0] = thr[0] + 0.01  # within 2 SE of 0.01: undecided
    metric[:, 1] = thr[1] - 0.5  # far under: decided not failed
    se = np.full_like(metric, 0.01)
    rounds = {"mode_metric": metric, "acc_mean": np.ones(T)}
    und = undecided_modes(rounds, se, {"fairness": 0.0, "acc_mean": 0.0}, th)
    assert und[0] and not und[1] and not und[2:].any()


@pytest.mark.parametrize(
    ("updates", "field"),
    [
        ({"model.kind": "cnn"}, "model.kind"),
        ({"model.kind": "mlp", "population.mode": "finite", "model.eval_samples": 0}, "model.eval_samples"),
        ({"model.kind": "mlp", "population.mode": "finite", "model.width": 0}, "model.width"),
        ({"model.kind": "mlp", "population.mode": "finite", "model.replicates": 1}, "model.replicates"),
        (
            {"model.kind": "mlp", "population.mode": "finite", "model.hidden_init": "identity", "model.width": 8},
            "model.width",
        ),
        ({"model.kind": "mlp"}, "population.mode"),
        (
            {"model.kind": "mlp", "population.mode": "finite", "personalization.rule": "subspace"},
            "personalization.rule",
        ),
        ({"model.width": 64}, "model.width"),
        (
            {
                "model.kind": "mlp",
                "population.mode": "finite",
                "personalization.rule": "head_only",
                "personalization.trainable": [0],
            },
            "personalization.trainable",
        ),
        (
            {"model.kind": "mlp", "population.mode": "finite", "federation.public_schedule": "alternate"},
            "federation.public_schedule",
        ),
        ({"model.kind": "mlp", "population.mode": "finite", "shifts.temporal.kind": "linear"}, "shifts.temporal"),
    ],
)
def test_bad_model_settings_get_one_line_errors_naming_the_field(updates, field):
    with pytest.raises(ScenarioError) as err:
        preset("default").replace(**updates)
    msg = str(err.value)
    assert field in msg and "\n" not in msg, msg


# --- the LoRA client model (sim/lora.py) ------------------------------------------------
LORA = {"model.kind": "lora", "population.mode": "finite", "population.samples_per_client": 64, "model.rank": 2}


def _params(model, theta):
    return jax.tree.map(np.asarray, model.unravel(jnp.asarray(theta))["params"])


def test_lora_backbone_is_the_fm_and_never_moves_under_dp_noise_and_attacks():
    sc = preset("default").replace(
        **{
            **BASE,
            **LORA,
            "federation.clients_per_round": 60,
            "federation.dp": "central",
            "federation.noise_multiplier": 1.0,
            "federation.clip": 1.0,
            "federation.byzantine_fraction": 0.2,
            "federation.byzantine_kind": "noise",
        }
    )
    model = client_model(sc)
    tr = run(sc, 2)
    theta = tr["theta_global"].values  # (T, D): round 0 is the FM
    first = _params(model, theta[0])
    np.testing.assert_array_equal(first["adapter_up"], 0.0)  # BA = 0: the FM is the backbone and its head
    assert np.abs(first["adapter_down"]).max() > 0
    for t in range(1, theta.shape[0]):
        p = _params(model, theta[t])
        np.testing.assert_array_equal(p["hidden"]["kernel"], first["hidden"]["kernel"])
        np.testing.assert_array_equal(p["hidden"]["bias"], first["hidden"]["bias"])
    last = _params(model, theta[-1])
    assert np.abs(last["adapter_up"]).max() > 0 and np.abs(last["head"]["kernel"] - first["head"]["kernel"]).max() > 0


def test_lora_rules_move_only_their_parameters_and_the_update_has_the_adapters_rank():
    sc = preset("default").replace(**BASE, **LORA, **{"personalization.rule": "subspace"})
    model = client_model(sc)
    ctx, pop = build_population(sc, jax.random.key(0))
    theta_c, _ = model.personalize(sc, ctx, pop, ctx.theta0, jnp.asarray(0))
    before = _params(model, ctx.theta0)
    for th in np.asarray(theta_c[:5]):
        p = _params(model, th)
        np.testing.assert_array_equal(p["head"]["kernel"], before["head"]["kernel"])  # subspace: the adapter only
        np.testing.assert_array_equal(p["hidden"]["kernel"], before["hidden"]["kernel"])
        change = np.asarray(model.adapter_product(jnp.asarray(th)))  # (d, width)
        s = np.linalg.svd(change, compute_uv=False)
        assert s[0] > 0 and np.all(s[sc.model.rank :] <= 1e-6 * s[0])
    head = preset("default").replace(**BASE, **LORA, **{"personalization.rule": "head_only"})
    model_h = client_model(head)
    theta_h, _ = model_h.personalize(head, ctx, pop, ctx.theta0, jnp.asarray(0))
    p = _params(model_h, theta_h[0])
    np.testing.assert_array_equal(p["adapter_up"], before["adapter_up"])
    np.testing.assert_array_equal(p["adapter_down"], before["adapter_down"])
    assert np.abs(p["head"]["kernel"] - before["head"]["kernel"]).max() > 0


@pytest.mark.parametrize(
    ("updates", "field"),
    [
        ({**LORA, "model.rank": 40}, "model.rank"),  # rank > width (32)
        ({**LORA, "model.rank": 20, "model.width": 32}, "model.rank"),  # rank > d (16)
        ({"model.kind": "mlp", "population.mode": "finite", "model.rank": 3}, "model.rank"),
        ({**LORA, "personalization.rule": "subspace", "personalization.rank": 2}, "personalization.rank"),
        ({**LORA, "personalization.rule": "teacher"}, "personalization.rule"),
        ({**LORA, "population.samples_per_client": 0}, "population.samples_per_client"),
        ({"model.rank": 2}, "model.rank"),
    ],
)
def test_bad_lora_settings_get_one_line_errors_naming_the_field(updates, field):
    with pytest.raises(ScenarioError) as err:
        preset("default").replace(**updates)
    msg = str(err.value)
    assert field in msg and "\n" not in msg, msg


def test_a_sweep_reports_the_traces_undecided_verdicts_and_worst_se():
    from silentfail.sim.sweep import sweep

    sc = preset("default").replace(
        **BASE,
        **{
            "model.kind": "mlp",
            "population.mode": "finite",
            "model.eval_samples": 16,
            "model.pretrain_steps": 50,
            "thresholds.persist": 1,
            "monitor.alpha": 0.2,  # a small calibration (the detectors are not under test)
            "monitor.calibration_seeds": 20,
        },
    )
    worst = run(sc, 0)["mode_metric"].values.max(0)
    # amplified bias' threshold at its worst value: the metric touches it, so its verdict is open within 2 SE
    sc = sc.replace(**{"thresholds.amplified_bias": float(worst[0])})
    traces = [run(sc, s) for s in range(2)]
    assert traces[0]["undecided"].values[0]
    ds = sweep(sc, seeds=2, theory=False, attribute_nulls=False)
    for s, tr in enumerate(traces):
        np.testing.assert_array_equal(ds["undecided"].isel(seed=s).values, tr["undecided"].values)
        metric, se = tr["mode_metric"].values, tr["mode_metric_se"].values
        at_worst = se[metric.argmax(0), np.arange(len(MODES))]
        np.testing.assert_allclose(ds["worst_se"].isel(seed=s).values, at_worst, rtol=1e-5, atol=1e-7)
    assert float(ds["p_undecided"].sel(mode="amplified_bias")) == np.mean([t["undecided"].values[0] for t in traces])
    lin = sweep(
        preset("default").replace(
            **BASE, **{"population.mode": "finite", "monitor.alpha": 0.2, "monitor.calibration_seeds": 20}
        ),
        seeds=2,
        theory=False,
        attribute_nulls=False,
    )
    assert "undecided" not in lin  # exact metrics: nothing undecided to report
