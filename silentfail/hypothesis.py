"""Hypothesis checks: "for all lambda <= 0.1 and shift >= 0.5, P(silent fairness
collapse) >= 0.9 under secure aggregation + central DP" -> the posterior probability
that the statement holds over its region, and the cells where it fails.

Grammar (case-insensitive)::

    [for all] COND [and COND ...], P([silent] MODE) OP LEVEL [under CONSTRAINT [+ CONSTRAINT ...]]
    COND := AXIS OP NUMBER | NUMBER OP AXIS OP NUMBER        OP := <= | < | >= | >

AXIS is a scenario field path (``personalization.lam``) or an alias (lambda, shift,
z / noise, q / participation, eta, beta, K, rounds); MODE a mode id or name; P(MODE)
is P(fail), P(silent MODE) P(silent failure). CONSTRAINTs are taxonomy constraint ids,
names or aliases; access constraints are put in force (the others lifted), physical
ones must be the scenario's own (else an error names the field to set).

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
}
#: default ranges (lo, hi, log) of the axes a hypothesis may leave open on one side
DOMAINS = {
    "personalization.lam": (0.01, 10.0, True),
    "shifts.strength": (0.0, 1.0, False),
    "federation.noise_multiplier": (0.0, 4.0, False),
    "federation.participation": (0.05, 1.0, False),
    "personalization.eta": (0.001, 0.5, True),
    "personalization.beta": (0.0, 1.0, False),
}
CELL_MODELS = ("cell", "probit", "gp")
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_OP = r"<=|>=|<|>|≤|≥"


class HypothesisError(ValueError):
    """A hypothesis that cannot be read (the message says which part and why)."""


@dataclass(frozen=True)
class Condition:
    """lo (<= or <) field (<= or <) hi; None = open."""

    field: str
    lo: float | None = None
    hi: float | None = None
    lo_strict: bool = False
    hi_strict: bool = False

    def values(self, points: int) -> list[float]:
        """``points`` grid values inside the bounds (the default range closes an open side).

        Args:
            points: how many values.

        Returns:
            The grid values.
        """
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
    quantity: str  # "fail" | "silent"
    mode: str
    op: str
    level: float
    constraints: tuple[str, ...]


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


def _condition(text: str) -> Condition:
    t = text.strip()
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
        raise HypothesisError(f"cannot read the condition {t!r}: expected AXIS OP NUMBER or NUMBER OP AXIS OP NUMBER")
    name, op, v = m.groups()
    op = _op(op)
    if op[0] == "<":
        return Condition(_field(name), hi=float(v), hi_strict=op == "<")
    return Condition(_field(name), lo=float(v), lo_strict=op == ">")


def _mode(text: str) -> tuple[str, str]:
    words = _norm(text)
    quantity = "fail"
    for prefix, q in (("silent_", "silent"), ("silently_", "silent"), ("failure_of_", "fail"), ("fail_", "fail")):
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

        node = builtin_taxonomy().find(text.split(" ", 1)[-1] if quantity == "silent" else text)
        if node.id in MODES:
            return quantity, node.id
    except Exception:  # noqa: BLE001 - any lookup failure is the message below
        pass
    raise HypothesisError(
        f"unknown mode in P({text}); modes: {', '.join(MODES)} (prefix 'silent' for P(silent failure))"
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
        rf"(?:for\s+(?:all|every|each)\s+)?(?:(.*?)\s*,\s*)?P\s*\(([^)]*)\)\s*({_OP})\s*({_NUM})", t, flags=re.I
    )
    if not m:
        raise HypothesisError(
            f"cannot read {text!r}: expected '[for all COND [and COND]], P([silent] MODE) OP LEVEL [under CONSTRAINTS]'"
        )
    conds, prob, op, level = m.groups()
    conditions = tuple(_condition(c) for c in re.split(r"\s+and\s+", conds, flags=re.I)) if conds else ()
    fields = [c.field for c in conditions]
    if len(set(fields)) != len(fields):
        raise HypothesisError(f"an axis is bounded twice: {fields}; write it as one range 'a <= AXIS <= b'")
    if not 0.0 <= float(level) <= 1.0:
        raise HypothesisError(f"a probability level must be in [0, 1], got {level}")
    quantity, mode = _mode(prob)
    return Hypothesis(text, conditions, quantity, mode, _op(op), float(level), constraints)


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
        n_cells = int(self.cells["n"].size)
        seeds = int(self.sweep.attrs.get("seeds", 0))
        s = (
            f"P(holds) = {self.probability:.3f}: P({h.quantity} {h.mode}) {h.op} {h.level} at all {n_cells} cell(s) "
            f"x {seeds} seeds ({self.model} model)"
        )
        if self.failing:
            where = "; ".join(", ".join(f"{k}={v:g}" for k, v in c.items()) for c in self.failing[:8])
            s += f"; fails (P < 1/2) at {len(self.failing)} cell(s): {where}" + (
                " ..." if len(self.failing) > 8 else ""
            )
        return s


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
        model: ``cell`` (independent Jeffreys posteriors per cell), ``probit`` or ``gp``.
        seed: the seed of the posterior draws.
        store: optional folder for the sweep and the per-cell posterior.
        progress: optional progress callback of the sweep.
        fit_options: passed to the boundary fit (probit, gp).

    Returns:
        CheckResult: the posterior probability that the hypothesis holds at every cell
        of its region, the per-cell posteriors, the failing cells and the sweep.

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

    axes = {c.field: c.values(points) for c in h.conditions}
    for f, vals in axes.items():  # bad fields / values name themselves before any work
        try:
            axes[f] = [axis_value(sc, f, v) for v in vals]
            for v in axes[f]:
                sc.replace(**{f: v})
        except ScenarioError as e:
            raise HypothesisError(str(e)) from None
    names = list(axes)
    if model != "cell" and len(names) != 2:  # before the sweep, not after it
        raise HypothesisError(f"model={model!r} needs a region over exactly two axes, got {len(names)}")
    ds = sweep(sc, axes, seeds=seeds, store=store, resume=store is not None, progress=progress)
    if not bool(ds["valid"].all()):
        raise HypothesisError("some cells of the region diverge (eta * curvature >= 2); narrow the region")
    if model != "cell":
        fit = fit_boundary(sweep_counts(ds, h.mode, h.quantity), model=model, seed=seed, **(fit_options or {}))
        surface, k, n = fit.surface, fit.counts.k, fit.counts.n
    else:
        m = ds.sel(mode=h.mode)
        valid = m["valid_run"].values.astype(bool)
        hit = (m["failure_round"].values >= 0) if h.quantity == "fail" else m["silent"].values.astype(bool)
        k, n = (hit & valid).sum(-1), valid.sum(-1)
    if model == "cell":
        prob, cell = beta_holds(k, n, h.op, h.level)
    else:
        prob, cell = region_probability(surface, np.ones(k.shape, bool), h.op, h.level)
    coords = {a: ds[a].values for a in names}
    dims = tuple(names)
    cells = xr.Dataset(
        {
            "k": (dims, k),
            "n": (dims, n),
            "empirical": (dims, np.where(n > 0, k / np.maximum(n, 1), np.nan)),
            "p_holds": (dims, cell),
        },
        coords=coords,
    )
    failing = []
    for idx in zip(*np.nonzero(cell < 0.5)):
        failing.append({a: float(coords[a][i]) for a, i in zip(names, idx)} | {"P(holds)": float(cell[idx])})
    if not names and cell < 0.5:
        failing.append({"P(holds)": float(cell)})
    cells.attrs.update(hypothesis=h.text, probability=prob, model=model, quantity=h.quantity, mode=h.mode)
    return CheckResult(h, prob, cells, failing, model, ds)


__all__ = ["CheckResult", "Condition", "Hypothesis", "HypothesisError", "check", "parse_hypothesis"]
