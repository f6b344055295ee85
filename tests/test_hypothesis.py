"""Hypothesis checks: the grammar, bad hypotheses named, and the posterior probability
that a hypothesis holds equals the exact product of the per-cell Beta posteriors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from silentfail.hypothesis import Condition, HypothesisError, check, parse_hypothesis
from silentfail.sim.scenario import preset


def small_world():
    """A small phase world whose checks compile and run in seconds."""
    return preset("phase").replace(
        **{
            "population.num_clients": 60,
            "federation.clients_per_round": 60,
            "federation.rounds": 10,
            "monitor.alpha": 0.2,
            "monitor.calibration_seeds": 24,
        }
    )


def test_the_issue_example_is_read():
    h = parse_hypothesis(
        "for all lambda <= 0.1 and shift >= 0.5, P(silent fairness collapse) >= 0.9 "
        "under secure aggregation + central DP"
    )
    assert h.conditions == (Condition("personalization.lam", hi=0.1), Condition("shifts.strength", lo=0.5))
    assert (h.quantity, h.mode, h.op, h.level) == ("silent", "fairness_collapse", ">=", 0.9)
    assert h.constraints == ("secure_aggregation", "central_dp")


def test_ranges_strict_bounds_and_defaults():
    h = parse_hypothesis("for all 0.1 < λ ≤ 1 and z >= 2, P(miscalibration) < 0.2")
    lam, z = h.conditions
    assert (lam.lo, lam.hi, lam.lo_strict, lam.hi_strict) == (0.1, 1.0, True, False)
    assert 0.1 not in lam.values(3) and lam.values(3)[-1] == 1.0 and len(lam.values(3)) == 3
    assert z.values(3) == [2.0, 3.0, 4.0]  # the default range closes the open side
    assert Condition("personalization.lam", hi=0.1).values(3) == [0.01, 0.0316228, 0.1]  # log-spaced
    assert h.mode == "confidence_miscalibration" and h.quantity == "fail"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("for all foo <= 1, P(bias) > 0.5", "unknown axis 'foo'"),
        ("for all lambda <= 1, P(nonsense) > 0.5", "unknown mode in P(nonsense)"),
        ("for all lambda <= 1, P(fairness) >= 0.5 under magic", "unknown constraint 'magic'"),
        ("for all lambda <= 1, P(fairness) >= 1.5", "a probability level must be in [0, 1]"),
        ("for all lambda <= 1 and lambda >= 0.1, P(fairness) >= 0.5", "an axis is bounded twice"),
        ("lambda is small", "cannot read"),
        ("for all 1 <= lambda >= 2, P(fairness) >= 0.5", "both comparisons must point the same way"),
    ],
)
def test_bad_hypotheses_name_the_part(text, needle):
    with pytest.raises(HypothesisError, match=None) as exc:
        parse_hypothesis(text)
    assert needle in str(exc.value)


def test_probability_is_the_product_of_the_cell_posteriors(monkeypatch):
    sc = small_world()
    res = check("for all lambda <= 0.1 and shift >= 0.5, P(confidence miscalibration) >= 0.6", sc, seeds=6, points=2)
    k, n = res.cells["k"].values, res.cells["n"].values
    per_cell = stats.beta.sf(0.6, k + 0.5, n - k + 0.5)
    np.testing.assert_allclose(res.cells["p_holds"].values, per_cell, rtol=1e-10)  # exact, not Monte Carlo
    assert res.probability == pytest.approx(np.prod(per_cell), rel=1e-10)
    assert {tuple(sorted(c)) for c in res.failing} == {tuple(sorted(c)) for c in res.failing if c["P(holds)"] < 0.5}
    assert len(res.failing) == int((per_cell < 0.5).sum())
    import silentfail.sim.sweep as sw

    monkeypatch.setattr(sw, "sweep", lambda *a, **k: pytest.fail("swept before refusing the model"))
    with pytest.raises(HypothesisError, match="needs a region over exactly two axes"):
        check("for all lambda <= 0.1, P(confidence miscalibration) >= 0.6", sc, seeds=2, points=2, model="gp")


def test_cell_posterior_is_exact_so_identical_cells_agree():
    """P(holds) of the cell model is the Beta posterior's tail in closed form: identical
    cells (k = 0 of 8 three times) get identical numbers, and both directions add to 1."""
    from silentfail.hypothesis import beta_holds

    k, n = np.array([0, 0, 0, 5]), np.array([8, 8, 8, 8])
    prob, cell = beta_holds(k, n, ">=", 0.5)
    assert cell[0] == cell[1] == cell[2]
    np.testing.assert_allclose(cell, stats.beta.sf(0.5, k + 0.5, n - k + 0.5), rtol=1e-12)
    assert prob == pytest.approx(np.prod(cell), rel=1e-12)
    _, below = beta_holds(k, n, "<=", 0.5)
    np.testing.assert_allclose(cell + below, 1.0, rtol=1e-12)


@pytest.mark.parametrize(
    "text, form, quantity, extra",
    [
        ("P(silent erosion | z = 2) > P(silent erosion | z = 0.5)", "compare", "silent", None),
        ("P(silent fairness collapse) increases with z", "trend", "silent", ("federation.noise_multiplier", 1)),
        ("for all shift >= 0.5, P(detected miscalibration) decreases with lambda", "trend", "detected", None),
        ("there exists lambda <= 0.1, P(silent erosion | fail) >= 50%", "exists", "silent|fail", 0.5),
        ("for all rule = full and shift >= 0.5, P(detected miscalibration | fail) >= 0.5", "all", "detected|fail", 0.5),
        ("for all epsilon <= 10, P(silent erosion) >= 90%", "all", "silent", 0.9),
    ],
)
def test_the_extended_grammar_is_read(text, form, quantity, extra):
    h = parse_hypothesis(text)
    assert (h.form, h.quantity) == (form, quantity)
    if form == "trend" and extra is not None:
        assert h.trend == extra
    if form in ("all", "exists"):
        assert h.level == pytest.approx(extra)
    if form == "compare":
        assert h.given == (Condition("federation.noise_multiplier", 2.0, 2.0),)
        assert h.other[2] == (Condition("federation.noise_multiplier", 0.5, 0.5),)
    if "rule = full" in text:
        assert h.conditions[0] == Condition("personalization.rule", choice="full")
        assert h.conditions[0].values(5) == ["full"]
    if "epsilon" in text:
        assert h.conditions[0].field == "epsilon"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("P(silent erosion) is larger than 0.5", "unsupported phrase 'is larger than 0.5'"),
        ("P(silent erosion) increases quickly", "unsupported phrase 'increases quickly'"),
        ("P(erosion | fail) >= 0.5", "P(fail | fail) is 1"),
        ("P(silent erosion | z >= 2) >= 0.5", "a condition after '|' is a point"),
        ("P(silent erosion) > P(silent erosion)", "compares P(silent erosion) with itself"),
        ("for all lambda <= 1, P(fairness) >= 150%", "a probability level must be in [0, 1], got 150%"),
    ],
)
def test_unsupported_phrases_are_named_in_one_line(text, needle):
    with pytest.raises(HypothesisError) as exc:
        parse_hypothesis(text)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_comparison_posterior_is_the_exact_integral():
    from silentfail.hypothesis import prob_greater

    rng = np.random.default_rng(1)
    for k1, n1, k2, n2 in [(7, 8, 2, 8), (3, 8, 3, 8), (0, 4, 4, 4)]:
        mc = np.mean(rng.beta(k1 + 0.5, n1 - k1 + 0.5, 400_000) > rng.beta(k2 + 0.5, n2 - k2 + 0.5, 400_000))
        assert prob_greater(k1, n1, k2, n2) == pytest.approx(mc, abs=4 * np.sqrt(mc * (1 - mc) / 400_000) + 1e-4)
    assert prob_greater(3, 8, 3, 8) == pytest.approx(0.5, abs=1e-8)  # symmetric sides


def test_trend_probability_sees_a_trend_and_not_a_flat_line():
    from silentfail.hypothesis import trend_probability

    up_k, n = np.array([0, 4, 8, 12, 16]), np.full(5, 16)
    p_up, se = trend_probability(up_k, n, +1)
    assert p_up > 0.9 and se < 0.01
    assert trend_probability(up_k, n, -1)[0] < 0.01
    p_flat, _ = trend_probability(np.full(5, 8), n, +1)
    assert p_flat < 0.6


def test_epsilon_becomes_the_noise_multiplier_that_spends_it():
    from silentfail.hypothesis import noise_for_epsilon
    from silentfail.sim.privacy import dp_epsilon, max_participation

    sc = preset("phase")
    z = noise_for_epsilon(sc, 10.0)
    assert dp_epsilon(sc.replace(**{"federation.noise_multiplier": z}), max_participation(sc)) == pytest.approx(
        10.0, rel=1e-4
    )
    with pytest.raises(HypothesisError, match="epsilon needs DP noise"):
        noise_for_epsilon(sc.replace(**{"federation.dp": "none"}), 10.0)


def test_extended_checks_print_k_of_n_per_cell():
    """A comparison, a trend and a there-exists on a small world: per cell k/n and the
    probability, consistent with the counts of the sweep."""
    sc = small_world()
    from silentfail.hypothesis import prob_greater

    cmp = check("P(silent erosion | shift = 1) > P(silent erosion | shift = 0)", sc, seeds=4, points=2)
    (row,) = cmp.cell_table()[1]
    k1, n1 = map(int, row[0].split("/"))
    k2, n2 = map(int, row[1].split("/"))
    assert cmp.probability == pytest.approx(prob_greater(k1, n1, k2, n2), rel=1e-9)
    m = cmp.sweep.sel(mode="alignment_erosion")
    assert k1 == int(m["silent"].sel({"shifts.strength": 1.0}).sum()) and n1 == 4
    trend = check("for all lambda <= 0.1, P(fail erosion) increases with shift", sc, seeds=4, points=2)
    header, rows = trend.cell_table()
    assert header[1].startswith("k/n along shifts.strength") and len(rows) == 2
    assert 0.0 <= trend.probability <= 1.0 and "Monte Carlo SE" in trend.summary()
    ex = check("there exists lambda <= 0.1, P(silent erosion | fail) >= 0.5", sc, seeds=4, points=2)
    cells = ex.cells["p_holds"].values
    assert ex.probability == pytest.approx(1 - np.prod(1 - cells), rel=1e-12)
