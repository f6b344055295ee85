"""silentfail.proofs: sympy derivations of the closed forms (the silentfail reference paper (paper/main.tex), Theory).

Each result is derived symbolically from the model's definitions (the derivation is
the proof), with its statement, LaTeX, a numeric JAX version and its conditions. The
agreement with the simulation is checked in ``tests/proofs`` (``sim`` never imports
this package).

Results: 1 K-step GD and FedAvg's fixed point (``kstep``, ``fedavg_fixed_point``),
2 Ditto's lambda* (``ditto``), 3 aggregate masking (``masking``), 4 the power of the
aggregate test under secure aggregation + DP, its silent region and minimal detectable
shift, and the mu-GDP ceiling (``dp_power``, ``minimal_detectable_shift``,
``gdp_ceiling``), 5 alignment erosion under proximal tuning (``erosion``), 6 the
label-shift bias (``label_shift``), 7 q-FFL with two groups (``qffl``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from ._result import Result, Step
from .ditto import ditto
from .dp_power import dp_power, gdp_ceiling, minimal_detectable_shift
from .erosion import erosion
from .kstep_fedavg import fedavg_fixed_point, kstep
from .label_shift import label_shift
from .masking import masking
from .mean_field import mean_field
from .qffl import qffl

BUILDERS: dict[str, Callable[[], Result]] = {
    "kstep": kstep,
    "fedavg_fixed_point": fedavg_fixed_point,
    "ditto": ditto,
    "masking": masking,
    "dp_power": dp_power,
    "minimal_detectable_shift": minimal_detectable_shift,
    "gdp_ceiling": gdp_ceiling,
    "erosion": erosion,
    "label_shift": label_shift,
    "qffl": qffl,
    "mean_field": mean_field,
}


#: What every statement's symbols mean (the paper prints it under each result; a test
#: checks that every symbol of every statement is here).
NOTATION: dict[str, dict[str, str]] = {
    "kstep": {
        "x_K": r"the iterate after $K$ steps",
        "x_0": "the start",
        "c": r"the minimizer of the client's quadratic $f(x) = \frac{a}{2}(x - c)^2$",
        "a": "its curvature",
        "eta": "the step size",
        "K": "the number of local steps",
    },
    "fedavg_fixed_point": {
        "x^*": "FedAvg's fixed point",
        "n": "the number of clients",
        "c": r"$c_i$, client $i$'s optimum",
        "p": r"$p_i$, its FedAvg weight",
        "q": r"$q_i = 1 - (1 - \eta a_i)^K$, the share of the way to $c_i$ that $K$ local steps of rate $\eta$ travel on curvature $a_i$",
    },
    "ditto": {
        "lambda": "the personalization strength",
        "n": "the client's sample size",
        "s2": "the variance of one sample's noise",
        "tau2": "the variance of the client's parameter about the global one",
    },
    "masking": {
        "pi": "the minority's share",
        "Delta R_min": "the minority's excess risk at the aggregate optimum",
        "Delta R_agg": "the aggregate's excess risk there",
    },
    "dp_power": {
        "Power": r"the probability that the level-$\alpha$ aggregate test alarms",
        "pi": "the share of shifted clients",
        "delta": "their mean shift",
        "s2": "the variance of one client's report",
        "M": "the number of reports",
        "z": "the noise multiplier",
        "C": "the clipping bound",
        "alpha": "the test's level",
    },
    "minimal_detectable_shift": {
        "delta_min": r"the smallest mean shift the test detects with power $1 - \beta$",
        "pi": "the share of shifted clients",
        "s2": "the variance of one client's report",
        "M": "the number of reports",
        "z": "the noise multiplier",
        "C": "the clipping bound",
        "alpha": "the test's level",
        "beta": "the miss probability",
    },
    "gdp_ceiling": {
        "Power_max": r"the most power any level-$\alpha$ test has",
        "mu": r"the release's GDP parameter ($\sqrt{T}/z$ for $T$ Gaussian releases of noise multiplier $z$)",
        "alpha": "the level",
    },
    "erosion": {
        "<theta^* - theta_0, u>": r"the tuned model's displacement along the alignment direction $u$",
        "n": "the dimension",
        "h": r"$h_i$, the eigenvalues of the task's curvature $H$ (eigenvectors $e_i$)",
        "Delta": r"$\Delta_i = \langle \theta_{\mathrm{task}} - \theta_0, e_i\rangle$, the task's pull",
        "u": r"$u_i = \langle e_i, u\rangle$",
        "lambda": "the proximal strength",
    },
    "label_shift": {
        "b_c": r"the Bayes-optimal bias under the client's prior $\pi_c = P(y = +1)$",
        "b_0": r"that under the base prior $\pi_0$",
        "pi_c": "the client's prior",
        "pi_0": "the base prior",
    },
    "qffl": {
        "theta_q": "the q-FFL optimum",
        "c_1": r"group 1's optimum ($c_1 < c_2$)",
        "c_2": "group 2's",
        "p_1": "group 1's share",
        "p_2": "group 2's",
        "q": "the fairness parameter",
    },
    "mean_field": {
        "theta_t": r"the global model in round $t$ of the population limit",
        "theta_0": "the FM",
        "P": r"$\bar P = \sum_c w_c q_c P_c / \sum_c w_c q_c$, the clients' mean personalization map",
        "b": r"$\bar b$, their mean offset",
        "t": r"the round",
    },
}


@cache
def result(name: str) -> Result:
    """The derived result ``name`` (derived once, then cached).

    Args:
        name: a result of :data:`BUILDERS` (kstep, fedavg_fixed_point, ditto, masking, dp_power, ...).

    Returns:
        The Result (statement, conditions, derivation steps, numeric form).

    Raises:
        KeyError: an unknown name, listing the results.
    """
    if name not in BUILDERS:
        raise KeyError(f"unknown result {name!r}; results: {', '.join(BUILDERS)}")
    from dataclasses import replace

    return replace(BUILDERS[name](), notation=NOTATION.get(name, {}))


def latex_document(names: list[str] | None = None) -> str:
    """All statements with their derivation steps, for paper/generated/theorems.tex.

    Args:
        names: the results (default: all).

    Returns:
        The LaTeX text.
    """
    blocks = [result(n).latex_block() for n in (names or list(BUILDERS))]
    header = "% generated by `silentfail prove --latex -o paper/generated/theorems.tex`; do not edit\n" + FITMATH
    return header + "\n\n".join(blocks) + "\n"


#: How the notation table refers to a result: its equation number.
EQREF = "\\eqref{{eq:{}}}"


def notation_table_tex() -> str:
    """The paper's notation table (booktabs, full width): every symbol of every result's
    statement with its meaning and the results that use it in that meaning, in the order
    of first use (:data:`NOTATION`).

    Returns:
        The table's LaTeX.
    """
    import sympy as sp

    from ._result import _tex_text, tex

    rows: dict[tuple[str, str], list[str]] = {}
    for name in BUILDERS:
        for sym, meaning in NOTATION.get(name, {}).items():
            rows.setdefault((sym, meaning), []).append(name)
    body = [
        f"${tex(sp.Symbol(sym))}$ & {_tex_text(meaning)} & {', '.join(EQREF.format(n) for n in names)} \\\\"
        for (sym, meaning), names in rows.items()
    ]
    return "\n".join(
        [
            "% generated by `silentfail paper` from silentfail.proofs.NOTATION; do not edit",
            "\\begin{table*}[t]",
            "\\centering\\small",
            "\\caption{Notation of the theory's results: each symbol, its meaning, and the results that use it "
            "in that meaning (Section~\\ref{sec:theory}).}",
            "\\label{tab:notation}",
            "\\begin{tabular}{@{}l p{0.62\\textwidth} l@{}}",
            "\\toprule",
            "Symbol & Meaning & Results \\\\",
            "\\midrule",
            *body,
            "\\bottomrule",
            "\\end{tabular}",
            "\\end{table*}",
        ]
    )


#: ``\fitmath{...}``: a display at its natural size, scaled down to the line width when it
#: is wider (needs graphicx); defined by the fragment itself unless the document has it.
FITMATH = r"""\makeatletter\@ifundefined{fitbox}{\newsavebox{\fitbox}}{}\makeatother
\providecommand{\fitmath}[1]{\sbox{\fitbox}{$\displaystyle #1$}%
  \ifdim\wd\fitbox>\dimexpr\linewidth-2.5em\relax\resizebox{\dimexpr\linewidth-2.5em\relax}{!}{\usebox{\fitbox}}%
  \else\usebox{\fitbox}\fi}
"""


__all__ = ["BUILDERS", "NOTATION", "Result", "Step", "latex_document", "notation_table_tex", "result"]
