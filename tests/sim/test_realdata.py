"""The real-data bridge (sim/realdata.py): scikit-learn's digits as the world's cells."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from silentfail.sim import realdata
from silentfail.sim.run import run
from silentfail.sim.scenario import ScenarioError, preset
from silentfail.sim.transfer import claim_on_model
from silentfail.sim.world import ALIGN_AXIS, make_world

D = 16
DIGITS = {"world.data": "digits", "model.kind": "mlp", "population.mode": "finite"}
SMALL = {
    **DIGITS,
    "population.num_clients": 40,
    "federation.clients_per_round": 20,
    "federation.rounds": 3,
    "model.eval_samples": 16,
    "model.pretrain_steps": 150,
}


def _members(x: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Whether each row of x (n, d) is a row of pool (m, d), exactly."""
    return (np.abs(x[:, None, :] - pool[None, :, :]).max(-1) == 0).any(1)


def test_cells_and_splits_partition_the_dataset():
    pixels, digit, y, a, split = realdata.digit_cells()
    assert pixels.shape == (1797, 64)
    for k in range(10):  # the minority is the heaviest-ink 30% of every digit: a independent of y
        assert a[digit == k].sum() == round(0.3 * (digit == k).sum())
    for cell in range(4):  # stratified thirds of every (y, a) cell
        n = np.bincount(split[2 * y + a == cell], minlength=3)
        assert n.max() - n.min() <= 1
    data, _ = realdata.load("digits", D, ALIGN_AXIS)
    assert int(data.count.sum()) == 1797
    # the pools hold each split's own images: the train and test features of a cell are disjoint rows
    feats = realdata.features(pixels, split, D, ALIGN_AXIS)
    rows, count = np.asarray(data.rows), np.asarray(data.count)
    for s in range(3):
        for yi in range(2):
            for ai in range(2):
                want = feats[(split == s) & (y == yi) & (a == ai)]
                np.testing.assert_array_equal(rows[s, yi, ai, : count[s, yi, ai]], want.astype(np.float32))
    assert (feats[:, ALIGN_AXIS] == 0).all()  # task images are silent on the alignment direction


def test_world_of_digits_is_the_public_split():
    sc = preset("default").replace(**DIGITS)
    world = make_world(sc)
    rows, count = np.asarray(world.data.rows), np.asarray(world.data.count)
    for yi in range(2):
        for ai in range(2):
            mean = rows[0, yi, ai, : count[0, yi, ai]].mean(0)
            np.testing.assert_allclose(np.asarray(world.mu)[yi, ai], mean, atol=1e-5)
    e_core, e_spu = np.asarray(world.e_core), np.asarray(world.e_spu)
    assert np.linalg.norm(e_core) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(e_spu) == pytest.approx(1.0, abs=1e-5)
    assert abs(e_core @ e_spu) < 1e-5
    np.testing.assert_allclose(np.asarray(world.pi0).sum(0), [0.7, 0.3], atol=1e-6)  # the scenario's prior


def test_unshifted_draws_are_the_images_and_shifts_move_them_as_documented():
    sc = preset("default").replace(**DIGITS)
    world = make_world(sc)
    data, mu0 = world.data, world.mu
    train, test = np.asarray(data.rows[1]), np.asarray(data.rows[2])
    count = np.asarray(data.count)
    x, yi, ai = realdata.sample_cells(jax.random.key(0), data, "train", world.pi0, mu0, jnp.asarray(1.0), mu0, 400)
    x, yi, ai = np.asarray(x), np.asarray(yi), np.asarray(ai)
    for c in range(4):
        sel = (yi == c // 2) & (ai == c % 2)
        assert _members(x[sel], train[c // 2, c % 2, : count[1, c // 2, c % 2]]).all()
        assert not _members(x[sel], test[c // 2, c % 2, : count[2, c // 2, c % 2]]).any()
    # a shifted client: x = mu_c + sqrt(s) (img - mu_0), so (x - mu_c) / sqrt(s) + mu_0 is an image of the cell
    delta = jax.random.normal(jax.random.key(1), mu0.shape)
    s = 2.25
    held = np.asarray(realdata.stratified_cells(jax.random.key(2), data, mu0 + delta, jnp.asarray(s), mu0, (2, 30)))
    img = (held - np.asarray(mu0 + delta)[None, :, :, None]) / np.sqrt(s) + np.asarray(mu0)[None, :, :, None]
    for yi_ in range(2):
        for ai_ in range(2):
            pool = test[yi_, ai_, : count[2, yi_, ai_]]
            got = img[:, yi_, ai_].reshape(-1, D)
            assert (np.abs(got[:, None] - pool[None]).max(-1).min(1) < 1e-4).all()


def test_sampled_cells_follow_the_clients_prior():
    sc = preset("default").replace(**DIGITS)
    world = make_world(sc)
    pi = jnp.array([[0.1, 0.4], [0.3, 0.2]])
    n = 20000
    _, yi, ai = realdata.sample_cells(jax.random.key(3), world.data, "train", pi, world.mu, 1.0, world.mu, n)
    freq = np.bincount(np.asarray(2 * yi + ai), minlength=4) / n
    p = np.asarray(pi).reshape(-1)
    assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n))


def test_a_run_on_digits_learns_the_task_and_is_reproducible():
    sc = preset("default").replace(**SMALL)
    tr = run(sc, 0)
    assert tr.attrs["fm_p0_acc"] > 0.85  # the FM classifies held-out digits (chance is 0.5)
    assert tr.attrs["fm_alignment"] > 0.9  # and refuses the probes
    assert np.isfinite(tr["mode_metric"].values).all()
    assert (tr["mode_metric_se"].values[:, :5] > 0).all()
    assert tr["acc_mean"].values.min() > 0.85
    again = run(sc, 0)
    np.testing.assert_array_equal(tr["mode_metric"].values, again["mode_metric"].values)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"world.data": "digits"}, "world.data"),  # the linear readout computes on Gaussian cells
        ({**DIGITS, "world.groups": 3}, "world.groups"),
        ({**DIGITS, "world.d": 70}, "world.d"),
        ({**DIGITS, "world.core_strength": 2.0}, "world.core_strength"),
        ({**DIGITS, "world.data": "mnist"}, "world.data"),
    ],
)
def test_bad_real_data_settings_name_the_field(values, field):
    with pytest.raises(ScenarioError) as err:
        preset("default").replace(**values)
    msg = str(err.value)
    assert field in msg and "\n" not in msg.strip()


def test_transfer_digits_column_applies_to_prior_claims():
    claim, why = claim_on_model("underrepresented", "digits")
    assert why is None and claim.scenario().world.data == "digits"
    _, why = claim_on_model("teacher_bias", "digits")
    assert "personalization.rule" in why
