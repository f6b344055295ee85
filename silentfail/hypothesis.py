"""Hypothesis checks: "for all lambda <= 0.1 and shift >= 0.5, P(silent fairness
collapse) >= 0.9 under secure aggregation + central DP" -> the posterior probability
that the statement holds over its region, and the cells where it fails.

Grammar (case-insensitive)::

    [for all | there exists] COND [and COND ...], PROB OP LEVEL [under CONSTRAINTS]
    [for all COND [and COND ...],] PROB OP PROB                  [under CONSTRAINTS]
    [for all COND [and COND ...],] PROB increases|decreases with AXIS [under CONSTRAINTS]

    PROB  := P([silent | detected] MODE [| GIVEN [, GIVEN ...]])
    GIVEN := fail | AXIS = VALUE
    COND  := AXIS OP NUMBER | NUMBER OP AXIS OP NUMBER | AXIS = VALUE
    OP    := <= | < | >= | >          LEVEL := NUMBER | NUMBER%
    CONSTRAINTS := CONSTRAINT [+ CONSTRAINT ...]

AXIS is a scenario field path (``personalization.lam``) or an alias (lambda, shift,
z / noise, q / participation, eta, beta, K, rounds, rule, epsilon); VALUE a number or
a name (``rule = full``: a categorical condition). MODE is a mode id or name; P(MODE)
is P(fail), P(silent MODE) P(silent failure), P(detected MODE) P(failure detected);
``| fail`` conditions on the failure (P(silent MODE | fail), P(detected MODE | fail)),
``| z = 2`` on a value of an axis. ``epsilon`` is the privacy budget: its values are
turned into noise multipliers by inverting the scenario's accountant
(``sim/privacy.py``). CONSTRAINTs are taxonomy constraint ids, names or aliases; access
constraints are put in force (the others lifted), physical ones must be the scenario's
own (else an error names the field to set).

* ``for all``: the probability that PROB OP LEVEL at every cell of the region (the
  product of the cells' posteriors, below); ``there exists``: that it holds at some cell,
  1 - prod_cells (1 - P(holds at the cell)).
* ``PROB OP PROB``: at every cell of the region, P(p_1 > p_2) under the two cells'
  independent Beta posteriors (exact, by quadrature: integral of f_1 F_2), multiplied
  over the region.
* ``increases with AXIS``: along the axis' grid (``points`` values), P(p is
  non-decreasing within :data:`TREND_TOLERANCE` at every step and p_last > p_first)
  under the cells' Beta posteriors (Monte Carlo over :data:`TREND_DRAWS` draws, its
  standard error reported), multiplied over the other axes' cells; ``decreases`` mirrors it.

The region is discretized: each constrained axis gets ``points`` values inside its
bounds (within the axis' default range where a side is open; log-spaced on lambda and
eta), and the scenario is swept there with ``seeds`` seeds per cell
(:func:`silentfail.sim.sweep.sweep`). The posterior of P per cell is, by default, the
exact conjugate Beta(k + 1/2, n - k + 1/2) (Jeffreys prior, cells independent: the
"for all" probability is then a product and conservative), evaluated in closed form by
the regularized incomplete beta function (:func:`beta_holds`), not by Monte Carlo; with two axes, ``model="probit"``
or ``"gp"`` uses the smooth boundary models of :mod:`silentfail.sim.estimate`, which
borrow strength across cells. P(holds) is the posterior probability that P OP LEVEL at
every cell of the region at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from .sim.estimate import fit_boundary, region_probability, sweep_counts
from .sim.scenario import MODES, Scenario, ScenarioError, preset

#: axis aliases -> field paths
ALIASES = {
    "lambda": "personalization.lam",
    "λ": "personalization.lam",
    "lam": "personalization.lam",
    "shift": "shifts.strength",
    "strength": "shifts.strength",
    "shift strength": "shifts.strength",
    "f": "shifts.strength",
    "z": "federation.noise_multiplier",
    "noise": "federation.noise_multiplier",
    "noise multiplier": "federation.noise_multiplier",
    "q": "federation.participation",
    "participation": "federation.participation",
    "eta": "personalization.eta",
    "η": "personalization.eta",
    "beta": "personalization.beta",
    "β": "personalization.beta",
    "k": "personalization.K",
    "rounds": "federation.rounds",
    "rule": "personalization.rule",
    "aggregator": "federation.aggregator",
    "dp": "federation.dp",
    "epsilon": "epsilon",
    "ε": "epsilon",
    "eps": "epsilon",
    "privacy budget": "epsilon",
}
#: The pseudo-axis of the privacy budget (mapped to ``federation.noise_multiplier``).
EPSILON = "epsilon"
#: Steps of a trend may fall by this much and still count as non-decreasing.
TREND_TOLERANCE = 0.05
#: Posterior draws of a trend's probability.
TREND_DRAWS = 20_000
#: default ranges (lo, hi, log) of the axes a hypothesis may leave open on one side
DOMAINS = {
    "personalization.lam": (0.01, 10.0, True),
    "shifts.strength": (0.0, 1.0, False),
    "federation.noise_multiplier": (0.25, 4.0, False),
    "federation.participation": (0.05, 1.0, False),
    "personalization.eta": (0.001, 0.5, True),
    "personalization.beta": (0.0, 1.0, False),
    EPSILON: (1.0, 300.0, True),
}
CELL_MODELS = ("cell", "probit", "gp")
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_OP = r"<=|>=|<|>|≤|≥"


class HypothesisError(ValueError):
    """A hypothesis that cannot be read (the message says which part and why)."""


@dataclass(frozen=True)
class Condition:
    """lo (<= or <) field (<= or <) hi; None = open; ``choice``: field = a named value."""

    field: str
    lo: float | None = None
    hi: float | None = None
    lo_strict: bool = False
    hi_strict: bool = False
    choice: str | None = None

    def values(self, points: int) -> list[float]:
        """``points`` grid values inside the bounds (the default range closes an open side).

        Args:
            points: how many values.

        Returns:
            The grid values.
        """
        if self.choice is not None:
            return [self.choice]
        dlo, dhi, log = DOMAINS.get(self.field, (None, None, False))
        lo = self.lo if self.lo is not None else dlo
        hi = self.hi if self.hi is not None else dhi
        if lo is None or hi is None:
            raise HypothesisError(
                f"give both bounds of {self.field} (it has no default range), e.g. '0.1 <= {self.field} <= 1'"
            )
        if dlo is not None:
            lo, hi = max(lo, dlo) if self.lo is None else lo, min(hi, dhi) if self.hi is None else hi
        if hi < lo or (hi == lo and (self.lo_strict or self.hi_strict)):
            raise HypothesisError(f"the region of {self.field} is empty: [{lo}, {hi}]")
        if hi == lo:
            return [float(lo)]
        n = points + int(self.lo_strict) + int(self.hi_strict)
        log = log and lo > 0
        v = np.geomspace(lo, hi, n) if log else np.linspace(lo, hi, n)
        v = v[int(self.lo_strict) : len(v) - int(self.hi_strict)]
        return [float(f"{x:.6g}") for x in v]


@dataclass(frozen=True)
class Hypothesis:
    """A parsed hypothesis: the conditions that define its region, the quantity (P(fail) or P(silent)) of a mode, the
    comparison and level, and the constraints it is stated under."""

    text: str
    conditions: tuple[Condition, ...]
    quantity: str  # "fail" | "silent" | "detected" | "silent|fail" | "detected|fail"
    mode: str
    op: str
    level: float | None
    constraints: tuple[str, ...]
    form: str = "all"  # "all" | "exists" | "compare" | "trend"
    given: tuple[Condition, ...] = ()  # the point conditions of PROB
    other: tuple[str, str, tuple[Condition, ...]] | None = None  # compare: (quantity, mode, given) of the right side
    trend: tuple[str, int] | None = None  # (axis, +1 increases / -1 decreases)


def _norm(s: str) -> str:
    return re.sub(r"[^0-9a-zλβη]+", "_", s.strip().lower()).strip("_")


def _op(s: str) -> str:
    return {"≤": "<=", "≥": ">="}.get(s, s)


def _field(name: str) -> str:
    n = name.strip()
    if n.lower() in ALIASES:
        return ALIASES[n.lower()]
    if "." in n:
        return n
    raise HypothesisError(
        f"unknown axis {n!r}: use a field path (e.g. personalization.lam) or one of {', '.join(sorted(ALIASES))}"
    )


def _value(v: str) -> float | str:
    try:
        return float(v)
    except ValueError:
        return v


def _condition(text: str) -> Condition:
    t = text.strip()
    m = re.fullmatch(r"([^<>=≤≥]+?)\s*==?\s*([^\s=<>]+)", t)
    if m:
        name, v = m.groups()
        value = _value(v)
        if isinstance(value, str):
            return Condition(_field(name), choice=value)
        return Condition(_field(name), value, value)
    m = re.fullmatch(rf"({_NUM})\s*({_OP})\s*(.+?)\s*({_OP})\s*({_NUM})", t)
    if m:
        a, o1, name, o2, b = m.groups()
        o1, o2 = _op(o1), _op(o2)
        if o1[0] != o2[0]:
            raise HypothesisError(f"cannot read the range {t!r}: both comparisons must point the same way")
        if o1[0] == ">":
            a, b, o1, o2 = b, a, o2.replace(">", "<"), o1.replace(">", "<")
        return Condition(_field(name), float(a), float(b), o1 == "<", o2 == "<")
    m = re.fullmatch(rf"(.+?)\s*({_OP})\s*({_NUM})", t)
    if not m:
        raise HypothesisError(
            f"cannot read the condition {t!r}: expected AXIS OP NUMBER, NUMBER OP AXIS OP NUMBER or AXIS = VALUE"
        )
    name, op, v = m.groups()
    op = _op(op)
    if op[0] == "<":
        return Condition(_field(name), hi=float(v), hi_strict=op == "<")
    return Condition(_field(name), lo=float(v), lo_strict=op == ">")


def _mode(text: str) -> tuple[str, str]:
    words = _norm(text)
    quantity = "fail"
    for prefix, q in (
        ("silent_", "silent"),
        ("silently_", "silent"),
        ("detected_", "detected"),
        ("failure_of_", "fail"),
        ("fail_", "fail"),
    ):
        if words.startswith(prefix):
            quantity, words = q, words[len(prefix) :]
            break
    if words in MODES:
        return quantity, words
    hits = [m for m in MODES if words and words in m]
    if len(hits) == 1:
        return quantity, hits[0]
    try:
        from .taxonomy import builtin_taxonomy

        node = builtin_taxonomy().find(text.split(" ", 1)[-1] if quantity != "fail" else text)
        if node.id in MODES:
            return quantity, node.id
    except Exception:  # noqa: BLE001 - any lookup failure is the message below
        pass
    raise HypothesisError(
        f"unknown mode in P({text}); modes: {', '.join(MODES)} (prefix 'silent' for P(silent failure), "
        "'detected' for P(failure detected))"
    )


def _constraint(name: str) -> str:
    from .taxonomy import builtin_taxonomy
    from .taxonomy.schema import NodeKind

    tax = builtin_taxonomy()
    ids = tax.ids(NodeKind.CONSTRAINT)
    n = _norm(name)
    if n in ids:
        return n
    try:
        node = tax.find(name)
        if node.id in ids:
            return node.id
    except Exception:  # noqa: BLE001
        pass
    raise HypothesisError(f"unknown constraint {name.strip()!r}; constraints: {', '.join(ids)}")


def _probability(inner: str) -> tuple[str, str, tuple[Condition, ...]]:
    """P(...)'s inside: (quantity, mode, point conditions)."""
    head, _, tail = inner.partition("|")
    quantity, mode = _mode(head)
    given: list[Condition] = []
    on_failure = False
    for part in (p for p in re.split(r"\s*,\s*|\s+and\s+", tail.strip(), flags=re.I) if p.strip()):
        if _norm(part) in ("fail", "failure", "failed", "it_fails"):
            on_failure = True
            continue
        c = _condition(part)
        if c.choice is None and c.lo != c.hi:
            raise HypothesisError(f"P({inner}): a condition after '|' is a point, AXIS = VALUE, got {part.strip()!r}")
        given.append(c)
    if on_failure:
        if quantity == "fail":
            raise HypothesisError(
                f"P({inner}): P(fail | fail) is 1; ask for P(silent MODE | fail) or P(detected MODE | fail)"
            )
        quantity = f"{quantity}|fail"
    return quantity, mode, tuple(given)


def _level(num: str, percent: str) -> float:
    level = float(num) / (100.0 if percent else 1.0)
    if not 0.0 <= level <= 1.0:
        raise HypothesisError(f"a probability level must be in [0, 1], got {num}{percent}")
    return level


def _conditions(conds: str | None) -> tuple[Condition, ...]:
    conditions = tuple(_condition(c) for c in re.split(r"\s+and\s+", conds, flags=re.I)) if conds else ()
    fields = [c.field for c in conditions]
    if len(set(fields)) != len(fields):
        raise HypothesisError(f"an axis is bounded twice: {fields}; write it as one range 'a <= AXIS <= b'")
    return conditions


_PROB = r"P\s*\(([^)]*)\)"
_FORALL = r"(?:for\s+(?:all|every|each)\s+)"
_EXISTS = r"(?:there\s+(?:exists?|is)\s+(?:a\s+|an\s+)?|exists?\s+|for\s+some\s+)"
_EXPECTED = (
    "expected '[for all | there exists COND [and COND]], P([silent | detected] MODE [| fail]) OP LEVEL', "
    "'P(...) OP P(...)' or 'P(...) increases|decreases with AXIS' [under CONSTRAINTS]"
)


def parse_hypothesis(text: str) -> Hypothesis:
    """Read a hypothesis (module docstring); an unreadable part is an error naming it.

    Args:
        text: the hypothesis.

    Returns:
        The parsed Hypothesis (region, quantity, mode, comparison, level, constraints).

    Raises:
        HypothesisError: naming the part it cannot read.
    """
    t = " ".join(text.split())
    constraints: tuple[str, ...] = ()
    m = re.search(r"\s+under\s+(.+)$", t, flags=re.I)
    if m:
        constraints = tuple(_constraint(c) for c in re.split(r"\s*\+\s*|\s*,\s*|\s+and\s+", m.group(1)) if c.strip())
        t = t[: m.start()]
    m = re.fullmatch(
        rf"(?:{_FORALL}(.*?)\s*,\s*)?{_PROB}\s+(increases|decreases|grows|falls)\s+with\s+(.+)", t, flags=re.I
    )
    if m:
        conds, prob, verb, axis = m.groups()
        quantity, mode, given = _probability(prob)
        sign = 1 if verb.lower() in ("increases", "grows") else -1
        return Hypothesis(
            text, _conditions(conds), quantity, mode, "", None, constraints, "trend", given, trend=(_field(axis), sign)
        )
    m = re.fullmatch(rf"(?:{_FORALL}(.*?)\s*,\s*)?{_PROB}\s*({_OP})\s*{_PROB}", t, flags=re.I)
    if m:
        conds, left, op, right = m.groups()
        quantity, mode, given = _probability(left)
        other = _probability(right)
        if not given and not other[2] and (quantity, mode) == other[:2]:
            raise HypothesisError(f"{t!r} compares P({left}) with itself: give the sides conditions, e.g. '| z = 2'")
        return Hypothesis(text, _conditions(conds), quantity, mode, _op(op), None, constraints, "compare", given, other)
    m = re.fullmatch(rf"(?:({_FORALL}|{_EXISTS})?(.*?)\s*,\s*)?{_PROB}\s*({_OP})\s*({_NUM})\s*(%?)", t, flags=re.I)
    if not m:
        found = re.search(_PROB, t, flags=re.I)
        if found and t[found.end() :].strip():
            raise HypothesisError(f"cannot read {text!r}: unsupported phrase {t[found.end() :].strip()!r}; {_EXPECTED}")
        raise HypothesisError(f"cannot read {text!r}: {_EXPECTED}")
    quant, conds, prob, op, level, percent = m.groups()
    quantity, mode, given = _probability(prob)
    form = "exists" if quant and not re.match(_FORALL, quant, flags=re.I) else "all"
    return Hypothesis(
        text, _conditions(conds), quantity, mode, _op(op), _level(level, percent), constraints, form, given
    )


@dataclass
class CheckResult:
    """``probability``: posterior probability that the hypothesis holds at every cell of
    the region; ``cells``: per cell k, n, the empirical rate and the posterior
    probability that it holds there; ``failing``: the cells where that is below 1/2."""

    hypothesis: Hypothesis
    probability: float
    cells: xr.Dataset
    failing: list[dict[str, float]]
    model: str
    sweep: xr.Dataset

    def summary(self) -> str:
        """A one-paragraph answer: P(holds), the region's cells and seeds, and the failing cells.

        Returns:
            The paragraph.
        """
        h = self.hypothesis
        n_cells = int(self.cells["p_holds"].size)
        seeds = int(self.sweep.attrs.get("seeds", 0))
        if h.form == "compare":
            q2, m2, g2 = h.other
            what = f"{_prob_text(h.quantity, h.mode, h.given)} {h.op} {_prob_text(q2, m2, g2)} at all {n_cells} cell(s)"
        elif h.form == "trend":
            verb = "increases" if h.trend[1] > 0 else "decreases"
            what = (
                f"{_prob_text(h.quantity, h.mode, h.given)} {verb} with {h.trend[0]} at all {n_cells} cell(s) "
                f"(Monte Carlo SE {self.cells.attrs['mc_se']:.3f})"
            )
        else:
            scope = "at some" if h.form == "exists" else "at all"
            what = f"{_prob_text(h.quantity, h.mode, h.given)} {h.op} {h.level:g} {scope} {n_cells} cell(s)"
        s = f"P(holds) = {self.probability:.3f}: {what} x {seeds} seeds ({self.model} model)"
        if self.failing and h.form != "exists":
            where = "; ".join(", ".join(f"{k}={_fmt_value(v)}" for k, v in c.items()) for c in self.failing[:8])
            s += f"; fails (P < 1/2) at {len(self.failing)} cell(s): {where}" + (
                " ..." if len(self.failing) > 8 else ""
            )
        return s

    def cell_table(self) -> tuple[list[str], list[list[str]]]:
        """Per cell: its coordinates, k/n of the quantity (of both sides for a comparison;
        per point along the axis for a trend) and the probability it holds there.

        Returns:
            (header, rows).
        """
        c = self.cells
        region = [d for d in c["p_holds"].dims]
        trend = [d for d in c["k"].dims if d not in region]
        header = list(region) + (["epsilon"] if "epsilon" in c.coords and c["epsilon"].dims[0] in region else [])
        h = self.hypothesis
        if h.form == "compare":
            header += ["k/n (left)", "k/n (right)"]
        elif trend:
            header += [f"k/n along {trend[0]} = " + ", ".join(f"{v:g}" for v in c[trend[0]].values)]
        else:
            header += ["k/n"]
        header += ["P(holds)"]
        rows = []
        for idx in np.ndindex(c["p_holds"].shape):
            at = dict(zip(region, idx))
            row = [_fmt_value(c[a].values[i]) for a, i in at.items()]
            if len(header) > len(region) + 2 + (h.form == "compare") and "epsilon" in c.coords:
                row.append(f"{float(c['epsilon'].values[at[c['epsilon'].dims[0]]]):.3g}")
            k, n = c["k"].isel(at).values, c["n"].isel(at).values
            if h.form == "compare":
                row += [f"{int(k)}/{int(n)}", f"{int(c['k_other'].isel(at))}/{int(c['n_other'].isel(at))}"]
            elif trend:
                row += [", ".join(f"{int(a)}/{int(b)}" for a, b in zip(np.ravel(k), np.ravel(n)))]
            else:
                row += [f"{int(k)}/{int(n)}"]
            row.append(f"{float(c['p_holds'].isel(at)):.3f}")
            rows.append(row)
        return header, rows


def _number(v: Any) -> Any:
    return float(v) if isinstance(v, (int, float, np.number)) else str(v)


def _fmt_value(v: Any) -> str:
    return f"{float(v):g}" if isinstance(v, (int, float, np.number)) else str(v)


def _prob_text(quantity: str, mode: str, given: tuple[Condition, ...]) -> str:
    q, _, cond = quantity.partition("|")
    parts = (["fail"] if cond else []) + [
        f"{c.field} = {c.choice if c.choice is not None else f'{c.lo:g}'}" for c in given
    ]
    return f"P({q} {mode}{' | ' + ', '.join(parts) if parts else ''})"


def beta_holds(k: np.ndarray, n: np.ndarray, op: str, level: float) -> tuple[float, np.ndarray]:
    """Exact P(holds) of the cell model: per cell the Jeffreys posterior
    p ~ Beta(k + 1/2, n - k + 1/2) gives P(p >= L) = 1 - I_L(a, b) and P(p <= L) = I_L(a, b)
    (I the regularized incomplete beta function; the posterior is continuous, so strict
    and non-strict comparisons agree), and cells are independent, so the probability that
    it holds at every cell is the product. Identical cells get identical numbers.

    Args:
        k: per cell, the runs with the outcome.
        n: per cell, the runs.
        op: ``>=`` or ``<=``.
        level: L.

    Returns:
        (P(it holds at every cell) = prod of the cells', per cell P(it holds)).
    """
    from scipy import special

    if op not in (">=", ">", "<=", "<"):
        raise HypothesisError(f"unknown comparison {op!r}; use one of >=, >, <=, <")
    below = special.betainc(k + 0.5, n - k + 0.5, level)
    cell = np.asarray(1.0 - below if op in (">=", ">") else below, float)
    return float(np.prod(cell)), cell


def noise_for_epsilon(sc: Scenario, epsilon: float, lo: float = 0.05, hi: float = 500.0) -> float:
    """The noise multiplier z at which a run of ``sc`` spends exactly ``epsilon`` at
    ``dp_delta`` (bisection in log z on the accountant of ``sim/privacy.py``, which
    decreases in z).

    Args:
        sc: the scenario (central or local DP).
        epsilon: the privacy budget.
        lo: the smallest z searched.
        hi: the largest.

    Returns:
        z, to a relative 1e-6.

    Raises:
        HypothesisError: no DP in the scenario, or epsilon outside what [lo, hi] reaches.
    """
    from .sim.privacy import dp_epsilon, max_participation

    if sc.federation.dp == "none":
        raise HypothesisError("epsilon needs DP noise: the scenario has federation.dp = 'none'")
    q = max_participation(sc)
    eps = lambda z: dp_epsilon(sc.replace(**{"federation.noise_multiplier": z}), q)  # noqa: E731
    if not eps(hi) <= epsilon <= eps(lo):
        raise HypothesisError(
            f"epsilon = {epsilon:g} is outside [{eps(hi):.3g}, {eps(lo):.3g}], what noise multipliers in [{lo}, {hi}] give"
        )
    a, b = np.log(lo), np.log(hi)
    while b - a > 1e-6:
        mid = (a + b) / 2
        a, b = (mid, b) if eps(float(np.exp(mid))) > epsilon else (a, mid)
    return float(np.exp((a + b) / 2))


def _axis_values(c: Condition, sc: Scenario, points: int) -> tuple[str, list[Any], list[float] | None]:
    """(field, values, epsilons or None) of a condition; an epsilon range becomes noise multipliers."""
    if c.field != EPSILON:
        return c.field, c.values(points), None
    eps = c.values(points)
    return "federation.noise_multiplier", [noise_for_epsilon(sc, e) for e in eps], eps


def _counts(ds: xr.Dataset, quantity: str, mode: str) -> tuple[xr.DataArray, xr.DataArray]:
    """k and n per cell (over seeds) of a quantity: fail, silent, detected out of the
    valid runs, or silent | fail, detected | fail out of the failed ones."""
    m = ds.sel(mode=mode)
    valid = m["valid_run"].astype(bool)
    failed = (m["failure_round"] >= 0) & valid
    event = {
        "fail": failed,
        "silent": m["silent"].astype(bool) & valid,
        "detected": m["detected"].astype(bool) & valid,
    }[quantity.split("|")[0]]
    base = failed if quantity.endswith("|fail") else valid
    return (event & base).sum("seed"), base.sum("seed")


def prob_greater(k1: float, n1: float, k2: float, n2: float) -> float:
    """P(p_1 > p_2) for independent Jeffreys posteriors p_i ~ Beta(k_i + 1/2, n_i - k_i + 1/2):
    the integral over [0, 1] of f_1(x) F_2(x) dx (adaptive quadrature; exact to 1e-8).

    Args:
        k1: events of side 1.
        n1: runs of side 1.
        k2: events of side 2.
        n2: runs of side 2.

    Returns:
        The posterior probability.
    """
    from scipy import integrate, stats

    a, b = stats.beta(k1 + 0.5, n1 - k1 + 0.5), stats.beta(k2 + 0.5, n2 - k2 + 0.5)
    return float(
        min(1.0, max(0.0, integrate.quad(lambda x: a.pdf(x) * b.cdf(x), 0.0, 1.0, limit=200, epsabs=1e-10)[0]))
    )


def trend_probability(k: np.ndarray, n: np.ndarray, sign: int, seed: int = 0) -> tuple[float, float]:
    """P(p is non-decreasing within :data:`TREND_TOLERANCE` at every step along the
    axis and p_last > p_first) (``sign`` = -1: the mirror, for decreasing), under
    independent Jeffreys posteriors per point, by :data:`TREND_DRAWS` Monte Carlo draws.

    Args:
        k: (..., points) events per point along the axis (last axis).
        n: (..., points) runs.
        sign: +1 increasing, -1 decreasing.
        seed: the draws' seed.

    Returns:
        (the probability for each leading cell multiplied together, its Monte Carlo standard error).
    """
    rng = np.random.default_rng(seed)
    k, n = np.atleast_2d(k).astype(float), np.atleast_2d(n).astype(float)
    draws = rng.beta(k + 0.5, n - k + 0.5, size=(TREND_DRAWS,) + k.shape) * sign
    steps = np.diff(draws, axis=-1)
    ok = (steps >= -TREND_TOLERANCE).all(-1) & (draws[..., -1] > draws[..., 0])
    per = ok.mean(0)
    se = np.sqrt(np.maximum(per * (1 - per), 1e-12) / TREND_DRAWS)
    prob = float(np.prod(per))
    # delta method on the product: relative errors add in quadrature
    rel = np.sqrt(np.sum(np.where(per > 0, (se / np.maximum(per, 1e-12)) ** 2, 0.0)))
    return prob, float(prob * rel)


def check(
    hypothesis: str | Hypothesis,
    scenario: Scenario | None = None,
    *,
    seeds: int = 16,
    points: int = 5,
    model: str = "cell",
    seed: int = 0,
    store: Any = None,
    progress=None,
    fit_options: dict | None = None,
) -> CheckResult:
    """Check a hypothesis on ``scenario`` (default: the 'phase' preset) by sweeping its
    region (module docstring).

    Args:
        hypothesis: the text (or a parsed Hypothesis), e.g. ``for all lambda <= 0.1 and
            shift >= 0.5, P(silent fairness collapse) >= 0.9 under secure aggregation + central DP``.
        scenario: the scenario swept (default: the ``phase`` preset).
        seeds: seeds per grid cell.
        points: grid values per bounded axis.
        model: ``cell`` (independent Jeffreys posteriors per cell), ``probit`` or ``gp``
            (``for all`` and ``there exists`` over two axes).
        seed: the seed of the posterior draws.
        store: optional folder for the sweep and the per-cell posterior.
        progress: optional progress callback of the sweep.
        fit_options: passed to the boundary fit (probit, gp).

    Returns:
        CheckResult: the posterior probability that the hypothesis holds, the per-cell
        counts and posteriors, the failing cells and the sweep.

    Raises:
        HypothesisError: text the grammar does not accept, naming the unknown word.
    """
    from .constraints import with_constraints
    from .sim.sweep import sweep

    h = parse_hypothesis(hypothesis) if isinstance(hypothesis, str) else hypothesis
    if model not in CELL_MODELS:
        raise HypothesisError(f"unknown model {model!r}; models: {', '.join(CELL_MODELS)}")
    sc = scenario if scenario is not None else preset("phase")
    if h.constraints:
        sc = with_constraints(sc, h.constraints)
    from .sim.params import axis_value

    axes: dict[str, list[Any]] = {}
    epsilon: dict[str, list[float]] = {}
    for c in h.conditions:
        f, vals, eps = _axis_values(c, sc, points)
        axes[f] = vals
        if eps is not None:
            epsilon[f] = eps
    region = list(axes)
    sides = [h.given] + ([h.other[2]] if h.other is not None else [])
    picks: list[dict[str, Any]] = []
    for given in sides:
        pick = {}
        for c in given:
            f, (v,), eps = _axis_values(c, sc, 1)
            if f in region:
                raise HypothesisError(f"{c.field} is both in the region and after '|'; keep it in one place")
            pick[f] = v
            axes.setdefault(f, [])
            if not any(repr(v) == repr(w) for w in axes[f]):
                axes[f].append(v)
        picks.append(pick)
    if h.trend is not None:
        f, vals, eps = _axis_values(Condition(h.trend[0]), sc, points)
        if f in axes:
            vals = axes[f]  # the region bounds the trend's axis
        else:
            axes[f] = vals
            region.append(f)
            if eps is not None:
                epsilon[f] = eps
        trend_axis = f
    for f, vals in axes.items():  # bad fields / values name themselves before any work
        try:
            axes[f] = [axis_value(sc, f, v) for v in vals]
            for v in axes[f]:
                sc.replace(**{f: v})
        except ScenarioError as e:
            raise HypothesisError(str(e)) from None
    if model != "cell" and (h.form not in ("all", "exists") or len(region) != 2):  # before the sweep, not after it
        raise HypothesisError(
            f"model={model!r} needs a region over exactly two axes (a 'for all' or 'there exists' statement), "
            f"got {len(region)} ({h.form})"
        )
    ds = sweep(sc, axes, seeds=seeds, store=store, resume=store is not None, progress=progress, theory=False)
    if not bool(ds["valid"].all()):
        raise HypothesisError("some cells of the region diverge (eta * curvature >= 2); narrow the region")
    sides_counts = []
    for pick, (quantity, mode) in zip(picks, [(h.quantity, h.mode)] + ([h.other[:2]] if h.other else [])):
        sub = ds.sel({f: v for f, v in pick.items()}) if pick else ds
        k, n = _counts(sub, quantity, mode)
        sides_counts.append((k.transpose(*region).values, n.transpose(*region).values))
    k, n = sides_counts[0]
    mc_se = 0.0
    if h.form in ("all", "exists"):
        if model != "cell":
            if h.quantity not in ("fail", "silent"):
                raise HypothesisError(f"model={model!r} fits P(fail) or P(silent), not P({h.quantity})")
            fit = fit_boundary(sweep_counts(ds, h.mode, h.quantity), model=model, seed=seed, **(fit_options or {}))
            prob, cell = region_probability(fit.surface, np.ones(fit.counts.k.shape, bool), h.op, h.level)
            k, n = fit.counts.k, fit.counts.n
        else:
            prob, cell = beta_holds(k, n, h.op, h.level)
        cell = np.asarray(cell, float)
        if h.form == "exists":
            prob = float(1.0 - np.prod(1.0 - cell))
    elif h.form == "compare":
        k2, n2 = sides_counts[1]
        greater = h.op in (">", ">=")
        cell = np.vectorize(
            lambda a, b, c, d: prob_greater(a, b, c, d) if greater else prob_greater(c, d, a, b), otypes=[float]
        )(k, n, k2, n2)
        prob = float(np.prod(cell))
    else:
        t = region.index(trend_axis)
        kk, nn = np.moveaxis(k, t, -1), np.moveaxis(n, t, -1)
        rest = [a for a in region if a != trend_axis]
        per = [trend_probability(kk[i], nn[i], h.trend[1], seed) for i in np.ndindex(kk.shape[:-1])]
        cell = np.asarray([p for p, _ in per], float).reshape(kk.shape[:-1])
        prob, mc_se = trend_probability(kk.reshape(-1, kk.shape[-1]), nn.reshape(-1, nn.shape[-1]), h.trend[1], seed)
        region = rest
    coords = {a: ds[a].values for a in region}
    dims = tuple(region)
    data = {"p_holds": (dims, cell)}
    if h.form != "trend":
        data.update(k=(dims, k), n=(dims, n), empirical=(dims, np.where(n > 0, k / np.maximum(n, 1), np.nan)))
    else:
        data.update(
            k=(dims + (trend_axis,), kk),
            n=(dims + (trend_axis,), nn),
            empirical=(dims + (trend_axis,), np.where(nn > 0, kk / np.maximum(nn, 1), np.nan)),
        )
        coords[trend_axis] = ds[trend_axis].values
    if h.form == "compare":
        k2, n2 = sides_counts[1]
        data.update(k_other=(dims, k2), n_other=(dims, n2))
    cells = xr.Dataset(data, coords=coords)
    for f, eps in epsilon.items():
        if f in cells.dims:
            cells = cells.assign_coords(epsilon=(f, np.asarray(eps)))
    failing = []
    if region:
        for idx in zip(*np.nonzero(cell < 0.5)):
            where = {a: _number(coords[a][i]) for a, i in zip(region, idx)}
            failing.append(where | {"P(holds)": float(cell[idx])})
    elif cell < 0.5:
        failing.append({"P(holds)": float(cell)})
    cells.attrs.update(
        hypothesis=h.text, probability=prob, model=model, quantity=h.quantity, mode=h.mode, form=h.form, mc_se=mc_se
    )
    return CheckResult(h, prob, cells, failing, model, ds)


__all__ = ["CheckResult", "Condition", "Hypothesis", "HypothesisError", "check", "parse_hypothesis"]
