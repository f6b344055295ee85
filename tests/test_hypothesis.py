"""Hypothesis checks: the grammar, bad hypotheses named, and the posterior probability
that a hypothesis holds equals the exact product of the per-cell Beta posteriors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from silentfail.hypothesis import Condition, HypothesisError, check, parse_hypothesis
from silentfail.sim.scenario import preset


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
    sc = preset("phase").replace(
        **{
            "population.num_clients": 60,
            "federation.clients_per_round": 60,
            "federation.rounds": 10,
            "monitor.alpha": 0.2,
            "monitor.calibration_seeds": 24,
        }
    )
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
